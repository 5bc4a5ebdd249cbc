//! The room's rules driven by arbitrary sequences of joins, requests, drops, resumes, peer
//! connections failing and recovering, and time passing: no input panics, and every invariant
//! holds after every step.
#![no_main]

use arbitrary::Unstructured;
use circle_protocol::{
    CheckInId, ClientMessage as M, FloorMode, ParticipantId, PcKind, ReactionKind, Role, RoomId,
};
use circle_server::room::{Effect, Joiner, Room, RoomConfig};
use libfuzzer_sys::fuzz_target;

const PEOPLE: usize = 6;

fn pid(u: &mut Unstructured) -> arbitrary::Result<ParticipantId> {
    Ok(ParticipantId(format!(
        "p{}",
        u.int_in_range(0..=PEOPLE - 1)?
    )))
}

fn text(u: &mut Unstructured) -> arbitrary::Result<String> {
    let s: String = u.arbitrary()?;
    Ok(s.chars().take(400).collect())
}

fn message(u: &mut Unstructured) -> arbitrary::Result<M> {
    Ok(match u.int_in_range(0..=28)? {
        0 => M::Admit {
            participant: pid(u)?,
        },
        1 => M::Deny {
            participant: pid(u)?,
        },
        2 => M::AdmitAll,
        3 => M::SetFloorMode {
            mode: if u.arbitrary()? {
                FloorMode::Open
            } else {
                FloorMode::Stick
            },
        },
        4 => M::GrantFloor {
            participant: pid(u)?,
        },
        5 => M::GrantNext,
        6 => M::RevokeFloor,
        7 => M::SetTurnLimit {
            seconds: u.arbitrary()?,
        },
        8 => M::InviteToSpeak {
            participant: pid(u)?,
        },
        9 => M::LowerHand {
            participant: if u.arbitrary()? { Some(pid(u)?) } else { None },
        },
        10 => M::Mute {
            participant: pid(u)?,
        },
        11 => M::Unmute {
            participant: pid(u)?,
        },
        12 => M::Remove {
            participant: pid(u)?,
        },
        13 => M::LockRoom {
            locked: u.arbitrary()?,
        },
        14 => M::EndSession,
        15 => M::StartCheckIn {
            question: text(u)?,
            options: (0..u.int_in_range(0..=12)?)
                .map(|_| text(u))
                .collect::<Result<_, _>>()?,
        },
        16 => M::CloseCheckIn {
            check_in: CheckInId(format!("c{}", u.int_in_range(0..=3)?)),
        },
        17 => M::RaiseHand {
            note: if u.arbitrary()? { Some(text(u)?) } else { None },
        },
        18 => M::ReleaseFloor,
        19 => M::PassFloor { to: pid(u)? },
        20 => M::AnswerInvite {
            accept: u.arbitrary()?,
        },
        21 => M::React {
            kind: ReactionKind::ALL[u.int_in_range(0..=5)?],
        },
        22 => M::NeedHelp {
            note: if u.arbitrary()? { Some(text(u)?) } else { None },
        },
        23 => M::AnswerCheckIn {
            check_in: CheckInId(format!("c{}", u.int_in_range(0..=3)?)),
            option: u.arbitrary()?,
        },
        24 => M::SetMedia {
            audio: u.arbitrary()?,
            video: u.arbitrary()?,
            screen: match u.int_in_range(0..=2)? {
                0 => None,
                1 => Some(None),
                _ => Some(Some(text(u)?)),
            },
        },
        27 => M::TileSizes {
            sizes: (0..u.int_in_range(0..=3)?)
                .map(|_| {
                    Ok(circle_protocol::TileSize {
                        participant: pid(u)?,
                        height: u.arbitrary()?,
                    })
                })
                .collect::<arbitrary::Result<_>>()?,
        },
        25 => M::Leave,
        26 => M::Ping,
        _ => M::Hello {
            protocol: 1,
            token: text(u)?,
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let config = RoomConfig {
        max_participants: 5,
        ..Default::default()
    };
    let mut room = Room::new(RoomId::from("fuzz"), config);
    let mut now: u64 = 1_700_000_000_000;
    while !u.is_empty() {
        let step = match u.int_in_range(0..=10u8) {
            Ok(s) => s,
            Err(_) => break,
        };
        let result: arbitrary::Result<()> = (|| {
            match step {
                0 | 1 => {
                    let role = match u.int_in_range(0..=2)? {
                        0 => Role::Facilitator,
                        1 => Role::Member,
                        _ => Role::Observer,
                    };
                    let _ = room.join(now, Joiner {
                        id: pid(&mut u)?,
                        name: text(&mut u)?,
                        role,
                    });
                }
                2 => room.disconnected(now, &pid(&mut u)?),
                3 => {
                    let _ = room.resume(&pid(&mut u)?);
                }
                4 => {
                    now += u64::from(u.int_in_range(0..=40_000u32)?);
                    while let Some(t) = room.poll_timeout() {
                        if t > now {
                            break;
                        }
                        room.handle_timeout(t);
                    }
                }
                5 => {
                    let pc = if u.arbitrary()? {
                        PcKind::Publish
                    } else {
                        PcKind::Subscribe
                    };
                    let up = u.arbitrary()?;
                    room.peer_state(now, &pid(&mut u)?, pc, up);
                }
                _ => {
                    let from = pid(&mut u)?;
                    let id = u.arbitrary()?;
                    room.request(now, &from, id, message(&mut u)?);
                }
            }
            Ok(())
        })();
        if result.is_err() {
            break;
        }
        for effect in room.take_effects() {
            // Reactions leave the room as counts only, never with a sender.
            if let Effect::Send {
                message: circle_protocol::ServerMessage::Reactions { counts },
                ..
            } = &effect
            {
                assert!(counts.values().all(|n| *n > 0));
            }
        }
        if let Err(broken) = room.check_invariants() {
            panic!("invariant broken: {broken}");
        }
    }
});
