//! Room events through the real server: what other parts of the server (records, metrics,
//! webhooks) will be built on. They tell who came and went and what facilitators decided, carry
//! ids and roles only, and a subscriber that does not keep up never slows a room.

use std::time::Duration;

use circle_protocol::Role as R;
use circle_server::events::{
    Actor, FinishReason, LeftReason, Moderation, Published, RoomEvent, Subscription,
};
use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::{End, Role, TestServer};
use serde_json::json;

/// The next events until one matches `until`, within 10 s.
async fn until(events: &mut Subscription, until: impl Fn(&RoomEvent) -> bool) -> Vec<RoomEvent> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(stamped) = events.next().await {
            assert_eq!(stamped.room.as_str(), "r");
            let done = until(&stamped.event);
            seen.push(stamped.event.clone());
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no such event; saw {seen:?}"));
    seen
}

#[tokio::test]
async fn a_session_is_told_from_start_to_finish_with_ids_and_roles_only() {
    let s = TestServer::start().await;
    let mut events = s.server.events();
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    f.request(json!({"type":"mute","participant":"a"}))
        .await
        .ok();
    f.request(json!({"type":"end_session"})).await.ok();
    assert_eq!(ms[0].end().await, End::Closed(4004));
    let seen = until(&mut events, |e| matches!(e, RoomEvent::Finished { .. })).await;
    let f_id = circle_protocol::ParticipantId::from("f");
    let a_id = circle_protocol::ParticipantId::from("a");
    assert_eq!(
        seen,
        vec![
            RoomEvent::Started,
            RoomEvent::Admitted {
                participant: f_id.clone(),
                role: R::Facilitator
            },
            RoomEvent::Waiting {
                participant: a_id.clone(),
                role: R::Member
            },
            RoomEvent::Moderated {
                by: Actor::Facilitator(f_id.clone()),
                action: Moderation::Admitted,
                target: Some(a_id.clone())
            },
            RoomEvent::Admitted {
                participant: a_id.clone(),
                role: R::Member
            },
            RoomEvent::Moderated {
                by: Actor::Facilitator(f_id.clone()),
                action: Moderation::Muted,
                target: Some(a_id.clone())
            },
            RoomEvent::Moderated {
                by: Actor::Facilitator(f_id.clone()),
                action: Moderation::Ended,
                target: None
            },
            RoomEvent::Left {
                participant: f_id.clone(),
                role: R::Facilitator,
                reason: LeftReason::Ended
            },
            RoomEvent::Left {
                participant: a_id.clone(),
                role: R::Member,
                reason: LeftReason::Ended
            },
            RoomEvent::Finished {
                reason: FinishReason::EndedByFacilitator
            },
        ]
    );
    // The test harness names everyone "Name <sub>": no event carries it.
    assert!(!format!("{seen:?}").contains("Name "));
    s.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_never_reads_loses_events_and_the_room_carries_on() {
    let s = TestServer::with(|c| {
        c.event_queue = 4;
        c.room.waiting_room = false;
    })
    .await;
    let mut slow = s.server.events();
    let mut f = s.join("r", "f", Role::Facilitator).await;
    for i in 0..20 {
        f.request(json!({"type":"lock_room","locked": i % 2 == 0}))
            .await
            .ok();
    }
    // The room answered every request while the subscriber read nothing.
    let mut left = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), slow.next()).await {
        left += 1;
    }
    assert!(
        left <= 4,
        "{left} events were kept for a subscriber that had room for 4"
    );
    assert!(s.server.events_dropped() >= 10, "the loss was not counted");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kinds_a_participant_really_publishes_are_told() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let mut events = s.server.events();
    let room = ServerRoom::over_server(
        &s,
        "r",
        &[("fac", Role::Facilitator), ("ann", Role::Member)],
    );
    let _fac = Browser::join(&room, "fac", true).await;
    let _ann = Browser::join(&room, "ann", false).await;
    // Both of fac's kinds arrive, in whichever order the tracks came up.
    let kinds = std::cell::RefCell::new(Vec::new());
    let seen = until(&mut events, |e| {
        if let RoomEvent::Published { participant, kind } = e {
            if participant.as_str() == "fac" {
                kinds.borrow_mut().push(*kind);
            }
        }
        let k = kinds.borrow();
        k.contains(&Published::Audio) && k.contains(&Published::Video)
    })
    .await;
    assert!(
        !seen.iter().any(
            |e| matches!(e, RoomEvent::Published { participant, .. } if participant.as_str() == "ann")
        ),
        "ann published nothing"
    );
    s.stop().await;
}
