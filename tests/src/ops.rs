//! Test support for the clinic's side of Circle: an admin API client with a key, a real webhook
//! receiver that records what it is sent (and can refuse, hang or be down), and the stores a
//! test runs against (a SQLite file of its own, or a fresh PostgreSQL database).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::postgres::Postgres;

/// An API key as long as the server demands.
pub const API_KEY: &str = "test-api-key-0123456789abcdef-0123456789";
/// The webhook signing key of the tests.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// The admin API of a server, over real HTTP.
#[derive(Clone)]
pub struct Api {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

/// An answer: its status and its body (JSON when it is JSON, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub content_type: String,
}

impl Api {
    pub fn new(addr: SocketAddr, key: Option<&str>) -> Self {
        Self {
            base: format!("http://{addr}"),
            key: key.map(str::to_owned),
            http: reqwest::Client::new(),
        }
    }

    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request.send().await.expect("the API answers")).await
    }

    /// Sends `body` as it is, with the JSON content type (for malformed and oversized bodies).
    pub async fn call_raw(&self, method: &str, path: &str, body: Vec<u8>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        Self::answer(request.send().await.expect("the API answers")).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            text,
            content_type,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None).await
    }

    /// A session's record, once it has the wanted `end_reason` (records are written a moment
    /// after the room tells them).
    pub async fn session_when(&self, id: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            let answer = self.get(&format!("/api/v1/sessions/{id}")).await;
            if answer.status == 200 && check(&answer.body) {
                return answer.body;
            }
            last = answer.body;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session record never became as expected; last: {last}");
    }
}

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Accept,
    /// 503: a receiver that is up but failing.
    Fail,
    /// Never answers.
    Hang,
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub body: String,
    pub json: Value,
    pub signature: String,
    pub accepted: bool,
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

/// A real HTTP server on 127.0.0.1 that takes webhooks.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    task: Option<JoinHandle<()>>,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let shared = Shared {
            mode: Arc::new(Mutex::new(Mode::Accept)),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        Self::serve(addr, shared).await
    }

    async fn serve(addr: SocketAddr, shared: Shared) -> Self {
        let listener = TcpListener::bind(addr).await.expect("receiver binds");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            shared,
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Stops listening: the server's attempts meet a refused connection.
    pub fn go_down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Listens again on the same address, keeping what it saw.
    pub async fn come_back(&mut self) {
        self.go_down();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let again = Self::serve(self.addr, self.shared.clone()).await;
        let mut again = again;
        self.task = again.task.take();
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The accepted events, in the order they arrived.
    pub fn accepted(&self) -> Vec<Value> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.accepted)
            .map(|d| d.json)
            .collect()
    }

    /// Waits until an accepted event passes `check`.
    pub async fn wait_for(&self, check: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..600 {
            if let Some(found) = self.accepted().into_iter().find(|e| check(e)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no such webhook arrived; got: {:?}",
            self.accepted()
                .iter()
                .map(|e| e["event"].clone())
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.go_down();
    }
}

async fn receive(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mode = *shared.mode.lock().unwrap();
    if mode == Mode::Hang {
        std::future::pending::<()>().await;
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let accepted = mode == Mode::Accept;
    shared.seen.lock().unwrap().push(Delivery {
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        body: text,
        signature: headers
            .get("circle-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        accepted,
    });
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Checks a `circle-signature` header against the raw body, as a receiver would.
pub fn signature_verifies(header: &str, body: &str, secret: &str) -> bool {
    use hmac::{Hmac, Mac};
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(expected) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

/// Where a test's records live.
#[derive(Debug, Clone)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

/// A database URL of the kind asked for, empty and this test's own.
pub fn database(kind: &StoreKind) -> String {
    match kind {
        StoreKind::Sqlite => format!(
            "sqlite://{}/circle-ops-test-{}-{}.db",
            std::env::temp_dir().display(),
            std::process::id(),
            rand_suffix()
        ),
        StoreKind::Postgres => Postgres::shared().fresh_database(),
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Every row of every records table, as text: what a privacy check searches.
pub async fn dump(url: &str) -> String {
    use sqlx::{Column, Row};
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("the records database opens");
    let mut out = String::new();
    for table in [
        "sessions",
        "attendees",
        "intervals",
        "audit",
        "room_settings",
        "webhook_outbox",
    ] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&pool)
            .await
            .expect("table reads");
        for row in rows {
            for (i, column) in row.columns().iter().enumerate() {
                let value: Option<String> = row
                    .try_get::<Option<String>, _>(i)
                    .ok()
                    .flatten()
                    .or_else(|| {
                        row.try_get::<Option<i64>, _>(i)
                            .ok()
                            .flatten()
                            .map(|n| n.to_string())
                    });
                out.push_str(&format!("{table}.{}={:?}\n", column.name(), value));
            }
        }
    }
    pool.close().await;
    out
}
