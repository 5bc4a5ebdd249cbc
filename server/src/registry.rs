//! Finding rooms: the one place that finds a room's handle by id or starts the room, and, in a
//! cluster, that learns which node hosts it. The map holds handles only; no invariant lives
//! here, and no guard is held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use circle_protocol::RoomId;
use dashmap::DashMap;

use crate::cluster::member::{Host, Member};
use crate::cluster::nodes::NodeInfo;
use crate::cluster::ClusterError;
use crate::context::Context;
use crate::room::{self, RoomHandle};

mod upkeep;
pub use upkeep::keep_up;

/// How long a joining client waits on Redis to learn where its room is, beyond the wait for the
/// hosts to claim their rooms again after a Redis restart, before it is told to try again: a
/// Redis that is away must not hold connections open.
const CLUSTER_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the server has no room for another group right now")]
    TooManyRooms,
    /// The cluster's shared state could not be read, so nobody can tell where the room is.
    #[error("this group cannot be reached right now; try again shortly")]
    Cluster(#[from] ClusterError),
    /// A connection relayed here for a room another node hosts: its host moved in between.
    #[error("this group is moving to another server; try again")]
    Moved,
}

/// Where a joining connection's room is.
#[derive(Debug)]
pub enum Location {
    /// Here, on this node.
    Here,
    /// On another node of the cluster, to which the connection is relayed.
    Node(NodeInfo),
}

#[derive(Debug)]
pub struct Registry {
    rooms: DashMap<RoomId, RoomHandle>,
    /// Tells a room apart from a later one with the same id.
    generation: AtomicU64,
    context: Arc<Context>,
    /// This node's membership of a cluster; `None` on a node of its own.
    cluster: Option<Arc<Member>>,
    /// How long a join may wait on the cluster to learn where its room is.
    cluster_wait: Duration,
}

impl Registry {
    pub fn new(context: Arc<Context>, cluster: Option<Arc<Member>>) -> Arc<Self> {
        let cluster_wait = context
            .settings()
            .cluster
            .as_ref()
            .map_or(CLUSTER_WAIT, |c| {
                crate::cluster::member::settle_time(c.node_ttl, c.room_lease) + CLUSTER_WAIT
            });
        Arc::new(Self {
            rooms: DashMap::new(),
            generation: AtomicU64::new(1),
            context,
            cluster,
            cluster_wait,
        })
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    pub fn cluster(&self) -> Option<&Arc<Member>> {
        self.cluster.as_ref()
    }

    /// Where a `hello` for room `id` joins. A room running here stays here without asking
    /// Redis (so running rooms carry on while Redis is away); otherwise the cluster places it.
    /// A connection another node `relayed` here is never sent on again.
    pub async fn locate(&self, id: &RoomId, relayed: bool) -> Result<Location, RegistryError> {
        let Some(cluster) = &self.cluster else {
            return Ok(Location::Here);
        };
        if self.rooms.contains_key(id) {
            return Ok(Location::Here);
        }
        match within(self.cluster_wait, cluster.place(id.as_str())).await? {
            Host::Here => Ok(Location::Here),
            Host::Node(_) if relayed => Err(RegistryError::Moved),
            Host::Node(node) => Ok(Location::Node(node)),
        }
    }

    /// Where a `resume` for room `id` goes: `None` when no node hosts it.
    pub async fn locate_existing(
        &self,
        id: &RoomId,
        relayed: bool,
    ) -> Result<Option<Location>, RegistryError> {
        if self.rooms.contains_key(id) {
            return Ok(Some(Location::Here));
        }
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        match within(self.cluster_wait, cluster.find(id.as_str())).await? {
            None | Some(Host::Here) => Ok(None),
            Some(Host::Node(_)) if relayed => Err(RegistryError::Moved),
            Some(Host::Node(node)) => Ok(Some(Location::Node(node))),
        }
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The room's handle, starting its task if it has none.
    pub fn room(self: &Arc<Self>, id: &RoomId) -> Result<RoomHandle, RegistryError> {
        if let Some(handle) = self.rooms.get(id) {
            return Ok(handle.clone());
        }
        if self.rooms.len() >= self.context.settings().max_rooms {
            return Err(RegistryError::TooManyRooms);
        }
        let handle = self
            .rooms
            .entry(id.clone())
            .or_insert_with(|| {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                // The room tells us when it closes, without knowing who we are.
                let registry = Arc::downgrade(self);
                let room_id = id.clone();
                let on_close = Box::new(move || {
                    if let Some(registry) = registry.upgrade() {
                        registry.forget(&room_id, generation);
                    }
                });
                room::spawn(id.clone(), generation, self.context.clone(), on_close)
            })
            .clone();
        Ok(handle)
    }

    /// Every running room's handle, copied out so no guard is held while they are asked.
    pub fn rooms(&self) -> Vec<(RoomId, RoomHandle)> {
        self.rooms
            .iter()
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect()
    }

    /// The room's handle if it is running; never starts one.
    pub fn existing_room(&self, id: &RoomId) -> Option<RoomHandle> {
        self.rooms.get(id).map(|h| h.clone())
    }

    /// Drops a stale handle whose room has closed, so the next look-up starts a new one.
    pub fn forget_closed_room(&self, id: &RoomId, handle: &RoomHandle) {
        self.forget(id, handle.generation());
    }

    /// Removes the room's entry, unless a newer room already took its place.
    fn forget(&self, id: &RoomId, generation: u64) {
        self.rooms
            .remove_if(id, |_, h| h.generation() == generation);
    }
}

/// `asking` Redis, for at most `wait`.
async fn within<T>(
    wait: Duration,
    asking: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(wait, asking)
        .await
        .map_err(|_| ClusterError::TimedOut(wait))?
}
