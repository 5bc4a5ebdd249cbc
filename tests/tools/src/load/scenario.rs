//! Runs of the media scenario against Circle and against the bare relay, and the capacity search
//! built on them; each run is bounded in time and reports what it measured.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::media::{join, member_role, Metrics, Participant};
use super::relay::RelayProcess;
use super::server::Circle;
use super::{cpu_seconds, percentiles};

#[derive(Clone, Debug)]
pub struct MediaOptions {
    pub rooms: usize,
    pub room_size: usize,
    pub warmup: Duration,
    pub window: Duration,
    /// Run the scripted part (stick mode, hands, grants, reactions) after the window.
    pub script: bool,
    pub grants: usize,
}

/// What one media run measured.
#[derive(Debug, Default, Clone)]
pub struct MediaResult {
    pub participants: usize,
    pub connected: bool,
    pub setup_seconds: f64,
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub server_cpu: f64,
    pub tool_cpu: f64,
    pub window_seconds: f64,
    /// Late joiner's hello → first video packet / first keyframe, per publisher (ms).
    pub first_video: (f64, f64, f64),
    pub first_keyframe: (f64, f64, f64),
    pub first_video_missing: usize,
    /// grant_floor sent → the holder's first audio packet, per subscriber (ms).
    pub grant_to_audio: (f64, f64, f64),
    pub grant_samples: usize,
    pub grant_missing: usize,
    pub plis: u64,
    pub reactions_sent: u64,
}

impl MediaResult {
    pub fn delivery(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }

    pub fn cpu_per_received(&self) -> f64 {
        self.server_cpu / self.sent.max(1) as f64
    }

    pub fn cpu_per_copy(&self) -> f64 {
        self.server_cpu / self.delivered.max(1) as f64
    }
}

fn room_id(r: usize) -> String {
    format!("media-{r}")
}

fn pid(r: usize, i: usize) -> String {
    if i == 0 {
        format!("r{r}-f")
    } else {
        format!("r{r}-m{i}")
    }
}

async fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok()
}

/// Media through Circle: `rooms` rooms of `room_size` publishing participants; the last one of
/// each room joins once the others are connected, to time a new subscription.
pub async fn circle_media(circle: &Circle, opts: &MediaOptions) -> MediaResult {
    let metrics = Arc::new(Metrics::default());
    let started = Instant::now();
    let url = circle.url();
    let gate = Arc::new(Semaphore::new(8));
    let mut result = MediaResult {
        participants: opts.rooms * opts.room_size,
        ..Default::default()
    };

    let join_one = |r: usize, i: usize| {
        let token = circle.token(&room_id(r), &pid(r, i), member_role(i));
        let url = url.clone();
        let gate = gate.clone();
        let metrics = metrics.clone();
        let index = (r * opts.room_size + i) as u32;
        tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.ok()?;
            match join(&url, &token, index, pid(r, i), true, metrics).await {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "a participant could not join");
                    None
                }
            }
        })
    };

    let mut rooms: Vec<Vec<Participant>> = (0..opts.rooms).map(|_| Vec::new()).collect();
    let mut tasks = Vec::new();
    for r in 0..opts.rooms {
        for i in 0..opts.room_size - 1 {
            tasks.push((r, join_one(r, i)));
        }
    }
    for (r, t) in tasks {
        if let Ok(Some(p)) = t.await {
            rooms[r].push(p);
        }
    }
    let early: Vec<_> = rooms
        .iter()
        .flatten()
        .map(|p| p.publish_connected.clone())
        .collect();
    wait_until(Duration::from_secs(60), || {
        early.iter().all(|c| *c.borrow())
    })
    .await;

    let mut late = Vec::new();
    for r in 0..opts.rooms {
        late.push((r, join_one(r, opts.room_size - 1)));
    }
    for (r, t) in late {
        if let Ok(Some(p)) = t.await {
            rooms[r].push(p);
        }
    }
    for room in &rooms {
        for p in room {
            p.subscribers
                .store(room.len() as u64 - 1, Ordering::Relaxed);
        }
    }
    let pairs: usize = rooms.iter().map(|r| r.len() * (r.len() - 1)).sum();
    result.connected = wait_until(Duration::from_secs(60), || {
        metrics.first_video.lock().unwrap().len() >= pairs
    })
    .await
        && rooms.iter().all(|r| r.len() == opts.room_size);
    result.setup_seconds = started.elapsed().as_secs_f64();

    // Join → first video, for each late joiner and each publisher it subscribes to.
    {
        let first = metrics.first_video.lock().unwrap();
        let (mut any, mut key) = (Vec::new(), Vec::new());
        for room in &rooms {
            let Some(late) = room.last() else { continue };
            for p in room.iter().filter(|p| p.index != late.index) {
                match first.get(&(late.index, p.index)) {
                    Some((a, k)) => {
                        any.push(a.duration_since(late.joined_at).as_secs_f64() * 1000.0);
                        if let Some(k) = k {
                            key.push(k.duration_since(late.joined_at).as_secs_f64() * 1000.0);
                        }
                    }
                    None => result.first_video_missing += 1,
                }
            }
        }
        result.first_video = percentiles(&mut any);
        result.first_keyframe = percentiles(&mut key);
    }

    tokio::time::sleep(opts.warmup).await;
    let cpu0 = circle.cpu();
    let tool0 = cpu_seconds(std::process::id());
    let t0 = Instant::now();
    metrics.open_window();
    tokio::time::sleep(opts.window).await;
    metrics.close_window();
    let cpu1 = circle.cpu();
    let tool1 = cpu_seconds(std::process::id());
    result.window_seconds = t0.elapsed().as_secs_f64();
    // Packets sent just before the window closed may still be on their way.
    tokio::time::sleep(Duration::from_secs(1)).await;
    result.server_cpu = cpu1 - cpu0;
    result.tool_cpu = tool1 - tool0;
    result.sent = metrics.all_sent();
    result.expected = metrics.all_expected();
    result.delivered = metrics.all_received();
    result.p50_ms = metrics.latency.quantile_ms(0.50);
    result.p99_ms = metrics.latency.quantile_ms(0.99);
    result.max_ms = metrics.latency.max_ms();

    if opts.script {
        script(&rooms, opts, &metrics, &mut result).await;
    }
    result.plis = metrics.plis.load(Ordering::Relaxed);

    let mut closing = Vec::new();
    for p in rooms.into_iter().flatten() {
        closing.push(tokio::spawn(p.close()));
    }
    for c in closing {
        let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
    }
    result
}

