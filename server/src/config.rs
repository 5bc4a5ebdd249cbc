//! The server's settings, as the library takes them; `main` fills them from flags and the
//! environment, tests build them directly.

use std::time::Duration;

use circle_protocol::IceServer;

use crate::media::MediaConfig;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The HS256 secret join tokens are signed with.
    pub token_secret: Vec<u8>,
    pub room: RoomConfig,
    /// The first message must arrive within this, or the socket closes with 1008.
    pub hello_timeout: Duration,
    /// WebSocket pings keep NATs open and find dead peers; two silent intervals drop the socket.
    pub ping_interval: Duration,
    /// Messages queued for one connection before it counts as too slow.
    pub outbound_queue: usize,
    /// Commands queued for one room.
    pub room_queue: usize,
    /// Room events a subscriber may fall behind by before it loses the oldest (and the loss is
    /// counted); the rooms never wait for a subscriber.
    pub event_queue: usize,
    /// Sustained messages per second one connection may send.
    pub message_rate: u32,
    /// Messages one connection may send in a burst above the rate.
    pub message_burst: u32,
    pub max_rooms: usize,
    pub replay: ReplayLimit,
    /// STUN (and credential-free) servers handed to clients as they are.
    pub ice_servers: Vec<IceServer>,
    /// A TURN server handed to clients with credentials made for each (`turn`).
    pub turn: Option<TurnConfig>,
    /// How long a closing socket waits for the client's close frame.
    pub close_timeout: Duration,
    /// Open TCP connections one IP address may hold; 0 for no cap. Behind a reverse proxy every
    /// connection comes from the proxy, so set it to 0 there and cap at the proxy instead.
    pub max_connections_per_ip: usize,
    /// The longest lifetime a join token may claim. Removals are remembered at least this long,
    /// so that no link still valid can bring a removed participant back.
    pub max_token_lifetime: Duration,
    /// A connection must send a whole request head within this, and an idle keep-alive
    /// connection is closed after it: slow or silent clients cannot hold sockets.
    pub header_read_timeout: Duration,
    /// Origins, besides the server's own, whose pages may open a WebSocket here (for example
    /// `https://clinic.example`). A browser always sends `Origin`; tools that send none are let
    /// through, since only a browser carries a victim's ambient authority.
    pub allowed_origins: Vec<String>,
    /// The SFU's addresses and ports. Its `ice_servers` are ignored: `ice_servers` above is the
    /// one list, handed to clients in `welcome`.
    pub media: MediaConfig,
    /// Records, the admin API, webhooks and metrics.
    pub operations: Operations,
    /// HTTPS and WSS on the main port; plain HTTP without.
    pub tls: Option<std::sync::Arc<crate::tls::Tls>>,
    /// Sharing rooms with other nodes through Redis; one node on its own without.
    pub cluster: Option<ClusterSettings>,
}

/// This node's place in a cluster (operations.md, "More than one node").
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// The Redis every node of the cluster shares.
    pub redis_url: String,
    /// This node's name among the others; unique in the cluster.
    pub node_id: String,
    /// Where the other nodes reach this one's HTTP and WebSocket port (`http://10.0.0.5:8080`);
    /// when `None`, the address the server listens on, which must then not be a wildcard.
    pub node_url: Option<String>,
    /// How long a node stays listed after its last heartbeat; it heartbeats every third of it.
    pub node_ttl: Duration,
    /// How long a room's claim lasts unless its host renews it (every third of it).
    pub room_lease: Duration,
}

impl ClusterSettings {
    /// The defaults for joining the cluster at `redis_url` as `node_id`.
    pub fn new(redis_url: impl Into<String>, node_id: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            node_id: node_id.into(),
            node_url: None,
            node_ttl: Duration::from_secs(6),
            room_lease: Duration::from_secs(6),
        }
    }
}

/// A TURN server for clients that cannot reach the media server directly.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// `turn:` and `turns:` URLs of one server (or one pool sharing its secret).
    pub urls: Vec<String>,
    pub credentials: TurnCredentials,
}

