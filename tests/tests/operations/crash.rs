//! A server killed mid-session (SIGKILL: no drain, no last writes): the next start closes the
//! open intervals where the server was last known to be up and ends the session
//! `server_shutdown`. And `--records off` writes no file at all.

use std::path::{Path, PathBuf};
use std::time::Duration;

use circle_tests::ops::{database, Api, StoreKind, API_KEY};
use circle_tests::process::{circle_bin, ServerProcess};
use circle_tests::token::Minter;
use circle_tests::{Client, Role, SECRET};
use serde_json::json;

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("circle-{name}-{}.log", std::process::id()))
}

fn start(db: &str, log: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec![
        "--api-key",
        API_KEY,
        "--database",
        db,
        "--waiting-room",
        "off",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&circle_bin(), "127.0.0.1:0", SECRET, &args, &[], log)
        .expect("circle starts")
}

async fn join(server: &ServerProcess, room: &str, sub: &str) -> Client {
    let mut c = Client::connect(&server.url()).await;
    let token = Minter::new(SECRET).token(room, sub, Role::Member);
    c.send(json!({"type":"hello","protocol":1,"token": token}))
        .await;
    c.recv_type("welcome").await;
    c
}

#[tokio::test]
async fn after_a_sigkill_the_next_start_closes_the_session_as_server_shutdown() {
    let db = database(&StoreKind::Sqlite);
    let log = log_path("crash");
    let mut first = start(&db, &log, &[]);
    let _a = join(&first, "crashed", "a").await;
    let mut b = join(&first, "crashed", "b").await;
    let api = Api::new(first.addr, Some(API_KEY));
    let session = api.get("/api/v1/rooms/crashed").await.body["session"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    b.request(json!({"type":"leave"})).await.ok();
    // The leave is written before the kill.
    api.session_when(&session, |r| {
        r["attendance"].as_array().is_some_and(|a| {
            a.iter()
                .any(|p| p["participant"] == "b" && p["last_left_at"].is_string())
        })
    })
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status();
    assert!(
        !first.terminate(Duration::from_secs(5)),
        "it was killed, not stopped"
    );

    let second = start(&db, &log, &[]);
    let api = Api::new(second.addr, Some(API_KEY));
    let record = api
        .session_when(&session, |r| r["end_reason"] == "server_shutdown")
        .await;
    let a = record["attendance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["participant"] == "a")
        .unwrap();
    assert_eq!(a["intervals"][0]["left_reason"], "ended");
    assert!(a["last_left_at"].is_string());
    // a was present at least until b's leave, 1.2 s in.
    assert!(a["minutes_present"].as_f64().unwrap() >= 0.0);
    let left_at = a["last_left_at"].as_str().unwrap();
    let b_left = record["attendance"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["participant"] == "b")
        .unwrap()["last_left_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(left_at >= b_left.as_str(), "{left_at} < {b_left}");
    assert_eq!(record["ended_at"].as_str().unwrap(), left_at);
    let warned = std::fs::read_to_string(&log).unwrap();
    assert!(warned.contains("did not stop cleanly"), "{warned}");
    drop(second);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn with_records_off_no_database_file_is_created() {
    let db = database(&StoreKind::Sqlite);
    let file = db.trim_start_matches("sqlite://").to_owned();
    let log = log_path("records-off");
    let server = start(&db, &log, &["--records", "off"]);
    let mut a = join(&server, "r", "a").await;
    a.request(json!({"type":"leave"})).await.ok();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(server);
    assert!(!std::path::Path::new(&file).exists(), "{file} was created");
    let _ = std::fs::remove_file(&log);
}
