//! The parts of `circle-load`, the benchmark's load tool: the server process it measures, the
//! fake participants, the scenarios, and the tables it prints. Only the binary uses it; nothing
//! here is part of the normal test suite.

pub mod cluster;
pub mod janus;
pub mod media;
pub mod relay;
pub mod scenario;
pub mod server;
pub mod signalling;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Every send time stamped into a payload is nanoseconds since this instant; sender and
/// receiver live in the same process, so one monotonic clock serves both ends.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// Child processes (the server, the relay) that the watchdog kills if a run overstays.
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

pub fn register_child(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

/// Bounds the whole run: after `limit`, kill every child this tool started and exit.
pub fn watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!(
            "circle-load: time limit of {} s reached, stopping",
            limit.as_secs()
        );
        for pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
        std::process::exit(3);
    });
}

/// CPU seconds (user + system) a process has used so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // The command name may contain spaces; the fields after its closing parenthesis do not.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12th and 13th after the name.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Resident memory of a process in bytes, from /proc/PID/status.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A lock-free latency histogram: 10 µs buckets up to 1 s, so that every receiving task can
/// record every packet without contending on a lock.
pub struct Histogram {
    buckets: Vec<AtomicU64>,
    max_us: AtomicU64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 100_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros() as u64;
        let i = ((us / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The upper edge of the bucket holding quantile `q`, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return f64::NAN;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.max_ms()
    }

    pub fn max_ms(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.max_us.store(0, Ordering::Relaxed);
    }
}

/// Exact percentiles of a small sample set (milliseconds).
pub fn percentiles(samples: &mut [f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        samples[(((samples.len() as f64) * q).ceil() as usize).clamp(1, samples.len()) - 1]
    };
    (at(0.50), at(0.99), samples[samples.len() - 1])
}

/// One run's table: printed as Markdown and appended to the report file.
pub struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Table {
        self.rows.push((name.into(), value.into()));
        self
    }

    pub fn render(&self) -> String {
        let mut out = format!("### {}\n\n| measure | value |\n|---|---|\n", self.title);
        for (k, v) in &self.rows {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out
    }

    /// Prints the table and appends it to `file`.
    pub fn emit(&self, file: &Path) {
        let text = self.render();
        println!("\n{text}");
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = writeln!(f, "{text}");
        }
    }
}

pub fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".to_owned()
    } else {
        format!("{v:.2} ms")
    }
}

pub fn us(seconds: f64) -> String {
    if seconds.is_nan() || seconds.is_infinite() {
        "n/a".to_owned()
    } else {
        format!("{:.2} µs", seconds * 1e6)
    }
}
