//! Every client message type against the real server, with what each other participant sees.

use circle_tests::{Client, End, Role, TestServer};
use serde_json::json;

#[tokio::test]
async fn hello_welcomes_a_facilitator_with_the_full_state() {
    let s = TestServer::start().await;
    let mut f = s.connect().await;
    f.send(
        json!({"type":"hello","id":1,"protocol":1,"token": s.token("r1", "f", Role::Facilitator)}),
    )
    .await;
    let w = f.recv().await;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["seq"], 1);
    assert_eq!(w["protocol"], 1);
    assert_eq!(w["you"]["id"], "f");
    assert_eq!(w["you"]["role"], "facilitator");
    assert_eq!(w["room"]["id"], "r1");
    assert_eq!(w["room"]["floor"]["mode"], "open");
    assert_eq!(w["room"]["floor"]["queue"], json!([]));
    assert!(w["resume_token"].as_str().unwrap().len() >= 32);
    assert!(w["ice_servers"].is_array());
    let wr = f.recv().await;
    assert_eq!(wr["type"], "waiting_room");
    assert_eq!(wr["seq"], 2);
    // The hello carried an id: its one reply follows what it caused.
    assert_eq!(f.recv().await, json!({"type":"ok","id":1,"seq":3}));
    s.stop().await;
}

