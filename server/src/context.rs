//! What every part of the server shares and nothing finds by: the settings, the join-token keys,
//! the media engine, the task tracker and shutdown signal, the removals remembered past a room's
//! life, the metrics, and the counts and caps read across connections. Rooms are found in
//! `registry`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use circle_protocol::{ParticipantId, RoomId};
use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::state::StateWrite;
use crate::config::{RoomSettings, Settings};
use crate::events::EventBus;
use crate::media::{Media, MediaError};
use crate::metrics::Metrics;
use crate::token::TokenKeys;

#[derive(Debug)]
pub struct Context {
    settings: Settings,
    keys: TokenKeys,
    media: Media,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    bans: Bans,
    events: EventBus,
    metrics: Metrics,
    next_connection: AtomicU64,
    /// Client connections whose task is running, for `/stats`.
    live_connections: AtomicUsize,
    /// Open connections per client address, for the per-address cap.
    connections: DashMap<IpAddr, usize>,
    /// Per-room settings set through the admin API (kept in the store too), found by room id
    /// when a room starts.
    room_settings: DashMap<RoomId, RoomSettings>,
    /// In a cluster, where rooms hand their newest rules state to be kept in Redis.
    room_states: OnceLock<mpsc::Sender<StateWrite>>,
}

impl Context {
    pub fn new(
        settings: Settings,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<Arc<Self>, MediaError> {
        let keys = TokenKeys::with_max_lifetime(
            &settings.token_secret,
            settings.max_token_lifetime.as_secs(),
        );
        let mut media_config = settings.media.clone();
        media_config.ice_servers = settings.ice_servers.clone();
        let media = Media::new(media_config)?;
        let bans = Bans {
            until: DashMap::new(),
            // A token's `iat` may lie a little in the future, so its `exp` a little further.
            keep: settings.max_token_lifetime + Duration::from_secs(120),
        };
        let events = EventBus::new(settings.event_queue);
        let metrics = Metrics::new(media.clone());
        Ok(Arc::new(Self {
            settings,
            keys,
            media,
            tracker,
            shutdown,
            bans,
            events,
            metrics,
            next_connection: AtomicU64::new(1),
            live_connections: AtomicUsize::new(0),
            connections: DashMap::new(),
            room_settings: DashMap::new(),
            room_states: OnceLock::new(),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The ICE servers for one client now: the configured ones, and the TURN server with
    /// credentials made for this client (fresh in every `welcome` and `resumed`).
    pub fn ice_servers(&self) -> Vec<circle_protocol::IceServer> {
        let mut servers = self.settings.ice_servers.clone();
        if let Some(turn) = &self.settings.turn {
            servers.push(crate::turn::ice_server(turn, crate::token::unix_now()));
        }
        servers
    }

    /// The admin API's settings for a room; empty (the server's defaults) when none were set.
    pub fn room_settings(&self, room: &RoomId) -> RoomSettings {
        self.room_settings
            .get(room)
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    pub fn set_room_settings(&self, room: RoomId, settings: RoomSettings) {
        self.room_settings.insert(room, settings);
    }

    /// Where rooms hand their newest state in a cluster; `None` on a node of its own.
    pub fn room_states(&self) -> Option<&mpsc::Sender<StateWrite>> {
        self.room_states.get()
    }

    /// Set once, when the node joins its cluster, before any room starts.
    pub fn keep_room_states(&self, sink: mpsc::Sender<StateWrite>) {
        let _ = self.room_states.set(sink);
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    pub fn media(&self) -> &Media {
        &self.media
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// What happens in every room, for whoever subscribes.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The server's Prometheus metrics; `metrics().encode()` is the text `/metrics` serves.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Remembers that `participant` was removed from `room`.
    pub fn ban(&self, room: RoomId, participant: ParticipantId) {
        self.bans
            .insert(room, participant, Instant::now(), self.bans.keep);
    }

    /// Remembers a removal made on another node of the cluster, in force for `left` more.
    pub fn ban_for(&self, room: RoomId, participant: ParticipantId, left: Duration) {
        self.bans.insert(room, participant, Instant::now(), left);
    }

    /// How long a removal is remembered.
    pub fn ban_keep(&self) -> Duration {
        self.bans.keep
    }

    /// Whether `participant` was removed from `room` and may not come back yet.
    pub fn is_banned(&self, room: &RoomId, participant: &ParticipantId) -> bool {
        self.bans.contains(room, participant, Instant::now())
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a running client connection until the guard drops.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionCount {
        self.live_connections.fetch_add(1, Ordering::Relaxed);
        ConnectionCount {
            context: self.clone(),
        }
    }

    pub fn connection_count(&self) -> usize {
        self.live_connections.load(Ordering::Relaxed)
    }

    /// Counts a new connection from `ip`, or refuses it when that address is at its cap.
    pub fn open_connection(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let cap = self.settings.max_connections_per_ip;
        let mut count = self.connections.entry(ip).or_insert(0);
        if cap > 0 && *count >= cap {
            return None;
        }
        *count += 1;
        drop(count);
        Some(ConnectionSlot {
            context: self.clone(),
            ip,
            counted: AtomicBool::new(true),
        })
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    context: Arc<Context>,
    ip: IpAddr,
    counted: AtomicBool,
}

impl ConnectionSlot {
    /// Stops counting this connection against its address: it is another node of the cluster
    /// relaying one client, who was counted where they connected.
    pub fn exempt(&self) {
        if self.counted.swap(false, Ordering::Relaxed) {
            self.uncount();
        }
    }

    fn uncount(&self) {
        self.context.connections.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if *self.counted.get_mut() {
            self.uncount();
        }
    }
}

/// One running client connection, counted in `/stats` until dropped.
#[derive(Debug)]
pub struct ConnectionCount {
    context: Arc<Context>,
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.context
            .live_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Who was removed from which room, remembered past the room's own life: a room closes when its
/// last participant leaves or the session ends, and a removal must still hold when the same link
/// is used to start it again. Each entry lasts as long as any token can (`max_token_lifetime`),
/// so a link that was valid at the removal has expired by the time the entry goes.
#[derive(Debug)]
struct Bans {
    until: DashMap<(RoomId, ParticipantId), Instant>,
    keep: Duration,
}

impl Bans {
    /// Remembers the removal for `left` from `now`.
    fn insert(&self, room: RoomId, participant: ParticipantId, now: Instant, left: Duration) {
        // Bans are few (a facilitator's decisions); pruning on each one keeps the map bounded
        // without a timer.
        self.until.retain(|_, until| *until > now);
        self.until.insert((room, participant), now + left);
    }

    fn contains(&self, room: &RoomId, participant: &ParticipantId, now: Instant) -> bool {
        self.until
            .get(&(room.clone(), participant.clone()))
            .is_some_and(|until| *until > now)
    }
}
