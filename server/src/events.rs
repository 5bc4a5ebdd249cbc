//! What happened in a room, for the parts of the server that keep records, count or tell the
//! clinic's systems, without touching room code. Events carry ids and roles only: never a display
//! name, a note, a reaction or anything of a check-in, so no subscriber can store what was said.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use circle_protocol::{ParticipantId, Role, RoomId};
use tokio::sync::broadcast;

/// Why someone left the room proper (admitted participants only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftReason {
    Left,
    Removed,
    Timeout,
    /// The session ended around them (a facilitator's `end_session`, or the server stopping).
    Ended,
}

/// Why a room's session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The last participant left.
    Empty,
    EndedByFacilitator,
    ServerShutdown,
}

/// A facilitator's decision about someone, or about the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moderation {
    Admitted,
    Denied,
    Removed,
    Muted,
    Unmuted,
    Locked,
    Unlocked,
    Ended,
}

/// A kind of media a participant really published (the media path saw a track of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// The first participant was admitted: the room's session began.
    Started,
    /// The session is over; the room closes.
    Finished { reason: FinishReason },
    /// Someone knocked and waits to be admitted.
    Waiting {
        participant: ParticipantId,
        role: Role,
    },
    /// Someone entered the room proper.
    Admitted {
        participant: ParticipantId,
        role: Role,
    },
    /// Someone admitted is gone for good.
    Left {
        participant: ParticipantId,
        role: Role,
        reason: LeftReason,
    },
    /// Someone's connection dropped; they keep their place through the resume grace.
    Reconnecting { participant: ParticipantId },
    /// Someone reconnecting is back.
    Back { participant: ParticipantId },
    /// A facilitator (`by`) acted; `target` is whom it concerned, if anyone.
    Moderated {
        by: ParticipantId,
        action: Moderation,
        target: Option<ParticipantId>,
    },
    /// The media path received a track of this kind from the participant.
    Published {
        participant: ParticipantId,
        kind: Published,
    },
}

/// An event as subscribers receive it: which room, and when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub room: RoomId,
    pub at: u64,
    pub event: RoomEvent,
}

/// Every room's events on one bounded channel. Publishing never waits: a subscriber that falls
/// more than the channel's length behind loses the oldest events it has not read, and the loss
/// is counted, so a slow record keeper or webhook never slows a room.
#[derive(Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Stamped>>,
    dropped: Arc<AtomicU64>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Hands the event to every subscriber there is now; nobody listening is fine.
    pub fn publish(&self, event: Stamped) {
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
            dropped: self.dropped.clone(),
        }
    }

    /// Events subscribers lost by falling behind, over the server's life.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One subscriber's view of the bus.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Stamped>>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The next event, counting any this subscriber lost for being slow; `None` once the
    /// server has stopped.
    pub async fn next(&mut self) -> Option<Arc<Stamped>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
