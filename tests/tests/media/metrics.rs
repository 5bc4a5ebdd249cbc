//! The media path's metrics on a real server: RTP packets received and forwarded per kind, the
//! audio the floor gate holds back, and this server's own peer connections.

use std::collections::BTreeMap;

use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::metrics::MeteredServer;
use circle_tests::token::Minter;
use circle_tests::{Role, SECRET};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn packets_are_counted_as_received_forwarded_or_held_back_by_the_floor() {
    let s = MeteredServer::with(|c| c.room.waiting_room = false).await;
    let minter = Minter::new(SECRET);
    let tokens: BTreeMap<String, (String, Role)> =
        [("fac", Role::Facilitator), ("ann", Role::Member)]
            .into_iter()
            .map(|(id, role)| (id.to_owned(), (minter.token("r", id, role), role)))
            .collect();
    let room = ServerRoom::over_url(s.url(), tokens);
    // The facilitator only watches; Ann publishes, without the stick.
    let fac = Browser::join(&room, "fac", false).await;
    room.send_as("fac", json!({"type":"set_floor_mode","mode":"stick"}))
        .await;
    room.wait_message("fac", |m| m["type"] == "floor" && m["mode"] == "stick")
        .await;
    let ann = Browser::join(&room, "ann", true).await;
    fac.wait_packets("ann", "video", 15).await;

    let now = s
        .until(|m| {
            m["circle_rtp_packets_received_total{kind=\"audio\"}"] > 0.0
                && m["circle_rtp_packets_received_total{kind=\"video\"}"] >= 15.0
                && m["circle_rtp_packets_forwarded_total{kind=\"video\"}"] >= 15.0
                && m["circle_rtp_packets_dropped_total{reason=\"floor_gate\"}"] > 0.0
        })
        .await;
    // Ann's microphone reached nobody, and nobody else publishes.
    assert_eq!(
        now["circle_rtp_packets_forwarded_total{kind=\"audio\"}"],
        0.0
    );
    assert_eq!(fac.stream("ann", "audio").count(), 0);
    // The facilitator's subscribe leg and Ann's publish leg: Ann has nothing to receive. Other
    // tests' servers in this process are not counted.
    assert_eq!(now["circle_peer_connections"], 2.0);
    drop((fac, ann));
    s.stop().await;
}
