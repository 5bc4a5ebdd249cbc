//! The rules hold at the server against a client that breaks them: facilitator-only actions,
//! bad input of every kind, and the anonymity of reactions and check-in answers.

use std::time::Duration;

use circle_tests::{End, Role, TestServer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn facilitator_actions() -> Vec<Value> {
    vec![
        json!({"type":"admit","participant":"w"}),
        json!({"type":"deny","participant":"w"}),
        json!({"type":"admit_all"}),
        json!({"type":"set_floor_mode","mode":"stick"}),
        json!({"type":"grant_floor","participant":"a"}),
        json!({"type":"grant_next"}),
        json!({"type":"revoke_floor"}),
        json!({"type":"set_turn_limit","seconds":60}),
        json!({"type":"invite_to_speak","participant":"a"}),
        json!({"type":"lower_hand","participant":"b"}),
        json!({"type":"mute","participant":"b"}),
        json!({"type":"unmute","participant":"b"}),
        json!({"type":"remove","participant":"b"}),
        json!({"type":"lock_room","locked":true}),
        json!({"type":"end_session"}),
        json!({"type":"start_check_in","question":"q","options":["x","y"]}),
        json!({"type":"close_check_in","check_in":"c1"}),
    ]
}

#[tokio::test]
async fn a_member_gets_forbidden_for_every_facilitator_action_and_nothing_changes() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    let _w = s.join("r", "w", Role::Member).await;
    f.recv_type("waiting_room").await;
    ms[1].request(json!({"type":"raise_hand"})).await.ok();
    f.drain().await;
    ms[1].drain().await;
    for action in facilitator_actions() {
        let reply = ms[0].request(action.clone()).await;
        assert_eq!(reply.code(), "forbidden", "{action}");
    }
    // Nobody else heard of any of it, and the room is as it was.
    assert_eq!(f.drain().await, Vec::<Value>::new());
    assert_eq!(ms[1].drain().await, Vec::<Value>::new());
    ms[1].request(json!({"type":"lower_hand"})).await.ok();
    s.stop().await;
}

