//! The admin API does what its OpenAPI document says: schemathesis (a property-based API tester
//! from PyPI) generates valid and invalid requests for every operation from the document the
//! server serves, and checks every answer's status, content type, headers and body against it.

use circle_tests::ops::{StoreKind, API_KEY};
use circle_tests::postgres::schemathesis_bin;
use circle_tests::Role;
use serde_json::json;

use super::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_document_says() {
    let (s, _db) = server(&StoreKind::Sqlite, |_| {}).await;
    // Something to find: a finished session and a live room.
    let mut done = s.join("finished", "f", Role::Facilitator).await;
    done.request(json!({"type":"end_session"})).await.ok();
    let (_f, _members) = s.group("live", &["a", "b"]).await;

    // A fixed seed keeps CI repeatable; set CIRCLE_SCHEMATHESIS_SEED to explore others.
    let seed = std::env::var("CIRCLE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let out = tokio::process::Command::new(schemathesis_bin())
        .arg("run")
        .arg(format!("http://{}/api/v1/openapi.json", s.server.addr))
        .args(["--header", &format!("Authorization: Bearer {API_KEY}")])
        .args(["--checks", "all", "--max-examples", "40", "--seed", &seed])
        .args([
            "--no-color",
            "--generation-database",
            "none",
            "--workers",
            "1",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .await
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found the API and its document disagreeing:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        report.contains("Tested: 10"),
        "not every operation was tested:\n{report}"
    );
    s.stop().await;
}
