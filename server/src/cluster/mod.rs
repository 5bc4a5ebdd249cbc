//! More than one node sharing rooms through Redis (operations.md, "More than one node"): the
//! pieces every node shares, built and tested against a real Redis before the server uses them.
//! `nodes` is the directory of live nodes (each heartbeats its address and load under a key that
//! expires), `placement` chooses a node for a new room (pure), and `claims` hosts each room on
//! one node at a time (an atomic claim with a lease the host renews). `state` keeps each room's
//! rules state for the node that carries it on when its host dies. `member` is this node's use
//! of them: its heartbeat, and where a joining client's room is hosted.

pub mod claims;
pub mod member;
pub mod nodes;
pub mod placement;
pub mod state;

/// Every key Circle writes in a shared Redis starts with this, so a Redis may serve other uses.
pub const KEY_PREFIX: &str = "circle:";

/// One connection to the Redis at `url`, shared by clones, which reconnects by itself when
/// Redis comes back.
async fn connect(url: &str) -> Result<redis::aio::ConnectionManager, ClusterError> {
    Ok(redis::Client::open(url)?.get_connection_manager().await?)
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached or refused a command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A value in Redis is not what a Circle node writes there.
    #[error("a node entry in redis is not valid: {0}")]
    BadEntry(#[from] serde_json::Error),
    /// The room's claim kept moving while it was being placed.
    #[error("the room's host kept changing")]
    Unsettled,
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    TimedOut(std::time::Duration),
}
