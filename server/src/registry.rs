//! Finding rooms: the one place that finds a room's handle by id or starts the room, and, in a
//! cluster, that learns which node hosts it. The map holds handles only; no invariant lives
//! here, and no guard is held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use circle_protocol::{ParticipantId, RoomId};
use dashmap::DashMap;

use crate::cluster::member::{Host, Member};
use crate::cluster::nodes::NodeInfo;
use crate::cluster::ClusterError;
use crate::context::Context;
use crate::room::stored::StoredRoom;
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

    /// How long a join keeps asking for a room whose node cannot be reached: until a dead
    /// node's entry has expired and another node took its rooms.
    pub fn failover_wait(&self) -> Duration {
        self.context
            .settings()
            .cluster
            .as_ref()
            .map_or(Duration::ZERO, |c| c.node_ttl + Duration::from_secs(1))
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
        match within(self.cluster_wait, || cluster.place(id.as_str())).await? {
            Host::Here => Ok(Location::Here),
            Host::Node(_) if relayed => Err(RegistryError::Moved),
            Host::Node(node) => Ok(Location::Node(node)),
        }
    }

    /// Where a `resume` for room `id` goes: `None` when no node hosts it and none left its state.
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
        match within(self.cluster_wait, || cluster.find(id.as_str())).await? {
            None => Ok(None),
            // Ours: running, or to be carried on from the state its last host left.
            Some(Host::Here) => Ok(Some(Location::Here)),
            Some(Host::Node(_)) if relayed => Err(RegistryError::Moved),
            Some(Host::Node(node)) => Ok(Some(Location::Node(node))),
        }
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The room's handle, starting its task if it has none: in a cluster, from the state its
    /// last host left when that host died (the room carries on here), else anew.
    pub async fn start(self: &Arc<Self>, id: &RoomId) -> Result<RoomHandle, RegistryError> {
        if let Some(handle) = self.rooms.get(id) {
            return Ok(handle.clone());
        }
        let stored = self.stored(id).await?;
        self.room_with(id, stored)
    }

    /// In a cluster, before a run of room `id` starts here, the removals from it made on other
    /// nodes: a removal holds on every node for as long as any link could be valid. Nothing to
    /// learn for a room already running here (its host learnt them, or made them).
    pub async fn learn_removals(&self, id: &RoomId) -> Result<(), RegistryError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        if self.rooms.contains_key(id) {
            return Ok(());
        }
        let bans = within(self.cluster_wait, || cluster.bans(id.as_str())).await?;
        for (participant, left) in bans {
            self.context
                .ban_for(id.clone(), ParticipantId::from(participant.as_str()), left);
        }
        Ok(())
    }

    /// The room carried on from the state its last host left, if it left one; never starts a
    /// new room (a `resume` needs the seats it had).
    pub async fn carry_on(
        self: &Arc<Self>,
        id: &RoomId,
    ) -> Result<Option<RoomHandle>, RegistryError> {
        if let Some(handle) = self.rooms.get(id) {
            return Ok(Some(handle.clone()));
        }
        match self.stored(id).await? {
            Some(stored) => self.room_with(id, Some(stored)).map(Some),
            None => Ok(None),
        }
    }

    async fn stored(&self, id: &RoomId) -> Result<Option<StoredRoom>, RegistryError> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let json = within(self.cluster_wait, || cluster.stored_state(id.as_str())).await?;
        Ok(json.and_then(|json| {
            let stored = StoredRoom::from_json(&json);
            if stored.is_none() {
                tracing::warn!("a room's stored state could not be read; it starts anew");
            }
            stored
        }))
    }

    fn room_with(
        self: &Arc<Self>,
        id: &RoomId,
        stored: Option<StoredRoom>,
    ) -> Result<RoomHandle, RegistryError> {
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
                room::spawn(
                    id.clone(),
                    generation,
                    self.context.clone(),
                    on_close,
                    stored,
                )
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

/// `asking` Redis, again while it fails, for at most `wait`: a Redis that just restarted fails
/// each connection's first command while the connection is made anew.
async fn within<T, F, Fut>(wait: Duration, asking: F) -> Result<T, ClusterError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    let attempts = async {
        loop {
            match asking().await {
                Err(ClusterError::Redis(e)) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "asking Redis again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                answer => return answer,
            }
        }
    };
    tokio::time::timeout_at(deadline, attempts)
        .await
        .map_err(|_| ClusterError::TimedOut(wait))?
}
