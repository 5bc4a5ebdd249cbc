//! Media through the real server: fake browsers (webrtc-rs peers) join over WebSocket, negotiate
//! with `sdp`/`ice`, and publish over loopback UDP; the room's floor rules open and close the
//! audio gate. The media module alone is tested in `media_router/routing.rs`.

use std::sync::atomic::Ordering;

use circle_tests::browser::{contiguous, Browser, ServerRoom, LOUD, QUIET};
use circle_tests::Role;
use serde_json::json;

use super::server;

fn roles() -> Vec<(&'static str, Role)> {
    vec![
        ("fac", Role::Facilitator),
        ("ann", Role::Member),
        ("ben", Role::Member),
        ("obs", Role::Observer),
    ]
}

/// Waits until `who` has seen a `floor` event that satisfies `check`.
async fn floor_seen(room: &ServerRoom, who: &str, check: impl Fn(&serde_json::Value) -> bool) {
    room.wait_message(who, |m| m["type"] == "floor" && check(m))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_participants_publish_and_each_receives_the_other_two() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let mut browsers = Vec::new();
    for id in ["fac", "ann", "ben"] {
        browsers.push(Browser::join(&room, id, true).await);
    }
    for b in &browsers {
        for other in ["fac", "ann", "ben"].into_iter().filter(|o| *o != b.id) {
            let audio = b.wait_packets(other, "audio", 25).await;
            let video = b.wait_packets(other, "video", 15).await;
            assert_eq!(audio.misrouted + video.misrouted, 0);
        }
        assert_eq!(
            b.publishers_heard().len(),
            4,
            "{} heard {:?}",
            b.id,
            b.publishers_heard()
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_connections_are_built_only_for_media_that_flows() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    // The facilitator publishes; nobody else does, so she has nothing to receive.
    let fac = Browser::join(&room, "fac", true).await;
    s.stats_until(|v| v["peers"] == 1).await;
    // Ann only watches: her subscribe leg, and no publish leg.
    let ann = Browser::join(&room, "ann", false).await;
    ann.wait_packets("fac", "video", 15).await;
    let stats = s.stats_until(|v| v["peers"] == 2).await;
    assert_eq!(stats["connections"], 2);
    drop((fac, ann));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_stick_mode_a_members_audio_reaches_nobody_until_granted_and_stops_when_revoked() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    room.send_as("fac", json!({"type":"set_floor_mode","mode":"stick"}))
        .await;
    floor_seen(&room, "fac", |f| f["mode"] == "stick").await;
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", true).await;

    // Ann's camera reaches both others; her microphone reaches nobody; the facilitator's does.
    for b in [&fac, &ben] {
        b.wait_packets("ann", "video", 30).await;
        assert_eq!(
            b.stream("ann", "audio").count(),
            0,
            "ungranted audio reached {}",
            b.id
        );
    }
    ben.wait_packets("fac", "audio", 25).await;
    ann.wait_packets("fac", "audio", 25).await;

    room.send_as("fac", json!({"type":"grant_floor","participant":"ann"}))
        .await;
    for b in [&fac, &ben] {
        let audio = b.wait_packets("ann", "audio", 25).await;
        assert!(
            contiguous(&audio.sequence_numbers),
            "gap at {}: {:?}",
            b.id,
            audio.sequence_numbers
        );
    }

    room.send_as("fac", json!({"type":"revoke_floor"})).await;
    floor_seen(&room, "ben", |f| {
        f["holder"].is_null() && f["mode"] == "stick"
    })
    .await;
    for b in [&fac, &ben] {
        // Packets already past the gate may still land; then a second of video passes with
        // not one more audio packet.
        let video = b.stream("ann", "video").count();
        b.wait_packets("ann", "video", video + 10).await;
        let audio = b.stream("ann", "audio").count();
        b.wait_packets("ann", "video", video + 40).await;
        assert_eq!(
            b.stream("ann", "audio").count(),
            audio,
            "revoked audio reached {}",
            b.id
        );
    }
    // The facilitator is heard throughout.
    let heard = ben.stream("fac", "audio").count();
    ben.wait_packets("fac", "audio", heard + 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_muted_members_audio_stops_even_in_open_mode_until_unmuted() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let _fac = Browser::join(&room, "fac", true).await;
    let ann = Browser::join(&room, "ann", true).await;
    let _ben = Browser::join(&room, "ben", true).await;
    ann.wait_packets("ben", "audio", 25).await;

    room.send_as("fac", json!({"type":"mute","participant":"ben"}))
        .await;
    room.wait_message("ann", |m| {
        m["type"] == "participant_updated" && m["participant"]["muted"] == true
    })
    .await;
    let video = ann.stream("ben", "video").count();
    ann.wait_packets("ben", "video", video + 10).await;
    let audio = ann.stream("ben", "audio").count();
    ann.wait_packets("ben", "video", video + 40).await;
    assert_eq!(
        ann.stream("ben", "audio").count(),
        audio,
        "muted audio arrived"
    );

    room.send_as("fac", json!({"type":"unmute","participant":"ben"}))
        .await;
    let audio = ann.wait_packets("ben", "audio", audio + 25).await;
    assert!(
        contiguous(&audio.sequence_numbers),
        "{:?}",
        audio.sequence_numbers
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_joiner_receives_what_is_published_and_a_leavers_tracks_are_withdrawn() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    let ann = Browser::join(&room, "ann", true).await;
    fac.wait_packets("ann", "video", 10).await;

    let obs = Browser::join(&room, "obs", false).await;
    for publisher in ["fac", "ann"] {
        obs.wait_packets(publisher, "audio", 25).await;
        obs.wait_packets(publisher, "video", 15).await;
    }

    ann.close().await;
    room.remove("ann").await;
    room.wait_message("fac", |m| {
        m["type"] == "participant_left" && m["participant"] == "ann"
    })
    .await;
    for b in [&fac, &obs] {
        b.wait_until("a re-offer without ann", || {
            let offers = b.offers.lock().unwrap();
            offers
                .last()
                .filter(|o| !o.contains("a=msid:ann "))
                .cloned()
        })
        .await;
    }
    let before = obs.stream("fac", "video").count();
    obs.wait_packets("fac", "video", before + 10).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscribers_keyframe_request_reaches_the_publisher() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let ann = Browser::join(&room, "ann", true).await;
    let obs = Browser::join(&room, "obs", false).await;
    obs.wait_packets("ann", "video", 10).await;
    let before = ann.plis();
    circle_tests::browser::within("obs's PLI at ann", async {
        // Resent on a cadence: the server throttles keyframe requests per publisher.
        let mut resend = tokio::time::interval(std::time::Duration::from_millis(200));
        while ann.plis() <= before {
            resend.tick().await;
            obs.send_pli("ann").await;
        }
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn speaking_names_a_loud_member_to_facilitators_even_without_the_stick_but_not_to_the_room() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let _fac = Browser::join(&room, "fac", true).await;
    room.send_as("fac", json!({"type":"set_floor_mode","mode":"stick"}))
        .await;
    floor_seen(&room, "fac", |f| f["mode"] == "stick").await;
    let ann = Browser::join(&room, "ann", true).await;
    let _ben = Browser::join(&room, "ben", true).await;

    ann.audio_level.store(LOUD, Ordering::Relaxed);
    let set = room
        .speaking_until(|set| set.iter().any(|p| p.as_str() == "ann"))
        .await;
    assert_eq!(set, vec!["ann".into()]);
    // Ben hears nothing from ann, so he is not told she is speaking.
    let ben_saw_ann = room
        .messages
        .lock()
        .unwrap()
        .get("ben")
        .into_iter()
        .flatten()
        .any(|m| m["type"] == "speaking" && m["participants"].to_string().contains("ann"));
    assert!(!ben_saw_ann, "the room was told of a voice it cannot hear");

    // Given the stick, the room is told too.
    room.send_as("fac", json!({"type":"grant_floor","participant":"ann"}))
        .await;
    room.wait_message("ben", |m| {
        m["type"] == "speaking" && m["participants"].to_string().contains("ann")
    })
    .await;
    ann.audio_level.store(QUIET, Ordering::Relaxed);
    room.speaking_until(|set| set.is_empty()).await;
    s.stop().await;
}
