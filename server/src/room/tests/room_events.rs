//! Room events: the story the rest of the server is told, with ids and roles only.

use super::*;
use circle_protocol::{close, EndReason, ServerMessage};

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
        by: Actor::Facilitator(pid("f")),
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
            by: Actor::Facilitator(pid("f")),
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

#[test]
fn the_admin_api_ending_the_session_is_told_as_ended_by_admin_with_the_api_as_actor() {
    let mut r = group();
    r.end_by_admin();
    let e = r.take_effects();
    let told = events(&e);
    assert_eq!(
        told[0],
        RoomEvent::Moderated {
            by: Actor::Api,
            action: Moderation::Ended,
            target: None
        }
    );
    assert_eq!(
        told.last(),
        Some(&RoomEvent::Finished {
            reason: FinishReason::EndedByAdmin
        })
    );
    assert!(e.iter().any(|e| matches!(e,
        Effect::Send { to, message: ServerMessage::SessionEnded { reason: EndReason::EndedByAdmin } }
            if to.as_str() == "a")));
    assert!(e.iter().any(|e| matches!(e,
        Effect::Close { to, code } if to.as_str() == "a" && *code == close::SESSION_ENDED)));
    assert!(r.is_finished());
}

#[test]
fn the_admin_api_removes_like_a_facilitator_but_not_a_facilitator_and_not_someone_absent() {
    let mut r = group();
    r.remove_by_admin(&pid("a")).unwrap();
    let e = r.take_effects();
    assert!(events(&e).contains(&RoomEvent::Moderated {
        by: Actor::Api,
        action: Moderation::Removed,
        target: Some(pid("a"))
    }));
    assert!(e
        .iter()
        .any(|e| matches!(e, Effect::Banned { participant } if participant.as_str() == "a")));
    assert!(e.iter().any(|e| matches!(e,
        Effect::Close { to, code } if to.as_str() == "a" && *code == close::REMOVED)));
    assert!(matches!(
        r.remove_by_admin(&pid("f")),
        Err(RoomError::Conflict(_))
    ));
    assert!(matches!(
        r.remove_by_admin(&pid("nobody")),
        Err(RoomError::NotFound(_))
    ));
    r.check_invariants().unwrap();
}

#[test]
fn settings_from_the_admin_api_apply_to_a_running_room_without_turning_anyone_away() {
    let mut r = group();
    r.configure(
        0,
        &crate::config::RoomSettings {
            max_participants: Some(2),
            waiting_room: Some(false),
            turn_limit_seconds: Some(90),
            anonymity_threshold: Some(5),
        },
    );
    let overview = r.overview();
    assert_eq!(overview.turn_limit, Some(90));
    assert_eq!(overview.participants.len(), 4, "nobody here is turned away");
    let refused = r.join(
        0,
        Joiner {
            id: pid("d"),
            name: "D".into(),
            role: Role::Member,
        },
    );
    assert_eq!(refused, Err(RoomError::RoomFull));
    r.check_invariants().unwrap();
}