#[tokio::test]
async fn a_member_waits_then_admit_welcomes_them_and_tells_the_room() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    let mut b = s.join("r", "b", Role::Member).await;
    assert_eq!(b.log[0]["type"], "waiting");
    let wr = f.recv_type("waiting_room").await;
    assert_eq!(wr["waiting"][0]["id"], "b");
    assert_eq!(wr["waiting"][0]["name"], "Name b");
    f.request(json!({"type":"admit","participant":"b"}))
        .await
        .ok();
    let w = b.recv_type("welcome").await;
    assert_eq!(w["room"]["participants"].as_array().unwrap().len(), 3);
    assert!(
        w["room"]["floor"]["queue"].is_null(),
        "members never see the queue"
    );
    let j = ms[0].recv_type("participant_joined").await;
    assert_eq!(j["participant"]["id"], "b");
    let wr = f.recv_type("waiting_room").await;
    assert_eq!(wr["waiting"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn deny_closes_the_waiting_member_with_4003() {
    let s = TestServer::start().await;
    let mut f = s.join("r", "f", Role::Facilitator).await;
    let mut a = s.join("r", "a", Role::Member).await;
    f.recv_type("waiting_room").await;
    f.recv_type("waiting_room").await;
    f.request(json!({"type":"deny","participant":"a"}))
        .await
        .ok();
    assert_eq!(a.recv().await["type"], "denied");
    assert_eq!(a.end().await, End::Closed(4003));
    let wr = f.recv_type("waiting_room").await;
    assert_eq!(wr["waiting"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn admit_all_lets_everyone_waiting_in() {
    let s = TestServer::start().await;
    let mut f = s.join("r", "f", Role::Facilitator).await;
    let mut a = s.join("r", "a", Role::Member).await;
    let mut o = s.join("r", "o", Role::Observer).await;
    f.request(json!({"type":"admit_all"})).await.ok();
    assert_eq!(a.recv_type("welcome").await["you"]["role"], "member");
    let w = o.recv_type("welcome").await;
    assert_eq!(w["you"]["role"], "observer");
    let ids: Vec<&str> = w["room"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"o"),
        "observers are shown to everyone: {ids:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn without_a_waiting_room_members_are_admitted_at_once() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let a = s.join("r", "a", Role::Member).await;
    assert_eq!(a.log[0]["type"], "welcome");
    s.stop().await;
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let s = TestServer::start().await;
    let mut f = s.join("r", "f", Role::Facilitator).await;
    f.recv_type("waiting_room").await;
    f.send(json!({"type":"ping"})).await;
    assert_eq!(f.recv().await["type"], "pong");
    s.stop().await;
}

#[tokio::test]
async fn leave_closes_with_1000_and_the_room_sees_left() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    ms[0].request(json!({"type":"leave"})).await.ok();
    assert_eq!(ms[0].end().await, End::Closed(1000));
    let l = f.recv_type("participant_left").await;
    assert_eq!(l["participant"], "a");
    assert_eq!(l["reason"], "left");
    s.stop().await;
}

#[tokio::test]
async fn floor_mode_grant_revoke_and_release_are_announced_to_all() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    assert_eq!(ms[1].recv_type("floor").await["mode"], "stick");
    f.request(json!({"type":"grant_floor","participant":"a"}))
        .await
        .ok();
    ms[0].recv_with("hand", "status", json!("granted")).await;
    assert_eq!(ms[1].recv_type("floor").await["holder"], "a");
    f.request(json!({"type":"revoke_floor"})).await.ok();
    ms[0].recv_with("hand", "status", json!("revoked")).await;
    assert!(ms[1].recv_type("floor").await["holder"].is_null());
    f.request(json!({"type":"grant_floor","participant":"b"}))
        .await
        .ok();
    ms[1].request(json!({"type":"release_floor"})).await.ok();
    ms[1].recv_with("hand", "status", json!("released")).await;
    let fl = ms[0].recv_type("floor").await;
    let fl = if fl["holder"].is_null() {
        fl
    } else {
        ms[0].recv_type("floor").await
    };
    assert!(fl["holder"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn set_turn_limit_is_shown_in_the_floor_and_room_settings() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    f.request(json!({"type":"set_turn_limit","seconds":120}))
        .await
        .ok();
    let u = ms[0].recv_type("room_updated").await;
    assert_eq!(u["turn_limit"], 120);
    f.request(json!({"type":"grant_floor","participant":"a"}))
        .await
        .ok();
    let fl = ms[0].recv_type("floor").await;
    let ends = fl["turn_ends_at"].as_u64().unwrap();
    let now = circle_server::token::unix_now() * 1000;
    assert!(
        ends > now + 110_000 && ends < now + 130_000,
        "{ends} vs {now}"
    );
    assert_eq!(
        f.request(json!({"type":"set_turn_limit","seconds":0}))
            .await
            .code(),
        "bad_request"
    );
    assert_eq!(
        f.request(json!({"type":"set_turn_limit","seconds":3601}))
            .await
            .code(),
        "bad_request"
    );
    f.request(json!({"type":"set_turn_limit","seconds":null}))
        .await
        .ok();
    assert!(ms[0].recv_type("room_updated").await["turn_limit"].is_null());
    s.stop().await;
}

#[tokio::test]
async fn mute_and_unmute_are_shown_to_the_room() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"mute","participant":"a"}))
        .await
        .ok();
    let u = ms[1].recv_type("participant_updated").await;
    assert_eq!(
        (
            u["participant"]["id"].clone(),
            u["participant"]["muted"].clone()
        ),
        (json!("a"), json!(true))
    );
    assert_eq!(
        ms[0]
            .request(json!({"type":"unmute","participant":"a"}))
            .await
            .code(),
        "forbidden"
    );
    f.request(json!({"type":"unmute","participant":"a"}))
        .await
        .ok();
    assert_eq!(
        ms[1].recv_type("participant_updated").await["participant"]["muted"],
        false
    );
    s.stop().await;
}

#[tokio::test]
async fn remove_closes_with_4001_and_bars_rejoining() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"remove","participant":"a"}))
        .await
        .ok();
    assert_eq!(ms[0].recv_type("removed").await["type"], "removed");
    assert_eq!(ms[0].end().await, End::Closed(4001));
    let l = ms[1].recv_type("participant_left").await;
    assert_eq!(
        (l["participant"].clone(), l["reason"].clone()),
        (json!("a"), json!("removed"))
    );
    let mut again = s.connect().await;
    again
        .send(json!({"type":"hello","protocol":1,"token": s.token("r", "a", Role::Member)}))
        .await;
    let e = again.recv().await;
    assert_eq!(e["code"], "forbidden");
    assert_eq!(again.end().await, End::Closed(1008));
    s.stop().await;
}

