//! The cluster's shared state against a real Redis (Debian's redis-server, one per test on a
//! free loopback port): the directory of live nodes and the one-host-per-room claims, and
//! nodes serving one room together, in process (`relay`) and as `circle` processes
//! (`processes`).

mod api;
mod failover;
mod processes;
mod records;
mod relay;

use std::collections::BTreeSet;
use std::time::Duration;

use circle_server::cluster::claims::RoomClaims;
use circle_server::cluster::nodes::{NodeDirectory, NodeInfo};
use circle_server::cluster::placement::least_loaded;
use circle_server::config::ClusterSettings;
use circle_server::Settings;
use circle_tests::process::{circle_bin, ServerProcess};
use circle_tests::redis::Redis;
use circle_tests::{TestServer, SECRET};

/// A node of the cluster at `redis`, named `id`, in this process, whose rooms admit everyone at
/// once, with a 2 s node time to live and room lease (so that failures show quickly);
/// `configure` adds the test's own settings.
pub async fn node(redis: &Redis, id: &str, configure: impl FnOnce(&mut Settings)) -> TestServer {
    let url = redis.url();
    TestServer::with(move |s| {
        let mut cluster = ClusterSettings::new(url, id);
        cluster.node_ttl = Duration::from_secs(2);
        cluster.room_lease = Duration::from_secs(2);
        s.cluster = Some(cluster);
        s.room.waiting_room = false;
        configure(s);
    })
    .await
}

/// How many rooms each node runs.
pub async fn rooms_per_node(nodes: &[TestServer]) -> Vec<u64> {
    let mut rooms = Vec::new();
    for n in nodes {
        rooms.push(n.stats().await["rooms"].as_u64().unwrap());
    }
    rooms
}

