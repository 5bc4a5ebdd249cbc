//! `circle-soak`: bounded load runs against `circle` started as its own process on loopback,
//! watching the process from outside (resident memory and threads from /proc/PID/status, open
//! descriptors from /proc/PID/fd) and from inside (`GET /stats`: rooms, sessions, peers, tasks).
//!
//! - `circle-soak soak [minutes=5] [rooms=4] [members=6] [media=1] [rounds=1]`: each room keeps a
//!   facilitator; `members` signalling clients per room loop through join, set_media, react,
//!   raise and lower a hand, drop the socket and resume, then leave or vanish (left to the
//!   grace); with `media=1` a publishing fake browser per room sends audio and video while a
//!   second one joins, receives, drops its socket, resumes with ICE restarts on both peers, and
//!   leaves, in a loop. Prints a sample every 10 s, then waits for the server to empty and
//!   prints where the counts settled; with `rounds=N` it does that N times against the same
//!   process, so that memory kept by the allocator can be told from memory that grows.
//! - `circle-soak storm [rooms=20] [per_room=10] [rounds=3]`: signalling-only participants (a
//!   facilitator and members per room) all join; the server gets SIGTERM and is started again on
//!   the same port; every client reconnects with jittered backoff (`resume` first, which a new
//!   server refuses, then `hello`), and the time until all are back is measured per round.
//!
//! `circle` is found beside this binary (same target directory) unless `CIRCLE_BIN` names it.
//! Every wait is bounded; a cycle that fails is counted, never retried forever.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circle_tests::browser::{Browser, ServerRoom};
use circle_tests::process::{circle_bin, ServerProcess as Server};
use circle_tests::token::Minter;
use circle_tests::Role;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "soak-secret-not-for-production-use-only";
/// Tokens outlast any run.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Any single step of a client (a connect, a reply) must finish within this.
const STEP: Duration = Duration::from_secs(10);

