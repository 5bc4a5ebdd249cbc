//! The way into a room from outside its task: a cheap handle whose methods send the room its
//! commands, and the channel types a connection gives the room to reach it. The command enum stays
//! private to the room module.

use std::sync::Arc;

use circle_protocol::{ClientFrame, ErrorCode, ParticipantId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::state::{Joiner, RoomOverview, RoomSettings};
use super::{Millis, RoomError};
use crate::events::SessionId;

/// What a connection's writer sends on the socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    Text(Arc<str>),
    /// Send a close frame with this code, then stop.
    Close(u16),
}

/// The room's way to reach one client connection.
#[derive(Debug, Clone)]
pub struct ConnectionLink {
    pub id: u64,
    pub tx: mpsc::Sender<Outbound>,
    /// Cancelled to drop the connection at once (a client too slow to take a close frame).
    pub kill: CancellationToken,
}

impl ConnectionLink {
    /// Queues a close frame, or drops the connection when even that does not fit.
    pub(super) fn close(&self, code: u16) {
        if self.tx.try_send(Outbound::Close(code)).is_err() {
            self.kill.cancel();
        }
    }
}

#[derive(Debug)]
pub(super) enum RoomCommand {
    Join {
        joiner: Joiner,
        /// The `hello`'s request id, answered with `ok` after `welcome` or `waiting`.
        id: Option<u32>,
        link: ConnectionLink,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Resume {
        token: String,
        /// The `resume`'s request id, answered with `ok` after what is replayed.
        id: Option<u32>,
        last_seq: u64,
        link: ConnectionLink,
        reply: oneshot::Sender<Result<ParticipantId, RoomError>>,
    },
    Request {
        participant: ParticipantId,
        connection: u64,
        frame: ClientFrame,
    },
    /// The connection refused a frame itself (undecodable, binary, over its rate); the room only
    /// numbers the error so it stays in the participant's sequence.
    Refuse {
        participant: ParticipantId,
        connection: u64,
        id: Option<u32>,
        code: ErrorCode,
        message: String,
        /// Close the connection with this code after the error, behind everything the room
        /// has already queued for it (an abusive connection hears why before it goes).
        then_close: Option<u16>,
    },
    Disconnected {
        participant: ParticipantId,
        connection: u64,
    },
    /// The admin API's questions and actions.
    Describe {
        reply: oneshot::Sender<RoomView>,
    },
    End {
        reply: oneshot::Sender<()>,
    },
    Remove {
        participant: ParticipantId,
        reply: oneshot::Sender<Result<(), RoomError>>,
    },
    Configure {
        settings: RoomSettings,
    },
    /// The node is stopping in a cluster: the room stops changing and answers with its state
    /// for another node to carry it on (`None` when there is nothing to carry on).
    HandOff {
        reply: oneshot::Sender<Option<String>>,
    },
    /// After a hand-off: close every connection with 1001 (they resume on another node) and
    /// stop, ending nothing.
    Depart,
    /// The node is stopping and no other node can carry the room on: end the session.
    ShutDown,
}

/// A live room as the admin API sees it: ids, roles, states and times, never names.
#[derive(Debug, Clone)]
pub struct RoomView {
    pub session: SessionId,
    /// When the first participant was admitted; `None` while only people waiting have come.
    pub started_at: Option<Millis>,
    pub overview: RoomOverview,
    /// When each participant now here was admitted (or began waiting), in Unix milliseconds.
    pub since: Vec<(ParticipantId, Millis)>,
}

/// Why the room could not take a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sent {
    /// The room's task has ended (it closed between the look-up and the command).
    #[error("the room has closed")]
    Closed,
    #[error(transparent)]
    Refused(#[from] RoomError),
}

/// A cheap handle to a room's task. Every method waits only for room in the room's queue (and,
/// for a join or resume, for the room's answer): the room itself never waits on a connection.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCommand>,
    generation: u64,
}

impl RoomHandle {
    pub(super) fn new(tx: mpsc::Sender<RoomCommand>, generation: u64) -> Self {
        Self { tx, generation }
    }