#[tokio::test]
async fn an_observer_gets_forbidden_for_facilitator_actions_too() {
    let s = TestServer::with(|c| c.room.waiting_room = false).await;
    let mut o = s.join("r", "o", Role::Observer).await;
    for action in facilitator_actions() {
        assert_eq!(
            o.request(action.clone()).await.code(),
            "forbidden",
            "{action}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn malformed_json_unknown_types_missing_fields_and_binary_frames_are_bad_requests() {
    let s = TestServer::start().await;
    let (_f, mut ms) = s.group("r", &["a"]).await;
    let a = &mut ms[0];
    a.send_text("{\"type\": \"ping\"").await;
    let e = a.recv_type("error").await;
    assert_eq!(e["code"], "bad_request");
    assert!(e.get("id").is_none());
    a.send_text("[1,2,3]").await;
    assert_eq!(a.recv_type("error").await["code"], "bad_request");
    let e = a.request(json!({"type":"fly_away"})).await;
    assert_eq!(e.code(), "bad_request");
    assert!(e.0["message"].as_str().unwrap().contains("unknown type"));
    assert_eq!(
        a.request(json!({"type":"raise_hand","note": 5}))
            .await
            .code(),
        "bad_request"
    );
    assert_eq!(
        a.request(json!({"type":"pass_floor"})).await.code(),
        "bad_request"
    );
    assert_eq!(
        a.request(json!({"type":"react"})).await.code(),
        "bad_request"
    );
    let long_note = "x".repeat(141);
    assert_eq!(
        a.request(json!({"type":"raise_hand","note": long_note}))
            .await
            .code(),
        "bad_request"
    );
    a.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(a.recv_type("error").await["code"], "bad_request");
    // The session goes on.
    a.request(json!({"type":"raise_hand"})).await.ok();
    s.stop().await;
}

#[tokio::test]
async fn a_message_over_256_kib_closes_with_1009_and_the_room_carries_on() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a", "b"]).await;
    let huge = json!({"type":"raise_hand","note": "x".repeat(300 * 1024)}).to_string();
    ms[0].send_text(&huge).await;
    assert_eq!(ms[0].end().await, End::Closed(1009));
    let u = f.recv_type("participant_updated").await;
    assert_eq!(u["participant"]["connection"], "reconnecting");
    ms[1].request(json!({"type":"raise_hand"})).await.ok();
    f.request(json!({"type":"grant_next"})).await.ok();
    s.stop().await;
}

#[tokio::test]
async fn no_first_message_in_time_closes_with_1008() {
    let s = TestServer::with(|c| c.hello_timeout = Duration::from_millis(300)).await;
    let mut c = s.connect().await;
    assert_eq!(c.end().await, End::Closed(1008));
    s.stop().await;
}

#[tokio::test]
async fn a_first_message_other_than_hello_or_resume_is_refused() {
    let s = TestServer::start().await;
    let mut c = s.connect().await;
    c.send(json!({"type":"raise_hand","id":4})).await;
    let e = c.recv().await;
    assert_eq!(
        (e["code"].clone(), e["id"].clone(), e["seq"].clone()),
        (json!("bad_request"), json!(4), json!(1))
    );
    assert_eq!(c.end().await, End::Closed(1008));
    let mut c = s.connect().await;
    c.send_text("not json").await;
    assert_eq!(c.recv().await["code"], "bad_request");
    assert_eq!(c.end().await, End::Closed(1008));
    s.stop().await;
}

#[tokio::test]
async fn bad_expired_and_wrongly_signed_tokens_are_unauthorized_and_closed_with_1008() {
    let s = TestServer::start().await;
    let now = circle_server::token::unix_now();
    let claims = |exp: u64| json!({"sub":"a","room":"r","role":"member","name":"A","exp": exp});
    let sign = |claims: &Value, secret: &str| jsonwebtoken_free_sign(claims, secret);
    let tokens = [
        "not-a-token".to_owned(),
        sign(&claims(now - 10), circle_tests::SECRET),
        sign(&claims(now + 600), "another-secret"),
        sign(
            &json!({"sub":"a","room":"r","role":"member","name":"A"}),
            circle_tests::SECRET,
        ),
        sign(
            &json!({"sub":"a","room":"r","role":"boss","name":"A","exp": now + 600}),
            circle_tests::SECRET,
        ),
    ];
    for token in tokens {
        let mut c = s.connect().await;
        c.send(json!({"type":"hello","protocol":1,"token": token}))
            .await;
        let e = c.recv().await;
        assert_eq!(e["code"], "unauthorized", "{token}");
        assert_eq!(c.end().await, End::Closed(1008));
    }
    let mut c = s.connect().await;
    c.send(json!({"type":"hello","protocol":2,"token": s.token("r", "a", Role::Member)}))
        .await;
    assert_eq!(c.recv().await["code"], "unsupported_protocol");
    assert_eq!(c.end().await, End::Closed(1008));
    let mut c = s.connect().await;
    c.send(json!({"type":"resume","protocol":1,"resume_token":"nope","last_seq":0}))
        .await;
    assert_eq!(c.recv().await["code"], "unauthorized");
    assert_eq!(c.end().await, End::Closed(1008));
    s.stop().await;
}

/// Signs claims as HS256 by hand, so the test does not trust the server's own minting.
fn jsonwebtoken_free_sign(claims: &Value, secret: &str) -> String {
    use base64_url as b64;
    let header = b64::encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = b64::encode(claims.to_string().as_bytes());
    let input = format!("{header}.{body}");
    let sig = b64::encode(&hmac_sha256(secret.as_bytes(), input.as_bytes()));
    format!("{input}.{sig}")
}

mod base64_url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    pub fn encode(data: &[u8]) -> String {
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(message.iter().copied())
        .collect();
    let inner_hash = sha256(&inner);
    let outer: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner_hash.iter().copied())
        .collect();
    sha256(&outer)
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64) * 8;
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for i in 0..64 {
            let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
            let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
            let t1 = v[7]
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
            let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            let t2 = s0.wrapping_add(maj);
            v = [
                t1.wrapping_add(t2),
                v[0],
                v[1],
                v[2],
                v[3].wrapping_add(t1),
                v[4],
                v[5],
                v[6],
            ];
        }
        for i in 0..8 {
            h[i] = h[i].wrapping_add(v[i]);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

#[tokio::test]
async fn a_second_hello_with_the_same_sub_replaces_the_first_session_with_4002() {
    let s = TestServer::start().await;
    let (mut f, mut ms) = s.group("r", &["a"]).await;
    let mut again = s.connect().await;
    again
        .send(json!({"type":"hello","protocol":1,"token": s.token("r", "a", Role::Member)}))
        .await;
    assert_eq!(again.recv().await["type"], "welcome");
    assert_eq!(ms[0].end().await, End::Closed(4002));
    again.request(json!({"type":"raise_hand"})).await.ok();
    let fl = f.recv_type("floor").await;
    assert_eq!(fl["queue"][0]["participant"], "a");
    s.stop().await;
}

#[tokio::test]
async fn no_frame_names_who_reacted_or_answered_a_check_in() {
    let s = TestServer::start().await;
    let members = ["a", "b", "c", "d"];
    let (mut f, mut ms) = s.group("r", &members).await;
    f.request(json!({"type":"start_check_in","question":"q","options":["x","y"]}))
        .await
        .ok();
    let id = ms[0].recv_type("check_in").await["check_in"].clone();
    let start: Vec<usize> = std::iter::once(f.log.len())
        .chain(ms.iter().map(|c| c.log.len()))
        .collect();
    let kinds = ["heart", "applause", "support", "thanks", "me_too", "laugh"];
    for round in 0..3 {
        for (i, m) in ms.iter_mut().enumerate() {
            m.request(json!({"type":"react","kind": kinds[(i + round) % 6]}))
                .await
                .ok();
            m.request(json!({"type":"answer_check_in","check_in": id,"option": (i + round) % 2}))
                .await
                .ok();
        }
        f.request(json!({"type":"react","kind":"heart"})).await.ok();
    }
    f.request(json!({"type":"close_check_in","check_in": id}))
        .await
        .ok();
    let mut everyone: Vec<&mut circle_tests::Client> =
        std::iter::once(&mut f).chain(ms.iter_mut()).collect();
    for c in everyone.iter_mut() {
        c.recv_type("check_in_result").await;
        c.recv_type("reactions").await;
        c.drain().await;
    }
    let mut saw_counts = 0;
    for (c, from) in everyone.iter().zip(start) {
        for frame in &c.log[from..] {
            let text = frame.to_string();
            for who in members.iter().chain(std::iter::once(&"f")) {
                if *who == c.id.as_str() {
                    continue;
                }
                assert!(
                    !text.contains(&format!("\"{who}\"")),
                    "{} saw {who} named in {text}",
                    c.id
                );
                assert!(
                    !text.contains(&format!("Name {who}")),
                    "{} saw {who}'s name in {text}",
                    c.id
                );
            }
            if frame["type"] == "reactions" {
                saw_counts += 1;
                assert_eq!(
                    frame.as_object().unwrap().keys().collect::<Vec<_>>(),
                    vec!["counts", "seq", "type"]
                );
            }
        }
    }
    assert!(saw_counts >= everyone.len());
    s.stop().await;
}