type Res<T> = Result<T, String>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn main() {
    // The fake browsers' library warns about every early packet; only errors matter here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().cloned().unwrap_or_default();
    let options: BTreeMap<String, u64> = args
        .iter()
        .skip(1)
        .filter_map(|a| {
            let (k, v) = a.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect();
    let opt = |k: &str, default: u64| options.get(k).copied().unwrap_or(default);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ok = match mode.as_str() {
        "soak" => runtime.block_on(soak(
            Duration::from_secs(opt("seconds", opt("minutes", 5) * 60)),
            opt("rooms", 4) as usize,
            opt("members", 6) as usize,
            opt("media", 1) == 1,
            opt("rounds", 1) as usize,
        )),
        "storm" => runtime.block_on(storm(
            opt("rooms", 20) as usize,
            opt("per_room", 10) as usize,
            opt("rounds", 3) as usize,
        )),
        _ => {
            eprintln!("usage: circle-soak soak [minutes=5|seconds=N] [rooms=4] [members=6] [media=1] [rounds=1]");
            eprintln!("       circle-soak storm [rooms=20] [per_room=10] [rounds=3]");
            std::process::exit(2);
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(if ok { 0 } else { 1 });
}

// ---------------------------------------------------------------------------------------------
// The server process.

/// Starts `circle` on `listen` (port 0 for any) with the soak's secret, waiting room off and no
/// per-address cap (every client is on 127.0.0.1), and `env`; its log is appended to `log`.
fn start_server(listen: &str, env: &[(&str, &str)], log: PathBuf) -> Res<Server> {
    let mut env = env.to_vec();
    env.extend([
        ("CIRCLE_WAITING_ROOM", "off"),
        ("CIRCLE_MAX_CONNECTIONS_PER_IP", "0"),
    ]);
    // Starting waits for the address; the other worker thread keeps the clients going.
    tokio::task::block_in_place(|| {
        Server::start(&circle_bin(), listen, SECRET, &[], &env, &log).map_err(|e| e.to_string())
    })
}

/// SIGTERM, then waits (bounded) for the exit; true when it exited cleanly in time.
fn terminate(server: &mut Server, within: Duration) -> bool {
    tokio::task::block_in_place(|| server.terminate(within))
}

fn log_has_panic(server: &Server) -> bool {
    std::fs::read_to_string(server.log()).is_ok_and(|l| l.contains("panicked"))
}

#[derive(Debug, Clone, Default)]
struct Sample {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    rooms: u64,
    sessions: u64,
    peers: u64,
    tasks: u64,
}

async fn sample(server: &Server) -> Sample {
    let pid = server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let stats = stats(server.addr).await.unwrap_or(Value::Null);
    let n = |k: &str| stats[k].as_u64().unwrap_or(0);
    Sample {
        rss_kib: field("VmRSS:"),
        threads: field("Threads:"),
        fds,
        rooms: n("rooms"),
        sessions: n("connections"),
        peers: n("peers"),
        tasks: n("tasks"),
    }
}

/// `GET /stats` over a plain socket.
async fn stats(addr: SocketAddr) -> Res<Value> {
    let fetch = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(b"GET /stats HTTP/1.1\r\nhost: soak\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let json = body.split("\r\n\r\n").nth(1).ok_or("no body")?;
        serde_json::from_str(json.trim()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(STEP, fetch)
        .await
        .map_err(|_| "stats timed out".to_owned())?
}

fn print_header() {
    println!(
        "{:>7} {:>9} {:>7} {:>5} {:>5} {:>8} {:>5} {:>6} {:>7} {:>6}",
        "t(s)",
        "rss(KiB)",
        "threads",
        "fds",
        "rooms",
        "sessions",
        "peers",
        "tasks",
        "cycles",
        "errors"
    );
}

fn print_sample(t: Duration, s: &Sample, cycles: u64, errors: u64) {
    println!(
        "{:>7.0} {:>9} {:>7} {:>5} {:>5} {:>8} {:>5} {:>6} {:>7} {:>6}",
        t.as_secs_f64(),
        s.rss_kib,
        s.threads,
        s.fds,
        s.rooms,
        s.sessions,
        s.peers,
        s.tasks,
        cycles,
        errors
    );
}

// ---------------------------------------------------------------------------------------------
// Signalling clients.

async fn connect(url: &str) -> Res<Ws> {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, v: Value) -> Res<()> {
    tokio::time::timeout(STEP, ws.send(Message::text(v.to_string())))
        .await
        .map_err(|_| "send timed out".to_owned())?
        .map_err(|e| format!("send: {e}"))
}

/// The next JSON message; `None` when the socket ended.
async fn recv(ws: &mut Ws) -> Res<Option<Value>> {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(None),
                Some(Ok(_)) => continue,
            }
        }
    };
    tokio::time::timeout(STEP, next)
        .await
        .map_err(|_| "no message in time".to_owned())?
}

/// A signalling participant's state across sockets.
struct Seat {
    resume_token: String,
    last_seq: u64,
}

impl Seat {
    fn saw(&mut self, m: &Value) {
        if let Some(seq) = m["seq"].as_u64() {
            self.last_seq = self.last_seq.max(seq);
        }
    }
}

/// Reads until a message passes `check`, keeping `last_seq`; an error it does not expect fails.
async fn until(ws: &mut Ws, seat: &mut Seat, check: impl Fn(&Value) -> bool) -> Res<Value> {
    loop {
        let m = recv(ws).await?.ok_or("the socket ended")?;
        seat.saw(&m);
        if check(&m) {
            return Ok(m);
        }
        if m["type"] == "error" && m["code"] != "rate_limited" {
            return Err(format!("server error: {}", m["code"]));
        }
    }
}

/// Keeps a joined session, noting what it sees, until `stop` (then it leaves: true) or the
/// socket drops (false).
async fn hold(ws: &mut Ws, seat: &mut Seat, stop: &tokio_util::sync::CancellationToken) -> bool {
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                let _ = send(ws, json!({"type":"leave"})).await;
                return true;
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(m) = serde_json::from_str::<Value>(t.as_str()) {
                        seat.saw(&m);
                    }
                }
                Some(Ok(_)) => {}
                _ => return false,
            },
        }
    }
}

