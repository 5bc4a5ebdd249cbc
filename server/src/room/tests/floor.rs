//! The talking stick: the queue, grants, passing, the turn limit, invitations, the media gate and who sees whom speaking.

use super::*;

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
            screen: None,
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
