//! The cluster scenarios: three `circle` nodes sharing one Redis (Debian's, started for the
//! run). One run compares sessions relayed through another node with local ones (join time,
//! floor fan-out); the failover runs kill the hosting node and time everyone's way back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circle_protocol::Role;
use circle_server::cluster::claims::RoomClaims;
use circle_tests::redis::Redis;
use circle_tests::token::fresh_secret;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::server::Circle;
use super::{ms, percentiles, Table};

pub struct Options {
    /// Rooms in the relayed-against-local run.
    pub rooms: usize,
    pub room_size: usize,
    /// Floor grants per room.
    pub rounds: usize,
    /// Kill-the-host runs.
    pub failovers: usize,
}

/// Three nodes `a`, `b`, `c` of the cluster at `redis`, sharing `secret`.
fn nodes(bin: &Path, redis: &Redis, secret: &str, log: &Path) -> Vec<Circle> {
    let url = redis.url();
    ["a", "b", "c"]
        .iter()
        .map(|id| {
            let extra = [
                "--redis-url",
                url.as_str(),
                "--node-id",
                id,
                "--records",
                "off",
                "--max-rooms",
                "2000",
            ];
            Circle::start_with_secret(
                bin,
                secret,
                &extra,
                &log.with_extension(format!("{id}.log")),
            )
            .expect("a node starts")
        })
        .collect()
}

/// One open session: its writer, and what it has received (text, when).
struct Session {
    writer: mpsc::Sender<String>,
    seen: Arc<Mutex<Vec<(Instant, Value)>>>,
}

/// `hello` through `url`: the session and the time from sending it to the `welcome`.
async fn join(url: &str, token: String) -> Option<(Session, Duration, Value)> {
    let (ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    let (mut sink, mut stream) = ws.split();
    let sent = Instant::now();
    sink.send(Message::text(
        json!({"type":"hello","protocol":1,"token": token}).to_string(),
    ))
    .await
    .ok()?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .ok()??
        .ok()?;
    let took = sent.elapsed();
    let welcome: Value = serde_json::from_str(first.to_text().ok()?).ok()?;
    if welcome["type"] != "welcome" {
        return None;
    }
    Some((spawn_session(sink, stream), took, welcome))
}

fn spawn_session(
    mut sink: impl futures_util::Sink<Message> + Unpin + Send + 'static,
    mut stream: impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin
        + Send
        + 'static,
) -> Session {
    let (writer, mut rx) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    let seen: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let at = Instant::now();
            if let Ok(text) = frame.to_text() {
                if let Ok(v) = serde_json::from_str::<Value>(text) {
                    log.lock().unwrap().push((at, v));
                }
            }
        }
    });
    Session { writer, seen }
}

