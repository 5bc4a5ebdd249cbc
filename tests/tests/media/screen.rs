//! Screen share through the real server (protocol.md, "Screen share"): fake browsers add a
//! second video track to their publish connection; the room's rules say whose share the media
//! path forwards, and a client that shares without being allowed reaches nobody.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::Role;
use serde_json::json;

use super::{held_back, server};

fn roles() -> Vec<(&'static str, Role)> {
    vec![
        ("fac", Role::Facilitator),
        ("ann", Role::Member),
        ("ben", Role::Member),
    ]
}

/// Announces `who`'s screen track and waits for the server's answer to it.
async fn announce(room: &ServerRoom, who: &str, track: Option<&str>) -> serde_json::Value {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    room.send_as(
        who,
        json!({"type":"set_media","id":id,"audio":true,"video":true,"screen":track}),
    )
    .await;
    room.wait_message(who, |m| m["id"] == id).await
}

/// Waits until `viewer` has been told that `who` shares (or stopped sharing).
async fn sharing_seen(room: &ServerRoom, viewer: &str, who: &str, sharing: bool) {
    room.wait_message(viewer, |m| {
        m["type"] == "participant_updated"
            && m["participant"]["id"] == who
            && m["participant"]["screen"] == sharing
    })
    .await;
}

/// `viewer` gets no more of `who`'s screen while `who`'s camera keeps arriving.
async fn no_more_screen(viewer: &Browser, who: &str) {
    held_back(viewer, who, "screen", "video", 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_facilitators_screen_reaches_everyone_as_a_track_named_screen() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", false).await;
    ann.wait_packets("fac", "video", 5).await;

    let ok = announce(&room, "fac", Some("screen-fac")).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    sharing_seen(&room, "ben", "fac", true).await;
    fac.share_screen().await;
    for viewer in [&ann, &ben] {
        let screen = viewer.wait_packets("fac", "screen", 15).await;
        assert_eq!(screen.misrouted, 0);
        assert_eq!(
            screen.screen_frames as usize,
            screen.count(),
            "only the screen's frames"
        );
        let offer = viewer.offers.lock().unwrap().last().cloned().unwrap();
        assert!(
            offer.contains("a=msid:fac screen"),
            "the screen's stream id is the sharer and its track id begins with screen"
        );
    }
    // The camera goes on beside it.
    ann.wait_packets("fac", "video", ann.stream("fac", "video").count() + 15)
        .await;

    let ok = announce(&room, "fac", None).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    sharing_seen(&room, "ann", "fac", false).await;
    no_more_screen(&ann, "fac").await;
    // And the subscribers are offered again without it, so no client keeps a tile for it.
    ann.wait_until("an offer without the screen", || {
        let offers = ann.offers.lock().unwrap();
        (!offers.last()?.contains("a=msid:fac screen")).then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_screen_track_nobody_announced_is_refused_and_reaches_nobody() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    let ann = Browser::join(&room, "ann", true).await;
    fac.wait_packets("ann", "video", 5).await;

    // A modified client: a member without the stick adds a second video track and offers it
    // without asking.
    ann.expect_refusals();
    ann.share_screen().await;
    let refusal = room
        .wait_message("ann", |m| m["type"] == "error" && m["code"] == "forbidden")
        .await;
    assert!(refusal["message"].as_str().unwrap().contains("screen"));
    no_more_screen(&fac, "ann").await;
    assert_eq!(fac.stream("ann", "screen").count(), 0);
    assert_eq!(
        fac.stream("ann", "video").screen_frames,
        0,
        "the refused screen came in as the camera"
    );

    // Nor may they announce one: the rules refuse it at once, and the room goes on.
    let refused = announce(&room, "ann", Some("screen-ann")).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "forbidden");
    fac.wait_packets("ann", "audio", 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_members_share_stops_reaching_others_when_the_stick_moves_on() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    room.send_as("fac", json!({"type":"set_floor_mode","mode":"stick"}))
        .await;
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", true).await;
    room.send_as("fac", json!({"type":"grant_floor","participant":"ann"}))
        .await;
    room.wait_message("ann", |m| m["type"] == "hand" && m["status"] == "granted")
        .await;

    let ok = announce(&room, "ann", Some("screen-ann")).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    ann.share_screen().await;
    for viewer in [&fac, &ben] {
        viewer.wait_packets("ann", "screen", 15).await;
    }

    room.send_as("fac", json!({"type":"grant_floor","participant":"ben"}))
        .await;
    sharing_seen(&room, "ann", "ann", false).await;
    // Packets already past the gate may still land: let them, then nothing more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for viewer in [&fac, &ben] {
        no_more_screen(viewer, "ann").await;
    }
    s.stop().await;
}
