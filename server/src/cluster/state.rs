//! The rooms' rules state in Redis: written by each room's host as it changes, so that when the
//! host dies the node that carries a room on starts from where it was. A room's task never waits
//! on Redis: it hands the newest state to a bounded queue, and one writer per node puts the
//! latest state of each room (older ones it has not written yet are skipped) into Redis.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{ClusterError, KEY_PREFIX};

/// What the writer is handed.
#[derive(Debug)]
pub enum StateWrite {
    /// A room's newest state (serialised), or `None` once it closed.
    Room { room: String, state: Option<String> },
    /// Someone was removed from `room` and may not come back, on any node, for `keep`.
    Ban {
        room: String,
        participant: String,
        keep: Duration,
    },
    /// Answered once everything handed over before it is in Redis.
    Flush(oneshot::Sender<()>),
}

/// Who was removed from a room, until when: a sorted set scored by the Unix ms each removal
/// lasts until (Redis's clock), so one read finds those still in force.
fn bans_key(room: &str) -> String {
    format!("{KEY_PREFIX}room:{room}:bans")
}

/// Adds ARGV[2] to the room's removals for ARGV[1] ms, drops those that have run out, and
/// keeps the set as long as its newest.
const BAN: &str = r"
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// The removals of KEYS[1] still in force: participant, then ms left, for each.
const BANS: &str = r"
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms, '+inf', 'WITHSCORES')
local left = {}
for i = 1, #found, 2 do
  table.insert(left, found[i])
  table.insert(left, tonumber(found[i + 1]) - now_ms)
end
return left
";

pub fn state_key(room: &str) -> String {
    format!("{KEY_PREFIX}room:{room}:state")
}

/// What the writer has yet to write: the newest state of each room, and removals in order.
#[derive(Debug, Default)]
struct Pending {
    states: HashMap<String, Option<String>>,
    bans: Vec<(String, String, Duration)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.states.is_empty() && self.bans.is_empty()
    }
}

/// A node's handle on the stored room states. Clones share one connection.
#[derive(Clone)]
pub struct RoomStates {
    con: ConnectionManager,
    ttl: Duration,
    ban: redis::Script,
    bans: redis::Script,
}

impl std::fmt::Debug for RoomStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomStates")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RoomStates {
    /// Connects to the Redis at `url`; a state written through it lives `ttl` unless written
    /// again or its room's claim is renewed (which renews the state too).
    pub async fn connect(url: &str, ttl: Duration) -> Result<RoomStates, ClusterError> {
        Ok(Self::over(super::connect(url).await?, ttl))
    }

    /// The states over a connection the node's other Redis handles share.
    pub(super) fn over(con: ConnectionManager, ttl: Duration) -> RoomStates {
        RoomStates {
            con,
            ttl,
            ban: redis::Script::new(BAN),
            bans: redis::Script::new(BANS),
        }
    }

    pub async fn put(&self, room: &str, state: &str) -> Result<(), ClusterError> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut con = self.con.clone();
        redis::cmd("SET")
            .arg(state_key(room))
            .arg(state)
            .arg("PX")
            .arg(ttl_ms)
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, room: &str) -> Result<(), ClusterError> {
        let mut con = self.con.clone();
        redis::cmd("DEL")
            .arg(state_key(room))
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    /// Removes `participant` from `room` on every node for `keep`.
    pub async fn ban(
        &self,
        room: &str,
        participant: &str,
        keep: Duration,
    ) -> Result<(), ClusterError> {
        let keep_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut con = self.con.clone();
        self.ban
            .key(bans_key(room))
            .arg(keep_ms)
            .arg(participant)
            .invoke_async::<i64>(&mut con)
            .await?;
        Ok(())
    }

    /// Who may not come back to `room`, and for how much longer.
    pub async fn bans(&self, room: &str) -> Result<Vec<(String, Duration)>, ClusterError> {
        let mut con = self.con.clone();
        let pairs: Vec<(String, i64)> =
            self.bans.key(bans_key(room)).invoke_async(&mut con).await?;
        Ok(pairs
            .into_iter()
            .map(|(who, left)| (who, Duration::from_millis(left.max(0) as u64)))
            .collect())
    }

    /// The room's stored state, if its host left one.
    pub async fn get(&self, room: &str) -> Result<Option<String>, ClusterError> {
        let mut con = self.con.clone();
        Ok(redis::cmd("GET")
            .arg(state_key(room))
            .query_async(&mut con)
            .await?)
    }

    /// Writes what `writes` brings until `stop`, then what is still queued. When Redis fails, the
    /// writes wait and are tried again, newest state per room only.
    pub async fn write(self, mut writes: mpsc::Receiver<StateWrite>, stop: CancellationToken) {
        let mut pending = Pending::default();
        let mut flushed: Vec<oneshot::Sender<()>> = Vec::new();
        let mut failing = false;
        let take =
            |write: StateWrite, pending: &mut Pending, flushed: &mut Vec<oneshot::Sender<()>>| {
                match write {
                    StateWrite::Room { room, state } => {
                        pending.states.insert(room, state);
                    }
                    StateWrite::Ban {
                        room,
                        participant,
                        keep,
                    } => pending.bans.push((room, participant, keep)),
                    StateWrite::Flush(done) => flushed.push(done),
                }
            };
        loop {
            if pending.is_empty() && flushed.is_empty() {
                tokio::select! {
                    write = writes.recv() => match write {
                        Some(w) => take(w, &mut pending, &mut flushed),
                        None => break,
                    },
                    () = stop.cancelled() => break,
                }
            }
            while let Ok(w) = writes.try_recv() {
                take(w, &mut pending, &mut flushed);
            }
            match self.flush(&mut pending).await {
                Ok(()) => {
                    if failing {
                        failing = false;
                        tracing::info!("room states are written to Redis again");
                    }
                    for done in flushed.drain(..) {
                        let _ = done.send(());
                    }
                }
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "room states cannot be written to Redis; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        () = stop.cancelled() => break,
                    }
                }
            }
        }
        // What the rooms told while stopping (their ends) goes out if Redis lets it.
        while let Ok(w) = writes.try_recv() {
            take(w, &mut pending, &mut flushed);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.flush(&mut pending)).await;
    }

    /// Writes each pending state and removal, dropping those written.
    async fn flush(&self, pending: &mut Pending) -> Result<(), ClusterError> {
        while let Some((room, participant, keep)) = pending.bans.first() {
            self.ban(room, participant, *keep).await?;
            pending.bans.remove(0);
        }
        let rooms: Vec<String> = pending.states.keys().cloned().collect();
        for room in rooms {
            match &pending.states[&room] {
                Some(state) => self.put(&room, state).await?,
                None => self.delete(&room).await?,
            }
            pending.states.remove(&room);
        }
        Ok(())
    }
}
