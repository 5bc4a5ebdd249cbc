//! `/metrics` over HTTP: behind the API key on the main port, without one on
//! `--metrics-listen`, in the Prometheus exposition a real parser reads, naming nobody; webhook
//! deliveries are counted.

use circle_tests::metrics::samples;
use circle_tests::ops::{Api, Receiver, StoreKind, API_KEY, WEBHOOK_SECRET};
use circle_tests::Role;

use super::server;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_need_the_key_on_the_main_port_and_none_on_the_metrics_listener() {
    let receiver = Receiver::start().await;
    let port = free_port();
    let url = receiver.url();
    let (s, _db) = server(&StoreKind::Sqlite, move |c| {
        c.room.waiting_room = false;
        c.operations.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        c.operations.webhook_urls = vec![url];
        c.operations.webhook_secret = WEBHOOK_SECRET.as_bytes().to_vec();
    })
    .await;
    let _a = s.join("counted", "a", Role::Member).await;
    receiver
        .wait_for(|e| e["event"] == "participant_joined")
        .await;

    let refused = s.api().with_key(None).get("/metrics").await;
    assert_eq!(refused.status, 401);
    let main = s.api().get("/metrics").await;
    assert_eq!(main.status, 200);
    assert!(
        main.content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        main.content_type
    );
    let internal = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [&main.text, &internal] {
        let values = samples(text);
        assert_eq!(values.get("circle_rooms"), Some(&1.0), "{text}");
        assert_eq!(values.get("circle_sessions_open"), Some(&1.0), "{text}");
        assert_eq!(
            values.get("circle_participants{role=\"member\"}"),
            Some(&1.0),
            "{text}"
        );
        assert!(
            values["circle_webhook_deliveries_total{result=\"delivered\"}"] >= 1.0,
            "{text}"
        );
        assert!(
            !text.contains("counted") && !text.contains("Name a"),
            "{text}"
        );
    }
    // Without a key configured there is no /metrics on the main port.
    let plain = circle_tests::TestServer::start().await;
    assert_eq!(
        Api::new(plain.server.addr, Some(API_KEY))
            .get("/metrics")
            .await
            .status,
        404
    );
    plain.stop().await;
    s.stop().await;
}
