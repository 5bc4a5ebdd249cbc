//! The admin API on any node sees and acts on every room of the cluster: the node asked
//! forwards a request about a room another node hosts, and gathers the list of live rooms from
//! every node.

use std::time::Duration;

use circle_tests::ops::API_KEY;
use circle_tests::redis::Redis;
use circle_tests::{End, Role, TestServer};
use serde_json::json;

async fn node(redis: &Redis, id: &str) -> TestServer {
    super::node(redis, id, |s| {
        s.operations.api_keys = vec![API_KEY.to_owned()]
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_lists_shows_ends_and_removes_in_rooms_another_node_hosts() {
    let redis = Redis::start();
    let nodes = [node(&redis, "a").await, node(&redis, "b").await];
    let mut f = nodes[0].join("group", "f", Role::Facilitator).await;
    let mut m = nodes[0].join("group", "m", Role::Member).await;
    let h = super::rooms_per_node(&nodes)
        .await
        .iter()
        .position(|r| *r == 1)
        .unwrap();
    // A second room, started through the other node: one lands on each node, or both on one.
    let _g = nodes[1].join("other", "g", Role::Facilitator).await;
    let away = &nodes[1 - h];

    // The list on either node has both rooms, once each.
    for n in &nodes {
        let list = n.api().get("/api/v1/rooms").await;
        assert_eq!(list.status, 200, "{}", list.text);
        let ids: Vec<&str> = list.body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["group", "other"], "{}", list.text);
    }
    // Either node's metrics see the whole cluster, from the directory.
    for n in &nodes {
        let sample = |text: &str, name: &str| -> Option<u64> {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        };
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let text = n.api().get("/metrics").await.text;
                if sample(&text, "circle_cluster_nodes ") == Some(2)
                    && sample(&text, "circle_cluster_rooms ") == Some(2)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("each node's metrics count both nodes and both rooms");
    }
    // Asked of the node that does not host it, the room answers as from its host.
    let shown = away.api().get("/api/v1/rooms/group").await;
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.body["participants"].as_array().unwrap().len(), 2);
    // Settings put through that node apply live on the host: the turn limit reaches the room.
    let put = away
        .api()
        .call(
            "PUT",
            "/api/v1/rooms/group",
            Some(json!({"turn_limit_seconds": 90})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(f.recv_type("room_updated").await["turn_limit"], 90);
    // Removing and ending through it too.
    let removed = away
        .api()
        .call("DELETE", "/api/v1/rooms/group/participants/m", None)
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(m.end().await, End::Closed(4001));
    let ended = away
        .api()
        .call("POST", "/api/v1/rooms/group/end", None)
        .await;
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(
        f.recv_type("session_ended").await["reason"],
        "ended_by_admin"
    );
    // A room nobody hosts is 404 on every node.
    let missing = away.api().get("/api/v1/rooms/nowhere").await;
    assert_eq!(missing.status, 404);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_key_from_another_cluster_opens_no_admin_api() {
    let redis = Redis::start();
    let a = node(&redis, "a").await;
    let forged = circle_server::cluster::member::relay_key(b"another-clusters-secret-of-32-bytes!");
    let answer = reqwest::Client::new()
        .get(format!("http://{}/api/v1/rooms", a.server.addr))
        .header("circle-relay", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    a.stop().await;
}
