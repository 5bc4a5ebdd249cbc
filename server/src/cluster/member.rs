//! This node as a member of the cluster: its entry in the directory (with the load it reports),
//! and the answer to "where is this room hosted?" for a joining client, placing a new room on
//! the least loaded live node by an atomic claim.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::claims::RoomClaims;
use super::nodes::{NodeDirectory, NodeInfo};
use super::placement::least_loaded;
use super::state::RoomStates;
use super::ClusterError;

/// Where a room is hosted, as a joining connection needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    /// On this node: the connection joins the room here.
    Here,
    /// On another live node: the connection is relayed there.
    Node(NodeInfo),
}

/// What this node reports of itself with each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub rooms: u32,
    pub participants: u32,
    pub cpu: f32,
}

/// This node's handle on the cluster, shared by every connection.
pub struct Member {
    id: String,
    url: String,
    media: SocketAddr,
    directory: NodeDirectory,
    claims: RoomClaims,
    states: RoomStates,
    /// How long after Redis restarts every host has claimed its rooms again.
    settle: Duration,
    /// Stopping: listed as taking no new room while its rooms are handed off.
    draining: AtomicBool,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The header in which a node relaying a client's connection shows the cluster's relay key.
pub const RELAY_HEADER: &str = "circle-relay";

/// What a relaying node shows the host in the `circle-relay` header: proof that it is a node of
/// this cluster (it knows the join-token secret every node shares), so that the host neither
/// counts the relayed connection against the relaying node's address nor relays it again.
pub fn relay_key(token_secret: &[u8]) -> String {
    hex::encode(relay_mac(token_secret).finalize().into_bytes())
}

fn relay_mac(token_secret: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token_secret).expect("HMAC takes a key of any length");
    mac.update(b"circle node-to-node relay, version 1");
    mac
}

/// Whether `presented` is the relay key of the cluster whose token secret is `token_secret`,
/// compared in constant time.
pub fn is_relay_key(token_secret: &[u8], presented: &[u8]) -> bool {
    hex::decode(presented).is_ok_and(|tag| relay_mac(token_secret).verify_slice(&tag).is_ok())
}

/// Nodes renew every third of the shorter lifetime (`registry::keep_up`); half of it leaves room
/// for one late renewal.
pub fn settle_time(node_ttl: Duration, room_lease: Duration) -> Duration {
    node_ttl.min(room_lease) / 2
}

impl Member {
    /// Connects to the cluster's Redis and lists this node (reachable at `url`, media at
    /// `media`) with no load yet. A room's stored state outlives its host by `state_ttl`.
    pub async fn join(
        redis_url: &str,
        id: String,
        url: String,
        media: SocketAddr,
        node_ttl: Duration,
        room_lease: Duration,
        state_ttl: Duration,
    ) -> Result<Member, ClusterError> {
        // One connection for all three: a Redis that restarts is reconnected to once.
        let con = super::connect(redis_url).await?;
        let directory = NodeDirectory::over(con.clone(), node_ttl);
        let claims = RoomClaims::over(con.clone(), room_lease).with_state_ttl(state_ttl);
        let states = RoomStates::over(con, state_ttl);
        let member = Member {
            id,
            url,
            media,
            directory,
            claims,
            states,
            settle: settle_time(node_ttl, room_lease),
            draining: AtomicBool::new(false),
        };
        member.heartbeat(Load::default()).await?;
        Ok(member)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Writes or renews this node's directory entry with its current load.
    pub async fn heartbeat(&self, load: Load) -> Result<(), ClusterError> {
        self.directory
            .heartbeat(&NodeInfo {
                id: self.id.clone(),
                http: self.url.clone(),
                media: self.media,
                rooms: load.rooms,
                participants: load.participants,
                cpu: load.cpu,
                draining: self.draining.load(Ordering::Relaxed),
                placed: 0,
            })
            .await
    }

    /// How many other live nodes could carry this node's rooms on.
    pub async fn others(&self) -> Result<usize, ClusterError> {
        Ok(self
            .other_nodes()
            .await?
            .iter()
            .filter(|n| !n.draining)
            .count())
    }

    /// Lists this node as taking no new room, from now until it leaves: its rooms are being
    /// handed off.
    pub async fn start_draining(&self, load: Load) -> Result<(), ClusterError> {
        self.draining.store(true, Ordering::Relaxed);
        self.heartbeat(load).await
    }

    /// Takes this node out of the directory at once (a clean shutdown).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.directory.leave(&self.id).await
    }

