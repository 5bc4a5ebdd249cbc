//! `GET /stats`: counts only, rising with sessions and rooms and falling back when they end.

use std::time::Duration;

use circle_tests::{Role, TestServer, WAIT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn stats(s: &TestServer) -> Value {
    let mut tcp = tokio::net::TcpStream::connect(s.server.addr).await.unwrap();
    tcp.write_all(b"GET /stats HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body.trim()).unwrap()
}

/// Polls `/stats` until `check` passes, within the harness's wait.
async fn stats_until(s: &TestServer, check: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let v = stats(s).await;
            if check(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("stats reached the expected counts")
}

#[tokio::test]
async fn stats_count_rooms_sessions_and_peers_and_name_nobody() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let idle = stats(&s).await;
    assert_eq!(idle["rooms"], 0);
    assert_eq!(idle["sessions"], 0);
    let mut a = s.join("r", "ann-secret-name", Role::Facilitator).await;
    let mut b = s.join("r", "ben", Role::Member).await;
    let busy = stats_until(&s, |v| v["sessions"] == 2 && v["peers"] == 4).await;
    assert_eq!(busy["rooms"], 1);
    assert!(busy["tasks"].as_u64().unwrap() > idle["tasks"].as_u64().unwrap());
    let text = busy.to_string();
    assert!(!text.contains("ann") && !text.contains("\"r\""), "{text}");
    a.send(serde_json::json!({"type":"leave"})).await;
    b.send(serde_json::json!({"type":"leave"})).await;
    stats_until(&s, |v| {
        v["rooms"] == 0 && v["sessions"] == 0 && v["peers"] == 0
    })
    .await;
    s.stop().await;
}
