//! The room's rules, driven directly: no sockets, no tokio, time passed in by hand.

use circle_protocol::{
    CheckInId, ClientMessage as M, EndReason, ErrorCode, FloorMode, HandStatus, LeaveReason,
    ParticipantId, ReactionKind, Role, RoomId, ServerMessage as S,
};
use proptest::prelude::*;

use super::state::{Effect, Joiner, Room, RoomConfig};
use super::RoomError;
use crate::events::{FinishReason, LeftReason, Moderation, RoomEvent};

fn pid(s: &str) -> ParticipantId {
    ParticipantId::from(s)
}

fn room() -> Room {
    Room::new(RoomId::from("r"), RoomConfig::default())
}

fn join(room: &mut Room, id: &str, role: Role) -> Vec<Effect> {
    room.join(
        0,
        Joiner {
            id: pid(id),
            name: format!("name of {id}"),
            role,
        },
    )
    .unwrap();
    room.take_effects()
}

/// A facilitator `f` and admitted members `a`, `b`, `c`.
fn group() -> Room {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    for m in ["a", "b", "c"] {
        join(&mut r, m, Role::Member);
        req(
            &mut r,
            0,
            "f",
            M::Admit {
                participant: pid(m),
            },
        );
    }
    r.take_effects();
    r
}

fn req(room: &mut Room, now: u64, from: &str, message: M) -> Vec<Effect> {
    room.request(now, &pid(from), Some(1), message);
    room.check_invariants().unwrap();
    room.take_effects()
}

fn to(effects: &[Effect], who: &str) -> Vec<S> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } if to.as_str() == who => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn reply(effects: &[Effect], who: &str) -> Result<(), ErrorCode> {
    for m in to(effects, who) {
        match m {
            S::Ok { .. } => return Ok(()),
            S::Error { code, .. } => return Err(code),
            _ => {}
        }
    }
    panic!("no reply to {who} in {effects:?}")
}

fn floor(effects: &[Effect], who: &str) -> circle_protocol::FloorState {
    to(effects, who)
        .into_iter()
        .rev()
        .find_map(|m| match m {
            S::Floor(f) => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no floor for {who}"))
}

fn gate(effects: &[Effect], who: &str) -> Option<bool> {
    effects.iter().rev().find_map(|e| match e {
        Effect::AudioGate {
            participant,
            forward,
        } if participant.as_str() == who => Some(*forward),
        _ => None,
    })
}

#[test]
fn a_member_waits_until_admitted_and_a_facilitator_never_waits() {
    let mut r = room();
    let e = join(&mut r, "f", Role::Facilitator);
    assert!(e.contains(&Effect::Welcome { to: pid("f") }));
    let e = join(&mut r, "a", Role::Member);
    assert_eq!(to(&e, "a"), vec![S::Waiting]);
    assert!(matches!(&to(&e, "f")[..], [S::WaitingRoom { waiting }] if waiting.len() == 1));
    let e = req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("a"),
        },
    );
    assert!(e.contains(&Effect::Welcome { to: pid("a") }));
    assert!(to(&e, "f")
        .iter()
        .any(|m| matches!(m, S::ParticipantJoined { participant } if participant.id == pid("a"))));
    assert!(r.is_admitted(&pid("a")));
}

#[test]
fn a_waiting_member_may_only_ping_or_leave() {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    let e = req(&mut r, 0, "a", M::RaiseHand { note: None });
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Forbidden));
    let e = req(&mut r, 0, "a", M::Ping);
    assert_eq!(to(&e, "a")[0], S::Pong);
}

#[test]
fn denied_members_are_told_and_closed_with_4003() {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    let e = req(
        &mut r,
        0,
        "f",
        M::Deny {
            participant: pid("a"),
        },
    );
    assert_eq!(to(&e, "a"), vec![S::Denied]);
    assert!(e.contains(&Effect::Close {
        to: pid("a"),
        code: 4003
    }));
    assert!(r.role_of(&pid("a")).is_none());
}

#[test]
fn member_cannot_use_any_facilitator_action_and_nothing_changes() {
    let actions = vec![
        M::Admit {
            participant: pid("b"),
        },
        M::Deny {
            participant: pid("b"),
        },
        M::AdmitAll,
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
        M::GrantFloor {
            participant: pid("a"),
        },
        M::GrantNext,
        M::RevokeFloor,
        M::SetTurnLimit { seconds: Some(60) },
        M::InviteToSpeak {
            participant: pid("a"),
        },
        M::LowerHand {
            participant: Some(pid("b")),
        },
        M::Mute {
            participant: pid("b"),
        },
        M::Unmute {
            participant: pid("b"),
        },
        M::Remove {
            participant: pid("b"),
        },
        M::LockRoom { locked: true },
        M::EndSession,
        M::StartCheckIn {
            question: "q".into(),
            options: vec!["x".into(), "y".into()],
        },
        M::CloseCheckIn {
            check_in: CheckInId::from("c1"),
        },
    ];
    for action in actions {
        let mut r = group();
        req(&mut r, 0, "b", M::RaiseHand { note: None });
        let before = r.snapshot(&pid("f"));
        let e = req(&mut r, 0, "a", action.clone());
        assert_eq!(reply(&e, "a"), Err(ErrorCode::Forbidden), "{action:?}");
        assert_eq!(e.len(), 1, "{action:?} had effects beyond the error: {e:?}");
        assert_eq!(r.snapshot(&pid("f")), before, "{action:?} changed the room");
    }
}