    /// Tells this room apart from a later one with the same id.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A new connection's `hello`: admitted, waiting, or refused.
    pub async fn join(
        &self,
        joiner: Joiner,
        request: Option<u32>,
        link: ConnectionLink,
    ) -> Result<(), Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::Join {
            joiner,
            id: request,
            link,
            reply,
        })
        .await?;
        Ok(answer.await.map_err(|_| Sent::Closed)??)
    }

    /// A reconnecting client's `resume`: whose seat the token holds, once the missed messages
    /// are on their way.
    pub async fn resume(
        &self,
        token: String,
        request: Option<u32>,
        last_seq: u64,
        link: ConnectionLink,
    ) -> Result<ParticipantId, Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::Resume {
            token,
            id: request,
            last_seq,
            link,
            reply,
        })
        .await?;
        Ok(answer.await.map_err(|_| Sent::Closed)??)
    }

    /// One request from a joined connection.
    pub async fn request(
        &self,
        participant: ParticipantId,
        connection: u64,
        frame: ClientFrame,
    ) -> Result<(), Sent> {
        self.send(RoomCommand::Request {
            participant,
            connection,
            frame,
        })
        .await
    }

    /// A frame the connection refused itself, for the room to answer in the participant's sequence.
    pub async fn refuse(
        &self,
        participant: ParticipantId,
        connection: u64,
        id: Option<u32>,
        code: ErrorCode,
        message: String,
    ) -> Result<(), Sent> {
        self.send(RoomCommand::Refuse {
            participant,
            connection,
            id,
            code,
            message,
            then_close: None,
        })
        .await
    }

    /// A last refusal, then the connection is closed with `close`: both in the participant's
    /// sequence, after the answers to what the connection sent before.
    pub async fn refuse_and_close(
        &self,
        participant: ParticipantId,
        connection: u64,
        code: ErrorCode,
        message: String,
        close: u16,
    ) -> Result<(), Sent> {
        self.send(RoomCommand::Refuse {
            participant,
            connection,
            id: None,
            code,
            message,
            then_close: Some(close),
        })
        .await
    }

    /// The connection's socket ended without `leave`.
    pub async fn disconnected(
        &self,
        participant: ParticipantId,
        connection: u64,
    ) -> Result<(), Sent> {
        self.send(RoomCommand::Disconnected {
            participant,
            connection,
        })
        .await
    }

    /// What the room looks like now (the admin API).
    pub async fn describe(&self) -> Result<RoomView, Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::Describe { reply }).await?;
        answer.await.map_err(|_| Sent::Closed)
    }

    /// Ends the session for everyone (`ended_by_admin`, close 4004); returns once the room has
    /// told them.
    pub async fn end(&self) -> Result<(), Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::End { reply }).await?;
        answer.await.map_err(|_| Sent::Closed)
    }

    /// Removes a participant as a facilitator's `remove` would (the admin API).
    pub async fn remove(&self, participant: ParticipantId) -> Result<(), Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::Remove { participant, reply })
            .await?;
        Ok(answer.await.map_err(|_| Sent::Closed)??)
    }

    /// New settings for the running room, applied where they can be.
    pub async fn configure(&self, settings: RoomSettings) -> Result<(), Sent> {
        self.send(RoomCommand::Configure { settings }).await
    }

    /// Freezes the room for another node to carry on, and returns its state.
    pub async fn hand_off(&self) -> Result<Option<String>, Sent> {
        let (reply, answer) = oneshot::channel();
        self.send(RoomCommand::HandOff { reply }).await?;
        answer.await.map_err(|_| Sent::Closed)
    }

    /// Sends a handed-off room's connections on their way (close 1001) and stops the room.
    pub async fn depart(&self) -> Result<(), Sent> {
        self.send(RoomCommand::Depart).await
    }

    /// Ends the session because the server is going away (`server_shutdown`, close 1001).
    pub async fn shut_down(&self) -> Result<(), Sent> {
        self.send(RoomCommand::ShutDown).await
    }

    async fn send(&self, command: RoomCommand) -> Result<(), Sent> {
        self.tx.send(command).await.map_err(|_| Sent::Closed)
    }
}