    /// Where a `hello` for `room` joins: the node hosting it, or, when nobody does (or its host
    /// has left the directory), the least loaded live node, claimed for it atomically so that
    /// two joins racing on two nodes agree.
    pub async fn place(&self, room: &str) -> Result<Host, ClusterError> {
        // A claim can lapse or move between the reads below; a few rounds settle it.
        for _ in 0..4 {
            let live = self.directory.live().await?;
            let holder = match self.claims.host(room).await? {
                Some(holder) if holder == self.id || live.iter().any(|n| n.id == holder) => holder,
                gone => {
                    // Just after Redis came back empty, a room with no claim may be running on
                    // a host that has not claimed it again yet: wait until every host has had
                    // its turn to renew before placing it anywhere.
                    let age = self.claims.age().await?;
                    if age < self.settle {
                        tokio::time::sleep(self.settle - age).await;
                        continue;
                    }
                    let choice = least_loaded(&live)
                        .map(|n| n.id.clone())
                        .unwrap_or_else(|| self.id.clone());
                    let holder = match gone {
                        Some(gone) => self.claims.take_over(room, &gone, &choice).await?,
                        None => self.claims.claim(room, &choice).await?,
                    };
                    if holder == choice {
                        self.directory.placed(&choice).await?;
                    }
                    holder
                }
            };
            if let Some(host) = self.host(holder, &live) {
                return Ok(host);
            }
        }
        Err(ClusterError::Unsettled)
    }

    /// Where a `resume` for `room` goes: its host if a live node holds it; else, when its host
    /// died and left its state, the node placed to carry it on.
    pub async fn find(&self, room: &str) -> Result<Option<Host>, ClusterError> {
        if let Some(holder) = self.claims.host(room).await? {
            if holder == self.id {
                return Ok(Some(Host::Here));
            }
            let live = self.directory.live().await?;
            if let Some(host) = self.host(holder, &live) {
                return Ok(Some(host));
            }
        }
        if self.states.get(room).await?.is_none() {
            return Ok(None);
        }
        self.place(room).await.map(Some)
    }

    /// The live node hosting `room`, without placing it anywhere (the admin API's look-up).
    pub async fn host_of(&self, room: &str) -> Result<Option<Host>, ClusterError> {
        let Some(holder) = self.claims.host(room).await? else {
            return Ok(None);
        };
        let live = self.directory.live().await?;
        Ok(self.host(holder, &live))
    }

    /// Every live node, this one included, as each last reported itself.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        self.directory.live().await
    }

    /// The other live nodes, for the admin API to ask about their rooms.
    pub async fn other_nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut live = self.directory.live().await?;
        live.retain(|n| n.id != self.id);
        Ok(live)
    }

    /// The state the room's last host left, to carry it on here.
    pub async fn stored_state(&self, room: &str) -> Result<Option<String>, ClusterError> {
        self.states.get(room).await
    }

    /// Who may not come back to `room` (removed on any node), and for how much longer.
    pub async fn bans(&self, room: &str) -> Result<Vec<(String, Duration)>, ClusterError> {
        self.states.bans(room).await
    }

    /// The writer of this node's rooms' states (see [`RoomStates::write`]).
    pub fn states(&self) -> RoomStates {
        self.states.clone()
    }

    fn host(&self, holder: String, live: &[NodeInfo]) -> Option<Host> {
        if holder == self.id {
            return Some(Host::Here);
        }
        live.iter()
            .find(|n| n.id == holder)
            .map(|n| Host::Node(n.clone()))
    }

    /// Claims `room` for this node, or renews its claim: true while this node hosts it.
    pub async fn hold(&self, room: &str) -> Result<bool, ClusterError> {
        Ok(self.claims.claim(room, &self.id).await? == self.id)
    }

    /// Gives `room` up (it closed here).
    pub async fn release(&self, room: &str) -> Result<(), ClusterError> {
        self.claims.release(room, &self.id).await.map(drop)
    }
}