#[test]
fn the_queue_keeps_arrival_order_and_each_member_sees_their_place() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "b",
        M::RaiseHand {
            note: Some("week".into()),
        },
    );
    assert_eq!(
        to(&e, "b")[0],
        S::Hand {
            status: HandStatus::Queued,
            position: Some(1)
        }
    );
    let e = req(&mut r, 0, "a", M::RaiseHand { note: None });
    assert_eq!(floor(&e, "a").position, Some(2));
    assert_eq!(floor(&e, "b").position, Some(1));
    assert_eq!(floor(&e, "c").position, None);
    assert_eq!(floor(&e, "c").queue_length, 2);
    assert!(
        floor(&e, "c").queue.is_none(),
        "members never see the queue itself"
    );
    let q = floor(&e, "f").queue.unwrap();
    assert_eq!(q[0].participant, pid("b"));
    assert_eq!(q[0].note.as_deref(), Some("week"));
    // b lowers their hand: a moves up.
    let e = req(&mut r, 0, "b", M::LowerHand { participant: None });
    assert_eq!(
        to(&e, "b")[0],
        S::Hand {
            status: HandStatus::Cancelled,
            position: None
        }
    );
    assert_eq!(floor(&e, "a").position, Some(1));
}

#[test]
fn raising_a_hand_twice_is_a_conflict() {
    let mut r = group();
    req(&mut r, 0, "a", M::RaiseHand { note: None });
    let e = req(&mut r, 0, "a", M::RaiseHand { note: None });
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Conflict));
}

#[test]
fn grant_next_gives_the_stick_to_the_head_of_the_queue() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    req(&mut r, 0, "b", M::RaiseHand { note: None });
    req(&mut r, 0, "a", M::RaiseHand { note: None });
    let e = req(&mut r, 0, "f", M::GrantNext);
    assert_eq!(floor(&e, "c").holder, Some(pid("b")));
    assert_eq!(floor(&e, "a").position, Some(1));
    assert!(to(&e, "b").contains(&S::Hand {
        status: HandStatus::Granted,
        position: None
    }));
    assert_eq!(gate(&e, "b"), Some(true));
    assert_eq!(floor(&e, "b").pass_to, Some(vec![pid("a")]));
}

#[test]
fn grant_next_on_an_empty_queue_is_a_conflict() {
    let mut r = group();
    let e = req(&mut r, 0, "f", M::GrantNext);
    assert_eq!(reply(&e, "f"), Err(ErrorCode::Conflict));
}

#[test]
fn the_holder_passes_the_stick_only_to_someone_queued() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    let e = req(&mut r, 0, "a", M::PassFloor { to: pid("b") });
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Conflict));
    req(&mut r, 0, "b", M::RaiseHand { note: None });
    let e = req(&mut r, 0, "a", M::PassFloor { to: pid("b") });
    assert_eq!(reply(&e, "a"), Ok(()));
    assert_eq!(floor(&e, "c").holder, Some(pid("b")));
    assert!(to(&e, "a").contains(&S::Hand {
        status: HandStatus::Released,
        position: None
    }));
    assert_eq!(gate(&e, "a"), Some(false));
    assert_eq!(gate(&e, "b"), Some(true));
    let e = req(&mut r, 0, "c", M::PassFloor { to: pid("a") });
    assert_eq!(reply(&e, "c"), Err(ErrorCode::Conflict));
}

#[test]
fn a_holder_who_leaves_gives_the_stick_back() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    let e = req(&mut r, 0, "a", M::Leave);
    assert!(e.contains(&Effect::Close {
        to: pid("a"),
        code: 1000
    }));
    assert_eq!(floor(&e, "b").holder, None);
    assert!(to(&e, "b").contains(&S::ParticipantLeft {
        participant: pid("a"),
        reason: LeaveReason::Left
    }));
}

#[test]
fn the_turn_limit_warns_then_takes_the_stick_back() {
    let mut r = group();
    req(&mut r, 0, "f", M::SetTurnLimit { seconds: Some(30) });
    let e = req(
        &mut r,
        1_000,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    assert_eq!(floor(&e, "a").turn_ends_at, Some(31_000));
    assert_eq!(r.poll_timeout(), Some(21_000));
    r.handle_timeout(21_000);
    let e = r.take_effects();
    assert_eq!(to(&e, "a"), vec![S::TurnWarning { seconds_left: 10 }]);
    assert_eq!(to(&e, "f"), vec![S::TurnWarning { seconds_left: 10 }]);
    assert!(
        to(&e, "b").is_empty(),
        "only the holder and facilitators are warned"
    );
    assert_eq!(r.poll_timeout(), Some(31_000));
    r.handle_timeout(31_000);
    let e = r.take_effects();
    assert!(to(&e, "a").contains(&S::Hand {
        status: HandStatus::Revoked,
        position: None
    }));
    assert_eq!(floor(&e, "b").holder, None);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn an_invitation_can_be_accepted_or_passed() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "f",
        M::InviteToSpeak {
            participant: pid("a"),
        },
    );
    assert_eq!(to(&e, "a"), vec![S::InvitedToSpeak]);
    let e = req(&mut r, 0, "a", M::AnswerInvite { accept: false });
    assert!(to(&e, "f").contains(&S::InviteAnswered {
        participant: pid("a"),
        accepted: false
    }));
    assert!(
        to(&e, "b").is_empty(),
        "the answer is private to facilitators"
    );
    let e = req(&mut r, 0, "a", M::AnswerInvite { accept: true });
    assert_eq!(
        reply(&e, "a"),
        Err(ErrorCode::Conflict),
        "an answered invitation is gone"
    );
    req(
        &mut r,
        0,
        "f",
        M::InviteToSpeak {
            participant: pid("b"),
        },
    );
    let e = req(&mut r, 0, "b", M::AnswerInvite { accept: true });
    assert!(to(&e, "f").contains(&S::InviteAnswered {
        participant: pid("b"),
        accepted: true
    }));
    assert_eq!(floor(&e, "c").holder, Some(pid("b")));
}

