//! TURN credentials in `welcome` and `resumed`: the REST scheme coturn checks (an expiry and a
//! random id as the username, HMAC-SHA1 of it as the password), fresh for every client and
//! every resume, and never naming who they were given to.

use std::time::Duration;

use base64::Engine;
use circle_server::config::{TurnConfig, TurnCredentials};
use circle_tests::{Role, TestServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

const SECRET: &[u8] = b"turn-test-secret";

fn with_turn(c: &mut circle_server::Settings) {
    c.room.waiting_room = false;
    c.room.resume_grace_ms = 5_000;
    c.turn = Some(TurnConfig {
        urls: vec![
            "turn:127.0.0.1:3478?transport=udp".into(),
            "turns:127.0.0.1:5349?transport=tcp".into(),
        ],
        credentials: TurnCredentials::Rest {
            secret: SECRET.to_vec(),
            ttl: Duration::from_secs(3600),
        },
    });
}

/// The TURN entry of an `ice_servers` list, checked as coturn would check it.
fn checked_turn(ice_servers: &Value) -> (String, String) {
    let turn = ice_servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["urls"][0].as_str().unwrap().starts_with("turn:"))
        .unwrap_or_else(|| panic!("no TURN server in {ice_servers}"));
    assert_eq!(turn["urls"].as_array().unwrap().len(), 2);
    let username = turn["username"].as_str().unwrap().to_owned();
    let credential = turn["credential"].as_str().unwrap().to_owned();
    let expires: u64 = username.split(':').next().unwrap().parse().unwrap();
    let now = circle_server::token::unix_now();
    assert!((now + 3590..=now + 3610).contains(&expires), "{username}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET).unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(credential, expected, "coturn would refuse this password");
    (username, credential)
}

#[tokio::test]
async fn every_welcome_and_every_resume_hands_out_fresh_turn_credentials_naming_nobody() {
    let s = TestServer::with(with_turn).await;
    let mut a = s.join("r", "patient-one", Role::Member).await;
    let b = s.join("r", "patient-two", Role::Member).await;
    let (a_name, _) = checked_turn(&a.log[0]["ice_servers"]);
    let (b_name, _) = checked_turn(&b.log[0]["ice_servers"]);
    assert_ne!(a_name, b_name);
    for name in [&a_name, &b_name] {
        assert!(
            !name.contains("patient") && !name.contains("Name"),
            "{name}"
        );
    }
    a.drain().await;
    let (token, seq) = (a.log[0]["resume_token"].clone(), a.last_seq());
    a.vanish();
    let mut back = s.resume(token, seq).await;
    let resumed = back.recv_type("resumed").await;
    let (again, _) = checked_turn(&resumed["ice_servers"]);
    assert_ne!(again, a_name, "a resume hands new credentials");
    drop(b);
    s.stop().await;
}

#[tokio::test]
async fn without_turn_only_the_configured_stun_servers_are_handed_out() {
    let s = TestServer::with(|c| {
        c.room.waiting_room = false;
        c.ice_servers = vec![circle_protocol::IceServer {
            urls: vec!["stun:stun.example.org".into()],
            username: None,
            credential: None,
        }];
    })
    .await;
    let a = s.join("r", "a", Role::Member).await;
    assert_eq!(
        a.log[0]["ice_servers"],
        json!([{"urls": ["stun:stun.example.org"]}])
    );
    s.stop().await;
}

#[tokio::test]
async fn resume_sent_over_and_over_hands_out_no_credentials_and_is_rate_limited() {
    let s = TestServer::with(with_turn).await;
    let mut a = s.join("r", "harvester", Role::Member).await;
    let token = a.log[0]["resume_token"].clone();
    let mut refusals = Vec::new();
    for _ in 0..200 {
        if !a
            .try_send_text(
                &json!({"type":"resume","protocol":1,"resume_token": token,"last_seq": 0})
                    .to_string(),
            )
            .await
        {
            break;
        }
    }
    // Everything the server said until it closed the connection.
    let end = a.try_end(Duration::from_secs(10)).await;
    for m in &a.log[1..] {
        assert_ne!(m["type"], "resumed", "a joined connection resumed: {m}");
        assert!(
            m.get("ice_servers").is_none(),
            "credentials were handed out: {m}"
        );
        if m["type"] == "error" {
            refusals.push(m["code"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        refusals.first().map(String::as_str),
        Some("conflict"),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|code| code == "rate_limited"),
        "the refusals turn into rate limiting before the close: {refusals:?}"
    );
    assert!(
        matches!(end, Some(circle_tests::End::Closed(1008))),
        "an abusive connection is closed: {end:?}, refusals {refusals:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_static_turn_pair_is_handed_out_as_configured_in_welcome_and_after_a_resume() {
    let s = TestServer::with(|c| {
        c.room.waiting_room = false;
        c.room.resume_grace_ms = 5_000;
        c.turn = Some(TurnConfig {
            urls: vec!["turn:relay.example.org:3478?transport=udp".into()],
            credentials: TurnCredentials::Static {
                username: "clinic-relay".into(),
                credential: "relay-password".into(),
            },
        });
    })
    .await;
    let expected = json!({
        "urls": ["turn:relay.example.org:3478?transport=udp"],
        "username": "clinic-relay",
        "credential": "relay-password",
    });
    let mut a = s.join("r", "a", Role::Member).await;
    let servers = a.log[0]["ice_servers"].as_array().unwrap().clone();
    assert!(servers.contains(&expected), "{servers:?}");
    a.drain().await;
    let (token, seq) = (a.log[0]["resume_token"].clone(), a.last_seq());
    a.vanish();
    let mut back = s.resume(token, seq).await;
    let resumed = back.recv_type("resumed").await;
    assert!(
        resumed["ice_servers"]
            .as_array()
            .unwrap()
            .contains(&expected),
        "{resumed}"
    );
    s.stop().await;
}
