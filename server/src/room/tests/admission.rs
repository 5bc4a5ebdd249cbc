//! Joining, waiting, admission and denial, removal, locks and caps, replacement by a second `hello`, and the session's end.

use super::*;

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
    assert_eq!(knock(&mut r, 61_000), Ok(crate::room::Joined::New));
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
    assert_eq!(renamed, Ok(crate::room::Joined::Replaced));
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
    assert_eq!(again, Ok(crate::room::Joined::Replaced));
    let e = r.take_effects();
    assert!(e.contains(&Effect::Welcome { to: pid("a") }));
    let (_, state) = r.snapshot(&pid("a")).unwrap();
    assert_eq!(state.floor.holder, Some(pid("a")));
}