#[test]
fn stick_mode_forwards_only_the_holder_and_facilitators() {
    let mut r = room();
    let e = join(&mut r, "f", Role::Facilitator);
    assert_eq!(gate(&e, "f"), Some(true));
    join(&mut r, "a", Role::Member);
    let e = req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("a"),
        },
    );
    assert_eq!(gate(&e, "a"), Some(true), "open mode by default");
    let e = req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    assert_eq!(gate(&e, "a"), Some(false));
    assert_eq!(gate(&e, "f"), None, "a facilitator's gate never changes");
    let e = req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    assert_eq!(gate(&e, "a"), Some(true));
    let e = req(&mut r, 0, "f", M::RevokeFloor);
    assert_eq!(gate(&e, "a"), Some(false));
}

#[test]
fn a_muted_member_is_not_forwarded_even_in_open_mode_and_cannot_unmute() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "f",
        M::Mute {
            participant: pid("a"),
        },
    );
    assert_eq!(gate(&e, "a"), Some(false));
    assert!(to(&e, "b")
        .iter()
        .any(|m| matches!(m, S::ParticipantUpdated { participant } if participant.muted)));
    let e = req(
        &mut r,
        0,
        "a",
        M::Unmute {
            participant: pid("a"),
        },
    );
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Forbidden));
    let e = req(
        &mut r,
        0,
        "a",
        M::SetMedia {
            audio: true,
            video: true,
        },
    );
    assert_eq!(
        gate(&e, "a"),
        None,
        "the member's own microphone does not lift the block"
    );
    let e = req(
        &mut r,
        0,
        "f",
        M::Unmute {
            participant: pid("a"),
        },
    );
    assert_eq!(gate(&e, "a"), Some(true));
}

#[test]
fn reactions_are_counted_per_window_and_name_nobody() {
    let mut r = group();
    let e = req(
        &mut r,
        100,
        "a",
        M::React {
            kind: ReactionKind::Heart,
        },
    );
    assert_eq!(
        to(&e, "b"),
        vec![],
        "nothing is sent before the window closes"
    );
    req(
        &mut r,
        200,
        "b",
        M::React {
            kind: ReactionKind::Heart,
        },
    );
    req(
        &mut r,
        300,
        "f",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(r.poll_timeout(), Some(2_100));
    r.handle_timeout(2_100);
    let e = r.take_effects();
    for who in ["f", "a", "b", "c"] {
        match &to(&e, who)[..] {
            [S::Reactions { counts }] => {
                assert_eq!(counts[&ReactionKind::Heart], 2);
                assert_eq!(counts[&ReactionKind::MeToo], 1);
            }
            other => panic!("{who} got {other:?}"),
        }
    }
}

#[test]
fn a_sixth_reaction_within_a_second_is_rate_limited() {
    let mut r = group();
    for i in 0..5 {
        let e = req(
            &mut r,
            1_000 + i,
            "a",
            M::React {
                kind: ReactionKind::Thanks,
            },
        );
        assert_eq!(reply(&e, "a"), Ok(()));
    }
    let e = req(
        &mut r,
        1_500,
        "a",
        M::React {
            kind: ReactionKind::Thanks,
        },
    );
    assert_eq!(reply(&e, "a"), Err(ErrorCode::RateLimited));
    let e = req(
        &mut r,
        2_001,
        "a",
        M::React {
            kind: ReactionKind::Thanks,
        },
    );
    assert_eq!(reply(&e, "a"), Ok(()));
}

/// A facilitator `f` and admitted members `a`, `b`, `c`, `d`.
fn group_of_four() -> Room {
    let mut r = group();
    join(&mut r, "d", Role::Member);
    req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("d"),
        },
    );
    r
}

/// Opens a check-in with `options` choices, has each `(member, option)` answer, closes it and
/// returns the result member `a` received.
fn check_in_result(r: &mut Room, options: usize, answers: &[(&str, u32)]) -> S {
    let e = req(
        r,
        0,
        "f",
        M::StartCheckIn {
            question: "How are you?".into(),
            options: (0..options).map(|i| format!("option {i}")).collect(),
        },
    );
    let S::CheckIn(open) = &to(&e, "a")[0] else {
        panic!()
    };
    let id = open.check_in.clone();
    for (m, o) in answers {
        let e = req(
            r,
            0,
            m,
            M::AnswerCheckIn {
                check_in: id.clone(),
                option: *o,
            },
        );
        assert_eq!(to(&e, "f"), vec![], "an answer tells nobody else anything");
    }
    let e = req(r, 0, "f", M::CloseCheckIn { check_in: id });
    to(&e, "a")
        .into_iter()
        .find(|m| matches!(m, S::CheckInResult { .. }))
        .expect("everyone gets the result")
}

fn counts_of(result: &S) -> (Option<Vec<u32>>, u32) {
    let S::CheckInResult {
        counts, responses, ..
    } = result
    else {
        panic!("{result:?}")
    };
    (counts.clone(), *responses)
}

#[test]
fn check_in_counts_are_published_only_above_the_threshold() {
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 0), ("b", 1)]);
    assert_eq!(counts_of(&result), (None, 2));
    // Answering again replaces: a's first answer no longer counts.
    let result = check_in_result(
        &mut r,
        2,
        &[("a", 1), ("b", 1), ("c", 0), ("a", 0), ("d", 1)],
    );
    assert_eq!(counts_of(&result), (Some(vec![2, 2]), 4));
}

#[test]
fn a_unanimous_check_in_publishes_no_counts() {
    // Three members all answered "struggling": counts [0, 3] would tell everyone each answer.
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 1), ("b", 1), ("c", 1)]);
    assert_eq!(counts_of(&result), (None, 3));
}

