//! The records of a cluster whose nodes share one PostgreSQL: a node that starts (or restarts)
//! closes only the sessions a crash left open, never the ones other nodes are running.

use std::time::Duration;

use circle_tests::ops::API_KEY;
use circle_tests::postgres::Postgres;
use circle_tests::redis::Redis;
use circle_tests::{Role, TestServer};
use serde_json::Value;

async fn node(redis: &Redis, id: &str, database: &str) -> TestServer {
    let database = database.to_owned();
    super::node(redis, id, move |s| {
        s.operations.database = Some(database);
        s.operations.api_keys = vec![API_KEY.to_owned()];
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_starts_leaves_the_sessions_other_nodes_run_open() {
    let redis = Redis::start();
    let database = Postgres::shared().fresh_database();
    let a = node(&redis, "a", &database).await;
    let _f = a.join("group", "f", Role::Facilitator).await;
    let open = |body: Value| {
        body["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["ended_at"].is_null())
            .count()
    };
    // Written by the recorder a moment after the admission.
    tokio::time::timeout(Duration::from_secs(10), async {
        while open(a.api().get("/api/v1/sessions").await.body) != 1 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the session is recorded");
    // A second node starts on the same database, as a crashed node's restart would.
    let b = node(&redis, "b", &database).await;
    let sessions = b.api().get("/api/v1/sessions").await.body;
    assert_eq!(open(sessions.clone()), 1, "{sessions}");
    b.stop().await;
    a.stop().await;
}
