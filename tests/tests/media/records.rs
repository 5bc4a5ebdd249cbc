//! Attendance records see media as it really flowed: a member who only ever sent audio is
//! recorded as audio-only (which matters for billing), one who sent nothing as neither.

use std::time::Duration;

use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::ops::{database, StoreKind, API_KEY};
use circle_tests::{Role, TestServer};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audio_only_member_is_recorded_as_audio_without_video() {
    let db = database(&StoreKind::Sqlite);
    let s = TestServer::with(move |c| {
        c.room.waiting_room = false;
        c.operations.database = Some(db);
        c.operations.api_keys = vec![API_KEY.to_owned()];
    })
    .await;
    let room = ServerRoom::over_server(
        &s,
        "r",
        &[
            ("fac", Role::Facilitator),
            ("voice", Role::Member),
            ("quiet", Role::Member),
        ],
    );
    let fac = Browser::join(&room, "fac", true).await;
    let voice = Browser::join_audio_only(&room, "voice").await;
    let quiet = Browser::join(&room, "quiet", false).await;
    let session = s.api().get("/api/v1/rooms/r").await.body["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let media = |record: &Value, who: &str| {
        let row = record["attendance"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["participant"] == who)
            .cloned()
            .unwrap_or_default();
        (row["audio"].as_bool(), row["video"].as_bool())
    };
    s.api()
        .session_when(&session, |r| {
            media(r, "fac") == (Some(true), Some(true))
                && media(r, "voice") == (Some(true), Some(false))
        })
        .await;
    // Give a stray video track every chance to show up before saying there was none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = s
        .api()
        .get(&format!("/api/v1/sessions/{session}"))
        .await
        .body;
    assert_eq!(
        media(&record, "voice"),
        (Some(true), Some(false)),
        "{record}"
    );
    assert_eq!(
        media(&record, "quiet"),
        (Some(false), Some(false)),
        "{record}"
    );
    drop((fac, voice, quiet));
    s.stop().await;
}