#[test]
fn a_check_in_where_all_but_one_agree_publishes_no_counts() {
    // [2, 1]: the one who chose otherwise would learn both others' answers.
    let mut r = group_of_four();
    let result = check_in_result(&mut r, 2, &[("a", 0), ("b", 0), ("c", 1)]);
    assert_eq!(counts_of(&result), (None, 3));
    let result = check_in_result(&mut r, 3, &[("a", 0), ("b", 0), ("c", 0), ("d", 2)]);
    assert_eq!(counts_of(&result), (None, 4));
    // Spread over three options, three answers reveal nobody's.
    let result = check_in_result(&mut r, 3, &[("a", 0), ("b", 1), ("c", 2)]);
    assert_eq!(counts_of(&result), (Some(vec![1, 1, 1]), 3));
}

#[test]
fn reactions_are_refused_while_fewer_than_three_are_in_the_room() {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("a"),
        },
    );
    // With two people, each knows any reaction they did not send came from the other.
    for who in ["a", "f"] {
        let e = req(
            &mut r,
            10,
            who,
            M::React {
                kind: ReactionKind::MeToo,
            },
        );
        assert_eq!(reply(&e, who), Err(ErrorCode::Conflict));
    }
    assert_eq!(r.poll_timeout(), None, "no reaction window was opened");
    // Someone reconnecting is shown as away: they do not count as a possible sender.
    join(&mut r, "b", Role::Member);
    req(
        &mut r,
        20,
        "f",
        M::Admit {
            participant: pid("b"),
        },
    );
    r.disconnected(30, &pid("b"));
    let e = req(
        &mut r,
        40,
        "a",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(reply(&e, "a"), Err(ErrorCode::Conflict));
    r.resume(&pid("b")).unwrap();
    let e = req(
        &mut r,
        50,
        "a",
        M::React {
            kind: ReactionKind::MeToo,
        },
    );
    assert_eq!(reply(&e, "a"), Ok(()));
}

#[test]
fn a_dropped_participant_keeps_their_place_through_the_grace_and_loses_it_after() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    req(&mut r, 0, "b", M::RaiseHand { note: None });
    r.disconnected(1_000, &pid("a"));
    r.disconnected(1_000, &pid("b"));
    let e = r.take_effects();
    assert!(to(&e, "c").iter().any(|m| matches!(m,
        S::ParticipantUpdated { participant } if participant.id == pid("a")
            && participant.connection == circle_protocol::Connection::Reconnecting)));
    assert_eq!(r.poll_timeout(), Some(21_000));
    r.resume(&pid("a")).unwrap();
    r.take_effects();
    r.handle_timeout(21_000);
    let e = r.take_effects();
    assert!(to(&e, "c").contains(&S::ParticipantLeft {
        participant: pid("b"),
        reason: LeaveReason::Timeout
    }));
    assert_eq!(floor(&e, "c").holder, Some(pid("a")));
    assert_eq!(floor(&e, "c").queue_length, 0);
    assert_eq!(
        r.resume(&pid("b")),
        Err(RoomError::Unauthorized("unknown resume token".into()))
    );
}

#[test]
fn a_removed_participant_cannot_rejoin() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "f",
        M::Remove {
            participant: pid("a"),
        },
    );
    assert_eq!(to(&e, "a"), vec![S::Removed]);
    assert!(e.contains(&Effect::Close {
        to: pid("a"),
        code: 4001
    }));
    assert!(to(&e, "b").contains(&S::ParticipantLeft {
        participant: pid("a"),
        reason: LeaveReason::Removed
    }));
    assert!(
        e.contains(&Effect::Banned {
            participant: pid("a")
        }),
        "the shell is told, to remember it beyond the room"
    );
    let again = r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "x".into(),
            role: Role::Member,
        },
    );
    assert!(matches!(again, Err(RoomError::Forbidden(_))));
}

#[test]
fn a_denied_person_may_not_knock_again_until_the_cool_down_has_passed() {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    req(
        &mut r,
        1_000,
        "f",
        M::Deny {
            participant: pid("a"),
        },
    );
    let knock = |r: &mut Room, now| {
        r.join(
            now,
            Joiner {
                id: pid("a"),
                name: "a".into(),
                role: Role::Member,
            },
        )
    };
    assert!(matches!(knock(&mut r, 1_001), Err(RoomError::Forbidden(_))));
    assert!(matches!(
        knock(&mut r, 60_999),
        Err(RoomError::Forbidden(_))
    ));
    assert_eq!(knock(&mut r, 61_000), Ok(super::Joined::New));
}

#[test]
fn a_newer_token_with_another_role_cannot_take_over_a_seat() {
    let mut r = group();
    // A member's link carrying the facilitator's `sub` must not inherit the facilitator's role.
    let takeover = r.join(
        0,
        Joiner {
            id: pid("f"),
            name: "name of f".into(),
            role: Role::Member,
        },
    );
    assert!(matches!(takeover, Err(RoomError::Forbidden(_))));
    assert!(r.take_effects().is_empty(), "nothing changed");
    let demoted = r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "name of a".into(),
            role: Role::Observer,
        },
    );
    assert!(matches!(demoted, Err(RoomError::Forbidden(_))));
    assert_eq!(r.role_of(&pid("a")), Some(Role::Member));
}

#[test]
fn a_newer_token_with_the_same_role_brings_its_new_name() {
    let mut r = group();
    let renamed = r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "Robin".into(),
            role: Role::Member,
        },
    );
    assert_eq!(renamed, Ok(super::Joined::Replaced));
    let e = r.take_effects();
    let update = to(&e, "b")
        .into_iter()
        .find_map(|m| match m {
            S::ParticipantUpdated { participant } => Some(participant),
            _ => None,
        })
        .expect("the room is told the new name");
    assert_eq!(update.name, "Robin");
}

