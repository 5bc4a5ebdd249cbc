//! `GET /stats`: counts only, rising with connections and rooms and falling back when they end.

use std::time::Duration;

use circle_tests::{Role, TestServer};

#[tokio::test]
async fn stats_count_rooms_connections_and_peers_and_name_nobody() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let idle = s.stats().await;
    assert_eq!(idle["rooms"], 0);
    assert_eq!(idle["connections"], 0);
    let mut a = s.join("r", "ann-secret-name", Role::Facilitator).await;
    let mut b = s.join("r", "ben", Role::Member).await;
    let busy = s.stats_until(|v| v["connections"] == 2).await;
    assert_eq!(busy["rooms"], 1);
    // Neither has offered media, so neither costs a peer connection (or a UDP socket).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.stats().await["peers"], 0);
    assert!(busy["tasks"].as_u64().unwrap() > idle["tasks"].as_u64().unwrap());
    let text = busy.to_string();
    assert!(!text.contains("ann") && !text.contains("\"r\""), "{text}");
    a.send(serde_json::json!({"type":"leave"})).await;
    b.send(serde_json::json!({"type":"leave"})).await;
    s.stats_until(|v| v["rooms"] == 0 && v["connections"] == 0 && v["peers"] == 0)
        .await;
    s.stop().await;
}
