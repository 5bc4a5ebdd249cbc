//! `circle-load`: the benchmark's load tool. Starts `circle` (and the bare UDP relay) as child
//! processes on loopback, drives them with fake participants, and prints one table per run,
//! also appended to the report file. Every run is bounded by `--time-limit`.

use std::path::PathBuf;
use std::time::Duration;

use circle_tools::load::scenario::{circle_media, relay_media, MediaOptions, MediaResult};
use circle_tools::load::server::Circle;
use circle_tools::load::signalling;
use circle_tools::load::{ms, us, watchdog, Table};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Load tool for Circle: signalling, media, capacity, and a bare UDP relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// The `circle` binary to measure (a release build).
    #[arg(long, default_value = "target/release/circle")]
    circle: PathBuf,
    /// Tables are appended to this file as well as printed.
    #[arg(long, default_value = "bench-report.md")]
    out: PathBuf,
    /// The whole run stops (and kills what it started) after this many seconds.
    #[arg(long, default_value_t = 1800)]
    time_limit: u64,
}

#[derive(clap::Args, Clone)]
struct SignallingArgs {
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// Sessions per signalling room (one facilitator, the rest members).
    #[arg(long, default_value_t = 16)]
    sig_room_size: usize,
    /// Floor-change rounds (every room once per round).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    #[arg(long, default_value_t = 3)]
    reaction_seconds: u64,
}

#[derive(clap::Args, Clone)]
struct MediaArgs {
    #[arg(long, default_value_t = 4)]
    rooms: usize,
    #[arg(long, default_value_t = 8)]
    room_size: usize,
    /// Seconds of steady state measured.
    #[arg(long, default_value_t = 10)]
    window: u64,
    /// Floor grants in the scripted part.
    #[arg(long, default_value_t = 4)]
    grants: usize,
    /// Leave Janus out of the comparison.
    #[arg(long)]
    no_janus: bool,
}

#[derive(clap::Args, Clone)]
struct CapacityArgs {
    /// Room sizes to search, e.g. 8,16.
    #[arg(long, value_delimiter = ',', default_value = "8,16")]
    sizes: Vec<usize>,
    /// Most runs per room size.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Most rooms tried.
    #[arg(long, default_value_t = 16)]
    max_rooms: usize,
    /// Seconds measured per capacity step.
    #[arg(long, default_value_t = 6)]
    cap_window: u64,
    /// The p99 end-to-end latency a passing run must stay under, in ms.
    #[arg(long, default_value_t = 10.0)]
    p99_ms: f64,
    #[arg(long, default_value_t = 0.999)]
    delivery: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Everything: signalling, media side by side with the relay, capacity.
    All {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        signalling: SignallingArgs,
        #[command(flatten)]
        media: MediaArgs,
        #[command(flatten)]
        capacity: CapacityArgs,
    },
    Signalling {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: SignallingArgs,
    },
    /// Circle and the bare relay, the same rooms, one after the other in one run.
    Media {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: MediaArgs,
    },
    Capacity {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: CapacityArgs,
    },
    /// Three nodes on one Redis: relayed against local sessions, and failover runs.
    Cluster {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 24)]
        cluster_rooms: usize,
        #[arg(long, default_value_t = 16)]
        cluster_room_size: usize,
        #[arg(long, default_value_t = 5)]
        cluster_rounds: usize,
        #[arg(long, default_value_t = 5)]
        failovers: usize,
        /// Sessions of the signalling run spread over the three nodes (0 to skip it).
        #[arg(long, default_value_t = 10_000)]
        cluster_sessions: usize,
    },
    /// (internal) the bare UDP relay, run as a child process.
    RelayServer,
    /// (internal) the Janus participants, run inside the clients' network namespace.
    JanusClients {
        #[arg(long)]
        rooms: usize,
        #[arg(long)]
        room_size: usize,
        #[arg(long)]
        window: u64,
        #[arg(long)]
        janus_pid: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Command::RelayServer = cli.command {
        if let Err(e) = circle_tools::load::relay::serve() {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        match cli.command {
            Command::All {
                common,
                signalling,
                media,
                capacity,
            } => {
                watchdog(Duration::from_secs(common.time_limit));
                header(&common);
                run_signalling(&common, &signalling).await;
                run_media(&common, &media).await;
                run_capacity(&common, &capacity).await;
            }
            Command::Signalling { common, args } => {
                watchdog(Duration::from_secs(common.time_limit));
                header(&common);
                run_signalling(&common, &args).await;
            }
            Command::Media { common, args } => {
                watchdog(Duration::from_secs(common.time_limit));
                header(&common);
                run_media(&common, &args).await;
            }
            Command::Capacity { common, args } => {
                watchdog(Duration::from_secs(common.time_limit));
                header(&common);
                run_capacity(&common, &args).await;
            }
            Command::JanusClients {
                rooms,
                room_size,
                window,
                janus_pid,
            } => {
                watchdog(Duration::from_secs(240));
                circle_tools::load::janus::clients(
                    rooms,
                    room_size,
                    Duration::from_secs(window),
                    janus_pid,
                )
                .await;
            }
            Command::Cluster {
                common,
                cluster_rooms,
                cluster_room_size,
                cluster_rounds,
                failovers,
                cluster_sessions,
            } => {
                watchdog(Duration::from_secs(common.time_limit));
                header(&common);
                let opts = circle_tools::load::cluster::Options {
                    rooms: cluster_rooms,
                    room_size: cluster_room_size,
                    rounds: cluster_rounds,
                    failovers,
                };
                circle_tools::load::cluster::relayed_against_local(
                    &common.circle,
                    &opts,
                    &common.out,
                )
                .await;
                let failover = circle_tools::load::cluster::Options {
                    room_size: 8,
                    ..opts
                };
                circle_tools::load::cluster::failover(&common.circle, &failover, &common.out).await;
                if cluster_sessions > 0 {
                    let opts = signalling::Options {
                        sessions: cluster_sessions,
                        room_size: 16,
                        rounds: 5,
                        reaction_seconds: 3,
                    };
                    circle_tools::load::cluster::signalling(&common.circle, &opts, &common.out)
                        .await;
                }
            }
            Command::RelayServer => {}
        }
    });
    // Peer connections' background tasks are not ours to wait for.
    runtime.shutdown_timeout(Duration::from_secs(2));
}

