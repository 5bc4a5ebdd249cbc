//! Three `circle` processes on loopback sharing one Redis, started as an operator would start
//! them (`--redis-url`, `--node-id`, one token secret), and the settings a cluster refuses.

use std::process::Command;

use circle_tests::process::{circle_bin, ServerProcess};
use circle_tests::redis::Redis;
use circle_tests::token::Minter;
use circle_tests::{Client, Role, SECRET};
use serde_json::json;

/// Nodes a, b and c, keeping no records.
fn nodes(redis: &Redis) -> Vec<ServerProcess> {
    ["a", "b", "c"]
        .iter()
        .map(|id| super::process_node(redis, id, &[("CIRCLE_RECORDS", "off")]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_circle_processes_host_one_room_for_clients_on_each() {
    let redis = Redis::start();
    let nodes = nodes(&redis);
    let tokens = Minter::new(SECRET);
    let mut clients = Vec::new();
    for (i, (sub, role)) in [
        ("f", Role::Facilitator),
        ("m1", Role::Member),
        ("m2", Role::Member),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = Client::connect(&nodes[i].url()).await;
        c.send(json!({"type":"hello","protocol":1,"token": tokens.token("group", sub, role)}))
            .await;
        let welcome = c.recv().await;
        assert_eq!(welcome["type"], "welcome", "{sub}: {welcome}");
        assert_eq!(
            welcome["room"]["participants"].as_array().unwrap().len(),
            i + 1,
            "{sub} joined a room of its own: {welcome}"
        );
        c.id = sub.to_owned();
        clients.push(c);
    }
    clients[0]
        .request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    clients[0]
        .request(json!({"type":"grant_floor","participant":"m2"}))
        .await
        .ok();
    assert_eq!(clients[1].latest_floor().await["holder"], "m2");
}

#[test]
fn a_node_without_a_shared_token_secret_a_usable_address_or_with_tls_does_not_start() {
    let redis = Redis::start();
    for (args, env, says) in [
        (
            vec!["--redis-url".to_owned(), redis.url()],
            vec![],
            "share one --token-secret",
        ),
        (
            vec!["--redis-url".to_owned(), "http://127.0.0.1:1".to_owned()],
            vec![("CIRCLE_TOKEN_SECRET", SECRET)],
            "redis:// or rediss://",
        ),
        (
            vec![
                "--redis-url".to_owned(),
                redis.url(),
                "--node-id".to_owned(),
                "no spaces".to_owned(),
            ],
            vec![("CIRCLE_TOKEN_SECRET", SECRET)],
            "--node-id",
        ),
        (
            vec![
                "--redis-url".to_owned(),
                redis.url(),
                "--listen".to_owned(),
                "0.0.0.0:0".to_owned(),
            ],
            vec![("CIRCLE_TOKEN_SECRET", SECRET)],
            "--node-url",
        ),
        (
            vec![
                "--redis-url".to_owned(),
                redis.url(),
                "--tls-self-signed".to_owned(),
            ],
            vec![("CIRCLE_TOKEN_SECRET", SECRET)],
            "terminate TLS at the load balancer",
        ),
    ] {
        let out = Command::new(circle_bin())
            .arg("serve")
            .args(&args)
            .env_remove("CIRCLE_TOKEN_SECRET")
            .envs(env)
            .env("CIRCLE_RECORDS", "off")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
