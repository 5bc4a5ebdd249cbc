//! Test support: starts the real server on 127.0.0.1:0 and talks to it with real WebSocket
//! clients that record every frame they receive.

pub mod browser;
pub mod metrics;
pub mod ops;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod token;

use std::time::Duration;

use circle_server::{RunningServer, Settings};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use token::Minter;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub use circle_protocol::Role;

/// The token secret of every [`TestServer`]: as long as the server demands (32 bytes or more).
pub const SECRET: &str = "test-secret-do-not-use-anywhere-else";

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub server: RunningServer,
    tokens: Minter,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::with_secret(SECRET);
        settings.room.reaction_window_ms = 300;
        settings.close_timeout = Duration::from_millis(300);
        configure(&mut settings);
        let server = RunningServer::start("127.0.0.1:0".parse().unwrap(), settings)
            .await
            .expect("server starts");
        Self {
            server,
            tokens: Minter::new(SECRET),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.server.addr)
    }

    /// The admin API, with the tests' key ([`ops::API_KEY`]; the server must be given it).
    pub fn api(&self) -> ops::Api {
        ops::Api::new(self.server.addr, Some(ops::API_KEY))
    }

    pub fn token(&self, room: &str, sub: &str, role: Role) -> String {
        self.tokens.token(room, sub, role)
    }

    pub async fn connect(&self) -> Client {
        Client::connect(&self.url()).await
    }

    /// A new connection that sends `resume` with `token`, having seen up to `last_seq`.
    pub async fn resume(&self, token: impl Into<Value>, last_seq: u64) -> Client {
        let token: Value = token.into();
        let mut c = self.connect().await;
        c.send(json!({"type":"resume","protocol":1,"resume_token": token,"last_seq": last_seq}))
            .await;
        c
    }

    /// `GET /stats`, parsed.
    pub async fn stats(&self) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect(self.server.addr).await.unwrap();
        tcp.write_all(b"GET /stats HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body.trim()).unwrap()
    }

    /// Polls `/stats` until `check` passes, within [`WAIT`].
    pub async fn stats_until(&self, check: impl Fn(&Value) -> bool) -> Value {
        tokio::time::timeout(WAIT, async {
            loop {
                let v = self.stats().await;
                if check(&v) {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("stats reached the expected counts")
    }

    /// Joins and, for a facilitator or an auto-admitted room, waits for `welcome`.
    pub async fn join(&self, room: &str, sub: &str, role: Role) -> Client {
        let mut c = self.connect().await;
        c.send(json!({"type":"hello","protocol":1,"token": self.token(room, sub, role)}))
            .await;
        let first = c.recv().await;
        assert!(
            first["type"] == "welcome" || first["type"] == "waiting",
            "{sub} could not join: {first}"
        );
        c.id = sub.to_owned();
        c
    }

    /// A facilitator `f` and admitted members, with every admission's events consumed.
    pub async fn group(&self, room: &str, members: &[&str]) -> (Client, Vec<Client>) {
        let mut f = self.join(room, "f", Role::Facilitator).await;
        let mut joined: Vec<Client> = Vec::new();
        for m in members {
            let mut c = self.join(room, m, Role::Member).await;
            f.recv_type("waiting_room").await;
            f.request(json!({"type":"admit","participant": m}))
                .await
                .ok();
            c.recv_type("welcome").await;
            for other in joined.iter_mut() {
                other.recv_type("participant_joined").await;
            }
            joined.push(c);
        }
        f.drain().await;
        for c in joined.iter_mut() {
            c.drain().await;
        }
        (f, joined)
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// What a socket ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Closed(u16),
    /// The connection dropped without a close frame.
    Dropped,
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every message received, in order.
    pub log: Vec<Value>,
    /// How much of `log` the test has consumed with `recv`/`recv_type`.
    cursor: usize,
    next_id: u32,
    pub id: String,
}

pub struct Reply(pub Value);

/// The participant ids of a facilitator's `floor.queue`, in order.
pub fn queue_ids(floor: &Value) -> Vec<Value> {
    floor["queue"]
        .as_array()
        .expect("a facilitator's floor carries the queue")
        .iter()
        .map(|e| e["participant"].clone())
        .collect()
}

impl Reply {
    pub fn ok(self) -> Value {
        assert_eq!(self.0["type"], "ok", "expected ok, got {}", self.0);
        self.0
    }

    pub fn code(&self) -> &str {
        assert_eq!(self.0["type"], "error", "expected an error, got {}", self.0);
        self.0["code"].as_str().unwrap()
    }
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        Self::try_connect(url).await.expect("connect")
    }

    /// A connection, or why the server would not take it (a 429 over the per-address cap).
    pub async fn try_connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self {
            ws,
            log: Vec::new(),
            cursor: 0,
            next_id: 1,
            id: String::new(),
        })
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// The next message not yet consumed (including ones logged while awaiting a reply), or a
    /// panic after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        if self.cursor < self.log.len() {
            self.cursor += 1;
            return self.log[self.cursor - 1].clone();
        }
        match tokio::time::timeout(WAIT, self.next()).await {
            Ok(Some(v)) => {
                self.cursor = self.log.len();
                v
            }
            Ok(None) => panic!("{}: socket ended while waiting for a message", self.id),
            Err(_) => panic!(
                "{}: no message within {WAIT:?}; log: {:?}",
                self.id, self.log
            ),
        }
    }

    async fn next(&mut self) -> Option<Value> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("server sent JSON");
                    self.log.push(v.clone());
                    return Some(v);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next message of this type, skipping (but logging) others.
    pub async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// The next message of this type whose `field` equals `value`.
    pub async fn recv_with(&mut self, ty: &str, field: &str, value: Value) -> Value {
        loop {
            let v = self.recv_type(ty).await;
            if v[field] == value {
                return v;
            }
        }
    }

    /// The next `participant_updated` about `who` whose connection is `state`.
    pub async fn recv_connection(&mut self, who: &str, state: &str) -> Value {
        loop {
            let v = self.recv_type("participant_updated").await;
            if v["participant"]["id"] == who && v["participant"]["connection"] == state {
                return v;
            }
        }
    }

    /// Whether a message arrives within `within`; for asserting that nothing was sent.
    pub async fn try_recv(&mut self, within: Duration) -> Option<Value> {
        if self.cursor < self.log.len() {
            return Some(self.recv().await);
        }
        let got = tokio::time::timeout(within, self.next())
            .await
            .ok()
            .flatten();
        self.cursor = self.log.len();
        got
    }

    /// Reads from the socket into the log without consuming, until `until` matches.
    async fn read_until(&mut self, until: impl Fn(&Value) -> bool) -> Value {
        loop {
            let m = match tokio::time::timeout(WAIT, self.next()).await {
                Ok(Some(v)) => v,
                Ok(None) => panic!("{}: socket ended while waiting for a reply", self.id),
                Err(_) => panic!("{}: no reply within {WAIT:?}; log: {:?}", self.id, self.log),
            };
            if until(&m) {
                return m;
            }
        }
    }

    /// Sends with a fresh id and waits for its `ok` or `error`, logging what comes before.
    pub async fn request(&mut self, mut v: Value) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        v["id"] = json!(id);
        self.send(v).await;
        let reply = self
            .read_until(|m| (m["type"] == "ok" || m["type"] == "error") && m["id"] == json!(id))
            .await;
        Reply(reply)
    }

    /// Consumes everything not yet consumed and everything already on its way (a ping round
    /// trip marks the end), and returns it.
    pub async fn drain(&mut self) -> Vec<Value> {
        let start = self.cursor;
        self.send(json!({"type":"ping","id": 999_999})).await;
        self.read_until(|m| m["type"] == "ok" && m["id"] == 999_999)
            .await;
        self.cursor = self.log.len();
        let mut got: Vec<Value> = self.log[start..].to_vec();
        got.retain(|m| !(m["type"] == "pong" || (m["type"] == "ok" && m["id"] == 999_999)));
        got
    }

    /// The latest `floor` among what [`Client::drain`] brings; a panic when it brings none.
    pub async fn latest_floor(&mut self) -> Value {
        let id = self.id.clone();
        self.drain()
            .await
            .into_iter()
            .rfind(|m| m["type"] == "floor")
            .unwrap_or_else(|| panic!("{id} got no new floor"))
    }

    /// Waits for the socket to end and says how.
    pub async fn end(&mut self) -> End {
        match self.try_end(WAIT).await {
            Some(end) => end,
            None => panic!("{}: the socket did not end", self.id),
        }
    }

    /// How the socket ended, if it ends within `within` (`Duration::ZERO`: only what has
    /// already arrived); `None` while it stays open.
    pub async fn try_end(&mut self, within: Duration) -> Option<End> {
        let wait = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Close(frame))) => {
                        return End::Closed(frame.map(|f| u16::from(f.code)).unwrap_or(1005))
                    }
                    Some(Ok(Message::Text(t))) => {
                        self.log.push(serde_json::from_str(t.as_str()).unwrap());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return End::Dropped,
                }
            }
        };
        tokio::time::timeout(within, wait).await.ok()
    }

    /// Sends a text frame; false when the socket is already gone.
    pub async fn try_send_text(&mut self, text: &str) -> bool {
        self.ws.send(Message::text(text)).await.is_ok()
    }

    /// The largest `seq` seen so far.
    pub fn last_seq(&self) -> u64 {
        self.log
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .max()
            .unwrap_or(0)
    }

    /// Drops the TCP connection without a close handshake, like a lost network.
    pub fn vanish(self) {
        drop(self);
    }
}