#[test]
fn a_locked_room_refuses_new_members_but_not_facilitators() {
    let mut r = group();
    req(&mut r, 0, "f", M::LockRoom { locked: true });
    let refused = r.join(
        0,
        Joiner {
            id: pid("d"),
            name: "d".into(),
            role: Role::Member,
        },
    );
    assert_eq!(refused, Err(RoomError::RoomLocked));
    assert!(r
        .join(
            0,
            Joiner {
                id: pid("g"),
                name: "g".into(),
                role: Role::Facilitator
            }
        )
        .is_ok());
}

#[test]
fn the_participant_cap_counts_those_waiting() {
    let mut r = Room::new(
        RoomId::from("r"),
        RoomConfig {
            max_participants: 2,
            ..Default::default()
        },
    );
    join(&mut r, "f", Role::Facilitator);
    join(&mut r, "a", Role::Member);
    let refused = r.join(
        0,
        Joiner {
            id: pid("b"),
            name: "b".into(),
            role: Role::Member,
        },
    );
    assert_eq!(refused, Err(RoomError::RoomFull));
}

#[test]
fn ending_the_session_tells_and_closes_everyone() {
    let mut r = group();
    join(&mut r, "w", Role::Member);
    let e = req(&mut r, 0, "f", M::EndSession);
    for who in ["f", "a", "b", "c", "w"] {
        assert!(to(&e, who).contains(&S::SessionEnded {
            reason: EndReason::EndedByFacilitator
        }));
        assert!(e.contains(&Effect::Close {
            to: pid(who),
            code: 4004
        }));
    }
    assert!(r.is_finished());
}

#[test]
fn need_help_reaches_facilitators_only() {
    let mut r = group();
    let e = req(
        &mut r,
        0,
        "a",
        M::NeedHelp {
            note: Some("a moment".into()),
        },
    );
    assert!(to(&e, "f").contains(&S::HelpRequested {
        participant: pid("a"),
        note: Some("a moment".into())
    }));
    assert!(to(&e, "b").is_empty() && to(&e, "c").is_empty());
}

#[test]
fn speaking_without_the_stick_is_shown_to_facilitators_only() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    r.speaking(vec![pid("a"), pid("f")]);
    let e = r.take_effects();
    assert_eq!(
        to(&e, "f"),
        vec![S::Speaking {
            participants: vec![pid("a"), pid("f")]
        }]
    );
    assert_eq!(
        to(&e, "b"),
        vec![S::Speaking {
            participants: vec![pid("f")]
        }]
    );
}

#[test]
fn the_room_is_told_of_a_speaker_once_given_the_stick_and_untold_when_it_is_taken() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    r.speaking(vec![pid("a")]);
    let e = r.take_effects();
    assert_eq!(to(&e, "b"), vec![], "nothing the room could hear");
    let e = req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    assert!(to(&e, "b").contains(&S::Speaking {
        participants: vec![pid("a")]
    }));
    let e = req(&mut r, 0, "f", M::RevokeFloor);
    assert!(to(&e, "b").contains(&S::Speaking {
        participants: vec![]
    }));
    assert_eq!(
        to(&e, "f")
            .iter()
            .filter(|m| matches!(m, S::Speaking { .. }))
            .count(),
        0,
        "facilitators' view did not change"
    );
}

#[test]
fn a_second_hello_replaces_without_losing_the_stick() {
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    let again = r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "x".into(),
            role: Role::Member,
        },
    );
    assert_eq!(again, Ok(super::Joined::Replaced));
    let e = r.take_effects();
    assert!(e.contains(&Effect::Welcome { to: pid("a") }));
    let (_, state) = r.snapshot(&pid("a")).unwrap();
    assert_eq!(state.floor.holder, Some(pid("a")));
}

// ---- room events ----

fn events(effects: &[Effect]) -> Vec<RoomEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_session_is_told_as_events_from_the_first_admission_to_the_last_leave() {
    let mut r = room();
    let mut told = Vec::new();
    r.join(
        0,
        Joiner {
            id: pid("f"),
            name: "Sam".into(),
            role: Role::Facilitator,
        },
    )
    .unwrap();
    told.extend(events(&r.take_effects()));
    r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "River".into(),
            role: Role::Member,
        },
    )
    .unwrap();
    told.extend(events(&r.take_effects()));
    told.extend(events(&req(
        &mut r,
        0,
        "f",
        M::Admit {
            participant: pid("a"),
        },
    )));
    told.extend(events(&req(
        &mut r,
        0,
        "f",
        M::Mute {
            participant: pid("a"),
        },
    )));
    told.extend(events(&req(&mut r, 0, "f", M::LockRoom { locked: true })));
    r.disconnected(10, &pid("a"));
    told.extend(events(&r.take_effects()));
    r.resume(&pid("a")).unwrap();
    told.extend(events(&r.take_effects()));
    told.extend(events(&req(&mut r, 20, "a", M::Leave)));
    told.extend(events(&req(&mut r, 30, "f", M::Leave)));
    let moderated = |action, target: Option<&str>| RoomEvent::Moderated {
        by: pid("f"),
        action,
        target: target.map(pid),
    };
    assert_eq!(
        told,
        vec![
            RoomEvent::Started,
            RoomEvent::Admitted {
                participant: pid("f"),
                role: Role::Facilitator
            },
            RoomEvent::Waiting {
                participant: pid("a"),
                role: Role::Member
            },
            moderated(Moderation::Admitted, Some("a")),
            RoomEvent::Admitted {
                participant: pid("a"),
                role: Role::Member
            },
            moderated(Moderation::Muted, Some("a")),
            moderated(Moderation::Locked, None),
            RoomEvent::Reconnecting {
                participant: pid("a")
            },
            RoomEvent::Back {
                participant: pid("a")
            },
            RoomEvent::Left {
                participant: pid("a"),
                role: Role::Member,
                reason: LeftReason::Left
            },
            RoomEvent::Left {
                participant: pid("f"),
                role: Role::Facilitator,
                reason: LeftReason::Left
            },
            RoomEvent::Finished {
                reason: FinishReason::Empty
            },
        ]
    );
    // Nothing said in the room travels with an event: no names at all.
    assert!(!format!("{told:?}").contains("River") && !format!("{told:?}").contains("Sam"));
}

