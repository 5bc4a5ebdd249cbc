//! Sessions under strain: a client that stops reading, and resuming after a dropped network.

use std::time::{Duration, Instant};

use circle_tests::{Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected_without_delaying_the_others() {
    let s = TestServer::with(|c| {
        c.outbound_queue = 32;
        c.message_rate = 1_000_000;
        c.message_burst = 1_000_000;
    })
    .await;
    let (mut f, mut ms) = s.group("r", &["a", "stuck"]).await;
    let stuck = ms.pop().unwrap();
    // `stuck` never reads again. The facilitator opens and closes large check-ins, each sent to
    // everyone, until the stuck socket's kernel buffers and its queue of 32 overflow; `f` and
    // `a` read everything between batches, as live clients do.
    let question = "q".repeat(300);
    let options: Vec<String> = (0..10).map(|i| format!("{i}{}", "o".repeat(99))).collect();
    let mut dropped = false;
    let mut rounds = 0;
    let mut check_in = 0;
    while !dropped {
        assert!(rounds < 3000, "the stuck client was never dropped");
        rounds += 1;
        // Small batches, so that the readers' own queues never overflow.
        for _ in 0..10 {
            check_in += 1;
            f.send(json!({"type":"start_check_in","question": question,"options": options}))
                .await;
            f.send(json!({"type":"close_check_in","check_in": format!("c{check_in}")}))
                .await;
        }
        let got = f.drain().await;
        dropped = got.iter().any(|m| {
            m["type"] == "participant_updated"
                && m["participant"]["id"] == "stuck"
                && m["participant"]["connection"] == "reconnecting"
        });
        // The reading member gets every message in order, and promptly.
        let before = ms[0].last_seq();
        let ping = Instant::now();
        let seen = ms[0].drain().await;
        assert!(
            ping.elapsed() < Duration::from_secs(5),
            "the room was slowed: {:?}",
            ping.elapsed()
        );
        let seqs: Vec<u64> = ms[0]
            .log
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .filter(|s| *s > before)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap in the reading member's sequence"
        );
        assert_eq!(seen.iter().filter(|m| m["type"] == "check_in").count(), 10);
        assert!(seen.iter().all(|m| m["type"] != "error"), "{seen:?}");
    }
    assert!(rounds > 1, "dropped before the flood: {rounds}");
    drop(stuck);
    s.stop().await;
}

#[tokio::test]
async fn members_who_drop_resume_with_what_they_missed_and_keep_the_stick_and_their_place() {
    let s = TestServer::with(|c| c.room.resume_grace_ms = 3_000).await;
    let (mut f, mut ms) = s.group("r", &["holder", "first", "second", "gone"]).await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    f.request(json!({"type":"grant_floor","participant":"holder"}))
        .await
        .ok();
    for i in [1, 2, 3] {
        ms[i].request(json!({"type":"raise_hand"})).await.ok();
    }
    let mut clients: Vec<Option<Client>> = ms.into_iter().map(Some).collect();
    let mut holder = clients[0].take().unwrap();
    let mut second = clients[2].take().unwrap();
    let gone = clients[3].take().unwrap();
    holder.drain().await;
    second.drain().await;
    let (holder_token, holder_seq) = (holder.log[1]["resume_token"].clone(), holder.last_seq());
    let (second_token, second_seq) = (second.log[1]["resume_token"].clone(), second.last_seq());
    holder.vanish();
    second.vanish();
    gone.vanish();
    for who in ["holder", "second", "gone"] {
        f.recv_connection(who, "reconnecting").await;
    }
    // While they are away, the room moves on. A reaction is refused: with three of five shown
    // away, the facilitator would know who sent it.
    let mut first = clients[1].take().unwrap();
    assert_eq!(
        first
            .request(json!({"type":"react","kind":"support"}))
            .await
            .code(),
        "conflict"
    );
    f.request(json!({"type":"set_turn_limit","seconds":600}))
        .await
        .ok();

    for (token, seq, name) in [
        (holder_token, holder_seq, "holder"),
        (second_token, second_seq, "second"),
    ] {
        let mut c = s.resume(token, seq).await;
        c.id = name.into();
        // Exactly what was missed, in order, numbered on from where it stopped.
        let missed = c.drain().await;
        let seqs: Vec<u64> = missed.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        let expected: Vec<u64> = (seq + 1..seq + 1 + seqs.len() as u64).collect();
        assert_eq!(seqs, expected, "{name}");
        assert!(
            missed.iter().all(|m| m["type"] != "welcome"),
            "{name} got a fresh welcome"
        );
        assert!(
            missed.iter().any(|m| m["type"] == "room_updated"),
            "{name}: {missed:?}"
        );
        let fl = missed.iter().rfind(|m| m["type"] == "floor").unwrap();
        assert_eq!(fl["holder"], "holder");
        if name == "second" {
            assert_eq!(fl["position"], 2, "second keeps second place");
        }
        if name == "holder" {
            assert!(c.request(json!({"type":"release_floor"})).await.0["type"] == "ok");
            f.request(json!({"type":"grant_floor","participant":"holder"}))
                .await
                .ok();
        }
        f.recv_connection(name, "connected").await;
        std::mem::forget(c);
    }
    // The one who did not come back leaves with `timeout` and loses their place.
    let l = f
        .recv_with("participant_left", "participant", json!("gone"))
        .await;
    assert_eq!(l["reason"], "timeout");
    let fl = f.latest_floor().await;
    let queue = circle_tests::queue_ids(&fl);
    assert_eq!(queue, vec![json!("first"), json!("second")]);
    s.stop().await;
}

#[tokio::test]
async fn a_resume_after_the_grace_is_unauthorized() {
    let s = TestServer::with(|c| c.room.resume_grace_ms = 300).await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    let a = ms.pop().unwrap();
    let token = a.log[1]["resume_token"].clone();
    a.vanish();
    f.recv_with("participant_left", "reason", json!("timeout"))
        .await;
    let mut c = s.resume(token, 1).await;
    assert_eq!(c.recv().await["code"], "unauthorized");
    s.stop().await;
}

#[tokio::test]
async fn a_resume_that_cannot_be_replayed_gets_a_fresh_welcome() {
    let s = TestServer::start().await;
    let (_f, mut ms) = s.group("r", &["a"]).await;
    let a = ms.pop().unwrap();
    let token = a.log[1]["resume_token"].clone();
    let seq = a.last_seq();
    a.vanish();
    let mut c = s.resume(token, seq + 50).await;
    let w = c.recv().await;
    assert_eq!(w["type"], "welcome");
    assert!(w["seq"].as_u64().unwrap() > seq, "seq never resets");
    s.stop().await;
}

#[tokio::test]
async fn shutting_down_tells_every_session_and_closes_with_1001() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    let mut waiting = s.join("r", "w", circle_tests::Role::Member).await;
    let mut early = s.connect().await;
    s.server.shutdown.cancel();
    for c in [&mut f, &mut ms[0], &mut waiting] {
        let e = c.recv_type("session_ended").await;
        assert_eq!(e["reason"], "server_shutdown");
        assert_eq!(c.end().await, circle_tests::End::Closed(1001));
    }
    assert_eq!(early.end().await, circle_tests::End::Closed(1001));
    tokio::time::timeout(Duration::from_secs(10), s.server.task)
        .await
        .expect("the server stops within its drain deadline")
        .unwrap();
}