#[derive(Clone)]
pub enum TurnCredentials {
    /// coturn's `use-auth-secret`: fresh credentials for every `welcome` and `resumed`.
    Rest { secret: Vec<u8>, ttl: Duration },
    /// One pair for everyone, for TURN services without the REST scheme.
    Static {
        username: String,
        credential: String,
    },
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log, even at debug.
        match self {
            TurnCredentials::Rest { ttl, .. } => write!(f, "Rest {{ ttl: {ttl:?}, .. }}"),
            TurnCredentials::Static { .. } => f.write_str("Static { .. }"),
        }
    }
}

/// What a clinic's own systems see (operations.md). Everything is off by default in the
/// library; the `circle` command turns records on in a local SQLite file.
#[derive(Debug, Clone)]
pub struct Operations {
    /// Keys for `/api/v1/*` and `/metrics`; none disables the API (404).
    pub api_keys: Vec<String>,
    /// `sqlite://PATH` or `postgres://…`; `None` writes no records anywhere.
    pub database: Option<String>,
    /// Records older than this are deleted, at start and hourly.
    pub records_retention: Option<Duration>,
    pub webhook_urls: Vec<String>,
    pub webhook_secret: Vec<u8>,
    /// The pause before a webhook's first retry, doubled for each one after.
    pub webhook_backoff: Duration,
    /// A second address serving `/metrics` without a key, for an internal scraper.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The base of join links the API hands out (`https://clinic.example`); without it, the
    /// link names the host the API request came to.
    pub public_url: Option<String>,
}

impl Default for Operations {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            database: None,
            records_retention: None,
            webhook_urls: Vec::new(),
            webhook_secret: Vec::new(),
            webhook_backoff: Duration::from_secs(1),
            metrics_listen: None,
            public_url: None,
        }
    }
}

impl Settings {
    /// The embedded defaults, with the given secret.
    pub fn with_secret(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            token_secret: secret.into(),
            room: RoomConfig::default(),
            hello_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            outbound_queue: 256,
            room_queue: 1024,
            event_queue: 16_384,
            message_rate: 20,
            message_burst: 60,
            max_rooms: 1000,
            replay: ReplayLimit::default(),
            ice_servers: Vec::new(),
            turn: None,
            close_timeout: Duration::from_secs(2),
            max_connections_per_ip: 256,
            max_token_lifetime: Duration::from_secs(crate::token::DEFAULT_MAX_LIFETIME_SECS),
            header_read_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
            media: MediaConfig::default(),
            operations: Operations::default(),
            tls: None,
            cluster: None,
        }
    }
}

/// The rules' settings, fixed for the room's life (but for what the admin API changes live).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RoomConfig {
    /// Members and observers wait for a facilitator unless this is off.
    pub waiting_room: bool,
    /// Everyone present or waiting counts.
    pub max_participants: usize,
    pub reaction_window_ms: u64,
    /// Reactions one participant may send per second.
    pub reactions_per_second: usize,
    /// Fewest check-in answers for which counts are published; also the fewest people who must
    /// be in the room for a reaction to be counted (never fewer than three: see `room::anonymous`).
    pub anonymity_threshold: u32,
    pub resume_grace_ms: u64,
    /// How long someone a facilitator denied must wait before knocking again.
    pub knock_cooldown_ms: u64,
}

/// Per-room settings from the admin API; `None` keeps the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomSettings {
    pub max_participants: Option<usize>,
    pub waiting_room: Option<bool>,
    /// 0 for no limit.
    pub turn_limit_seconds: Option<u32>,
    pub anonymity_threshold: Option<u32>,
}

impl RoomSettings {
    /// The rules' settings for a room starting now: the server's, overridden by these.
    pub fn apply_to(&self, mut config: RoomConfig) -> RoomConfig {
        if let Some(max) = self.max_participants {
            config.max_participants = max;
        }
        if let Some(waiting_room) = self.waiting_room {
            config.waiting_room = waiting_room;
        }
        if let Some(threshold) = self.anonymity_threshold {
            config.anonymity_threshold = threshold;
        }
        config
    }
}

/// How much of the past a resume can replay; beyond it the client gets a fresh `welcome`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayLimit {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for ReplayLimit {
    fn default() -> Self {
        Self {
            messages: 2048,
            bytes: 1024 * 1024,
        }
    }
}