#[tokio::test]
async fn a_locked_room_refuses_new_members_with_room_locked() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    f.request(json!({"type":"lock_room","locked":true}))
        .await
        .ok();
    assert_eq!(ms[0].recv_type("room_updated").await["locked"], true);
    let mut late = s.connect().await;
    late.send(json!({"type":"hello","protocol":1,"token": s.token("r", "z", Role::Member)}))
        .await;
    assert_eq!(late.recv().await["code"], "room_locked");
    assert_eq!(late.end().await, End::Closed(1008));
    f.request(json!({"type":"lock_room","locked":false}))
        .await
        .ok();
    s.join("r", "z", Role::Member).await;
    s.stop().await;
}

#[tokio::test]
async fn a_full_room_refuses_with_room_full() {
    let s = TestServer::with(|c| c.room.max_participants = 2).await;
    let _f = s.join("r", "f", Role::Facilitator).await;
    let _a = s.join("r", "a", Role::Member).await;
    let mut b = s.connect().await;
    b.send(json!({"type":"hello","protocol":1,"token": s.token("r", "b", Role::Member)}))
        .await;
    assert_eq!(b.recv().await["code"], "room_full");
    assert_eq!(b.end().await, End::Closed(1008));
    s.stop().await;
}

#[tokio::test]
async fn end_session_tells_everyone_and_closes_with_4004() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    let mut w = s.join("r", "w", Role::Member).await;
    f.send(json!({"type":"end_session"})).await;
    for c in [&mut f, &mut ms[0], &mut w] {
        let e = c.recv_type("session_ended").await;
        assert_eq!(e["reason"], "ended_by_facilitator");
        assert_eq!(c.end().await, End::Closed(4004));
    }
    s.stop().await;
}

#[tokio::test]
async fn a_check_in_opens_collects_answers_and_publishes_counts() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b", "c", "d"]).await;
    f.request(json!({"type":"start_check_in","question":"How are you arriving?","options":["calm","tense"]}))
        .await
        .ok();
    let open = ms[0].recv_type("check_in").await;
    let id = open["check_in"].clone();
    assert_eq!(open["options"], json!(["calm", "tense"]));
    for (i, option) in [0, 1, 1, 0].into_iter().enumerate() {
        ms[i]
            .request(json!({"type":"answer_check_in","check_in": id,"option": option}))
            .await
            .ok();
    }
    f.request(json!({"type":"close_check_in","check_in": id}))
        .await
        .ok();
    let r = ms[2].recv_type("check_in_result").await;
    assert_eq!(r["counts"], json!([2, 2]));
    assert_eq!(r["responses"], 4);
    s.stop().await;
}

#[tokio::test]
async fn a_unanimous_check_in_is_published_without_counts() {
    // The review's attack: three members all answered "struggling" and everyone received
    // counts [0, 3], so each member's answer was known to all.
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b", "c"]).await;
    f.request(
        json!({"type":"start_check_in","question":"How are you?","options":["ok","struggling"]}),
    )
    .await
    .ok();
    let id = ms[0].recv_type("check_in").await["check_in"].clone();
    for m in ms.iter_mut() {
        m.request(json!({"type":"answer_check_in","check_in": id,"option": 1}))
            .await
            .ok();
    }
    f.request(json!({"type":"close_check_in","check_in": id}))
        .await
        .ok();
    let mut everyone: Vec<&mut Client> = ms.iter_mut().collect();
    everyone.push(&mut f);
    for c in everyone {
        let r = c.recv_type("check_in_result").await;
        assert!(r["counts"].is_null(), "{r}");
        assert_eq!(r["responses"], 3);
    }
    s.stop().await;
}

