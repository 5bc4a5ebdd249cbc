//! Room events: the story the rest of the server is told, with ids and roles only.

use super::*;

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