fn header(common: &Common) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut t = Table::new("Machine");
    t.row("cpu", format!("{cores} × {cpu}"))
        .row("load average at start", load.trim().to_owned())
        .row("circle binary", common.circle.display().to_string());
    t.emit(&common.out);
}

fn start_circle(common: &Common, extra: &[&str]) -> Circle {
    let log = common.out.with_extension("circle.log");
    Circle::start(&common.circle, extra, &log).unwrap_or_else(|e| {
        eprintln!(
            "could not start {}: {e} (build it with cargo build --release -p circle-server)",
            common.circle.display()
        );
        std::process::exit(2)
    })
}

async fn run_signalling(common: &Common, args: &SignallingArgs) {
    let rooms = args.sessions.div_ceil(args.sig_room_size);
    let max_rooms = (rooms + 10).to_string();
    let circle = start_circle(common, &["--max-rooms", &max_rooms]);
    signalling::run(
        &circle,
        &signalling::Options {
            sessions: args.sessions,
            room_size: args.sig_room_size,
            rounds: args.rounds,
            reaction_seconds: args.reaction_seconds,
        },
        &common.out,
    )
    .await;
    circle.stop();
}

async fn run_media(common: &Common, args: &MediaArgs) {
    let opts = MediaOptions {
        rooms: args.rooms,
        room_size: args.room_size,
        warmup: Duration::from_secs(2),
        window: Duration::from_secs(args.window),
        script: true,
        grants: args.grants,
    };
    let circle = start_circle(common, &[]);
    let c = circle_media(&circle, &opts).await;
    circle.stop();
    let relay = relay_media(&opts).await;
    let janus = if args.no_janus {
        Err("skipped (--no-janus)".to_owned())
    } else {
        circle_tools::load::janus::compare(&opts, &common.out).await
    };
    let mut t = Table::new(format!(
        "Media: {} rooms of {} (audio + video), {} s window; Circle and the bare UDP relay, same run",
        opts.rooms, opts.room_size, args.window
    ));
    t.row(
        "all subscriptions up",
        format!("{} (setup {:.1} s)", c.connected, c.setup_seconds),
    );
    media_rows(&mut t, "Circle", &c);
    match &relay {
        Ok((r, _)) => {
            media_rows(&mut t, "relay", r);
            t.row(
                "**Circle CPU per forwarded copy ÷ relay's**",
                format!("{:.1}×", c.cpu_per_copy() / r.cpu_per_copy()),
            );
        }
        Err(e) => {
            t.row("relay", format!("failed to run: {e}"));
        }
    }
    match &janus {
        Ok(j) => {
            t.row("Janus: all subscriptions up", j.connected.to_string());
            media_rows(&mut t, "Janus", j);
            t.row(
                "**Circle CPU per forwarded copy ÷ Janus's**",
                format!("{:.2}×", c.cpu_per_copy() / j.cpu_per_copy()),
            );
        }
        Err(e) => {
            t.row("Janus", format!("not measured: {e}"));
        }
    }
    t.row(
        "Circle: late joiner's hello → first video packet p50 / p99 / max",
        triple(c.first_video),
    )
    .row(
        "Circle: late joiner's hello → first keyframe p50 / p99 / max",
        triple(c.first_keyframe),
    )
    .row(
        "Circle: subscriptions with no video",
        c.first_video_missing.to_string(),
    )
    .row(
        "Circle: grant_floor sent → holder's first audio at each subscriber p50 / p99 / max",
        triple(c.grant_to_audio),
    )
    .row(
        "Circle: grant samples / subscribers not reached within 1.5 s",
        format!("{} / {}", c.grant_samples, c.grant_missing),
    )
    .row(
        "Circle: keyframe requests reaching publishers",
        c.plis.to_string(),
    )
    .row(
        "Circle: reactions sent in the script",
        c.reactions_sent.to_string(),
    );
    t.emit(&common.out);
}