#[test]
fn ending_the_session_tells_everyone_left_and_why_it_finished() {
    let mut r = group();
    let e = req(&mut r, 0, "f", M::EndSession);
    let told = events(&e);
    assert_eq!(
        told[0],
        RoomEvent::Moderated {
            by: pid("f"),
            action: Moderation::Ended,
            target: None
        }
    );
    for who in ["f", "a", "b", "c"] {
        assert!(told.iter().any(|ev| matches!(ev,
            RoomEvent::Left { participant, reason: LeftReason::Ended, .. } if participant.as_str() == who)));
    }
    assert_eq!(
        told.last(),
        Some(&RoomEvent::Finished {
            reason: FinishReason::EndedByFacilitator
        })
    );
    let mut r = group();
    r.shut_down();
    assert_eq!(
        events(&r.take_effects()).last(),
        Some(&RoomEvent::Finished {
            reason: FinishReason::ServerShutdown
        })
    );
}

#[test]
fn a_room_nobody_was_admitted_to_never_starts_or_finishes() {
    let mut r = room();
    r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "a".into(),
            role: Role::Member,
        },
    )
    .unwrap();
    r.disconnected(5, &pid("a"));
    let told = events(&r.take_effects());
    assert_eq!(
        told,
        vec![RoomEvent::Waiting {
            participant: pid("a"),
            role: Role::Member
        }]
    );
    assert!(r.is_finished());
}

// ---- media recovery ----

fn connection_of(
    effects: &[Effect],
    who: &str,
    about: &str,
) -> Option<circle_protocol::Connection> {
    to(effects, who).iter().rev().find_map(|m| match m {
        S::ParticipantUpdated { participant } if participant.id == pid(about) => {
            Some(participant.connection)
        }
        _ => None,
    })
}

fn restarts(effects: &[Effect], who: &str) -> usize {
    effects
        .iter()
        .filter(|e| matches!(e, Effect::RestartIce { participant } if participant == &pid(who)))
        .count()
}

#[test]
fn a_resume_restarts_ice_on_the_participants_peers() {
    let mut r = group();
    r.disconnected(1_000, &pid("a"));
    let e = r.take_effects();
    assert_eq!(restarts(&e, "a"), 0, "no restart while the socket is gone");
    r.resume(&pid("a")).unwrap();
    let e = r.take_effects();
    assert_eq!(restarts(&e, "a"), 1);
    assert_eq!(
        connection_of(&e, "b", "a"),
        Some(circle_protocol::Connection::Connected)
    );
}

#[test]
fn a_failed_peer_shows_its_participant_reconnecting_and_restarts_subscribe() {
    use circle_protocol::{Connection, PcKind};
    let mut r = group();
    r.peer_state(1_000, &pid("a"), PcKind::Subscribe, false);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), Some(Connection::Reconnecting));
    assert_eq!(connection_of(&e, "f", "a"), Some(Connection::Reconnecting));
    assert_eq!(
        restarts(&e, "a"),
        1,
        "the server offers a restart on subscribe"
    );
    assert_eq!(r.poll_timeout(), Some(21_000));
    // The same failure reported again restarts nothing more.
    r.peer_state(1_500, &pid("a"), PcKind::Subscribe, false);
    assert!(r.take_effects().is_empty());
    // A failed publish waits for the browser's own re-offer.
    r.peer_state(2_000, &pid("b"), PcKind::Publish, false);
    let e = r.take_effects();
    assert_eq!(restarts(&e, "b"), 0);
    assert_eq!(connection_of(&e, "c", "b"), Some(Connection::Reconnecting));
}

#[test]
fn a_failed_peer_that_recovers_within_the_grace_keeps_its_participant() {
    use circle_protocol::{Connection, PcKind};
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    r.peer_state(1_000, &pid("a"), PcKind::Publish, false);
    r.peer_state(1_100, &pid("a"), PcKind::Subscribe, false);
    r.take_effects();
    r.peer_state(5_000, &pid("a"), PcKind::Publish, true);
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), None, "subscribe is still down");
    r.peer_state(6_000, &pid("a"), PcKind::Subscribe, true);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert_eq!(connection_of(&e, "b", "a"), Some(Connection::Connected));
    assert_eq!(r.poll_timeout(), None);
    r.handle_timeout(60_000);
    assert!(r.is_admitted(&pid("a")));
    assert_eq!(
        r.snapshot(&pid("b")).unwrap().1.floor.holder,
        Some(pid("a"))
    );
}

