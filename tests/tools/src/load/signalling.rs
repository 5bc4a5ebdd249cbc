//! The signalling scenario: many WebSocket sessions in 16-person rooms (one facilitator, fifteen
//! members) held open, floor changes fanned out to every member, and reactions in bursts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circle_protocol::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::server::Circle;
use super::{percentiles, Table};

/// A session not welcomed within this counts as not held (a server out of descriptors never
/// answers); short, so that a failing run still ends soon.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Options {
    pub sessions: usize,
    pub room_size: usize,
    pub rounds: usize,
    pub reaction_seconds: u64,
}

/// What the sessions saw, shared by all their reader tasks.
#[derive(Default)]
struct Seen {
    /// (room, holder) → when each member's session received the `floor` naming that holder.
    floor: Mutex<HashMap<(usize, String), Vec<Instant>>>,
    reactions_counted: AtomicU64,
    rate_limited: AtomicU64,
    closed: AtomicU64,
}

struct Session {
    writer: mpsc::Sender<String>,
}

fn room_id(room: usize) -> String {
    format!("sig-{room}")
}

fn member_id(room: usize, i: usize) -> String {
    format!("r{room}-m{i}")
}

async fn open(
    url: String,
    token: String,
    room: usize,
    facilitator: bool,
    seen: Arc<Seen>,
) -> Option<Session> {
    let (ws, _) = tokio::time::timeout(OPEN_TIMEOUT, tokio_tungstenite::connect_async(&url))
        .await
        .ok()?
        .ok()?;
    let (mut sink, mut stream) = ws.split();
    let hello = json!({"type":"hello","protocol":1,"token": token});
    sink.send(Message::text(hello.to_string())).await.ok()?;
    let first = tokio::time::timeout(OPEN_TIMEOUT, stream.next())
        .await
        .ok()??
        .ok()?;
    let first: Value = serde_json::from_str(first.to_text().ok()?).ok()?;
    if first["type"] != "welcome" {
        return None;
    }
    let (writer, mut rx) = mpsc::channel::<String>(64);
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(frame)) = stream.next().await {
            let Ok(text) = frame.to_text() else { continue };
            // Only the messages this scenario measures are parsed; the rest is skipped cheaply.
            if text.contains(r#""type":"floor""#) {
                let at = Instant::now();
                if facilitator {
                    continue;
                }
                let Ok(m) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if let Some(holder) = m["holder"].as_str() {
                    seen.floor
                        .lock()
                        .unwrap()
                        .entry((room, holder.to_owned()))
                        .or_default()
                        .push(at);
                }
            } else if facilitator && text.contains(r#""type":"reactions""#) {
                if let Ok(m) = serde_json::from_str::<Value>(text) {
                    if let Some(counts) = m["counts"].as_object() {
                        let n: u64 = counts.values().filter_map(Value::as_u64).sum();
                        seen.reactions_counted.fetch_add(n, Ordering::Relaxed);
                    }
                }
            } else if text.contains("rate_limited") {
                seen.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
        }
        seen.closed.fetch_add(1, Ordering::Relaxed);
    });
    Some(Session { writer })
}

/// What the scenario drives: one `circle`, or the nodes of a cluster (sessions spread over
/// them, CPU and memory summed).
pub trait Servers {
    /// Where the `n`th session connects.
    fn url(&self, n: usize) -> String;
    fn token(&self, room: &str, sub: &str, role: Role) -> String;
    fn cpu(&self) -> f64;
    fn rss(&self) -> u64;
    /// How the table names what was measured.
    fn name(&self) -> String;
}

impl Servers for Circle {
    fn url(&self, _: usize) -> String {
        Circle::url(self)
    }
    fn token(&self, room: &str, sub: &str, role: Role) -> String {
        Circle::token(self, room, sub, role)
    }
    fn cpu(&self) -> f64 {
        Circle::cpu(self)
    }
    fn rss(&self) -> u64 {
        Circle::rss(self)
    }
    fn name(&self) -> String {
        "server".to_owned()
    }
}

impl Servers for [Circle] {
    fn url(&self, n: usize) -> String {
        self[n % self.len()].url()
    }
    fn token(&self, room: &str, sub: &str, role: Role) -> String {
        self[0].token(room, sub, role)
    }
    fn cpu(&self) -> f64 {
        self.iter().map(Circle::cpu).sum()
    }
    fn rss(&self) -> u64 {
        self.iter().map(Circle::rss).sum()
    }
    fn name(&self) -> String {
        format!("{} nodes together", self.len())
    }
}

