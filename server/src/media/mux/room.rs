//! A room's media on the one-port engine: the handle the room's router holds, and (in `task`)
//! the negotiation policy of each participant's two legs, on one task per room. The worker
//! owns the connections and moves the packets; the task decides what each subscribe leg should
//! receive (everyone else's published tracks), sends one offer at a time with later changes
//! coalesced into the next, passes the worker's answers and offers to the clients with our
//! candidate, and reports connection states, published tracks and who is speaking to the room.

mod task;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use circle_protocol::ParticipantId;
use tokio::sync::mpsc;

use super::worker::WorkerHandle;
use crate::media::leg::SubscribeState;
use crate::media::{MediaError, RouterEvent};
use task::RoomTask;

/// Requests queued to the room's media task; a room changes far slower than this drains.
const COMMAND_QUEUE: usize = 1024;
/// Reports from the worker about this room's connections: states and tracks, a few per
/// participant at a time.
const REPORT_QUEUE: usize = 1024;

/// The gates a participant's media passes, written by the room's rules and read on every
/// packet: the floor gate on their audio, and the gate on their screen share.
#[derive(Clone, Default)]
pub(crate) struct Gates {
    pub(crate) audio: Arc<AtomicBool>,
    pub(crate) screen: Arc<AtomicBool>,
}

/// Connection keys are unique in the process, so a late report of a closed connection can
/// never be mistaken for a new one's.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

enum RoomCommand {
    Add {
        participant: ParticipantId,
        epoch: u64,
        may_publish: bool,
        gates: Gates,
        subscribe: Arc<SubscribeState>,
    },
    Remove {
        participant: ParticipantId,
    },
    RestartIce {
        participant: ParticipantId,
    },
    PublishOffer {
        participant: ParticipantId,
        sdp: String,
        audio_level_id: Option<u8>,
        screen: Option<String>,
    },
    /// The heights at which the participant shows others' cameras.
    TileSizes {
        viewer: ParticipantId,
        sizes: Vec<(ParticipantId, u32)>,
    },
    /// The participant's screen share started or stopped: subscribe legs receive it only
    /// while it is on.
    Screen {
        participant: ParticipantId,
        on: bool,
    },
    SubscribeAnswer {
        participant: ParticipantId,
        sdp: String,
    },
}

/// The room's handle. No method blocks or awaits.
pub(crate) struct MuxRoom {
    commands: Option<mpsc::Sender<RoomCommand>>,
}

impl MuxRoom {
    /// Must be called inside a tokio runtime: the room's media task is spawned here.
    pub(crate) fn new(worker: Arc<WorkerHandle>, events: mpsc::Sender<RouterEvent>) -> MuxRoom {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (reports, report_rx) = mpsc::channel(REPORT_QUEUE);
        let task = RoomTask::new(worker, events, reports);
        tokio::spawn(task.run(command_rx, report_rx));
        MuxRoom {
            commands: Some(commands),
        }
    }

    fn send(&self, command: RoomCommand) -> Result<(), MediaError> {
        let Some(commands) = &self.commands else {
            return Err(MediaError::Internal("the router is closed".to_owned()));
        };
        commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                MediaError::Internal("too many signalling messages in flight".to_owned())
            }
            mpsc::error::TrySendError::Closed(_) => {
                MediaError::Internal("the router is closed".to_owned())
            }
        })
    }

    pub(crate) fn add(
        &mut self,
        participant: ParticipantId,
        epoch: u64,
        may_publish: bool,
        gates: Gates,
        subscribe: Arc<SubscribeState>,
    ) {
        let add = RoomCommand::Add {
            participant,
            epoch,
            may_publish,
            gates,
            subscribe,
        };
        if self.send(add).is_err() {
            tracing::error!("room media queue full; a participant gets no media");
        }
    }

    pub(crate) fn remove(&mut self, participant: &ParticipantId) {
        let remove = RoomCommand::Remove {
            participant: participant.clone(),
        };
        if self.send(remove).is_err() {
            tracing::error!("room media queue full; a leaver's tracks stay offered");
        }
    }

    pub(crate) fn restart_ice(&self, participant: &ParticipantId) {
        let restart = RoomCommand::RestartIce {
            participant: participant.clone(),
        };
        if self.send(restart).is_err() {
            tracing::warn!("could not ask a subscribe leg for an ICE restart");
        }
    }

    pub(crate) fn publish_offer(
        &self,
        participant: &ParticipantId,
        sdp: String,
        audio_level_id: Option<u8>,
        screen: Option<String>,
    ) -> Result<(), MediaError> {
        self.send(RoomCommand::PublishOffer {
            participant: participant.clone(),
            sdp,
            audio_level_id,
            screen,
        })
    }

    pub(crate) fn set_tile_sizes(&self, viewer: &ParticipantId, sizes: Vec<(ParticipantId, u32)>) {
        let command = RoomCommand::TileSizes {
            viewer: viewer.clone(),
            sizes,
        };
        if self.send(command).is_err() {
            tracing::debug!("room media queue full; a change of tile sizes is dropped");
        }
    }

    pub(crate) fn set_screen(&self, participant: &ParticipantId, on: bool) {
        let screen = RoomCommand::Screen {
            participant: participant.clone(),
            on,
        };
        if self.send(screen).is_err() {
            // The gate has already closed; only the offers lag.
            tracing::warn!("room media queue full; subscribe offers miss a screen change");
        }
    }

    pub(crate) fn subscribe_answer(
        &self,
        participant: &ParticipantId,
        sdp: String,
    ) -> Result<(), MediaError> {
        self.send(RoomCommand::SubscribeAnswer {
            participant: participant.clone(),
            sdp,
        })
    }

    /// Stops the room's media task, which closes every connection. Later calls do nothing.
    pub(crate) fn close(&mut self) {
        self.commands = None;
    }
}
