//! Which node hosts each room: one node at a time, by an atomic claim in Redis with a lease the
//! host renews. Two nodes that race to start the same room both read back the same winner, and
//! a host that dies loses its rooms when their leases run out, so another node can claim them.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::{ClusterError, KEY_PREFIX};

/// Claim the room for ARGV[1] if nobody holds it, renew it if ARGV[1] does (and with it the
/// room's stored state, KEYS[2], for ARGV[3] ms); either way, answer who holds it now. One
/// script, so no other command runs between the read and the write.
const CLAIM: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return current
";

/// Give the room up only if ARGV[1] holds it: a late release from a node whose lease ran out
/// must not free a room another node has claimed since.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Move the room from ARGV[1] to ARGV[2] only if ARGV[1] still holds it: a node that has left
/// the directory (dead, or cut off from Redis and so unable to renew) loses its rooms at once
/// instead of when their leases run out. Answers who holds it now.
const TAKE_OVER: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] or current == false then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return ARGV[2]
end
return current
";

/// When this Redis's claims began, in Redis's own clock: set by the first node to ask, so a
/// Redis that restarted empty shows a new beginning. Answers it and the time now, in ms.
const EPOCH: &str = r"
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local epoch = redis.call('GET', KEYS[1])
if epoch == false then
  redis.call('SET', KEYS[1], now_ms)
  epoch = now_ms
end
return {tonumber(epoch), now_ms}
";

fn epoch_key() -> String {
    format!("{KEY_PREFIX}epoch")
}

fn host_key(room: &str) -> String {
    format!("{KEY_PREFIX}room:{room}:host")
}

/// A node's handle on the room claims. Clones share one connection.
#[derive(Clone)]
pub struct RoomClaims {
    con: ConnectionManager,
    lease: Duration,
    /// How long a room's stored state outlives its host's last renewal.
    state_ttl: Duration,
    claim: Script,
    release: Script,
    take_over: Script,
    epoch: Script,
}

impl std::fmt::Debug for RoomClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomClaims")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl RoomClaims {
    /// Connects to the Redis at `url`; a claim lasts `lease` unless its host renews it.
    pub async fn connect(url: &str, lease: Duration) -> Result<RoomClaims, ClusterError> {
        Ok(Self::over(super::connect(url).await?, lease))
    }

    /// The claims over a connection the node's other Redis handles share.
    pub(super) fn over(con: ConnectionManager, lease: Duration) -> RoomClaims {
        RoomClaims {
            con,
            lease,
            state_ttl: lease,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            take_over: Script::new(TAKE_OVER),
            epoch: Script::new(EPOCH),
        }
    }

    /// Keeps each room's stored state (`state`) for `ttl` after its host's last renewal: long
    /// enough for another node to carry the room on after the host dies.
    pub fn with_state_ttl(mut self, ttl: Duration) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// Claims `room` for `node`, or renews the claim `node` holds. Returns the node that hosts
    /// the room now: `node` itself, or the node whose claim stands.
    pub async fn claim(&self, room: &str, node: &str) -> Result<String, ClusterError> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let state_ms = u64::try_from(self.state_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut con = self.con.clone();
        Ok(self
            .claim
            .key(host_key(room))
            .key(super::state::state_key(room))
            .arg(node)
            .arg(lease_ms)
            .arg(state_ms)
            .invoke_async(&mut con)
            .await?)
    }

    /// Moves `room` from the node `from`, which is gone, to `to`; if some other node claimed it
    /// first, that one keeps it. Returns the node that hosts the room now.
    pub async fn take_over(
        &self,
        room: &str,
        from: &str,
        to: &str,
    ) -> Result<String, ClusterError> {
        let lease_ms = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        let mut con = self.con.clone();
        Ok(self
            .take_over
            .key(host_key(room))
            .arg(from)
            .arg(to)
            .arg(lease_ms)
            .invoke_async(&mut con)
            .await?)
    }

    /// How long ago the claims in this Redis began: shortly after Redis restarted empty, the
    /// rooms running on their hosts have not been claimed again yet.
    pub async fn age(&self) -> Result<Duration, ClusterError> {
        let mut con = self.con.clone();
        let (epoch, now): (u64, u64) = self.epoch.key(epoch_key()).invoke_async(&mut con).await?;
        Ok(Duration::from_millis(now.saturating_sub(epoch)))
    }

    /// Gives `room` up if `node` hosts it (the room closed, or the node is draining). True
    /// when it did.
    pub async fn release(&self, room: &str, node: &str) -> Result<bool, ClusterError> {
        let mut con = self.con.clone();
        let deleted: i64 = self
            .release
            .key(host_key(room))
            .arg(node)
            .invoke_async(&mut con)
            .await?;
        Ok(deleted == 1)
    }

    /// The node hosting `room`, if a claim stands.
    pub async fn host(&self, room: &str) -> Result<Option<String>, ClusterError> {
        let mut con = self.con.clone();
        Ok(redis::cmd("GET")
            .arg(host_key(room))
            .query_async(&mut con)
            .await?)
    }
}
