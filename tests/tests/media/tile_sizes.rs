//! `tile_sizes` through the real server (protocol/README.md, "Simulcast"): a camera whose tile a
//! viewer hides stops reaching that viewer, and stays hidden when its publisher rejoins on new
//! connections, until the viewer shows the tile again.

use std::time::Duration;

use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::Role;
use serde_json::json;

use super::{held_back, server};

/// `viewer` gets no more of `who`'s camera while `who`'s voice keeps arriving (a second).
async fn camera_held_back(viewer: &Browser, who: &str) {
    held_back(viewer, who, "video", "audio", 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hidden_tile_gets_no_camera_even_after_its_publisher_rejoins() {
    let s = server().await;
    let roles = [("fac", Role::Facilitator), ("ann", Role::Member)];
    let room = ServerRoom::over_server(&s, "r", &roles);
    let fac = Browser::join(&room, "fac", false).await;
    let ann = Browser::join(&room, "ann", true).await;
    fac.wait_packets("ann", "video", 5).await;

    // The facilitator's page hides ann's tile.
    room.send_as(
        "fac",
        json!({"type":"tile_sizes","id":1,"sizes":[{"participant":"ann","height":0}]}),
    )
    .await;
    let ok = room.wait_message("fac", |m| m["id"] == 1).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    // What was on its way may still land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    camera_held_back(&fac, "ann").await;

    // ann reloads: a new session, new connections, a new camera stream. The facilitator's tile
    // has not changed, so the camera stays held back; the voice comes through.
    ann.close().await;
    let ann = Browser::join(&room, "ann", true).await;
    let voice = fac.stream("ann", "audio").count();
    fac.wait_packets("ann", "audio", voice + 25).await;
    camera_held_back(&fac, "ann").await;

    // Shown again: the camera comes back.
    room.send_as(
        "fac",
        json!({"type":"tile_sizes","sizes":[{"participant":"ann","height":360}]}),
    )
    .await;
    let camera = fac.stream("ann", "video").count();
    fac.wait_packets("ann", "video", camera + 10).await;
    drop(ann);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_tile_sizes_or_an_impossible_height_is_a_bad_request_and_changes_nothing() {
    let s = server().await;
    let roles = [("fac", Role::Facilitator), ("ann", Role::Member)];
    let room = ServerRoom::over_server(&s, "r", &roles);
    let fac = Browser::join(&room, "fac", false).await;
    let ann = Browser::join(&room, "ann", true).await;
    fac.wait_packets("ann", "video", 5).await;

    // 65 entries, one more than a message may carry; the last would hide ann's camera.
    let mut sizes: Vec<_> = (0..64)
        .map(|i| json!({"participant": format!("p-{i}"), "height": 90}))
        .collect();
    sizes.push(json!({"participant": "ann", "height": 0}));
    let hidden_too_late = json!({"participant": "ann", "height": 0});
    for (id, sizes) in [
        (1, json!(sizes)),
        (
            2,
            json!([hidden_too_late, {"participant": "ann", "height": 8193}]),
        ),
    ] {
        room.send_as("fac", json!({"type":"tile_sizes","id":id,"sizes":sizes}))
            .await;
        let answer = room.wait_message("fac", |m| m["id"] == id).await;
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["code"], "bad_request", "{answer}");
    }
    // Neither was applied in part: ann's camera still reaches the facilitator.
    let camera = fac.stream("ann", "video").count();
    fac.wait_packets("ann", "video", camera + 15).await;
    drop(ann);
    s.stop().await;
}
