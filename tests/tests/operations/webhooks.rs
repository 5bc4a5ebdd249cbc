//! Webhooks to real receivers: what is sent and its signature, delivery in order per room
//! through a receiver's outage and through a server restart, and a hanging receiver that never
//! holds up a room.

use std::time::{Duration, Instant};

use circle_tests::ops::{signature_verifies, Mode, Receiver, StoreKind, WEBHOOK_SECRET};
use circle_tests::Role;
use serde_json::{json, Value};

use super::server;

fn with_receiver(url: String) -> impl FnOnce(&mut circle_server::Settings) {
    move |c| {
        c.room.waiting_room = false;
        c.operations.webhook_urls = vec![url];
        c.operations.webhook_secret = WEBHOOK_SECRET.as_bytes().to_vec();
        c.operations.webhook_backoff = Duration::from_millis(200);
    }
}

fn names(events: &[Value], room: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["room"] == room)
        .map(|e| {
            let who = e["participant"]["id"].as_str().unwrap_or("");
            format!("{} {who}", e["event"].as_str().unwrap())
                .trim()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn a_session_is_told_in_order_signed_with_ids_and_roles_only() {
    let receiver = Receiver::start().await;
    let (s, _db) = server(&StoreKind::Sqlite, with_receiver(receiver.url())).await;
    let mut a = s.join("hooks", "a", Role::Member).await;
    let mut b = s.join("hooks", "b", Role::Member).await;
    b.request(json!({"type":"leave"})).await.ok();
    a.request(json!({"type":"leave"})).await.ok();
    receiver
        .wait_for(|e| e["event"] == "attendance_ready")
        .await;
    let events = receiver.accepted();
    assert_eq!(
        names(&events, "hooks"),
        [
            "room_started",
            "participant_joined a",
            "participant_joined b",
            "participant_left b",
            "participant_left a",
            "room_finished",
            "attendance_ready"
        ]
    );
    let left = events
        .iter()
        .find(|e| e["event"] == "participant_left")
        .unwrap();
    assert_eq!(left["participant"], json!({"id":"b","role":"member"}));
    assert_eq!(left["reason"], "left");
    let finished = events
        .iter()
        .find(|e| e["event"] == "room_finished")
        .unwrap();
    assert_eq!(finished["reason"], "empty");
    let session = finished["session"].as_str().unwrap();
    assert!(events.iter().all(|e| e["session"] == session));
    let mut ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
    for d in receiver.deliveries() {
        assert!(
            signature_verifies(&d.signature, &d.body, WEBHOOK_SECRET),
            "{}",
            d.signature
        );
        assert!(!signature_verifies(&d.signature, &d.body, "another secret"));
        assert!(
            !d.body.contains("Name "),
            "a display name was sent: {}",
            d.body
        );
    }
    // attendance_ready means the record is complete.
    let record = s.api().get(&format!("/api/v1/sessions/{session}")).await;
    assert_eq!(record.body["end_reason"], "empty");
    s.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_for_a_while_gets_every_event_in_order_when_it_comes_back() {
    let mut receiver = Receiver::start().await;
    let (s, _db) = server(&StoreKind::Postgres, with_receiver(receiver.url())).await;
    receiver.go_down();
    let mut clients = Vec::new();
    for who in ["a", "b", "c"] {
        clients.push(s.join("outage", who, Role::Member).await);
    }
    for c in clients.iter_mut() {
        c.request(json!({"type":"leave"})).await.ok();
    }
    // Then it answers 503 for a while, which counts as down too.
    tokio::time::sleep(Duration::from_millis(600)).await;
    receiver.come_back().await;
    receiver.set_mode(Mode::Fail);
    for _ in 0..100 {
        if receiver.deliveries().iter().any(|d| !d.accepted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    receiver.set_mode(Mode::Accept);
    receiver
        .wait_for(|e| e["event"] == "attendance_ready")
        .await;
    assert_eq!(
        names(&receiver.accepted(), "outage"),
        [
            "room_started",
            "participant_joined a",
            "participant_joined b",
            "participant_joined c",
            "participant_left a",
            "participant_left b",
            "participant_left c",
            "room_finished",
            "attendance_ready"
        ]
    );
    assert!(
        receiver.deliveries().iter().any(|d| !d.accepted),
        "the receiver never refused one: the outage was not exercised"
    );
    s.stop().await;
}

#[tokio::test]
async fn events_pending_at_a_restart_are_delivered_by_the_next_start() {
    let mut receiver = Receiver::start().await;
    let url = receiver.url();
    let (s, db) = server(&StoreKind::Sqlite, with_receiver(url.clone())).await;
    receiver.go_down();
    let mut a = s.join("restart", "a", Role::Member).await;
    a.request(json!({"type":"leave"})).await.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.stop().await;
    assert!(receiver.accepted().is_empty());

    receiver.come_back().await;
    let db_again = db.clone();
    let again = circle_tests::TestServer::with(move |c| {
        with_receiver(url)(c);
        c.operations.database = Some(db_again);
    })
    .await;
    receiver
        .wait_for(|e| e["event"] == "attendance_ready")
        .await;
    assert_eq!(
        names(&receiver.accepted(), "restart"),
        [
            "room_started",
            "participant_joined a",
            "participant_left a",
            "room_finished",
            "attendance_ready"
        ]
    );
    again.stop().await;
}

#[tokio::test]
async fn a_receiver_that_hangs_never_delays_a_rooms_messages() {
    let receiver = Receiver::start().await;
    receiver.set_mode(Mode::Hang);
    let (s, _db) = server(&StoreKind::Sqlite, with_receiver(receiver.url())).await;
    let mut f = s.join("busy", "f", Role::Facilitator).await;
    let mut m = s.join("busy", "m", Role::Member).await;
    f.drain().await;
    // Every hand raised makes no webhook, but joins and leaves do, and they all hang.
    for i in 0..20 {
        let who = format!("x{i}");
        let mut x = s.join("busy", &who, Role::Member).await;
        x.request(json!({"type":"leave"})).await.ok();
    }
    let started = Instant::now();
    m.request(json!({"type":"raise_hand"})).await.ok();
    f.recv_type("floor").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a hand took {:?} to reach the facilitator",
        started.elapsed()
    );
    assert!(receiver.accepted().is_empty());
    s.stop().await;
}
