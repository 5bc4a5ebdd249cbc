//! WebSocket pings: a peer that answers them stays, however quiet; one that is gone is noticed.

use std::time::Duration;

use circle_tests::{Role, TestServer};
use serde_json::json;

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_and_a_silent_one_is_dropped() {
    let s = TestServer::with(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.room.waiting_room = false;
    })
    .await;
    let mut f = s.join("r", "f", Role::Facilitator).await;
    let mut quiet = s.join("r", "quiet", Role::Member).await;
    let silent = s.join("r", "silent", Role::Member).await;
    // `quiet` and `f` read (so their pongs go out) but send nothing; `silent` neither reads nor
    // answers. A client answers pings only while it reads, so both readers run throughout.
    let quiet_reader = tokio::spawn(async move {
        while quiet.try_recv(Duration::from_secs(3)).await.is_some() {}
        quiet
    });
    let f_reader = tokio::spawn(async move {
        f.recv_connection("silent", "reconnecting").await;
        let mut after = Vec::new();
        while let Some(m) = f.try_recv(Duration::from_secs(2)).await {
            after.push(m);
        }
        (f, after)
    });
    let (_f, after) = f_reader.await.unwrap();
    assert!(
        after.iter().all(|m| m["participant"]["id"] != "quiet"),
        "the quiet one was disturbed: {after:?}"
    );
    let mut quiet = quiet_reader.await.unwrap();
    quiet.request(json!({"type":"ping"})).await.ok();
    drop(silent);
    s.stop().await;
}
