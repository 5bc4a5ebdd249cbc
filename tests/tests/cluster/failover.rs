//! A node's death loses nobody's place: three `circle` processes share a room, the one hosting
//! it is killed with SIGKILL mid-turn, and everyone resumes through the nodes still alive, to
//! the same stick holder, the same queue with its notes, and the same floor mode.

use std::time::{Duration, Instant};

use circle_tests::ops::{Api, API_KEY};
use circle_tests::postgres::Postgres;
use circle_tests::process::ServerProcess;
use circle_tests::redis::Redis;
use circle_tests::token::Minter;
use circle_tests::{Client, End, Role, SECRET};
use serde_json::{json, Value};

/// Node `id` of the cluster at `redis`, keeping its records in the shared `database`.
fn node(redis: &Redis, id: &str, database: &str) -> ServerProcess {
    super::process_node(
        redis,
        id,
        &[("CIRCLE_DATABASE", database), ("CIRCLE_API_KEY", API_KEY)],
    )
}

/// How many rooms the node at `addr` runs, from `/stats`.
async fn rooms(node: &ServerProcess) -> u64 {
    let stats: Value = reqwest::get(format!("http://{}/stats", node.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["rooms"].as_u64().unwrap()
}

/// Someone in the room: their client, the node they connected through, their resume token.
struct Seat {
    client: Client,
    node: usize,
    token: Value,
}

/// Resumes `seat` through a live node (its own if that one lives), as a client written against
/// protocol.md alone would, once: the answer, and how long it took since `since`.
async fn resume_anywhere(
    nodes: &[Option<ServerProcess>],
    seat: &mut Seat,
    id: &str,
    since: Instant,
) -> (Value, Duration) {
    let i = (seat.node..seat.node + nodes.len())
        .map(|i| i % nodes.len())
        .find(|i| nodes[*i].is_some())
        .unwrap();
    let mut c = Client::connect(&nodes[i].as_ref().unwrap().url()).await;
    c.send(json!({"type":"resume","protocol":1,"resume_token": seat.token,"last_seq": seat.client.last_seq()}))
        .await;
    let answer = c
        .try_recv(Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("{id} got no answer to its resume"));
    c.id = id.to_owned();
    seat.client = c;
    seat.node = i;
    (answer, since.elapsed())
}

/// How the hosting node goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: it dies at once, telling nobody.
    Kill,
    /// SIGTERM: it drains, handing its rooms to the other nodes.
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_hosting_node_is_killed_mid_turn_everyone_resumes_elsewhere_in_place() {
    the_host_goes_mid_turn(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosting_node_drained_with_sigterm_moves_everyone_elsewhere_in_place() {
    the_host_goes_mid_turn(Stop::Term).await;
}

/// Three nodes, four people on them in one room mid-turn; the room's host goes (`stop`) and
/// everyone resumes through the nodes left, to the same room, holder, turn, queue and session.
async fn the_host_goes_mid_turn(stop: Stop) {
    let redis = Redis::start();
    let database = Postgres::shared().fresh_database();
    let mut nodes: Vec<Option<ServerProcess>> = ["a", "b", "c"]
        .iter()
        .map(|id| Some(node(&redis, id, &database)))
        .collect();
    let tokens = Minter::new(SECRET);
    let people = [
        ("f", Role::Facilitator, 0),
        ("holder", Role::Member, 1),
        ("first", Role::Member, 2),
        ("second", Role::Member, 0),
    ];
    let mut seats = Vec::new();
    for (id, role, n) in people {
        let node = nodes[n].as_ref().unwrap();
        let mut client = Client::connect(&node.url()).await;
        client
            .send(json!({"type":"hello","protocol":1,"token": tokens.token("group", id, role)}))
            .await;
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "welcome", "{id}: {welcome}");
        client.id = id.to_owned();
        seats.push(Seat {
            client,
            node: n,
            token: welcome["resume_token"].clone(),
        });
    }
    let mut host = None;
    for (i, n) in nodes.iter().enumerate() {
        if rooms(n.as_ref().unwrap()).await == 1 {
            host = Some(i);
        }
    }
    let host = host.expect("one node hosts the room");
    // Mid-turn: `holder` has the stick with a turn limit running, two hands are up.
    let f = &mut seats[0].client;
    f.request(json!({"type":"set_floor_mode","mode":"stick"}))
        .await
        .ok();
    f.request(json!({"type":"set_turn_limit","seconds":600}))
        .await
        .ok();
    f.request(json!({"type":"grant_floor","participant":"holder"}))
        .await
        .ok();
    seats[2]
        .client
        .request(json!({"type":"raise_hand","note":"about my week"}))
        .await
        .ok();
    seats[3]
        .client
        .request(json!({"type":"raise_hand"}))
        .await
        .ok();
    let before = seats[0].client.latest_floor().await;
    assert_eq!(before["holder"], "holder");
    for s in &mut seats {
        s.client.drain().await;
    }

    let died = Instant::now();
    match stop {
        Stop::Kill => nodes[host].as_mut().unwrap().kill_now(),
        Stop::Term => assert!(
            nodes[host]
                .as_mut()
                .unwrap()
                .terminate(Duration::from_secs(10)),
            "the host did not drain and exit cleanly"
        ),
    }
    nodes[host] = None;
    // Everyone's socket ends: dropped with a killed host, or closed 1001 (by a draining host,
    // or by the node relaying it); nobody's session is over.
    for s in &mut seats {
        let end = s.client.end().await;
        if s.node == host && stop == Stop::Kill {
            assert_eq!(end, End::Dropped, "{}", s.client.id);
        } else {
            assert_eq!(end, End::Closed(1001), "{}", s.client.id);
        }
    }
    let mut answers = Vec::new();
    let mut slowest = Duration::ZERO;
    // All at once, as a room's clients reconnect after a crash; each is held until the cluster
    // has noticed the death and a live node carries the room on.
    let resumed = futures_util::future::join_all(
        seats
            .iter_mut()
            .zip(people)
            .map(|(s, (id, _, _))| resume_anywhere(&nodes, s, id, died)),
    )
    .await;
    for (answer, took) in resumed {
        slowest = slowest.max(took);
        answers.push(answer);
    }
    assert!(
        seats
            .iter()
            .all(|s| s.client.log.iter().all(|m| m["type"] != "session_ended")),
        "a session was ended"
    );
    println!("{stop:?}: everyone resumed within {slowest:?} of the host going");
    for (s, answer) in seats.iter().zip(&answers) {
        assert_eq!(answer["type"], "welcome", "{}: {answer}", s.client.id);
    }
    // The facilitator's fresh view: the same holder, turn and queue with its note, and mode.
    let state = &answers[0];
    assert_eq!(state["type"], "welcome", "{state}");
    let floor = &state["room"]["floor"];
    assert_eq!(floor["mode"], "stick");
    assert_eq!(floor["holder"], "holder");
    assert_eq!(floor["turn_ends_at"], before["turn_ends_at"]);
    assert_eq!(
        floor["queue"],
        json!([{"participant":"first","note":"about my week"},{"participant":"second","note":null}])
    );
    assert_eq!(state["room"]["turn_limit"], 600);
    // Numbered on from where each client was, never from 1 again.
    for (s, answer) in seats.iter().zip(&answers) {
        assert!(
            answer["seq"].as_u64().unwrap() > 1,
            "{}: {answer}",
            s.client.id
        );
    }
    // The room runs on one of the live nodes, and the rules hold there: only the holder may
    // release the stick, and `first` is next.
    let mut hosts = 0;
    for n in nodes.iter().flatten() {
        hosts += rooms(n).await;
    }
    assert_eq!(hosts, 1);
    assert_eq!(
        seats[1]
            .client
            .request(json!({"type":"release_floor"}))
            .await
            .0["type"],
        "ok"
    );
    seats[0]
        .client
        .request(json!({"type":"grant_next"}))
        .await
        .ok();
    assert_eq!(seats[2].client.latest_floor().await["holder"], "first");
    // The clinic's records: one group session, still running, and nobody's attendance split by
    // the move (a reconnect within the grace does not split an interval).
    let live = nodes.iter().flatten().next().unwrap();
    let api = Api::new(live.addr, Some(API_KEY));
    let sessions = api.get("/api/v1/sessions?room=group").await.body;
    let sessions = sessions["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["ended_at"], Value::Null, "{:?}", sessions[0]);
    for a in sessions[0]["attendance"].as_array().unwrap() {
        assert_eq!(a["intervals"].as_array().unwrap().len(), 1, "{a}");
        assert_eq!(a["intervals"][0]["left_at"], Value::Null, "{a}");
    }
}