async fn hello(url: &str, token: &str) -> Res<(Ws, Seat)> {
    let mut ws = connect(url).await?;
    send(&mut ws, json!({"type":"hello","protocol":1,"token": token})).await?;
    let mut seat = Seat {
        resume_token: String::new(),
        last_seq: 0,
    };
    let welcome = until(&mut ws, &mut seat, |m| m["type"] == "welcome").await?;
    seat.resume_token = welcome["resume_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((ws, seat))
}

/// Sends a request and waits for its answer: `ok`, or `rate_limited` (a legitimate answer to a
/// burst of reactions); any other error fails the cycle.
async fn request(ws: &mut Ws, seat: &mut Seat, id: u32, mut v: Value) -> Res<()> {
    v["id"] = json!(id);
    send(ws, v).await?;
    let answer = until(ws, seat, |m| {
        (m["type"] == "ok" || m["type"] == "error") && m["id"] == id
    })
    .await?;
    if answer["type"] == "error" && answer["code"] != "rate_limited" {
        return Err(format!("refused: {}", answer["code"]));
    }
    Ok(())
}

/// A small deterministic generator: the runs are repeatable and need no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One member's life: join, act, drop and resume, then leave or vanish.
async fn member_cycle(url: &str, token: &str, rng: &mut Rng) -> Res<()> {
    let at = |step: &'static str| move |e: String| format!("{step}: {e}");
    let (mut ws, mut seat) = hello(url, token).await.map_err(at("hello"))?;
    request(
        &mut ws,
        &mut seat,
        1,
        json!({"type":"set_media","audio":true,"video":true}),
    )
    .await
    .map_err(at("set_media"))?;
    for (i, kind) in ["heart", "applause", "support"].into_iter().enumerate() {
        request(
            &mut ws,
            &mut seat,
            2 + i as u32,
            json!({"type":"react","kind": kind}),
        )
        .await
        .map_err(at("react"))?;
    }
    request(
        &mut ws,
        &mut seat,
        5,
        json!({"type":"raise_hand","note":"soak"}),
    )
    .await
    .map_err(at("raise_hand"))?;
    tokio::time::sleep(Duration::from_millis(200 + rng.below(800))).await;
    request(&mut ws, &mut seat, 6, json!({"type":"lower_hand"}))
        .await
        .map_err(at("lower_hand"))?;
    // The network drops: no close frame, then a resume on a new socket.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
    let mut ws = connect(url).await.map_err(at("reconnect"))?;
    send(
        &mut ws,
        json!({"type":"resume","protocol":1,"resume_token": seat.resume_token,"last_seq": seat.last_seq}),
    )
    .await
    .map_err(at("resume"))?;
    request(&mut ws, &mut seat, 7, json!({"type":"ping"}))
        .await
        .map_err(at("ping after resume"))?;
    match rng.below(4) {
        // Vanish: the grace runs out on the server.
        0 => drop(ws),
        _ => {
            send(&mut ws, json!({"type":"leave"}))
                .await
                .map_err(at("leave"))?;
            // The server closes with 1000 after `leave`.
            while recv(&mut ws)
                .await
                .map_err(at("close after leave"))?
                .is_some()
            {}
        }
    }
    Ok(())
}

/// A facilitator that stays for the whole run, reading everything, so the room lives.
async fn facilitator(url: String, token: String, stop: tokio_util::sync::CancellationToken) {
    while !stop.is_cancelled() {
        let Ok((mut ws, mut seat)) = hello(&url, &token).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if hold(&mut ws, &mut seat, &stop).await {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Soak.

#[derive(Default)]
struct Counters {
    cycles: AtomicU64,
    errors: AtomicU64,
    media_cycles: AtomicU64,
    media_errors: AtomicU64,
}

async fn soak(
    duration: Duration,
    rooms: usize,
    members: usize,
    media: bool,
    rounds: usize,
) -> bool {
    let log = std::env::temp_dir().join(format!("circle-soak-{}.log", std::process::id()));
    let mut server = match start_server(
        "127.0.0.1:0",
        &[("CIRCLE_RESUME_GRACE", "5s"), ("CIRCLE_LOG", "warn")],
        log.clone(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    println!(
        "soak: {rooms} rooms, {members} signalling members each, media {}, {rounds} round(s) of {} s \
         on one server process; server log {}",
        if media { "on" } else { "off" },
        duration.as_secs(),
        log.display()
    );
    let keys = Minter::new(SECRET).lasting(TOKEN_LIFETIME);
    let started = Instant::now();
    let baseline = sample(&server).await;
    print_header();
    print_sample(Duration::ZERO, &baseline, 0, 0);
    let mut ok = true;
    let mut after_rounds = Vec::new();
    for round in 1..=rounds {
        let (settled, clean) =
            soak_round(&server, &keys, started, duration, rooms, members, media).await;
        println!("after round {round}, with everyone gone:");
        print_sample(started.elapsed(), &settled, 0, 0);
        ok &= clean;
        after_rounds.push(settled);
    }
    println!("summary (baseline, then after each round with the server empty):");
    let row = |name: &str, f: &dyn Fn(&Sample) -> u64| {
        let after: Vec<u64> = after_rounds.iter().map(f).collect();
        println!(
            "{name:>9}: baseline {:>7}  after rounds {after:?}",
            f(&baseline)
        );
    };
    row("rss(KiB)", &|s| s.rss_kib);
    row("fds", &|s| s.fds);
    row("threads", &|s| s.threads);
    row("tasks", &|s| s.tasks);
    row("sessions", &|s| s.sessions);
    row("peers", &|s| s.peers);
    row("rooms", &|s| s.rooms);
    let clean = terminate(&mut server, Duration::from_secs(15));
    let panicked = log_has_panic(&server);
    println!("server exited cleanly on SIGTERM: {clean}; panic in its log: {panicked}");
    ok && clean && !panicked
}

/// One round of load; returns the sample once everyone has gone and whether the server
/// emptied completely (no room, session or peer left).
async fn soak_round(
    server: &Server,
    keys: &Minter,
    started: Instant,
    duration: Duration,
    rooms: usize,
    members: usize,
    media: bool,
) -> (Sample, bool) {
    let url = server.url();
    let counters = Arc::new(Counters::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let round_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..rooms {
        let room = format!("soak-{r}");
        tasks.spawn(facilitator(
            url.clone(),
            keys.token(&room, "fac", Role::Facilitator),
            stop.clone(),
        ));
        for m in 0..members {
            let (url, stop, counters) = (url.clone(), stop.clone(), counters.clone());
            let token = keys.token(&room, &format!("m{m}"), Role::Member);
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((r * 131 + m) as u64 + 1));
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    match member_cycle(&url, &token, &mut rng).await {
                        Ok(()) => counters.cycles.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("member cycle failed: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            counters.errors.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            });
        }
        if media {
            tasks.spawn(media_loop(
                url.clone(),
                keys.clone(),
                room,
                stop.clone(),
                counters.clone(),
            ));
        }
    }

    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    while round_start.elapsed() < duration {
        tick.tick().await;
        let s = sample(server).await;
        let cycles =
            counters.cycles.load(Ordering::Relaxed) + counters.media_cycles.load(Ordering::Relaxed);
        let errors =
            counters.errors.load(Ordering::Relaxed) + counters.media_errors.load(Ordering::Relaxed);
        print_sample(started.elapsed(), &s, cycles, errors);
    }
    stop.cancel();
    // Everyone leaves; bounded, since a stuck client must not hang the run.
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    // Those who vanished time out after the 5 s grace; then the rooms close.
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    let mut settled = sample(server).await;
    while Instant::now() < settle_deadline && (settled.rooms > 0 || settled.peers > 0) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        settled = sample(server).await;
    }
    println!(
        "round: {} signalling cycles ({} failed), {} media cycles ({} failed)",
        counters.cycles.load(Ordering::Relaxed),
        counters.errors.load(Ordering::Relaxed),
        counters.media_cycles.load(Ordering::Relaxed),
        counters.media_errors.load(Ordering::Relaxed)
    );
    let empty = settled.sessions == 0 && settled.peers == 0 && settled.rooms == 0;
    (settled, empty)
}

/// A room's media: an anchor publishes throughout; a churner joins, receives, drops its socket,
/// resumes with ICE restarts, and leaves, over and over. Browser helpers panic on a failed
/// wait, so each cycle runs as its own task and a panic counts as a failed cycle.
async fn media_loop(
    url: String,
    keys: Minter,
    room_id: String,
    stop: tokio_util::sync::CancellationToken,
    counters: Arc<Counters>,
) {
    let mut tokens = BTreeMap::new();
    for id in ["anchor", "churn"] {
        tokens.insert(
            id.to_owned(),
            (keys.token(&room_id, id, Role::Member), Role::Member),
        );
    }
    let room = ServerRoom::over_url(url, tokens);
    let anchor = {
        let room = room.clone();
        match tokio::spawn(async move { Browser::join(&room, "anchor", true).await }).await {
            Ok(b) => b,
            Err(_) => {
                counters.media_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    };
    while !stop.is_cancelled() {
        let room2 = room.clone();
        let cycle = tokio::spawn(async move {
            let churn = Browser::join(&room2, "churn", true).await;
            let n = churn.wait_packets("anchor", "audio", 25).await.count();
            room2.drop_session("churn").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            room2.resume_session("churn").await;
            churn.restart_publish_ice().await;
            churn.wait_packets("anchor", "audio", n + 50).await;
            churn.close().await;
            room2.remove("churn").await;
        });
        match tokio::time::timeout(Duration::from_secs(60), cycle).await {
            Ok(Ok(())) => counters.media_cycles.fetch_add(1, Ordering::Relaxed),
            _ => counters.media_errors.fetch_add(1, Ordering::Relaxed),
        };
        // Let the leave land before the same id joins again.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anchor.close().await;
    room.remove("anchor").await;
}

// ---------------------------------------------------------------------------------------------
// Storm.

/// One participant that stays in its room, and when the socket ends comes back: `resume`
/// first, `hello` when that is refused, with jittered exponential backoff between attempts.
/// Counts each (re)join in `joined`, and reports the moment of its latest join.
async fn stormer(
    url: String,
    token: String,
    joined: Arc<AtomicUsize>,
    last_join: Arc<AtomicU64>,
    epoch: Instant,
    stop: tokio_util::sync::CancellationToken,
    seed: u64,
) {
    let mut rng = Rng(seed | 1);
    let mut seat: Option<Seat> = None;
    let mut backoff = Duration::from_millis(100);
    while !stop.is_cancelled() {
        let attempt = async {
            if let Some(old) = seat.take() {
                let mut ws = connect(&url).await?;
                send(
                    &mut ws,
                    json!({"type":"resume","protocol":1,"resume_token": old.resume_token,"last_seq": old.last_seq}),
                )
                .await?;
                let mut fresh = Seat {
                    resume_token: old.resume_token.clone(),
                    last_seq: old.last_seq,
                };
                match until(&mut ws, &mut fresh, |m| {
                    m["type"] == "welcome" || m["type"] == "pong"
                })
                .await
                {
                    Ok(_) => return Ok((ws, fresh)),
                    Err(e) if e.contains("unauthorized") => {}
                    Err(e) => return Err(e),
                }
            }
            hello(&url, &token).await
        };
        match attempt.await {
            Ok((mut ws, s)) => {
                backoff = Duration::from_millis(100);
                joined.fetch_add(1, Ordering::SeqCst);
                last_join.fetch_max(epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
                let mut s = s;
                if hold(&mut ws, &mut s, &stop).await {
                    return;
                }
                seat = Some(s);
            }
            Err(_) => {
                // Full jitter: anywhere up to the current backoff, which doubles to 2 s.
                let wait = rng.below(backoff.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(wait)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        }
        // The socket ended: a first retry after a short jittered pause.
        tokio::time::sleep(Duration::from_millis(rng.below(250))).await;
    }
}

async fn storm(rooms: usize, per_room: usize, rounds: usize) -> bool {
    let total = rooms * per_room;
    let log = std::env::temp_dir().join(format!("circle-storm-{}.log", std::process::id()));
    let env = [("CIRCLE_LOG", "warn")];
    let mut server = match start_server("127.0.0.1:0", &env, log.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return false;
        }
    };
    let listen = server.addr.to_string();
    let url = server.url();
    println!(
        "storm: {total} signalling-only participants in {rooms} rooms, {rounds} restarts; server log {}",
        log.display()
    );
    let keys = Minter::new(SECRET).lasting(TOKEN_LIFETIME);
    let joined = Arc::new(AtomicUsize::new(0));
    let last_join = Arc::new(AtomicU64::new(0));
    let epoch = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for r in 0..rooms {
        for p in 0..per_room {
            let (sub, role) = if p == 0 {
                ("fac".to_owned(), Role::Facilitator)
            } else {
                (format!("m{p}"), Role::Member)
            };
            tasks.spawn(stormer(
                url.clone(),
                keys.token(&format!("storm-{r}"), &sub, role),
                joined.clone(),
                last_join.clone(),
                epoch,
                stop.clone(),
                (r * 1000 + p) as u64 + 7,
            ));
        }
    }
    let wait_all = |target: usize, limit: Duration| {
        let joined = joined.clone();
        async move {
            let deadline = Instant::now() + limit;
            while joined.load(Ordering::SeqCst) < target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            joined.load(Ordering::SeqCst) >= target
        }
    };
    let t = Instant::now();
    let mut ok = wait_all(total, Duration::from_secs(60)).await;
    println!(
        "initial join: {}/{total} in {} ms",
        joined.load(Ordering::SeqCst),
        t.elapsed().as_millis()
    );
    let s = sample(&server).await;
    println!(
        "server with everyone in: rss {} KiB, fds {}, sessions {}, rooms {}, tasks {}",
        s.rss_kib, s.fds, s.sessions, s.rooms, s.tasks
    );
    let mut times = Vec::new();
    for round in 1..=rounds {
        let before = joined.load(Ordering::SeqCst);
        let t_stop = Instant::now();
        let clean = terminate(&mut server, Duration::from_secs(20));
        let stop_ms = t_stop.elapsed().as_millis();
        let panicked = log_has_panic(&server);
        let restarted = Instant::now();
        server = match start_server(&listen, &env, log.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("restart failed: {e}");
                return false;
            }
        };
        let listening_ms = restarted.elapsed().as_millis();
        let back = wait_all(before + total, Duration::from_secs(60)).await;
        let last = Duration::from_millis(last_join.load(Ordering::SeqCst));
        let all_back_ms = (epoch + last)
            .saturating_duration_since(restarted)
            .as_millis();
        let s = sample(&server).await;
        println!(
            "round {round}: SIGTERM to exit {stop_ms} ms (clean: {clean}, panic: {panicked}); \
             restart to listening {listening_ms} ms; {}/{total} back, the last {all_back_ms} ms \
             after the restart began; sessions {}, rooms {}",
            joined.load(Ordering::SeqCst) - before,
            s.sessions,
            s.rooms
        );
        ok &=
            clean && !panicked && back && s.sessions as usize == total && s.rooms as usize == rooms;
        times.push(all_back_ms);
    }
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let clean = terminate(&mut server, Duration::from_secs(20));
    let panicked = log_has_panic(&server);
    times.sort_unstable();
    println!(
        "all back within (ms, per round, sorted): {times:?}; final exit clean: {clean}, panic in log: {panicked}"
    );
    ok && clean && !panicked
}
