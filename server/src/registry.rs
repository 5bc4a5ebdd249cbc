//! Finding rooms: the one place that finds a room's handle by id or starts the room. The map
//! holds handles only; no invariant lives here, and no guard is held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use circle_protocol::RoomId;
use dashmap::DashMap;

use crate::context::Context;
use crate::room::{self, RoomHandle};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the server has no room for another group right now")]
    TooManyRooms,
}

#[derive(Debug)]
pub struct Registry {
    rooms: DashMap<RoomId, RoomHandle>,
    /// Tells a room apart from a later one with the same id.
    generation: AtomicU64,
    context: Arc<Context>,
}

impl Registry {
    pub fn new(context: Arc<Context>) -> Arc<Self> {
        Arc::new(Self {
            rooms: DashMap::new(),
            generation: AtomicU64::new(1),
            context,
        })
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.context
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
