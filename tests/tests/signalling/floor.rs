//! The floor end to end: the queue and each member's place in it, grant next, pass, a holder
//! leaving, the turn limit, and invitations.

use circle_tests::{Role, TestServer};
use serde_json::json;

#[tokio::test]
async fn queue_positions_follow_hands_going_up_and_down() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b", "c"]).await;
    let h = ms[1]
        .request(json!({"type":"raise_hand","note":"about my week"}))
        .await;
    h.ok();
    assert_eq!(
        ms[1].log.iter().find(|m| m["type"] == "hand").unwrap()["position"],
        1
    );
    ms[0].request(json!({"type":"raise_hand"})).await.ok();
    ms[2].request(json!({"type":"raise_hand"})).await.ok();
    let fl = f.latest_floor().await;
    let queue = circle_tests::queue_ids(&fl);
    assert_eq!(queue, vec![json!("b"), json!("a"), json!("c")]);
    assert_eq!(fl["queue"][0]["note"], "about my week");
    let last_floor = |c: &mut circle_tests::Client| {
        c.log
            .iter()
            .rev()
            .find(|m| m["type"] == "floor")
            .cloned()
            .unwrap()
    };
    ms[2].drain().await;
    assert_eq!(last_floor(&mut ms[2])["position"], 3);
    assert!(last_floor(&mut ms[2])["queue"].is_null());
    // b lowers their hand; a and c move up.
    ms[1].request(json!({"type":"lower_hand"})).await.ok();
    ms[0].drain().await;
    ms[2].drain().await;
    assert_eq!(last_floor(&mut ms[0])["position"], 1);
    assert_eq!(last_floor(&mut ms[2])["position"], 2);
    assert_eq!(last_floor(&mut ms[2])["queue_length"], 2);
    // The facilitator lowers c's hand: c is told it was denied.
    f.request(json!({"type":"lower_hand","participant":"c"}))
        .await
        .ok();
    assert_eq!(ms[2].recv_type("hand").await["status"], "denied");
    s.stop().await;
}

#[tokio::test]
async fn grant_next_and_pass_floor_move_the_stick_along_the_queue() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b", "c"]).await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    ms[0].request(json!({"type":"raise_hand"})).await.ok();
    ms[1].request(json!({"type":"raise_hand"})).await.ok();
    f.request(json!({"type":"grant_next"})).await.ok();
    ms[0].recv_with("hand", "status", json!("granted")).await;
    let fl = ms[0].latest_floor().await;
    assert_eq!(fl["holder"], "a");
    assert_eq!(fl["pass_to"], json!(["b"]));
    ms[0]
        .request(json!({"type":"pass_floor","to":"b"}))
        .await
        .ok();
    ms[0].recv_with("hand", "status", json!("released")).await;
    ms[1].recv_with("hand", "status", json!("granted")).await;
    let fl = ms[2].latest_floor().await;
    assert_eq!(fl["holder"], "b");
    assert_eq!(fl["queue_length"], 0);
    assert_eq!(
        ms[2].request(json!({"type":"release_floor"})).await.code(),
        "conflict"
    );
    assert_eq!(
        ms[1]
            .request(json!({"type":"pass_floor","to":"c"}))
            .await
            .code(),
        "conflict"
    );
    assert_eq!(
        ms[1]
            .request(json!({"type":"pass_floor","to":"nobody"}))
            .await
            .code(),
        "not_found"
    );
    assert_eq!(
        f.request(json!({"type":"grant_next"})).await.code(),
        "conflict"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_holder_who_leaves_gives_the_stick_back_and_leaves_the_queue() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"grant_floor","participant":"a"}))
        .await
        .ok();
    ms[1].request(json!({"type":"raise_hand"})).await.ok();
    ms[0].request(json!({"type":"leave"})).await.ok();
    let got = ms[1].drain().await;
    let fl = got.iter().rfind(|m| m["type"] == "floor").unwrap();
    assert!(fl["holder"].is_null());
    assert_eq!(fl["position"], 1);
    ms[1].request(json!({"type":"leave"})).await.ok();
    let fl = f.latest_floor().await;
    assert_eq!(fl["queue"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn the_turn_limit_warns_and_then_takes_the_stick_back() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"set_turn_limit","seconds":2}))
        .await
        .ok();
    f.request(json!({"type":"grant_floor","participant":"a"}))
        .await
        .ok();
    assert_eq!(ms[0].recv_type("hand").await["status"], "granted");
    let w = ms[0].recv_type("turn_warning").await;
    assert_eq!(w["seconds_left"], 1);
    assert_eq!(f.recv_type("turn_warning").await["seconds_left"], 1);
    assert_eq!(ms[0].recv_type("hand").await["status"], "revoked");
    let fl = ms[1].recv_type("floor").await;
    let fl = if fl["holder"].is_null() {
        fl
    } else {
        ms[1].recv_type("floor").await
    };
    assert!(fl["holder"].is_null());
    assert!(
        ms[1].log.iter().all(|m| m["type"] != "turn_warning"),
        "only holder and facilitators are warned"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_invitation_accepted_gives_the_stick_and_one_passed_does_not() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    f.request(json!({"type":"invite_to_speak","participant":"a"}))
        .await
        .ok();
    ms[0].recv_type("invited_to_speak").await;
    ms[0]
        .request(json!({"type":"answer_invite","accept":false}))
        .await
        .ok();
    let a = f.recv_type("invite_answered").await;
    assert_eq!(
        (a["participant"].clone(), a["accepted"].clone()),
        (json!("a"), json!(false))
    );
    assert!(ms[1]
        .drain()
        .await
        .iter()
        .all(|m| m["type"] != "invite_answered"));
    f.request(json!({"type":"invite_to_speak","participant":"b"}))
        .await
        .ok();
    ms[1].recv_type("invited_to_speak").await;
    ms[1]
        .request(json!({"type":"answer_invite","accept":true}))
        .await
        .ok();
    assert_eq!(f.recv_type("invite_answered").await["accepted"], true);
    assert_eq!(ms[1].recv_type("hand").await["status"], "granted");
    let fl = ms[0].latest_floor().await;
    assert_eq!(fl["holder"], "b");
    assert_eq!(
        ms[0]
            .request(json!({"type":"answer_invite","accept":true}))
            .await
            .code(),
        "conflict"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_stick_goes_only_to_admitted_members() {
    let s = TestServer::start().await;
    let (mut f, _ms) = s.group("r", &["a"]).await;
    let _w = s.join("r", "w", Role::Member).await;
    assert_eq!(
        f.request(json!({"type":"grant_floor","participant":"w"}))
            .await
            .code(),
        "not_found"
    );
    assert_eq!(
        f.request(json!({"type":"grant_floor","participant":"f"}))
            .await
            .code(),
        "conflict"
    );
    assert_eq!(
        f.request(json!({"type":"grant_floor","participant":"ghost"}))
            .await
            .code(),
        "not_found"
    );
    s.stop().await;
}
