//! Reading a real server's Prometheus metrics in tests: a server started with its context in
//! hand (the way to its metrics until `/metrics` is routed), and the exposition parsed by a real
//! parser into plain samples keyed `name{label="value",…}`, labels sorted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use circle_server::context::Context;
use circle_server::Settings;
use prometheus_parse::{Scrape, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{SECRET, WAIT};

/// The plain samples of an exposition (histogram buckets left out; their `_count` and `_sum`
/// are in).
pub fn samples(text: &str) -> HashMap<String, f64> {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("metrics parse");
    let mut out = HashMap::new();
    for sample in scrape.samples {
        let v = match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => continue,
        };
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        labels.sort();
        let key = if labels.is_empty() {
            sample.metric
        } else {
            format!("{}{{{}}}", sample.metric, labels.join(","))
        };
        out.insert(key, v);
    }
    out
}

/// A real server whose context the test keeps, with [`SECRET`] as its token secret.
pub struct MeteredServer {
    pub context: Arc<Context>,
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MeteredServer {
    pub async fn with(configure: impl FnOnce(&mut Settings)) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = Settings::with_secret(SECRET);
        settings.close_timeout = Duration::from_millis(300);
        configure(&mut settings);
        let shutdown = CancellationToken::new();
        let context = Context::new(settings, shutdown.clone(), TaskTracker::new()).unwrap();
        let operations = circle_server::start_operations(&context).await.unwrap();
        let task = tokio::spawn(circle_server::serve(
            listener,
            context.clone(),
            operations,
            None,
            Duration::from_secs(5),
        ));
        Self {
            context,
            addr,
            shutdown,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The exposition as `/metrics` will serve it.
    pub fn text(&self) -> String {
        self.context.metrics().encode()
    }

    pub fn samples(&self) -> HashMap<String, f64> {
        samples(&self.text())
    }

    /// Scrapes until `check` passes, within [`WAIT`]: rooms count after they answer, so a
    /// client may hear back a moment before the count moves.
    pub async fn until(
        &self,
        check: impl Fn(&HashMap<String, f64>) -> bool,
    ) -> HashMap<String, f64> {
        let reached = tokio::time::timeout(WAIT, async {
            loop {
                let now = self.samples();
                if check(&now) {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        reached.unwrap_or_else(|_| panic!("metrics never got there:\n{}", self.text()))
    }

    /// Scrapes until every `(series, value)` holds.
    pub async fn until_equal(&self, expected: &[(&str, f64)]) -> HashMap<String, f64> {
        self.until(|now| expected.iter().all(|(k, v)| now.get(*k) == Some(v)))
            .await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}
