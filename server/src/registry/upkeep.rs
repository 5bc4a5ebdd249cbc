//! A cluster node's upkeep, on a timer: its heartbeat in the node directory with its load, the
//! renewal of the claim on every room it hosts, and the release of rooms that have closed; and
//! when the node stops, the hand-off of its rooms to the other nodes. Redis
//! being away only pauses it: rooms carry on, and the next tick after Redis returns lists the
//! node and claims its rooms again (Redis's own restart loses no room).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use circle_protocol::RoomId;
use tokio_util::sync::CancellationToken;

use super::Registry;
use crate::cluster::member::{Load, Member};
use crate::cluster::state::StateWrite;
use crate::cluster::ClusterError;

/// Runs until `shutdown`, then takes the node out of the directory and gives up its rooms'
/// claims. Returns at once on a node outside a cluster.
pub async fn keep_up(registry: Arc<Registry>, shutdown: CancellationToken) {
    let (Some(member), Some(settings)) = (
        registry.cluster().cloned(),
        registry.context().settings().cluster.clone(),
    ) else {
        return;
    };
    // A third of the shorter lifetime: one late tick never lets an entry or a claim lapse.
    let period = settings.node_ttl.min(settings.room_lease) / 3;
    let mut held = HashSet::new();
    let mut cpu = CpuUse::start();
    let mut reachable = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.cancelled() => break,
        }
        match tick(&registry, &member, &mut held, &mut cpu).await {
            Ok(()) if !reachable => {
                reachable = true;
                tracing::info!("the cluster's Redis is reachable again; this node is listed");
            }
            Err(e) if reachable => {
                reachable = false;
                tracing::warn!(error = %e, "the cluster's Redis is unreachable; running rooms carry on, new ones cannot be placed");
            }
            _ => {}
        }
    }
    stop(&registry, &member, held).await;
}

/// The node is stopping. With another live node to carry them on, each room is handed off: it
/// stops moving, its final state is written, this node leaves the cluster, and then its clients
/// are sent away with 1001 to resume through any node, where the room goes on with everyone's
/// place. Alone (or with Redis away) the rooms end with `server_shutdown`, as on a single node.
async fn stop(registry: &Registry, member: &Member, mut held: HashSet<RoomId>) {
    let rooms = registry.rooms();
    let others = tokio::time::timeout(Duration::from_secs(1), member.others())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let handed = match registry.context().room_states() {
        Some(sink) if others > 0 => {
            // No new room comes here while these are handed off.
            let load = Load {
                rooms: u32::try_from(rooms.len()).unwrap_or(u32::MAX),
                ..Load::default()
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), member.start_draining(load)).await;
            hand_off(&rooms, sink).await
        }
        _ => Vec::new(),
    };
    for (id, room) in &rooms {
        if !handed.contains(id) {
            let _ = room.shut_down().await;
        }
        held.insert(id.clone());
    }
    // Out of the directory and the claims first, so that the resumes the departures bring are
    // placed on the other nodes, never back here.
    let leaving = async {
        let _ = member.leave().await;
        for room in &held {
            let _ = member.release(room.as_str()).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), leaving).await;
    for (id, room) in &rooms {
        if handed.contains(id) {
            let _ = room.depart().await;
        }
    }
    if !handed.is_empty() {
        tracing::info!(rooms = handed.len(), "rooms handed off to the other nodes");
    }
}

/// Freezes each room and writes its final state; the rooms whose state is in Redis. When the
/// writes cannot be confirmed, none is handed off (the rooms end instead: a room must never be
/// left with nobody to carry it on).
async fn hand_off(
    rooms: &[(RoomId, crate::room::RoomHandle)],
    sink: &tokio::sync::mpsc::Sender<StateWrite>,
) -> Vec<RoomId> {
    let mut handed = Vec::new();
    for (id, room) in rooms {
        if let Ok(Some(state)) = room.hand_off().await {
            let write = StateWrite::Room {
                room: id.as_str().to_owned(),
                state: Some(state),
            };
            if sink.send(write).await.is_ok() {
                handed.push(id.clone());
            }
        }
    }
    let (done, flushed) = tokio::sync::oneshot::channel();
    let confirmed = sink.send(StateWrite::Flush(done)).await.is_ok()
        && matches!(
            tokio::time::timeout(Duration::from_secs(3), flushed).await,
            Ok(Ok(()))
        );
    if !confirmed {
        tracing::warn!("the rooms' last states could not be written; they end instead");
        return Vec::new();
    }
    handed
}

async fn tick(
    registry: &Registry,
    member: &Member,
    held: &mut HashSet<RoomId>,
    cpu: &mut CpuUse,
) -> Result<(), ClusterError> {
    let rooms = registry.rooms();
    let load = Load {
        rooms: u32::try_from(rooms.len()).unwrap_or(u32::MAX),
        // The people in the rooms hosted here: a relayed connection costs its relaying node
        // little, and the room's host the rest.
        participants: u32::try_from(registry.context().metrics().people_in_rooms())
            .unwrap_or(u32::MAX),
        cpu: cpu.since_last(),
    };
    member.heartbeat(load).await?;
    let nodes = member.nodes().await?;
    registry
        .context()
        .metrics()
        .set_cluster(crate::metrics::ClusterSize {
            nodes: nodes.len() as u64,
            rooms: nodes.iter().map(|n| u64::from(n.rooms)).sum(),
            participants: nodes.iter().map(|n| u64::from(n.participants)).sum(),
        });
    for (room, _) in &rooms {
        if member.hold(room.as_str()).await? {
            held.insert(room.clone());
        } else {
            // Only after Redis lost its data and another node placed the room meanwhile: the
            // new joins go there, and this node's copy ends when its participants leave.
            tracing::warn!("a room running here is claimed by another node");
        }
    }
    let running: HashSet<&RoomId> = rooms.iter().map(|(room, _)| room).collect();
    let closed: Vec<RoomId> = held
        .iter()
        .filter(|room| !running.contains(room))
        .cloned()
        .collect();
    for room in closed {
        // Started again since the list above was taken: keep it.
        if registry.existing_room(&room).is_none() {
            member.release(room.as_str()).await?;
        }
        held.remove(&room);
    }
    Ok(())
}

/// This process's share of the machine's cores since the last reading, from `/proc/self/stat`
/// (0 where there is none).
struct CpuUse {
    ticks: u64,
    at: Instant,
}

impl CpuUse {
    fn start() -> Self {
        Self {
            ticks: process_ticks().unwrap_or(0),
            at: Instant::now(),
        }
    }

    fn since_last(&mut self) -> f32 {
        let ticks = process_ticks().unwrap_or(self.ticks);
        let now = Instant::now();
        let elapsed = now.duration_since(self.at).as_secs_f32();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
        // Linux reports these in USER_HZ, 100 per second on every architecture it runs on.
        let used = ticks.saturating_sub(self.ticks) as f32 / 100.0;
        self.ticks = ticks;
        self.at = now;
        if elapsed <= 0.0 {
            return 0.0;
        }
        (used / elapsed / cores).clamp(0.0, 1.0)
    }
}

/// User and system time of this process in clock ticks.
fn process_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses; the fields after its last ')' don't.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
