//! Media recovery through the real server: a participant whose socket drops and resumes gets an
//! ICE restart on `subscribe` (and may restart `publish` by offering again), and media keeps
//! flowing without anyone else renegotiating; a participant whose peers fail is shown
//! `reconnecting`, comes back with new peers after a second `hello`, or leaves with `timeout`
//! when the resume grace runs out.

use std::time::Duration;

use circle_tests::browser::{ice_ufrag, Browser, ServerRoom};
use circle_tests::{Role, TestServer};

fn roles() -> Vec<(&'static str, Role)> {
    vec![
        ("fac", Role::Facilitator),
        ("ann", Role::Member),
        ("ben", Role::Member),
    ]
}

/// ICE that notices a dead path within about two seconds, and a short resume grace.
async fn fast_failing_server(grace_ms: u64) -> TestServer {
    TestServer::with(|c| {
        c.room.waiting_room = false;
        c.room.resume_grace_ms = grace_ms;
        c.media.ice_timeouts = Some((
            Duration::from_millis(1_000),
            Duration::from_millis(1_000),
            Duration::from_millis(250),
        ));
    })
    .await
}

/// The `connection` shown for `about` in the last `participant_updated` `who` received.
fn connection_seen(room: &ServerRoom, who: &str, about: &str) -> Option<String> {
    room.messages.lock().unwrap().get(who).and_then(|ms| {
        ms.iter()
            .rev()
            .find(|m| m["type"] == "participant_updated" && m["participant"]["id"] == about)
            .map(|m| m["participant"]["connection"].as_str().unwrap().to_owned())
    })
}

async fn wait_connection(room: &ServerRoom, who: &str, about: &str, connection: &str) {
    circle_tests::browser::within(&format!("{who} to see {about} {connection}"), async {
        while connection_seen(room, who, about).as_deref() != Some(connection) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_participant_gets_an_ice_restart_and_media_flows_on_both_ways() {
    let s = fast_failing_server(20_000).await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", true).await;
    ben.wait_packets("ann", "audio", 25).await;
    ann.wait_packets("ben", "audio", 25).await;
    let offers_before = ben.offer_count();
    let ufrag_before = ice_ufrag(&ben.offers.lock().unwrap()[offers_before - 1]);
    let ann_offers_before = ann.offer_count();

    // Ben's socket drops; Ann sees him reconnecting, then back once he resumes.
    room.drop_session("ben").await;
    wait_connection(&room, "ann", "ben", "reconnecting").await;
    room.resume_session("ben").await;
    wait_connection(&room, "ann", "ben", "connected").await;

    // The server restarts ICE on Ben's subscribe connection: a new offer, new credentials.
    let restart = ben
        .wait_until("an ICE restart offer", || {
            let offers = ben.offers.lock().unwrap();
            (offers.len() > offers_before).then(|| offers[offers.len() - 1].clone())
        })
        .await;
    assert_ne!(ice_ufrag(&restart), ufrag_before, "the offer restarts ICE");

    // Ben restarts his publish connection himself; the server answers with new credentials.
    let answers_before = ben.publish_answers();
    ben.restart_publish_ice().await;
    let answer = ben
        .wait_until("the server's publish answer", || {
            let answers = ben.publish_answers();
            (answers.len() > answers_before.len()).then(|| answers[answers.len() - 1].clone())
        })
        .await;
    assert_ne!(
        ice_ufrag(&answer),
        ice_ufrag(answers_before.last().unwrap()),
        "the answer restarts ICE"
    );

    // Media flows again both ways, after both restarts.
    ben.wait_subscribe_connected().await;
    ben.wait_publish_connected().await;
    let from_ann = ben.stream("ann", "audio").count();
    ben.wait_packets("ann", "audio", from_ann + 50).await;
    ben.wait_packets("ann", "video", ben.stream("ann", "video").count() + 30)
        .await;
    let from_ben = ann.stream("ben", "audio").count();
    ann.wait_packets("ben", "audio", from_ben + 50).await;
    assert_eq!(ann.stream("ben", "audio").misrouted, 0);
    // Nobody else renegotiated: Ann got no new subscribe offer.
    assert_eq!(ann.offer_count(), ann_offers_before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_whose_peers_fail_is_shown_reconnecting_and_back_with_new_peers() {
    let s = fast_failing_server(20_000).await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", true).await;
    ann.wait_packets("ben", "audio", 25).await;

    // Ben's browser loses its connections; his socket stays up.
    ben.close().await;
    wait_connection(&room, "ann", "ben", "reconnecting").await;

    // A second `hello` (a reload) gets new peers, and Ben is back with media.
    let ben = Browser::join(&room, "ben", true).await;
    wait_connection(&room, "ann", "ben", "connected").await;
    let heard = ann.stream("ben", "audio").count();
    ann.wait_packets("ben", "audio", heard + 50).await;
    ben.wait_packets("ann", "audio", 25).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_participant_whose_peers_fail_and_never_recover_leaves_when_the_grace_runs_out() {
    let s = fast_failing_server(3_000).await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let ann = Browser::join(&room, "ann", true).await;
    let ben = Browser::join(&room, "ben", true).await;
    ann.wait_packets("ben", "audio", 25).await;

    ben.close().await;
    wait_connection(&room, "ann", "ben", "reconnecting").await;
    let left = room
        .wait_message("ann", |m| {
            m["type"] == "participant_left" && m["participant"] == "ben"
        })
        .await;
    assert_eq!(left["reason"], "timeout");
    // His resume token went with him.
    let ben_log = room.messages.lock().unwrap()["ben"].clone();
    let token = ben_log[0]["resume_token"].as_str().unwrap().to_owned();
    let mut again = s.resume(token.as_str(), 1).await;
    assert_eq!(again.recv().await["code"], "unauthorized");
    s.stop().await;
}