fn triple((a, b, c): (f64, f64, f64)) -> String {
    format!("{a:.1} / {b:.1} / {c:.1} ms")
}

fn media_rows(t: &mut Table, who: &str, r: &MediaResult) {
    t.row(
        format!("{who}: packets sent by publishers in the window"),
        format!("{} ({:.0}/s)", r.sent, r.sent as f64 / r.window_seconds),
    )
    .row(
        format!("{who}: copies delivered / expected"),
        format!(
            "{} / {} ({:.3}%)",
            r.delivered,
            r.expected,
            r.delivery() * 100.0
        ),
    )
    .row(
        format!("{who}: end-to-end latency p50 / p99 / max"),
        format!("{} / {} / {}", ms(r.p50_ms), ms(r.p99_ms), ms(r.max_ms)),
    )
    .row(
        format!("{who}: server CPU in the window"),
        format!(
            "{:.2} s ({:.0}% of one core)",
            r.server_cpu,
            r.server_cpu / r.window_seconds * 100.0
        ),
    )
    .row(
        format!("{who}: server CPU per received packet"),
        us(r.cpu_per_received()),
    )
    .row(
        format!("{who}: server CPU per forwarded copy"),
        us(r.cpu_per_copy()),
    )
    .row(
        format!("{who}: load tool CPU in the window"),
        format!(
            "{:.2} s ({:.0}% of one core)",
            r.tool_cpu,
            r.tool_cpu / r.window_seconds * 100.0
        ),
    );
}

