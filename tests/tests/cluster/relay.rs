//! Any node serves any client: three `circle` nodes on loopback sharing one Redis, with clients
//! connected to different nodes in one room. The node a client reaches relays its connection to
//! the node hosting the room, which alone runs the room.

use std::time::Duration;

use circle_server::Settings;
use circle_tests::ops::API_KEY;
use circle_tests::redis::Redis;
use circle_tests::{Client, End, Role, TestServer, WAIT};
use serde_json::{json, Value};

use super::{node, rooms_per_node};

async fn three_nodes(redis: &Redis) -> [TestServer; 3] {
    [
        node(redis, "a", |_| {}).await,
        node(redis, "b", |_| {}).await,
        node(redis, "c", |_| {}).await,
    ]
}

/// `sub` joins `room` through `node`: the client and its `welcome`.
async fn hello(node: &TestServer, room: &str, sub: &str, role: Role) -> (Client, Value) {
    let mut client = node.connect().await;
    client
        .send(json!({"type":"hello","protocol":1,"token": node.token(room, sub, role)}))
        .await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "{sub}: {welcome}");
    (client, welcome)
}

/// Who is in the room a `welcome` shows, in id order.
fn participant_ids(welcome: &Value) -> Vec<String> {
    let mut ids: Vec<String> = welcome["room"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facilitator_on_one_node_and_members_on_two_others_share_one_room() {
    let redis = Redis::start();
    let [a, b, c] = three_nodes(&redis).await;
    let (mut f, _) = hello(&a, "group", "f", Role::Facilitator).await;
    let (mut m1, _) = hello(&b, "group", "m1", Role::Member).await;
    let (mut m2, welcome) = hello(&c, "group", "m2", Role::Member).await;
    assert_eq!(participant_ids(&welcome), ["f", "m1", "m2"], "{welcome}");
    let nodes = [a, b, c];
    // One node runs the room; the other two only carry connections.
    assert_eq!(
        rooms_per_node(&nodes).await.iter().sum::<u64>(),
        1,
        "the room runs on exactly one node"
    );
    loop {
        let joined = f.recv_type("participant_joined").await;
        if joined["participant"]["id"] == "m2" {
            break;
        }
    }
    // The rules run in one place: a stick given on one node is seen on the other two, in order.
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    m1.request(json!({"type":"raise_hand"})).await.ok();
    m2.request(json!({"type":"raise_hand"})).await.ok();
    f.request(json!({"type":"grant_next"})).await.ok();
    m1.recv_with("hand", "status", json!("granted")).await;
    let floor = m2.latest_floor().await;
    assert_eq!(floor["holder"], "m1");
    assert_eq!(floor["position"], 1);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_racing_for_new_rooms_on_two_nodes_end_in_one_room_each() {
    let redis = Redis::start();
    let a = node(&redis, "a", |_| {}).await;
    let b = node(&redis, "b", |_| {}).await;
    for round in 0..8 {
        let room = format!("race-{round}");
        // Both hellos leave at once, each to its own node, for a room nobody hosts yet.
        let ((_f, f_welcome), (_m, m_welcome)) = tokio::join!(
            hello(&a, &room, "f", Role::Facilitator),
            hello(&b, &room, "m", Role::Member),
        );
        // Whoever was welcomed second found the other one in the same room.
        let (f_saw, m_saw) = (participant_ids(&f_welcome), participant_ids(&m_welcome));
        assert!(
            f_saw == ["f", "m"] || m_saw == ["f", "m"],
            "{room}: f saw {f_saw:?}, m saw {m_saw:?}"
        );
    }
    assert_eq!(rooms_per_node(&[a, b]).await.iter().sum::<u64>(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_resumes_through_any_node_and_keeps_the_stick() {
    let redis = Redis::start();
    let [a, b, c] = three_nodes(&redis).await;
    let (mut f, _) = hello(&a, "group", "f", Role::Facilitator).await;
    let (m, welcome) = hello(&b, "group", "m", Role::Member).await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    f.request(json!({"type":"grant_floor","participant":"m"}))
        .await
        .ok();
    let token = welcome["resume_token"].clone();
    let mut m = m;
    m.recv_with("hand", "status", json!("granted")).await;
    let seq = m.last_seq();
    m.vanish();
    f.recv_connection("m", "reconnecting").await;
    // Back through the third node, which has never seen this member.
    let mut back = c.resume(token, seq).await;
    back.id = "m".into();
    let missed = back.drain().await;
    assert!(
        missed.iter().any(|m| m["type"] == "resumed"),
        "not resumed: {missed:?}"
    );
    assert!(
        missed
            .iter()
            .all(|m| m["type"] != "error" && m["type"] != "welcome"),
        "{missed:?}"
    );
    f.recv_connection("m", "connected").await;
    // Still the holder: only the holder may release the stick.
    assert_eq!(
        back.request(json!({"type":"release_floor"})).await.0["type"],
        "ok"
    );
    assert_eq!(f.latest_floor().await["holder"], Value::Null);
    for n in [a, b, c] {
        n.stop().await;
    }
}

/// The index of the one node running a room.
async fn host_of(nodes: &[TestServer]) -> usize {
    let rooms = rooms_per_node(nodes).await;
    assert_eq!(rooms.iter().sum::<u64>(), 1, "{rooms:?}");
    rooms.iter().position(|r| *r == 1).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_relayed_connection_outlives_many_ping_intervals() {
    let redis = Redis::start();
    let quick_pings = |s: &mut Settings| s.ping_interval = Duration::from_millis(200);
    let nodes = [
        node(&redis, "a", quick_pings).await,
        node(&redis, "b", quick_pings).await,
    ];
    let (mut f, _) = hello(&nodes[0], "group", "f", Role::Facilitator).await;
    let relay = &nodes[1 - host_of(&nodes).await];
    let (mut m, _) = hello(relay, "group", "m", Role::Member).await;
    // Both clients read (a client answers pings only while it reads) but send nothing for over
    // twice the limit a node gives a quiet peer (two intervals and a second): the relay must
    // answer the host's pings itself.
    let (f_after, m_after) = tokio::join!(
        async {
            let mut seen = Vec::new();
            while let Some(m) = f.try_recv(Duration::from_millis(3_500)).await {
                seen.push(m);
            }
            seen
        },
        m.try_recv(Duration::from_millis(3_500)),
    );
    assert!(
        f_after
            .iter()
            .all(|m| m["type"] != "participant_updated" && m["type"] != "participant_left"),
        "the quiet member was disturbed: {f_after:?}"
    );
    assert!(m_after.is_none(), "{m_after:?}");
    assert_eq!(
        m.request(json!({"type":"raise_hand"})).await.0["type"],
        "ok"
    );
    assert_eq!(f.latest_floor().await["queue_length"], 1);
    for n in nodes {
        n.stop().await;
    }
}

/// `sub` joins "group" through `node`, under a cap that the `/stats` requests just made still
/// count against for a moment (their sockets close as the answer is read): a refusal is tried
/// again for up to a second. A cap that refuses for good still fails the test.
async fn hello_under_cap(node: &TestServer, sub: &str) -> Client {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut client = loop {
        match Client::try_connect(&node.url()).await {
            Ok(client) => break client,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "refused; again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{sub} was refused: {e}"),
        }
    };
    client
        .send(json!({"type":"hello","protocol":1,"token": node.token("group", sub, Role::Member)}))
        .await;
    let welcome = client.recv().await;
    assert_eq!(welcome["type"], "welcome", "{sub}: {welcome}");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_clients_count_against_their_own_address_on_their_own_node_only() {
    let redis = Redis::start();
    // Three connections per address: the host sees every relayed client come from the relay's
    // address, and must not count them all as one visitor's.
    let capped = |s: &mut Settings| s.max_connections_per_ip = 3;
    let nodes = [
        node(&redis, "a", capped).await,
        node(&redis, "b", capped).await,
    ];
    let (_f, _) = hello(&nodes[0], "group", "f", Role::Facilitator).await;
    let h = host_of(&nodes).await;
    let relay = &nodes[1 - h];
    // The relay carries three clients (the facilitator may be one), its cap.
    let mut clients = Vec::new();
    for i in usize::from(h == 1)..3 {
        clients.push(hello_under_cap(relay, &format!("m{i}")).await);
    }
    let refused = tokio_tungstenite::connect_async(relay.url()).await;
    assert!(
        refused.is_err(),
        "a fourth connection from one address was let in"
    );
    // The host has two clients of its own: with the relay's three it would be over its cap,
    // were they counted against the address they come from.
    for i in usize::from(h == 0)..2 {
        clients.push(hello_under_cap(&nodes[h], &format!("h{i}")).await);
    }
    // A third connection of its own (the stats request) is still let in, and a fourth is not.
    assert_eq!(nodes[h].stats().await["connections"], 5);
    clients.push(hello_under_cap(&nodes[h], "h2").await);
    let refused = tokio_tungstenite::connect_async(nodes[h].url()).await;
    assert!(
        refused.is_err(),
        "the host let a fourth connection of its own in"
    );
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_key_that_is_not_the_clusters_is_refused_with_403() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let redis = Redis::start();
    let a = node(&redis, "a", |_| {}).await;
    for key in [
        circle_server::cluster::member::relay_key(b"another-clusters-secret-of-32-bytes!"),
        "not hex".to_owned(),
        String::new(),
    ] {
        let mut request = a.url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("circle-relay", key.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(Error::Http(response)) => assert_eq!(response.status(), 403),
            other => panic!("a forged relay key was let in: {:?}", other.map(|_| ())),
        }
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_host_hands_its_room_to_another_node_and_everyone_resumes_there_in_place() {
    let redis = Redis::start();
    let nodes = vec![
        node(&redis, "a", |_| {}).await,
        node(&redis, "b", |_| {}).await,
    ];
    let (mut f, f_welcome) = hello(&nodes[0], "group", "f", Role::Facilitator).await;
    let h = host_of(&nodes).await;
    let (mut m, m_welcome) = hello(&nodes[1 - h], "group", "m", Role::Member).await;
    let (mut q, q_welcome) = hello(&nodes[h], "group", "q", Role::Member).await;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    f.request(json!({"type":"grant_floor","participant":"m"}))
        .await
        .ok();
    q.request(json!({"type":"raise_hand","note":"next, please"}))
        .await
        .ok();
    let before = f.latest_floor().await;
    let mut nodes = nodes;
    let host = nodes.remove(h);
    let other = &nodes[0];
    host.stop().await;
    // Nobody's session ends: each connection is sent away with 1001, and resumes on the node
    // left, in the room it carries on.
    let mut back = Vec::new();
    for (client, welcome, id) in [
        (&mut f, &f_welcome, "f"),
        (&mut m, &m_welcome, "m"),
        (&mut q, &q_welcome, "q"),
    ] {
        assert_eq!(client.end().await, End::Closed(1001), "{id}");
        assert!(
            client.log.iter().all(|m| m["type"] != "session_ended"),
            "{id}: {:?}",
            client.log
        );
        let mut c = other
            .resume(welcome["resume_token"].clone(), client.last_seq())
            .await;
        c.id = id.to_owned();
        let answer = c.recv().await;
        assert_eq!(answer["type"], "welcome", "{id}: {answer}");
        back.push((c, answer));
    }
    let floor = &back[0].1["room"]["floor"];
    assert_eq!(floor["holder"], "m");
    assert_eq!(floor["mode"], "stick");
    assert_eq!(floor["queue"], before["queue"]);
    assert_eq!(rooms_per_node(&nodes).await, [1]);
    drop(back);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_node_to_stop_ends_its_rooms_as_a_single_server_does() {
    let redis = Redis::start();
    let a = node(&redis, "a", |_| {}).await;
    let (mut f, _) = hello(&a, "group", "f", Role::Facilitator).await;
    a.stop().await;
    let ended = f.recv_type("session_ended").await;
    assert_eq!(ended["reason"], "server_shutdown");
    assert_eq!(f.end().await, End::Closed(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_running_rooms_carry_on_and_new_ones_get_a_clear_error() {
    let mut redis = Redis::start();
    let nodes = [
        node(&redis, "a", |_| {}).await,
        node(&redis, "b", |_| {}).await,
    ];
    let (mut f, _) = hello(&nodes[0], "group", "f", Role::Facilitator).await;
    let h = host_of(&nodes).await;
    let (mut m, _) = hello(&nodes[1 - h], "group", "m", Role::Member).await;
    redis.stop();
    // The room and both its clients, local and relayed, notice nothing.
    assert_eq!(
        m.request(json!({"type":"raise_hand"})).await.0["type"],
        "ok"
    );
    assert_eq!(f.latest_floor().await["queue_length"], 1);
    // Its host still lets people in; no node can place a new room.
    let (_late, welcome) = hello(&nodes[h], "group", "late", Role::Member).await;
    assert_eq!(participant_ids(&welcome), ["f", "late", "m"]);
    for n in &nodes {
        let mut c = n.connect().await;
        c.send(
            json!({"type":"hello","protocol":1,"token": n.token("new-group", "x", Role::Member)}),
        )
        .await;
        let refused = c.recv().await;
        assert_eq!(refused["type"], "error", "{refused}");
        assert_eq!(refused["code"], "internal");
        assert_eq!(c.end().await, End::Closed(1008));
    }
    // Redis comes back empty: the nodes list themselves again and the host claims its room
    // back, so a newcomer on the other node joins the same room and new rooms can start.
    redis.restart();
    // The running room's state is in Redis again (the writer kept what changed while Redis was
    // away), for a node to carry it on should its host die.
    let states = circle_server::cluster::state::RoomStates::connect(&redis.url(), WAIT)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), async {
        while states.get("group").await.ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the running room's state is written again");
    // Restarted again, with nothing changing in the room since: written again all the same.
    redis.restart();
    tokio::time::timeout(Duration::from_secs(15), async {
        while states.get("group").await.ok().flatten().is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the unchanged room's state is written again");
    let (_back, welcome) = tokio::time::timeout(WAIT, async {
        loop {
            let mut c = nodes[1 - h].connect().await;
            c.send(json!({"type":"hello","protocol":1,"token": nodes[0].token("group", "back", Role::Member)}))
                .await;
            let answer = c.recv().await;
            if answer["type"] == "welcome" {
                return (c, answer);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("a join through the other node once Redis is back");
    assert_eq!(participant_ids(&welcome), ["back", "f", "late", "m"]);

    hello(&nodes[1 - h], "new-group", "x", Role::Facilitator).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_flows_between_participants_connected_to_three_different_nodes() {
    use circle_tests::browser::{Browser, ServerRoom};
    use std::collections::BTreeMap;
    let redis = Redis::start();
    let with_api = |s: &mut Settings| s.operations.api_keys = vec![API_KEY.to_owned()];
    let nodes = [
        node(&redis, "a", with_api).await,
        node(&redis, "b", with_api).await,
        node(&redis, "c", with_api).await,
    ];
    let people = [
        ("fac", Role::Facilitator, 0),
        ("ann", Role::Member, 1),
        ("ben", Role::Member, 2),
    ];
    let urls: BTreeMap<String, String> = people
        .iter()
        .map(|(id, _, n)| (id.to_string(), nodes[*n].url()))
        .collect();
    let tokens = people
        .iter()
        .map(|(id, role, _)| (id.to_string(), (nodes[0].token("group", id, *role), *role)))
        .collect();
    let room = ServerRoom::over_urls(urls, tokens);
    let mut browsers = Vec::new();
    for (id, _, _) in people {
        browsers.push(Browser::join(&room, id, true).await);
    }
    for b in &browsers {
        for (other, _, _) in people.iter().filter(|(o, _, _)| *o != b.id) {
            let audio = b.wait_packets(other, "audio", 25).await;
            let video = b.wait_packets(other, "video", 15).await;
            assert_eq!(audio.misrouted + video.misrouted, 0);
        }
    }
    // All of it through the hosting node's one media port: the others carry no media at all.
    let h = host_of(&nodes).await;
    for (i, n) in nodes.iter().enumerate() {
        let metrics = n.api().get("/metrics").await.text;
        let received: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("circle_rtp_packets_received_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        if i == h {
            assert!(received > 0);
        } else {
            assert_eq!(received, 0, "node {i} carried media");
        }
    }
    drop(browsers);
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_holds_on_every_node_after_the_room_has_ended() {
    let redis = Redis::start();
    let mut nodes = vec![
        node(&redis, "a", |_| {}).await,
        node(&redis, "b", |_| {}).await,
    ];
    let (mut f, _) = hello(&nodes[0], "group", "f", Role::Facilitator).await;
    let (mut m, _) = hello(&nodes[1], "group", "m", Role::Member).await;
    let h = host_of(&nodes).await;
    f.request(json!({"type":"remove","participant":"m"}))
        .await
        .ok();
    assert_eq!(m.end().await, End::Closed(4001));
    f.send(json!({"type":"leave"})).await;
    assert_eq!(f.end().await, End::Closed(1000));
    // The room is over, and the node that ran it goes: the next run of the room starts on the
    // other node, which never saw the removal.
    nodes.remove(h).stop().await;
    let left = &nodes[0];
    let mut again = left.connect().await;
    again
        .send(json!({"type":"hello","protocol":1,"token": left.token("group", "m", Role::Member)}))
        .await;
    let refused = again.recv().await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    assert_eq!(again.end().await, End::Closed(1008));
    // Anyone else starts the room there as usual.
    hello(left, "group", "f", Role::Facilitator).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_new_rooms_through_one_node_spreads_over_every_node() {
    let redis = Redis::start();
    let [a, b, c] = three_nodes(&redis).await;
    // Top of the hour: six groups start within a heartbeat, all through the same node.
    let mut facilitators = Vec::new();
    for room in 0..6 {
        facilitators.push(hello(&a, &format!("group-{room}"), "f", Role::Facilitator).await);
    }
    let rooms = rooms_per_node(&[a, b, c]).await;
    assert_eq!(rooms.iter().sum::<u64>(), 6);
    assert!(
        rooms.iter().all(|r| *r >= 1),
        "one node took them all: {rooms:?}"
    );
}