/// Node `id` of the cluster at `redis` as a `circle` process of its own, as an operator starts
/// one (the defaults, rooms admitting everyone at once), with `env` added; its log goes to the
/// temporary directory.
pub fn process_node(redis: &Redis, id: &str, env: &[(&str, &str)]) -> ServerProcess {
    let log = std::env::temp_dir().join(format!("circle-cluster-{id}-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let url = redis.url();
    let args = [
        "--redis-url",
        &url,
        "--node-id",
        id,
        "--waiting-room",
        "off",
    ];
    ServerProcess::start(&circle_bin(), "127.0.0.1:0", SECRET, &args, env, &log)
        .expect("a node starts")
}

fn entry(id: &str, participants: u32) -> NodeInfo {
    NodeInfo {
        id: id.to_owned(),
        http: format!("http://{id}.test:8080"),
        media: "127.0.0.1:40000".parse().unwrap(),
        rooms: participants / 8,
        participants,
        cpu: 0.1,
        draining: false,
        placed: 0,
    }
}

#[tokio::test]
async fn two_nodes_racing_to_start_the_same_room_both_find_one_host() {
    let redis = Redis::start();
    let a = RoomClaims::connect(&redis.url(), Duration::from_secs(10))
        .await
        .unwrap();
    let b = RoomClaims::connect(&redis.url(), Duration::from_secs(10))
        .await
        .unwrap();
    // Fifty joins on each node for each of twenty new rooms, all at once.
    let mut tasks = Vec::new();
    for room in 0..20 {
        for n in 0..100 {
            let (claims, node) = if n % 2 == 0 {
                (a.clone(), "a")
            } else {
                (b.clone(), "b")
            };
            let room = format!("group-{room}");
            tasks.push(tokio::spawn(async move {
                let host = claims.claim(&room, node).await.unwrap();
                (room, host)
            }));
        }
    }
    let mut hosts = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    for t in tasks {
        let (room, host) = t.await.unwrap();
        hosts.entry(room).or_default().insert(host);
    }
    assert_eq!(hosts.len(), 20);
    for (room, seen) in &hosts {
        assert_eq!(seen.len(), 1, "{room} had two hosts: {seen:?}");
        let host = seen.iter().next().unwrap();
        assert_eq!(a.host(room).await.unwrap().as_ref(), Some(host));
    }
}

#[tokio::test]
async fn a_hosts_claim_lasts_while_renewed_and_lapses_when_it_stops() {
    let redis = Redis::start();
    let lease = Duration::from_millis(400);
    let a = RoomClaims::connect(&redis.url(), lease).await.unwrap();
    let b = RoomClaims::connect(&redis.url(), lease).await.unwrap();
    assert_eq!(a.claim("group-1", "a").await.unwrap(), "a");
    // Renewed every 150 ms for a second, more than twice the lease: still a's.
    for _ in 0..7 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(a.claim("group-1", "a").await.unwrap(), "a");
        assert_eq!(b.claim("group-1", "b").await.unwrap(), "a");
    }
    // a dies: once the lease has run out, b's claim takes the room.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.claim("group-1", "b").await.unwrap(), "b");
    assert_eq!(a.host("group-1").await.unwrap().as_deref(), Some("b"));
}

#[tokio::test]
async fn only_the_host_can_give_a_room_up() {
    let redis = Redis::start();
    let a = RoomClaims::connect(&redis.url(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(a.claim("group-1", "a").await.unwrap(), "a");
    // A node that lost the room (its lease ran out and it was claimed again) must not free it.
    assert!(!a.release("group-1", "b").await.unwrap());
    assert_eq!(a.host("group-1").await.unwrap().as_deref(), Some("a"));
    assert!(a.release("group-1", "a").await.unwrap());
    assert_eq!(a.host("group-1").await.unwrap(), None);
    assert_eq!(a.claim("group-1", "b").await.unwrap(), "b");
}

#[tokio::test]
async fn a_node_that_stops_heartbeating_drops_out_and_one_that_leaves_is_gone_at_once() {
    let redis = Redis::start();
    let ttl = Duration::from_millis(400);
    let directory = NodeDirectory::connect(&redis.url(), ttl).await.unwrap();
    for n in [entry("a", 40), entry("b", 8), entry("c", 16)] {
        directory.heartbeat(&n).await.unwrap();
    }
    let ids = |nodes: &[NodeInfo]| nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
    let live = directory.live().await.unwrap();
    assert_eq!(ids(&live), ["a", "b", "c"]);
    assert_eq!(live[1], entry("b", 8), "the entry comes back as written");
    assert_eq!(least_loaded(&live).unwrap().id, "b");

    // a and c go on heartbeating; b stops.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        directory.heartbeat(&entry("a", 40)).await.unwrap();
        directory.heartbeat(&entry("c", 16)).await.unwrap();
    }
    let live = directory.live().await.unwrap();
    assert_eq!(ids(&live), ["a", "c"], "b's entry expired");
    assert_eq!(
        least_loaded(&live).unwrap().id,
        "c",
        "new rooms go elsewhere"
    );

    directory.leave("c").await.unwrap();
    assert_eq!(ids(&directory.live().await.unwrap()), ["a"]);
}

#[tokio::test]
async fn a_draining_node_is_given_no_new_room() {
    use circle_server::cluster::member::{Host, Load, Member};
    let redis = Redis::start();
    let join = |id: &'static str| {
        let url = redis.url();
        async move {
            Member::join(
                &url,
                id.to_owned(),
                format!("http://{id}.test:8080"),
                "127.0.0.1:40000".parse().unwrap(),
                Duration::from_secs(10),
                Duration::from_secs(10),
                Duration::from_secs(30),
            )
            .await
            .unwrap()
        }
    };
    let (a, b) = (join("a").await, join("b").await);
    // Equal loads: the smaller id takes a new room, until it drains.
    let first = b.place("first").await.unwrap();
    assert!(matches!(&first, Host::Node(n) if n.id == "a"), "{first:?}");
    a.start_draining(Load::default()).await.unwrap();
    // Without the drain the rooms would alternate (each just placed counts against its node).
    for room in ["second", "third", "fourth"] {
        assert_eq!(b.place(room).await.unwrap(), Host::Here, "{room}");
    }
}
