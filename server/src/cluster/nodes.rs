//! The directory of live nodes: each node writes its entry (where to reach it, its media
//! address, its load) under a key that expires unless renewed, so a node that dies drops out by
//! itself within the time to live, and nobody has to notice it die.

use std::net::SocketAddr;
use std::time::Duration;

use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use super::{ClusterError, KEY_PREFIX};

/// One node as the others see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    /// Where the other nodes reach its HTTP and WebSocket endpoints.
    pub http: String,
    /// Its media address, which the clients of the rooms it hosts send to.
    pub media: SocketAddr,
    pub rooms: u32,
    pub participants: u32,
    /// How busy its cores are, 0 to 1.
    pub cpu: f32,
    /// Shutting down: it keeps its rooms until they have moved, and takes no new one.
    pub draining: bool,
    /// Rooms placed on it since about its last heartbeat, which its load does not show yet
    /// (read from their own key, never written in the entry).
    #[serde(default, skip_serializing)]
    pub placed: u32,
}

fn node_key(id: &str) -> String {
    format!("{KEY_PREFIX}node:{id}")
}

fn placed_key(id: &str) -> String {
    format!("{KEY_PREFIX}node:{id}:placed")
}

/// The ids of every node that has written an entry; an id whose entry has expired is removed
/// by the next reader.
fn nodes_key() -> String {
    format!("{KEY_PREFIX}nodes")
}

/// A node's handle on the directory. Clones share one connection, which reconnects by itself
/// when Redis comes back.
#[derive(Clone)]
pub struct NodeDirectory {
    con: ConnectionManager,
    ttl: Duration,
}

impl std::fmt::Debug for NodeDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDirectory")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl NodeDirectory {
    /// Connects to the Redis at `url`; entries written through it live `ttl` unless renewed.
    pub async fn connect(url: &str, ttl: Duration) -> Result<NodeDirectory, ClusterError> {
        Ok(Self::over(super::connect(url).await?, ttl))
    }

    /// The directory over a connection the node's other Redis handles share.
    pub(super) fn over(con: ConnectionManager, ttl: Duration) -> NodeDirectory {
        NodeDirectory { con, ttl }
    }

    /// Writes or renews this node's entry. A node calls it every third of the time to live, so
    /// that one late heartbeat does not make it look dead.
    pub async fn heartbeat(&self, node: &NodeInfo) -> Result<(), ClusterError> {
        let entry = serde_json::to_string(node)?;
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut con = self.con.clone();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(node_key(&node.id))
            .arg(entry)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(nodes_key())
            .arg(&node.id)
            .ignore()
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    /// Counts a room just placed on node `id`, for the placements before its next heartbeat
    /// (a burst of new rooms at the top of the hour must not all go to one node).
    pub async fn placed(&self, id: &str) -> Result<(), ClusterError> {
        let window_ms = u64::try_from((self.ttl / 2).as_millis()).unwrap_or(u64::MAX);
        let mut con = self.con.clone();
        redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(placed_key(id))
            .ignore()
            .cmd("PEXPIRE")
            .arg(placed_key(id))
            .arg(window_ms)
            .ignore()
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    /// Takes this node out at once (a clean shutdown), rather than when its entry expires.
    pub async fn leave(&self, id: &str) -> Result<(), ClusterError> {
        let mut con = self.con.clone();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(node_key(id))
            .ignore()
            .cmd("SREM")
            .arg(nodes_key())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut con)
            .await?;
        Ok(())
    }

    /// Every node whose entry has not expired, ordered by id.
    pub async fn live(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut con = self.con.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(nodes_key())
            .query_async(&mut con)
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids
            .iter()
            .flat_map(|id| [node_key(id), placed_key(id)])
            .collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
        let mut live = Vec::new();
        let mut gone = Vec::new();
        for (id, pair) in ids.into_iter().zip(values.chunks(2)) {
            match pair {
                [Some(entry), placed] => {
                    let mut node = serde_json::from_str::<NodeInfo>(entry)?;
                    node.placed = placed.as_deref().and_then(|p| p.parse().ok()).unwrap_or(0);
                    live.push(node);
                }
                _ => gone.push(id),
            }
        }
        if !gone.is_empty() {
            // A node that heartbeats between the read above and this removal adds itself back
            // with its next heartbeat; until then it is missing from the list, never wrongly in it.
            redis::cmd("SREM")
                .arg(nodes_key())
                .arg(&gone)
                .query_async::<()>(&mut con)
                .await?;
        }
        live.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(live)
    }
}