/// A session's script: the facilitator switches to stick mode, members raise hands, the stick
/// goes round, and reactions come in bursts. Times grant_floor → the holder's first audio
/// packet at every other participant.
async fn script(
    rooms: &[Vec<Participant>],
    opts: &MediaOptions,
    metrics: &Metrics,
    result: &mut MediaResult,
) {
    for room in rooms {
        room[0].send(json!({"type":"set_floor_mode","mode":"stick"}));
        for m in &room[1..] {
            m.send(json!({"type":"raise_hand","note":"load"}));
        }
    }
    // Let the gate close and the silence pass the onset threshold.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut grants = Vec::new();
    let kinds = ["heart", "applause", "support", "thanks", "me_too", "laugh"];
    for g in 0..opts.grants {
        for room in rooms {
            let members = room.len() - 1;
            if members == 0 {
                continue;
            }
            let holder = &room[1 + g % members];
            room[0].send(json!({"type":"grant_floor","participant": holder.id}));
            grants.push((room, holder.index, Instant::now()));
        }
        // A burst of reactions from every member while the holder speaks.
        for room in rooms {
            for m in &room[1..] {
                for k in 0..3 {
                    m.send(json!({"type":"react","kind": kinds[(g + k) % kinds.len()]}));
                    result.reactions_sent += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let onsets = metrics.onsets.lock().unwrap();
    let mut samples = Vec::new();
    for (room, holder, at) in &grants {
        for s in room.iter().filter(|p| p.index != *holder) {
            let first = onsets
                .iter()
                .filter(|(sub, publ, t)| *sub == s.index && publ == holder && t >= at)
                .map(|(_, _, t)| *t)
                .min()
                .filter(|t| t.duration_since(*at) < Duration::from_millis(1500));
            match first {
                Some(t) => samples.push(t.duration_since(*at).as_secs_f64() * 1000.0),
                None => result.grant_missing += 1,
            }
        }
    }
    result.grant_samples = samples.len();
    result.grant_to_audio = percentiles(&mut samples);
}

/// The same rooms, rates and measurement window through the bare UDP relay.
pub async fn relay_media(opts: &MediaOptions) -> std::io::Result<(MediaResult, f64)> {
    let relay = RelayProcess::start()?;
    super::register_child(relay.pid());
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for r in 0..opts.rooms {
        for i in 0..opts.room_size {
            tasks.push(tokio::spawn(super::relay::participant(
                relay.addr,
                r as u32,
                (r * opts.room_size + i) as u32,
                opts.room_size as u64 - 1,
                metrics.clone(),
                stop.clone(),
            )));
        }
    }
    tokio::time::sleep(opts.warmup + Duration::from_secs(1)).await;
    let cpu0 = cpu_seconds(relay.pid());
    let tool0 = cpu_seconds(std::process::id());
    let t0 = Instant::now();
    metrics.open_window();
    tokio::time::sleep(opts.window).await;
    metrics.close_window();
    let cpu1 = cpu_seconds(relay.pid());
    let tool1 = cpu_seconds(std::process::id());
    let window = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let result = MediaResult {
        participants: opts.rooms * opts.room_size,
        connected: true,
        sent: metrics.all_sent(),
        expected: metrics.all_expected(),
        delivered: metrics.all_received(),
        p50_ms: metrics.latency.quantile_ms(0.50),
        p99_ms: metrics.latency.quantile_ms(0.99),
        max_ms: metrics.latency.max_ms(),
        server_cpu: cpu1 - cpu0,
        tool_cpu: tool1 - tool0,
        window_seconds: window,
        ..Default::default()
    };
    Ok((result, window))
}
