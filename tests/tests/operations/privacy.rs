//! Privacy by construction: over a whole session with names, reactions, a check-in, help
//! notes, hand notes and the stick going round, none of that content reaches the database, the
//! webhooks or the server's log.

use std::time::Duration;

use circle_server::token::Claims;
use circle_tests::ops::{database, dump, Receiver, StoreKind, API_KEY, WEBHOOK_SECRET};
use circle_tests::process::{circle_bin, ServerProcess};
use circle_tests::token::Minter;
use circle_tests::{Client, Role, SECRET};
use serde_json::json;

const SECRETS: [&str; 9] = [
    "Zelda Quinn",
    "Marguerite Okafor",
    "Bartholomew",
    "my sponsor relapsed",
    "I feel unsafe at home",
    "How heavy is today",
    "Like stone",
    "Like feathers",
    "about my son",
];

async fn join(server: &ServerProcess, sub: &str, name: &str, role: Role) -> Client {
    let minter = Minter::new(SECRET);
    let claims = Claims {
        name: name.into(),
        ..minter.claims("privacy", sub, role)
    };
    let mut c = Client::connect(&server.url()).await;
    c.send(json!({"type":"hello","protocol":1,"token": minter.mint(&claims)}))
        .await;
    c
}

#[tokio::test]
async fn nothing_said_or_shown_in_a_session_is_stored_sent_or_logged() {
    let receiver = Receiver::start().await;
    let db = database(&StoreKind::Postgres);
    let log = std::env::temp_dir().join(format!("circle-privacy-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let url = receiver.url();
    let mut server = ServerProcess::start(
        &circle_bin(),
        "127.0.0.1:0",
        SECRET,
        &[
            "--api-key",
            API_KEY,
            "--database",
            &db,
            "--webhook-url",
            &url,
            "--webhook-secret",
            WEBHOOK_SECRET,
        ],
        &[("RUST_LOG", "info")],
        &log,
    )
    .expect("circle starts");

    let mut f = join(&server, "staff-1", SECRETS[0], Role::Facilitator).await;
    f.recv_type("welcome").await;
    let mut members = Vec::new();
    for (sub, name) in [("m-1", SECRETS[1]), ("m-2", SECRETS[2]), ("m-3", "Kim")] {
        let mut m = join(&server, sub, name, Role::Member).await;
        m.recv_type("waiting").await;
        f.request(json!({"type":"admit","participant": sub}))
            .await
            .ok();
        m.recv_type("welcome").await;
        members.push(m);
    }
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    members[0]
        .request(json!({"type":"raise_hand","note": SECRETS[8]}))
        .await
        .ok();
    f.request(json!({"type":"grant_next"})).await.ok();
    members[0].request(json!({"type":"pass_floor"})).await;
    members[1]
        .request(json!({"type":"need_help","note": SECRETS[4]}))
        .await
        .ok();
    members[2]
        .request(json!({"type":"need_help","note": SECRETS[3]}))
        .await
        .ok();
    let check_in = f
        .request(json!({"type":"start_check_in","question": SECRETS[5],"options":[SECRETS[6], SECRETS[7]]}))
        .await;
    let _ = check_in;
    let opened = members[0].recv_type("check_in").await;
    let id = opened["check_in"].clone();
    for (i, m) in members.iter_mut().enumerate() {
        m.request(json!({"type":"answer_check_in","check_in": id,"option": i % 2}))
            .await
            .ok();
        m.request(json!({"type":"react","kind":"support"})).await;
    }
    f.request(json!({"type":"close_check_in","check_in": id}))
        .await
        .ok();
    f.request(json!({"type":"mute","participant":"m-2"}))
        .await
        .ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    f.request(json!({"type":"end_session"})).await.ok();
    receiver
        .wait_for(|e| e["event"] == "attendance_ready")
        .await;
    assert!(
        server.terminate(Duration::from_secs(10)),
        "circle stopped cleanly"
    );

    let stored = dump(&db).await;
    assert!(
        stored.contains("m-1") && stored.contains("staff-1"),
        "nothing was stored:\n{stored}"
    );
    assert!(
        stored.contains("muted"),
        "the mute was not audited:\n{stored}"
    );
    let sent: String = receiver
        .deliveries()
        .iter()
        .map(|d| d.body.clone() + "\n")
        .collect();
    assert!(sent.contains("participant_joined"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("connection joined"),
        "the log was not captured"
    );
    for (place, text) in [
        ("the database", &stored),
        ("the webhooks", &sent),
        ("the log", &logged),
    ] {
        for secret in SECRETS {
            assert!(
                !text.contains(secret),
                "{secret:?} reached {place}:\n{text}"
            );
        }
        for never in ["need_help", "check_in", "raise_hand", "react", "floor"] {
            assert!(!text.contains(never), "{never:?} reached {place}:\n{text}");
        }
    }
    let _ = std::fs::remove_file(&log);
}
