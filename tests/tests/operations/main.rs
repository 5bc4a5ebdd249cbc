//! The clinic's side of Circle against the real server: attendance records in SQLite and in a
//! real PostgreSQL, the admin API, webhooks to real receivers, privacy of everything stored or
//! sent, recovery after a crash, and the API checked against its own OpenAPI document.

mod api;
mod attendance;
mod crash;
mod metrics;
mod privacy;
mod schema;
mod webhooks;

use circle_tests::ops::{database, StoreKind, API_KEY};
use circle_tests::TestServer;

/// A server with records in `kind`, the API on, and `more` settings on top.
async fn server(
    kind: &StoreKind,
    more: impl FnOnce(&mut circle_server::Settings),
) -> (TestServer, String) {
    let url = database(kind);
    let db = url.clone();
    let s = TestServer::with(move |c| {
        c.operations.database = Some(db);
        c.operations.api_keys = vec![API_KEY.to_owned()];
        more(c);
    })
    .await;
    (s, url)
}

/// The current session id of a live room.
async fn session_of(s: &TestServer, room: &str) -> String {
    let answer = s.api().get(&format!("/api/v1/rooms/{room}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.body["session"].as_str().unwrap().to_owned()
}