#[tokio::test]
async fn check_in_counts_stay_hidden_below_the_threshold() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"start_check_in","question":"q","options":["x","y","z"]}))
        .await
        .ok();
    let id = ms[0].recv_type("check_in").await["check_in"].clone();
    ms[0]
        .request(json!({"type":"answer_check_in","check_in": id,"option": 2}))
        .await
        .ok();
    assert_eq!(
        ms[1]
            .request(json!({"type":"answer_check_in","check_in": id,"option": 3}))
            .await
            .code(),
        "bad_request"
    );
    f.request(json!({"type":"close_check_in","check_in": id}))
        .await
        .ok();
    let r = ms[1].recv_type("check_in_result").await;
    assert!(r["counts"].is_null());
    assert_eq!(r["responses"], 1);
    assert_eq!(
        f.request(json!({"type":"close_check_in","check_in": id}))
            .await
            .code(),
        "not_found"
    );
    s.stop().await;
}

#[tokio::test]
async fn need_help_reaches_facilitators_only() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    ms[0]
        .request(json!({"type":"need_help","note":"I need a moment"}))
        .await
        .ok();
    let h = f.recv_type("help_requested").await;
    assert_eq!(
        (h["participant"].clone(), h["note"].clone()),
        (json!("a"), json!("I need a moment"))
    );
    assert!(
        ms[1].drain().await.is_empty(),
        "another member learned of it"
    );
    s.stop().await;
}

#[tokio::test]
async fn set_media_is_shown_to_the_room() {
    let s = TestServer::start().await;
    let (_f, mut ms) = s.group("r", &["a", "b"]).await;
    ms[0]
        .request(json!({"type":"set_media","audio":true,"video":false}))
        .await
        .ok();
    let u = ms[1].recv_type("participant_updated").await;
    assert_eq!(u["participant"]["audio"], true);
    assert_eq!(u["participant"]["video"], false);
    s.stop().await;
}

#[tokio::test]
async fn reactions_arrive_as_counts_after_the_window() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    ms[0]
        .request(json!({"type":"react","kind":"heart"}))
        .await
        .ok();
    ms[1]
        .request(json!({"type":"react","kind":"heart"}))
        .await
        .ok();
    f.request(json!({"type":"react","kind":"applause"}))
        .await
        .ok();
    let r = ms[1].recv_type("reactions").await;
    assert_eq!(r["counts"], json!({"heart": 2, "applause": 1}));
    assert_eq!(
        ms[0]
            .request(json!({"type":"react","kind":"boo"}))
            .await
            .code(),
        "bad_request"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_observer_may_react_but_not_publish_or_raise_a_hand() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let _f = s.join("r", "f", Role::Facilitator).await;
    let _m = s.join("r", "m", Role::Member).await;
    let mut o = s.join("r", "o", Role::Observer).await;
    o.request(json!({"type":"react","kind":"support"}))
        .await
        .ok();
    assert_eq!(
        o.request(json!({"type":"raise_hand"})).await.code(),
        "forbidden"
    );
    let offer = json!({"type":"sdp","pc":"publish","sdp_type":"offer","sdp":"v=0\r\n"});
    assert_eq!(o.request(offer).await.code(), "forbidden");
    s.stop().await;
}

#[tokio::test]
async fn a_reaction_with_only_one_possible_sender_is_refused_and_reaches_nobody() {
    // The review's attack: the only member's reaction reached everyone as {"me_too": 1}.
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let mut f = s.join("r", "f", Role::Facilitator).await;
    let mut m = s.join("r", "m", Role::Member).await;
    f.drain().await;
    assert_eq!(
        m.request(json!({"type":"react","kind":"me_too"}))
            .await
            .code(),
        "conflict"
    );
    // The window (300 ms here) passes: nothing reaches the facilitator.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    f.request(json!({"type":"ping"})).await.ok();
    assert!(
        f.log.iter().all(|m| m["type"] != "reactions"),
        "a reaction reached the room"
    );
    s.stop().await;
}