/// Relayed against local, in one run: every session connects through node `a`. Rooms placed on
/// `a` are local end to end; rooms placed on `b` or `c` have every session relayed.
pub async fn relayed_against_local(bin: &Path, opts: &Options, report: &Path) {
    let redis = Redis::start();
    let secret = fresh_secret();
    let nodes = nodes(bin, &redis, &secret, report);
    let claims = RoomClaims::connect(&redis.url(), Duration::from_secs(6))
        .await
        .expect("redis");
    let url = nodes[0].url();
    let mut join_ms: HashMap<bool, Vec<f64>> = HashMap::new();
    let mut rooms = Vec::new();
    for r in 0..opts.rooms {
        let room = format!("bench-{r}");
        let token = nodes[0].token(&room, "f", Role::Facilitator);
        let Some((f, _, _)) = join(&url, token).await else {
            continue;
        };
        let host = claims.host(&room).await.ok().flatten().unwrap_or_default();
        let local = host == "a";
        let mut members = Vec::new();
        for i in 1..opts.room_size {
            let token = nodes[0].token(&room, &format!("m{i}"), Role::Member);
            if let Some((s, took, _)) = join(&url, token).await {
                join_ms
                    .entry(local)
                    .or_default()
                    .push(took.as_secs_f64() * 1000.0);
                members.push(s);
            }
        }
        rooms.push((local, f, members));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Floor rounds: each room's facilitator grants the stick to its next member, the rooms a
    // few milliseconds apart; fan-out is from the grant's sending to each member's `floor`.
    let mut grants = Vec::new();
    for round in 0..opts.rounds {
        for (n, (_, f, members)) in rooms.iter().enumerate() {
            if members.is_empty() {
                continue;
            }
            let target = format!("m{}", 1 + round % members.len());
            let at = Instant::now();
            let msg = json!({"type":"grant_floor","participant": target}).to_string();
            if f.writer.send(msg).await.is_ok() {
                grants.push((n, target, at));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut fanout: HashMap<bool, Vec<f64>> = HashMap::new();
    let mut missing = 0usize;
    for (n, target, at) in &grants {
        let (local, _, members) = &rooms[*n];
        for s in members {
            let seen = s.seen.lock().unwrap();
            let arrival = seen
                .iter()
                .find(|(t, v)| *t >= *at && v["type"] == "floor" && v["holder"] == target.as_str());
            match arrival {
                Some((t, _)) => fanout
                    .entry(*local)
                    .or_default()
                    .push(t.duration_since(*at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
    }
    let local_rooms = rooms.iter().filter(|(l, _, _)| *l).count();
    let mut t = Table::new(format!(
        "Cluster: relayed against local sessions, {} rooms of {} through node a, 3 nodes, one run",
        rooms.len(),
        opts.room_size
    ));
    t.row(
        "rooms placed on a (local) / on b or c (relayed)",
        format!("{local_rooms} / {}", rooms.len() - local_rooms),
    );
    for (local, name) in [(true, "local"), (false, "relayed")] {
        let (p50, p99, max) = percentiles(join_ms.entry(local).or_default());
        t.row(
            format!("{name}: hello → welcome p50 / p99 / max"),
            format!("{} / {} / {}", ms(p50), ms(p99), ms(max)),
        );
        let samples = fanout.entry(local).or_default();
        let count = samples.len();
        let (p50, p99, max) = percentiles(samples);
        t.row(
            format!("{name}: grant_floor → member's floor p50 / p99 / max ({count} samples)"),
            format!("{} / {} / {}", ms(p50), ms(p99), ms(max)),
        );
    }
    t.row(
        "members a grant did not reach within 2 s",
        missing.to_string(),
    );
    t.emit(report);
    for n in nodes {
        n.stop();
    }
}

/// Kills the hosting node of a room of `room_size` spread over the three nodes, `runs` times,
/// each on fresh nodes: from the SIGKILL to each client's `welcome` after its `resume` through
/// a live node (its own, when that one lives), as a client written against protocol.md would.
pub async fn failover(bin: &Path, opts: &Options, report: &Path) {
    let mut slowest = Vec::new();
    let mut everyone = Vec::new();
    let mut failed = 0usize;
    for run in 0..opts.failovers {
        let redis = Redis::start();
        let secret = fresh_secret();
        let mut nodes: Vec<Option<Circle>> = nodes(bin, &redis, &secret, report)
            .into_iter()
            .map(Some)
            .collect();
        let claims = RoomClaims::connect(&redis.url(), Duration::from_secs(6))
            .await
            .expect("redis");
        let room = format!("failover-{run}");
        let mut clients = Vec::new();
        for i in 0..opts.room_size {
            let (sub, role) = if i == 0 {
                ("f".to_owned(), Role::Facilitator)
            } else {
                (format!("m{i}"), Role::Member)
            };
            let n = i % 3;
            let node = nodes[n].as_ref().unwrap();
            if let Some((s, _, welcome)) = join(&node.url(), node.token(&room, &sub, role)).await {
                clients.push((n, s, welcome["resume_token"].clone()));
            }
        }
        let host = claims.host(&room).await.ok().flatten().unwrap_or_default();
        let h = ["a", "b", "c"]
            .iter()
            .position(|id| *id == host)
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let killed = Instant::now();
        nodes[h].take().unwrap().kill();
        let urls: Vec<Option<String>> = nodes.iter().map(|n| n.as_ref().map(Circle::url)).collect();
        let resumes = clients.iter().map(|(n, s, token)| {
            let url = (0..3)
                .map(|k| (n + k) % 3)
                .find_map(|k| urls[k].clone())
                .unwrap();
            let last_seq = s
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(_, v)| v["seq"].as_u64())
                .max()
                .unwrap_or(1);
            let token = token.clone();
            async move {
                let (ws, _) = tokio_tungstenite::connect_async(&url).await.ok()?;
                let (mut sink, mut stream) = ws.split();
                let resume =
                    json!({"type":"resume","protocol":1,"resume_token": token,"last_seq": last_seq});
                sink.send(Message::text(resume.to_string())).await.ok()?;
                let first = tokio::time::timeout(Duration::from_secs(20), stream.next())
                    .await
                    .ok()??
                    .ok()?;
                let v: Value = serde_json::from_str(first.to_text().ok()?).ok()?;
                (v["type"] == "welcome" || v["type"] == "resumed").then(|| killed.elapsed())
            }
        });
        let back = futures_util::future::join_all(resumes).await;
        let mut run_max = Duration::ZERO;
        for took in back {
            match took {
                Some(took) => {
                    run_max = run_max.max(took);
                    everyone.push(took.as_secs_f64() * 1000.0);
                }
                None => failed += 1,
            }
        }
        slowest.push(run_max.as_secs_f64() * 1000.0);
        for n in nodes.into_iter().flatten() {
            n.stop();
        }
    }
    let runs = slowest.len();
    let (run_p50, _, run_max) = percentiles(&mut slowest);
    let (p50, p99, max) = percentiles(&mut everyone);
    let mut t = Table::new(format!(
        "Cluster: SIGKILL of the hosting node, {runs} runs, a room of {} spread over 3 nodes",
        opts.room_size
    ));
    t.row(
        "kill → last client's welcome, per run: p50 / max",
        format!("{} / {}", ms(run_p50), ms(run_max)),
    )
    .row(
        "kill → each client's welcome: p50 / p99 / max",
        format!("{} / {} / {}", ms(p50), ms(p99), ms(max)),
    )
    .row("clients not back", failed.to_string());
    t.emit(report);
}

/// The signalling scenario (`signalling::run`) with its sessions spread over the three nodes in
/// turn, session by session, so two thirds of every room's sessions are relayed to its host.
pub async fn signalling(bin: &Path, opts: &super::signalling::Options, report: &Path) {
    let redis = Redis::start();
    let secret = fresh_secret();
    let nodes = nodes(bin, &redis, &secret, report);
    super::signalling::run(&nodes[..], opts, report).await;
    for n in nodes {
        n.stop();
    }
}
