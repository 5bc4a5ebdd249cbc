//! Finding things: rooms by id and participants by resume token. The maps hold handles only;
//! no invariant lives here, and no guard is held across an `.await`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circle_protocol::{ParticipantId, RoomId};
use dashmap::DashMap;
use rand::RngCore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::media::{Media, MediaError};
use crate::room::{actor, RoomHandle};
use crate::token::TokenKeys;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the server has no room for another group right now")]
    TooManyRooms,
}

#[derive(Debug)]
pub struct Registry {
    rooms: DashMap<RoomId, RoomHandle>,
    resume: DashMap<String, (RoomId, ParticipantId)>,
    settings: Settings,
    keys: TokenKeys,
    generation: AtomicU64,
    next_session: AtomicU64,
    /// Sessions whose task is running, for `/stats`.
    live_sessions: AtomicUsize,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Open connections per client address, for the per-IP cap.
    connections: DashMap<IpAddr, usize>,
    bans: Bans,
    media: Media,
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
    fn insert(&self, room: RoomId, participant: ParticipantId, now: Instant) {
        // Bans are few (a facilitator's decisions); pruning on each one keeps the map bounded
        // without a timer.
        self.until.retain(|_, until| *until > now);
        self.until.insert((room, participant), now + self.keep);
    }

    fn contains(&self, room: &RoomId, participant: &ParticipantId, now: Instant) -> bool {
        self.until
            .get(&(room.clone(), participant.clone()))
            .is_some_and(|until| *until > now)
    }
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    registry: Arc<Registry>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.registry.connections.remove_if_mut(&self.ip, |_, n| {
            *n -= 1;
            *n == 0
        });
    }
}

/// One running session, counted in `/stats` until dropped.
#[derive(Debug)]
pub struct SessionCount {
    registry: Arc<Registry>,
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        self.registry.live_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Registry {
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
        Ok(Arc::new(Self {
            rooms: DashMap::new(),
            resume: DashMap::new(),
            settings,
            keys,
            generation: AtomicU64::new(1),
            next_session: AtomicU64::new(1),
            live_sessions: AtomicUsize::new(0),
            tracker,
            shutdown,
            connections: DashMap::new(),
            bans,
            media,
        }))
    }

    pub fn media(&self) -> &Media {
        &self.media
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
            registry: self.clone(),
            ip,
        })
    }

    /// Remembers that `participant` was removed from `room`.
    pub fn ban(&self, room: RoomId, participant: ParticipantId) {
        self.bans.insert(room, participant, Instant::now());
    }

    /// Whether `participant` was removed from `room` and may not come back yet.
    pub fn is_banned(&self, room: &RoomId, participant: &ParticipantId) -> bool {
        self.bans.contains(room, participant, Instant::now())
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a running session until the guard drops.
    pub fn session_started(self: &Arc<Self>) -> SessionCount {
        self.live_sessions.fetch_add(1, Ordering::Relaxed);
        SessionCount {
            registry: self.clone(),
        }
    }

    pub fn session_count(&self) -> usize {
        self.live_sessions.load(Ordering::Relaxed)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The room's handle, starting its task if it has none.
    pub fn room(self: &Arc<Self>, id: &RoomId) -> Result<RoomHandle, RegistryError> {
        if let Some(handle) = self.rooms.get(id) {
            return Ok(handle.clone());
        }
        if self.rooms.len() >= self.settings.max_rooms {
            return Err(RegistryError::TooManyRooms);
        }
        let handle = self
            .rooms
            .entry(id.clone())
            .or_insert_with(|| {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                actor::spawn(id.clone(), generation, self.clone())
            })
            .clone();
        Ok(handle)
    }

    /// The room's handle if it is running; never starts one.
    pub fn existing_room(&self, id: &RoomId) -> Option<RoomHandle> {
        self.rooms.get(id).map(|h| h.clone())
    }

    /// Removes the room's entry, unless a newer room already took its place.
    pub fn deregister_room(&self, id: &RoomId, generation: u64) {
        self.rooms.remove_if(id, |_, h| h.generation == generation);
    }

    /// Drops a stale handle whose room has closed, so the next look-up starts a new one.
    pub fn forget_closed_room(&self, id: &RoomId, handle: &RoomHandle) {
        self.deregister_room(id, handle.generation);
    }

    /// A fresh, unguessable resume token for an admitted participant.
    pub fn issue_resume_token(&self, room: RoomId, participant: ParticipantId) -> String {
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.resume.insert(token.clone(), (room, participant));
        token
    }

    pub fn resolve_resume_token(&self, token: &str) -> Option<(RoomId, ParticipantId)> {
        self.resume.get(token).map(|e| e.value().clone())
    }

    pub fn forget_resume_token(&self, token: &str) {
        self.resume.remove(token);
    }
}
