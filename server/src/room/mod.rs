//! Rooms: the pure rules ([`state`]), the per-participant outbox ([`outbox`]), the task that
//! owns one room and moves messages for it ([`actor`]), and the handle others reach it by
//! ([`handle`]).

pub mod actor;
mod anonymous;
mod floor;
pub mod handle;
pub mod outbox;
mod permissions;
pub mod state;
pub mod stored;
pub mod time;

pub use actor::{spawn, OnClose};
pub use handle::{ConnectionLink, Outbound, RoomHandle, RoomView, Sent};
pub use state::{
    Effect, Joined, Joiner, Millis, OverviewEntry, PresenceState, Room, RoomConfig, RoomOverview,
    RoomSettings,
};

/// Why the room refused something. Every variant is client-visible; `crate::error` maps them
/// to protocol codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the room is locked")]
    RoomLocked,
    #[error("the room is full")]
    RoomFull,
    #[error("{0}")]
    RateLimited(String),
    #[error("you are not in this room")]
    NotJoined,
    #[error("the room is closing; try again")]
    Closing,
}

#[cfg(test)]
mod tests;
