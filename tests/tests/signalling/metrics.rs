//! Prometheus metrics of a real server, read through its context until `/metrics` is routed:
//! they move with joins, refusals, admissions and the floor, come back to zero when the room
//! closes, and name no room or person.

use circle_tests::metrics::MeteredServer;
use circle_tests::token::Minter;
use circle_tests::{Client, Role, SECRET};
use serde_json::json;

async fn hello(url: &str, token: &str) -> (Client, serde_json::Value) {
    let mut c = Client::connect(url).await;
    c.send(json!({"type":"hello","protocol":1,"token": token}))
        .await;
    let first = c.recv().await;
    (c, first)
}

#[tokio::test]
async fn metrics_follow_a_room_from_its_first_hello_to_its_close_and_name_nobody() {
    let s = MeteredServer::with(|_| {}).await;
    let tokens = Minter::new(SECRET);
    let room = "metrics-room-7f3a";

    let (mut f, first) = hello(&s.url(), &tokens.token(room, "fac-ann", Role::Facilitator)).await;
    assert_eq!(first["type"], "welcome");
    let (mut m, first) = hello(&s.url(), &tokens.token(room, "mem-ben", Role::Member)).await;
    assert_eq!(first["type"], "waiting");
    let (_refused, first) = hello(&s.url(), "not-a-token").await;
    assert_eq!(first["code"], "unauthorized");

    let now = s
        .until_equal(&[
            ("circle_joins_total{result=\"admitted\"}", 1.0),
            ("circle_joins_total{result=\"waiting\"}", 1.0),
            ("circle_joins_total{result=\"refused\"}", 1.0),
            ("circle_rooms", 1.0),
            ("circle_sessions_open", 1.0),
            ("circle_participants{role=\"facilitator\"}", 1.0),
            ("circle_participants{role=\"member\"}", 0.0),
            ("circle_waiting", 1.0),
            ("circle_errors_sent_total{code=\"unauthorized\"}", 1.0),
            // Timed by the connections once the room answered, so also waited for.
            ("circle_join_seconds_count", 2.0),
        ])
        .await;
    assert_eq!(now["circle_ws_messages_received_total"], 3.0);

    f.request(json!({"type":"admit","participant":"mem-ben"}))
        .await
        .ok();
    m.recv_type("welcome").await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    // The room's own refusals are counted too.
    let refusal = m
        .request(json!({"type":"set_floor_mode","mode":"open"}))
        .await;
    assert_eq!(refusal.code(), "forbidden");
    s.until_equal(&[
        ("circle_participants{role=\"member\"}", 1.0),
        ("circle_waiting", 0.0),
        ("circle_floor_changes_total", 1.0),
        ("circle_errors_sent_total{code=\"forbidden\"}", 1.0),
        ("circle_ws_messages_received_total", 6.0),
    ])
    .await;
    let text = s.text();
    for secret in [room, "fac-ann", "mem-ben", "127.0.0.1"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }

    f.send(json!({"type":"leave"})).await;
    m.send(json!({"type":"leave"})).await;
    s.until_equal(&[
        ("circle_rooms", 0.0),
        ("circle_sessions_open", 0.0),
        ("circle_participants{role=\"facilitator\"}", 0.0),
        ("circle_participants{role=\"member\"}", 0.0),
        ("circle_waiting", 0.0),
    ])
    .await;
    s.stop().await;
}