async fn run_capacity(common: &Common, args: &CapacityArgs) {
    for &size in &args.sizes {
        let mut t = Table::new(format!(
            "Capacity: {size}-person audio+video rooms (pass: delivery ≥ {:.1}%, end-to-end p99 < {} ms)",
            args.delivery * 100.0,
            args.p99_ms
        ));
        let mut best = 0usize;
        // The search follows delivery first, so that the table also shows where forwarding
        // itself gives out; the latency bound is judged on every step it visits, and the steps
        // left over then narrow down the largest count that meets both.
        let mut best_both = 0usize;
        let mut worst_fail = args.max_rooms + 1;
        let mut worst_both = args.max_rooms + 1;
        let mut rooms = 1usize;
        for _ in 0..args.steps {
            if rooms == 0 {
                break;
            }
            let opts = MediaOptions {
                rooms,
                room_size: size,
                warmup: Duration::from_secs(2),
                window: Duration::from_secs(args.cap_window),
                script: false,
                grants: 0,
            };
            let circle = start_circle(common, &[]);
            let r = circle_media(&circle, &opts).await;
            circle.stop();
            let delivered = r.connected && r.delivery() >= args.delivery;
            let pass = delivered && r.p99_ms < args.p99_ms;
            // The relay with the same rooms, right after: on a shared machine its p99 is the
            // floor that co-tenants' load puts under any latency measured here.
            let relay = match relay_media(&opts).await {
                Ok((x, _)) => format!(
                    "relay at the same step: delivery {:.3}%, p99 {}",
                    x.delivery() * 100.0,
                    ms(x.p99_ms)
                ),
                Err(e) => format!("relay failed: {e}"),
            };
            t.row(
                format!("{rooms} rooms ({} participants)", rooms * size),
                format!(
                    "{}: delivery {:.3}%, p99 {}, server CPU {:.0}%, load tool CPU {:.0}% of one core, subscriptions up: {}; {relay}",
                    if pass {
                        "pass"
                    } else if delivered {
                        "FAIL (latency)"
                    } else {
                        "FAIL (delivery)"
                    },
                    r.delivery() * 100.0,
                    ms(r.p99_ms),
                    r.server_cpu / r.window_seconds.max(1e-9) * 100.0,
                    r.tool_cpu / r.window_seconds.max(1e-9) * 100.0,
                    r.connected
                ),
            );
            if pass {
                best_both = best_both.max(rooms);
            } else {
                worst_both = worst_both.min(rooms);
            }
            if delivered {
                best = best.max(rooms);
            } else {
                worst_fail = worst_fail.min(rooms);
            }
            rooms = next_capacity_step(args.max_rooms, best, worst_fail, best_both, worst_both);
            // Let the sockets of the last run close before the next one starts.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        t.row(
            "**largest passing (delivery and p99)**",
            format!("{best_both} rooms of {size}"),
        )
        .row(
            "largest with delivery alone",
            format!("{best} rooms of {size} (of the steps tried)"),
        );
        t.emit(&common.out);
    }
}

/// The next room count to try, or 0 when the search is over: double until delivery fails (or
/// the cap), bisect between the last delivering count and the first failing one, then bisect
/// the same way for delivery and latency together.
fn next_capacity_step(
    max_rooms: usize,
    best: usize,
    worst_fail: usize,
    best_both: usize,
    worst_both: usize,
) -> usize {
    if worst_fail > max_rooms && best < max_rooms {
        // Every step so far delivered, so the last one was `best`.
        (best * 2).min(max_rooms)
    } else if worst_fail - best > 1 {
        (best + worst_fail) / 2
    } else if worst_both - best_both > 1 {
        (best_both + worst_both) / 2
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::next_capacity_step;

    #[test]
    fn capacity_search_doubles_then_bisects_delivery_then_latency() {
        // 1, 2, 4 pass everything; 8 delivers but misses latency; 12 (the cap) delivers.
        assert_eq!(next_capacity_step(12, 1, 13, 1, 13), 2);
        assert_eq!(next_capacity_step(12, 4, 13, 4, 13), 8);
        assert_eq!(next_capacity_step(12, 8, 13, 4, 8), 12);
        // Delivery holds up to the cap: narrow the latency bound between 4 and 8.
        assert_eq!(next_capacity_step(12, 12, 13, 4, 8), 6);
        assert_eq!(next_capacity_step(12, 12, 13, 6, 8), 7);
        assert_eq!(next_capacity_step(12, 12, 13, 7, 8), 0);
        // Delivery fails at 8: bisect delivery first.
        assert_eq!(next_capacity_step(12, 4, 8, 2, 4), 6);
        assert_eq!(next_capacity_step(12, 6, 8, 2, 4), 7);
        assert_eq!(next_capacity_step(12, 7, 8, 2, 4), 3);
        // Nothing passes at all.
        assert_eq!(next_capacity_step(12, 0, 1, 0, 1), 0);
    }
}