#[test]
fn a_failed_peer_that_never_recovers_is_removed_when_the_grace_runs_out() {
    use circle_protocol::PcKind;
    let mut r = group();
    req(
        &mut r,
        0,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    r.peer_state(1_000, &pid("a"), PcKind::Subscribe, false);
    r.take_effects();
    // A resume in between does not forgive a peer that is still down.
    r.disconnected(2_000, &pid("a"));
    r.resume(&pid("a")).unwrap();
    r.take_effects();
    assert_eq!(r.poll_timeout(), Some(21_000));
    r.handle_timeout(20_999);
    assert!(r.is_admitted(&pid("a")));
    r.handle_timeout(21_000);
    r.check_invariants().unwrap();
    let e = r.take_effects();
    assert!(to(&e, "b").contains(&S::ParticipantLeft {
        participant: pid("a"),
        reason: LeaveReason::Timeout
    }));
    assert!(e.contains(&Effect::Gone {
        participant: pid("a")
    }));
    assert_eq!(floor(&e, "b").holder, None, "the stick comes back");
}

#[test]
fn a_second_hello_forgives_the_old_peers_failures() {
    use circle_protocol::PcKind;
    let mut r = group();
    r.peer_state(1_000, &pid("a"), PcKind::Publish, false);
    r.take_effects();
    r.join(
        0,
        Joiner {
            id: pid("a"),
            name: "x".into(),
            role: Role::Member,
        },
    )
    .unwrap();
    r.check_invariants().unwrap();
    r.take_effects();
    assert_eq!(r.poll_timeout(), None);
    let (me, _) = r.snapshot(&pid("a")).unwrap();
    assert_eq!(me.connection, circle_protocol::Connection::Connected);
}

#[test]
fn peer_states_of_someone_waiting_or_unknown_change_nothing() {
    use circle_protocol::PcKind;
    let mut r = group();
    join(&mut r, "w", Role::Member);
    r.peer_state(1_000, &pid("w"), PcKind::Publish, false);
    r.peer_state(1_000, &pid("nobody"), PcKind::Publish, false);
    assert!(r.take_effects().is_empty());
    assert_eq!(r.poll_timeout(), None);
}

// ---- properties over random command sequences ----

#[derive(Debug, Clone)]
enum Step {
    Join(usize, Role),
    Request(usize, M),
    Drop(usize),
    Resume(usize),
    PeerState(usize, bool, bool),
    Advance(u64),
}

const PEOPLE: [&str; 6] = ["p0", "p1", "p2", "p3", "p4", "p5"];

fn any_person() -> impl Strategy<Value = usize> {
    0..PEOPLE.len()
}

fn any_message() -> impl Strategy<Value = M> {
    let p = || any_person().prop_map(|i| pid(PEOPLE[i]));
    prop_oneof![
        p().prop_map(|participant| M::Admit { participant }),
        p().prop_map(|participant| M::Deny { participant }),
        Just(M::AdmitAll),
        prop_oneof![Just(FloorMode::Open), Just(FloorMode::Stick)]
            .prop_map(|mode| M::SetFloorMode { mode }),
        p().prop_map(|participant| M::GrantFloor { participant }),
        Just(M::GrantNext),
        Just(M::RevokeFloor),
        proptest::option::of(1u32..5).prop_map(|seconds| M::SetTurnLimit { seconds }),
        p().prop_map(|participant| M::InviteToSpeak { participant }),
        proptest::option::of(p()).prop_map(|participant| M::LowerHand { participant }),
        p().prop_map(|participant| M::Mute { participant }),
        p().prop_map(|participant| M::Unmute { participant }),
        p().prop_map(|participant| M::Remove { participant }),
        any::<bool>().prop_map(|locked| M::LockRoom { locked }),
        Just(M::StartCheckIn {
            question: "q".into(),
            options: vec!["x".into(), "y".into(), "z".into()]
        }),
        Just(M::CloseCheckIn {
            check_in: CheckInId::from("c1")
        }),
        Just(M::RaiseHand { note: None }),
        Just(M::ReleaseFloor),
        p().prop_map(|to| M::PassFloor { to }),
        any::<bool>().prop_map(|accept| M::AnswerInvite { accept }),
        (0..6usize).prop_map(|k| M::React {
            kind: ReactionKind::ALL[k]
        }),
        Just(M::NeedHelp { note: None }),
        (0u32..3).prop_map(|option| M::AnswerCheckIn {
            check_in: CheckInId::from("c1"),
            option
        }),
        (any::<bool>(), any::<bool>()).prop_map(|(audio, video)| M::SetMedia { audio, video }),
        Just(M::Leave),
        Just(M::Ping),
    ]
}

fn any_step() -> impl Strategy<Value = Step> {
    let role = prop_oneof![
        Just(Role::Facilitator),
        Just(Role::Member),
        Just(Role::Member),
        Just(Role::Observer)
    ];
    prop_oneof![
        2 => (any_person(), role).prop_map(|(i, r)| Step::Join(i, r)),
        8 => (any_person(), any_message()).prop_map(|(i, m)| Step::Request(i, m)),
        1 => any_person().prop_map(Step::Drop),
        1 => any_person().prop_map(Step::Resume),
        1 => (any_person(), any::<bool>(), any::<bool>())
            .prop_map(|(i, publish, up)| Step::PeerState(i, publish, up)),
        2 => (0u64..30_000).prop_map(Step::Advance),
    ]
}

/// Whether any message to someone other than `sender` names them.
fn names_sender_to_others(effects: &[Effect], sender: &str) -> bool {
    let needle = format!("\"{sender}\"");
    effects.iter().any(|e| match e {
        Effect::Send { to, message } if to.as_str() != sender => {
            serde_json::to_string(message).unwrap().contains(&needle)
        }
        _ => false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn invariants_hold_after_every_step(steps in proptest::collection::vec(any_step(), 1..80)) {
        let mut r = Room::new(RoomId::from("r"), RoomConfig { max_participants: 5, ..Default::default() });
        let mut now = 0u64;
        // The answers to the first check-in that were accepted, latest per person.
        let mut c1_answers: std::collections::HashMap<&str, usize> = Default::default();
        let mut told = Vec::new();
        for step in steps {
            match step {
                Step::Join(i, role) => {
                    let _ = r.join(now, Joiner { id: pid(PEOPLE[i]), name: "n".into(), role });
                }
                Step::Request(i, m) => {
                    let is_anonymous = matches!(m, M::React { .. } | M::AnswerCheckIn { .. });
                    let connected = r.snapshot(&pid(PEOPLE[i])).map_or(0, |(_, state)| {
                        state.participants.iter()
                            .filter(|p| p.connection == circle_protocol::Connection::Connected)
                            .count()
                    });
                    let answer = match &m {
                        M::AnswerCheckIn { check_in, option } if check_in.as_str() == "c1" => Some(*option),
                        _ => None,
                    };
                    let reacts = matches!(m, M::React { .. });
                    r.request(now, &pid(PEOPLE[i]), Some(7), m);
                    let effects = r.take_effects();
                    told.extend(events(&effects));
                    if is_anonymous {
                        prop_assert!(!names_sender_to_others(&effects, PEOPLE[i]),
                            "an anonymous act named its sender: {:?}", effects);
                    }
                    let accepted = effects.iter().any(|e| matches!(e,
                        Effect::Send { to, message: S::Ok { .. } } if to.as_str() == PEOPLE[i]));
                    if reacts && accepted {
                        prop_assert!(connected >= 3,
                            "a reaction was counted with {} people shown in the room", connected);
                    }
                    if let (Some(option), true) = (answer, accepted) {
                        c1_answers.insert(PEOPLE[i], option as usize);
                    }
                    for e in &effects {
                        if let Effect::Send { message: S::CheckInResult { check_in, counts: Some(counts), responses }, .. } = e {
                            if check_in.as_str() != "c1" { continue; }
                            prop_assert!(*responses >= 3);
                            // Whatever one answerer knows (their own choice, and in the worst
                            // case who else answered), the others' choices must not all fall
                            // on one option; and nobody outside learns a unanimous answer.
                            for (_, mine) in c1_answers.iter() {
                                let mut others = counts.clone();
                                others[*mine] -= 1;
                                prop_assert!(others.iter().all(|c| *c < responses - 1),
                                    "counts {:?} reveal the others' answers to one who chose {}", counts, mine);
                            }
                            prop_assert!(counts.iter().all(|c| c < responses));
                        }
                    }
                }
                Step::Drop(i) => r.disconnected(now, &pid(PEOPLE[i])),
                Step::Resume(i) => { let _ = r.resume(&pid(PEOPLE[i])); }
                Step::PeerState(i, publish, up) => {
                    let pc = if publish { circle_protocol::PcKind::Publish } else { circle_protocol::PcKind::Subscribe };
                    r.peer_state(now, &pid(PEOPLE[i]), pc, up);
                }
                Step::Advance(ms) => {
                    now += ms;
                    while let Some(t) = r.poll_timeout() {
                        if t > now { break; }
                        r.handle_timeout(t);
                        // Timed-out reaction windows are flushed as counts only.
                        let effects = r.take_effects();
                        told.extend(events(&effects));
                        for e in effects {
                            if let Effect::Send { message: S::Reactions { counts }, .. } = &e {
                                prop_assert!(counts.values().all(|n| *n > 0));
                            }
                        }
                    }
                }
            }
            told.extend(events(&r.take_effects()));
            if let Err(e) = r.check_invariants() {
                prop_assert!(false, "{}", e);
            }
        }
        // The events tell a consistent story: each session starts before its first admission
        // and finishes once everyone admitted has left, and nobody leaves who was not admitted
        // (or leaves twice).
        let mut inside = std::collections::HashSet::new();
        let mut live = false;
        for event in &told {
            match event {
                RoomEvent::Started => { prop_assert!(!live, "{:?}", told); live = true; }
                RoomEvent::Finished { .. } => {
                    prop_assert!(live, "{:?}", told);
                    prop_assert!(inside.is_empty(), "finished with {:?} inside: {:?}", inside, told);
                    live = false;
                }
                RoomEvent::Admitted { participant, .. } => {
                    prop_assert!(live, "{:?}", told);
                    prop_assert!(inside.insert(participant.clone()), "{} admitted twice", participant);
                }
                RoomEvent::Left { participant, .. } => {
                    prop_assert!(inside.remove(participant), "{} left without being admitted", participant);
                }
                _ => {}
            }
        }
    }

    /// Any group, any answers: whenever counts are published, no answerer can tell how any other
    /// answered, even knowing exactly who answered.
    #[test]
    fn no_published_check_in_result_reveals_an_answer(
        options in 2usize..6,
        answers in proptest::collection::vec(proptest::option::of(0u32..6), 1..10),
        threshold in 1u32..5,
    ) {
        let mut r = Room::new(RoomId::from("r"), RoomConfig {
            anonymity_threshold: threshold,
            waiting_room: false,
            ..Default::default()
        });
        join(&mut r, "f", Role::Facilitator);
        let members: Vec<String> = (0..answers.len()).map(|i| format!("m{i}")).collect();
        for m in &members {
            join(&mut r, m, Role::Member);
        }
        req(&mut r, 0, "f", M::StartCheckIn {
            question: "q".into(),
            options: (0..options).map(|i| format!("o{i}")).collect(),
        });
        let mut given = Vec::new();
        for (m, answer) in members.iter().zip(&answers) {
            let Some(option) = answer else { continue };
            let e = req(&mut r, 0, m, M::AnswerCheckIn { check_in: CheckInId::from("c1"), option: *option });
            if reply(&e, m).is_ok() {
                given.push(*option as usize);
            }
        }
        let e = req(&mut r, 0, "f", M::CloseCheckIn { check_in: CheckInId::from("c1") });
        let Some(S::CheckInResult { counts, responses, .. }) = to(&e, "f").into_iter()
            .find(|m| matches!(m, S::CheckInResult { .. })) else {
            panic!("no result");
        };
        prop_assert_eq!(responses as usize, given.len());
        if let Some(counts) = counts {
            prop_assert!(responses >= threshold);
            for mine in &given {
                let mut others = counts.clone();
                others[*mine] -= 1;
                prop_assert!(others.iter().all(|c| *c + 1 < responses),
                    "{:?} tells one who chose {} how everyone else answered", counts, mine);
            }
            prop_assert!(counts.iter().all(|c| *c < responses), "{:?} is unanimous", counts);
        }
    }
}