pub async fn run<C: Servers + ?Sized>(circle: &C, opts: &Options, report: &std::path::Path) {
    let rooms = opts.sessions.div_ceil(opts.room_size);
    let seen = Arc::new(Seen::default());
    let rss_before = circle.rss();
    let cpu_before = circle.cpu();
    let started = Instant::now();

    // Joins run 256 at a time: the server queues handshakes beyond its own limit anyway, and
    // this keeps the load tool from opening thousands of half-made sockets at once.
    let gate = Arc::new(Semaphore::new(256));
    let mut joins = Vec::new();
    for room in 0..rooms {
        for i in 0..opts.room_size {
            if room * opts.room_size + i >= opts.sessions {
                break;
            }
            let (sub, role) = if i == 0 {
                (format!("r{room}-f"), Role::Facilitator)
            } else {
                (member_id(room, i), Role::Member)
            };
            let token = circle.token(&room_id(room), &sub, role);
            let url = circle.url(room * opts.room_size + i);
            let seen = seen.clone();
            let gate = gate.clone();
            joins.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                open(url, token, room, i == 0, seen).await
            }));
        }
    }
    let mut sessions: Vec<Vec<Option<Session>>> = (0..rooms).map(|_| Vec::new()).collect();
    for (n, j) in joins.into_iter().enumerate() {
        sessions[n / opts.room_size].push(j.await.ok().flatten());
    }
    let join_time = started.elapsed();
    let held = sessions.iter().flatten().filter(|s| s.is_some()).count();

    // Idle: give the server a moment to settle before reading its memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = circle.rss();
    let still_open = held as u64 - seen.closed.load(Ordering::Relaxed).min(held as u64);

    // Floor changes: each round, every room's facilitator grants the stick to its next member,
    // the rooms spread evenly over one second.
    let cpu_floor_start = circle.cpu();
    let mut grants: Vec<(usize, String, Instant)> = Vec::new();
    let spacing = Duration::from_secs(1) / rooms.max(1) as u32;
    for round in 0..opts.rounds {
        let round_start = Instant::now();
        for (room, members) in sessions.iter().enumerate() {
            let Some(Some(f)) = members.first() else {
                continue;
            };
            let present = members.len();
            if present < 2 {
                continue;
            }
            let target = member_id(room, 1 + round % (present - 1));
            let msg = json!({"type":"grant_floor","participant": target}).to_string();
            let at = Instant::now();
            if f.writer.try_send(msg).is_ok() {
                grants.push((room, target, at));
            }
            let due = round_start + spacing * (room as u32 + 1);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_floor = circle.cpu() - cpu_floor_start;
    let mut fanout = Vec::new();
    let mut expected = 0usize;
    {
        let floor = seen.floor.lock().unwrap();
        for (room, holder, at) in &grants {
            let members = sessions[*room]
                .iter()
                .skip(1)
                .filter(|s| s.is_some())
                .count();
            expected += members;
            if let Some(times) = floor.get(&(*room, holder.clone())) {
                // A holder granted in several rounds appears once per round; take the arrivals
                // after this grant, one per member.
                fanout.extend(
                    times
                        .iter()
                        .filter(|t| *t >= at)
                        .take(members)
                        .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0),
                );
            }
        }
    }
    let delivered = fanout.len();
    let (p50, p99, max) = percentiles(&mut fanout);

    // Reactions: every member sends five a second (the per-participant limit) for a while.
    let counted_before = seen.reactions_counted.load(Ordering::Relaxed);
    let kinds = ["heart", "applause", "support", "thanks", "me_too", "laugh"];
    let mut sent = 0u64;
    let reaction_start = Instant::now();
    let cpu_react_start = circle.cpu();
    for second in 0..opts.reaction_seconds {
        let tick = reaction_start + Duration::from_secs(second);
        tokio::time::sleep_until(tick.into()).await;
        for burst in 0..5 {
            for members in &sessions {
                for s in members.iter().skip(1).flatten() {
                    let kind = kinds[(burst + second as usize) % kinds.len()];
                    let msg = json!({"type":"react","kind": kind}).to_string();
                    if s.writer.try_send(msg).is_ok() {
                        sent += 1;
                    }
                }
            }
            tokio::task::yield_now().await;
        }
    }
    let send_time = reaction_start.elapsed();
    // The last window closes up to one reaction window (2 s by default) later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_react = circle.cpu() - cpu_react_start;
    let counted = seen.reactions_counted.load(Ordering::Relaxed) - counted_before;
    let cpu_total = circle.cpu() - cpu_before;

    let mut t = Table::new(format!(
        "Signalling: {} sessions in {} rooms of {} ({})",
        opts.sessions,
        rooms,
        opts.room_size,
        circle.name()
    ));
    t.row(
        "sessions held (welcome received)",
        format!("{held} / {}", opts.sessions),
    )
    .row("sessions still open after idle", format!("{still_open}"))
    .row(
        "time to open all sessions",
        format!("{:.1} s", join_time.as_secs_f64()),
    )
    .row(
        "resident memory, server",
        format!(
            "{:.1} MiB before, {:.1} MiB with all sessions idle",
            rss_before as f64 / 1048576.0,
            rss_idle as f64 / 1048576.0
        ),
    )
    .row(
        "resident memory per idle session",
        format!(
            "{:.1} KiB",
            (rss_idle.saturating_sub(rss_before)) as f64 / 1024.0 / held.max(1) as f64
        ),
    )
    .row(
        "floor changes",
        format!(
            "{} ({} rounds, {rooms} rooms spread over 1 s)",
            grants.len(),
            opts.rounds
        ),
    )
    .row(
        "floor fan-out: members reached / expected",
        format!("{delivered} / {expected}"),
    )
    .row(
        "floor fan-out latency p50 / p99 / max",
        format!("{p50:.2} / {p99:.2} / {max:.2} ms"),
    )
    .row(
        "server CPU during floor rounds",
        format!("{cpu_floor:.2} s over {} rounds", opts.rounds),
    )
    .row(
        "reactions sent",
        format!(
            "{sent} in {:.1} s ({:.0}/s)",
            send_time.as_secs_f64(),
            sent as f64 / send_time.as_secs_f64()
        ),
    )
    .row(
        "reactions absorbed (counted in broadcasts)",
        format!(
            "{counted} ({:.0}/s over the sending time)",
            counted as f64 / send_time.as_secs_f64()
        ),
    )
    .row(
        "rate_limited errors",
        format!("{}", seen.rate_limited.load(Ordering::Relaxed)),
    )
    .row("server CPU during reactions", format!("{cpu_react:.2} s"))
    .row("server CPU, whole scenario", format!("{cpu_total:.2} s"))
    .row(
        "load tool CPU, whole scenario",
        format!("{:.2} s", super::cpu_seconds(std::process::id())),
    );
    t.emit(report);

    for members in sessions {
        for s in members.into_iter().flatten() {
            let _ = s.writer.try_send(r#"{"type":"leave"}"#.to_owned());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}
