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
    /// The clinic's system ended it through the admin API.
    EndedByAdmin,
    ServerShutdown,
}

/// Who took a moderation action: a facilitator in the room, or the clinic's system through the
/// admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Facilitator(ParticipantId),
    Api,
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
    /// A facilitator or the admin API (`by`) acted; `target` is whom it concerned, if anyone.
    Moderated {
        by: Actor,
        action: Moderation,
        target: Option<ParticipantId>,
    },
    /// The media path received a track of this kind from the participant.
    Published {
        participant: ParticipantId,
        kind: Published,
    },
    /// This node carries the session on from the state its last host left when it died: the
    /// same session, kept alive in the records from here now.
    CarriedOn,
}

/// An event as subscribers receive it: which room and which of its sessions (one run of the
/// room, from its task's start to its close), and when (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    pub room: RoomId,
    pub session: SessionId,
    pub at: u64,
    pub event: RoomEvent,
}

/// A room's session (one run of the room): 32 random hex digits, chosen when the room's task
/// starts, so waiting before the first admission already belongs to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// A session id read back from the store or an API path; the caller checks it exists.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
    /// The next event if one is waiting now, for draining a batch without waiting.
    pub fn try_next(&mut self) -> Option<Arc<Stamped>> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(lost)) => {
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                    tracing::error!(
                        lost,
                        "a room-event subscriber fell behind; events were lost"
                    );
                }
                Err(_) => return None,
            }
        }
    }

    /// The next event, counting any this subscriber lost for being slow; `None` once the
    /// server has stopped.
    pub async fn next(&mut self) -> Option<Arc<Stamped>> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    self.dropped.fetch_add(lost, Ordering::Relaxed);
                    tracing::error!(
                        lost,
                        "a room-event subscriber fell behind; events were lost"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
