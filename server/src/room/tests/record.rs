//! Carrying a room on from its record, as another node does when the host dies.

use super::*;
use crate::room::state::RoomRecord;

/// `f`, `a`, `b` and `c` in stick mode with a 60 s turn limit: `a` holds the stick since 1 s,
/// `b` and then `c` are queued (`b` with a note), a check-in is open with two answers, `d` was
/// removed and `e` is waiting.
fn busy_room() -> Room {
    let mut r = group();
    req(
        &mut r,
        1_000,
        "f",
        M::SetFloorMode {
            mode: FloorMode::Stick,
        },
    );
    req(&mut r, 1_000, "f", M::SetTurnLimit { seconds: Some(60) });
    req(
        &mut r,
        1_000,
        "f",
        M::GrantFloor {
            participant: pid("a"),
        },
    );
    req(
        &mut r,
        1_000,
        "b",
        M::RaiseHand {
            note: Some("about my week".into()),
        },
    );
    req(&mut r, 1_000, "c", M::RaiseHand { note: None });
    req(
        &mut r,
        1_000,
        "f",
        M::StartCheckIn {
            question: "How are you today?".into(),
            options: vec!["good".into(), "hard".into()],
        },
    );
    for who in ["a", "b"] {
        req(
            &mut r,
            1_000,
            who,
            M::AnswerCheckIn {
                check_in: CheckInId("c1".into()),
                option: 1,
            },
        );
    }
    join(&mut r, "d", Role::Member);
    req(
        &mut r,
        1_000,
        "f",
        M::Admit {
            participant: pid("d"),
        },
    );
    req(
        &mut r,
        1_000,
        "f",
        M::Remove {
            participant: pid("d"),
        },
    );
    join(&mut r, "e", Role::Member);
    r.take_effects();
    r
}

fn through_json(record: &RoomRecord) -> RoomRecord {
    serde_json::from_str(&serde_json::to_string(record).unwrap()).unwrap()
}

#[test]
fn a_restored_room_keeps_the_stick_the_turn_the_queue_with_notes_and_the_mode() {
    let before = busy_room();
    let record = through_json(&before.record().unwrap());
    let mut after = Room::restore(RoomId::from("r"), record, 5_000);
    after.check_invariants().unwrap();
    let effects = after.take_effects();
    let (_, was) = before.snapshot(&pid("f")).unwrap();
    let (_, is) = after.snapshot(&pid("f")).unwrap();
    assert_eq!(is.floor, was.floor);
    assert_eq!(is.floor.holder, Some(pid("a")));
    let queue: Vec<_> = is
        .floor
        .queue
        .unwrap()
        .into_iter()
        .map(|e| (e.participant, e.note))
        .collect();
    assert_eq!(
        queue,
        [
            (pid("b"), Some("about my week".to_owned())),
            (pid("c"), None)
        ]
    );
    assert_eq!(is.turn_limit, Some(60));
    assert_eq!(is.floor.turn_ends_at, was.floor.turn_ends_at);
    // The open check-in's question carries on; its answers do not.
    assert_eq!(is.check_in, was.check_in);
    // Every admitted participant is back, reconnecting; the waiting one is not.
    let ids: Vec<_> = is
        .participants
        .iter()
        .map(|p| p.id.as_str().to_owned())
        .collect();
    assert_eq!(ids, ["f", "a", "b", "c"]);
    assert!(is
        .participants
        .iter()
        .all(|p| p.connection == circle_protocol::Connection::Reconnecting));
    // The media path learns that only the holder is heard; nobody's media starts before they
    // are back.
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::Admitted { .. })),
        "{effects:?}"
    );
    assert_eq!(gate(&effects, "a"), Some(true));
    assert_eq!(gate(&effects, "b"), Some(false));
    // No event: the group session goes on, it does not start again.
    assert!(events(&effects).is_empty(), "{:?}", events(&effects));
}

#[test]
fn a_removed_participant_stays_out_of_a_restored_room() {
    let record = busy_room().record().unwrap();
    let mut after = Room::restore(RoomId::from("r"), record, 5_000);
    let refused = after.join(
        5_000,
        Joiner {
            id: pid("d"),
            name: "d".into(),
            role: Role::Member,
        },
    );
    assert!(
        matches!(refused, Err(RoomError::Forbidden(_))),
        "{refused:?}"
    );
}

#[test]
fn the_turn_limit_still_runs_out_on_the_restored_room() {
    let mut after = Room::restore(RoomId::from("r"), busy_room().record().unwrap(), 5_000);
    after.resume(&pid("a")).unwrap();
    after.take_effects();
    // Granted at 1 s with a 60 s limit: warned at 51 s, over at 61 s, on whichever node runs
    // it. (The others' grace runs out at 25 s; they resume first.)
    for id in ["f", "b", "c"] {
        after.resume(&pid(id)).unwrap();
    }
    after.take_effects();
    assert_eq!(after.poll_timeout(), Some(51_000));
    after.handle_timeout(51_000);
    assert!(to(&after.take_effects(), "a").contains(&S::TurnWarning { seconds_left: 10 }));
    after.handle_timeout(61_000);
    let effects = after.take_effects();
    assert_eq!(floor(&effects, "f").holder, None);
}

#[test]
fn whoever_does_not_resume_within_the_grace_leaves_and_loses_their_place() {
    let mut after = Room::restore(RoomId::from("r"), busy_room().record().unwrap(), 5_000);
    for id in ["f", "a", "c"] {
        after.resume(&pid(id)).unwrap();
    }
    after.take_effects();
    after.handle_timeout(5_000 + 20_000);
    let effects = after.take_effects();
    assert!(events(&effects).contains(&RoomEvent::Left {
        participant: pid("b"),
        role: Role::Member,
        reason: LeftReason::Timeout,
    }));
    let queue: Vec<_> = floor(&effects, "f")
        .queue
        .unwrap()
        .into_iter()
        .map(|e| e.participant)
        .collect();
    assert_eq!(queue, [pid("c")]);
}

#[test]
fn a_finished_room_has_no_record() {
    let mut r = group();
    req(&mut r, 0, "f", M::EndSession);
    assert!(r.record().is_none());
}
