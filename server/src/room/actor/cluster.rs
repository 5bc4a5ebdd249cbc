//! The room's task in a cluster: it hands its rules state to the node's writer as it changes
//! (so another node can carry the room on), carries a room on from such a state, and hands the
//! room off when its node stops.

use tokio::sync::mpsc;
use tokio::time::Instant;

use circle_protocol::{ParticipantId, Role};

use super::RoomActor;
use crate::cluster::state::StateWrite;
use crate::events::{RoomEvent, SessionId};
use crate::room::handle::RoomCommand;
use crate::room::stored::{token_hash, StoredRoom};
use crate::room::RoomError;

/// A room's state is written to the cluster's Redis at least this often, changed or not.
const STATE_REFRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl RoomActor {
    /// Takes on what the room's last host left besides the rules (already restored): the same
    /// group session, when people arrived, and their resume tokens, hashed. Everyone's
    /// connection went with the old host, so each is reconnecting from now.
    pub(super) fn carry_on(&mut self, stored: StoredRoom) {
        let away: Vec<ParticipantId> = stored.rules.participants().cloned().collect();
        self.session = SessionId::from_stored(stored.session);
        self.started_at = stored.started_at;
        self.since = stored.since.into_iter().collect();
        self.restored_tokens = stored.resume.into_iter().collect();
        if self.started_at.is_some() {
            self.gauges.set_session_open(true);
        }
        self.presence_changed = true;
        self.publish(RoomEvent::CarriedOn);
        for participant in away {
            self.publish(RoomEvent::Reconnecting { participant });
        }
        self.apply_effects();
    }

    /// A participant back in a room carried on from another node gets their media here: until
    /// then the media path had nothing of them (an offer made while they were away would be
    /// lost with their old connection, and wait for an answer forever).
    pub(super) fn media_from_scratch(&mut self, participant: &ParticipantId) {
        let role = self
            .room
            .overview()
            .participants
            .into_iter()
            .find(|p| &p.id == participant)
            .map(|p| p.role);
        if let Some(role) = role {
            self.router
                .add_participant(participant.clone(), role != Role::Observer);
        }
    }

    /// A handed-off room moves nothing: joins are turned away (to be placed anew once this node
    /// has left the cluster), everything else waits for the room's new host.
    pub(super) fn after_hand_off(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Join { reply, .. } => {
                let _ = reply.send(Err(RoomError::Closing));
            }
            RoomCommand::Resume { reply, .. } => {
                let _ = reply.send(Err(RoomError::Closing));
            }
            RoomCommand::HandOff { reply } => {
                let _ = reply.send(self.stored_state().map(|s| s.to_json()));
            }
            RoomCommand::Depart => self.depart(),
            // The node has no other way to stop a room whose hand-off went nowhere.
            RoomCommand::ShutDown => {
                self.handed_off = false;
                self.room.shut_down();
            }
            RoomCommand::Request { .. }
            | RoomCommand::Refuse { .. }
            | RoomCommand::Disconnected { .. }
            | RoomCommand::Describe { .. }
            | RoomCommand::End { .. }
            | RoomCommand::Remove { .. }
            | RoomCommand::Configure { .. } => {}
        }
    }

    /// Sends every connection on its way with 1001: its client resumes, through any node, in
    /// the room another node carries on.
    pub(super) fn depart(&mut self) {
        for (_, link) in self.links.drain() {
            link.close(circle_protocol::close::GOING_AWAY);
        }
        self.departing = true;
    }

    /// Hands the room's state to the cluster's writer when it changed, and every
    /// [`STATE_REFRESH`] unchanged (a Redis that restarted empty has it again); never waits. A
    /// full queue is tried again shortly.
    pub(super) fn save_state(&mut self) {
        if self.states.is_none() {
            return;
        }
        let Some(stored) = self.stored_state() else {
            return;
        };
        let Some(states) = &self.states else { return };
        let json = stored.to_json();
        let now = Instant::now();
        let due = self.save_again.is_some_and(|at| at <= now);
        if self.saved.as_deref() == Some(json.as_str()) && !due {
            return;
        }
        let write = StateWrite::Room {
            room: self.room.id().as_str().to_owned(),
            state: Some(json.clone()),
        };
        self.save_again = Some(match states.try_send(write) {
            Ok(()) => {
                self.saved = Some(json);
                now + STATE_REFRESH
            }
            Err(_) => now + std::time::Duration::from_millis(200),
        });
    }

    /// What another node needs to carry the room on; `None` once it is finished.
    pub(super) fn stored_state(&self) -> Option<StoredRoom> {
        let rules = self.room.record()?;
        let resume = self
            .resume_tokens
            .iter()
            .map(|(p, token)| (p.clone(), token_hash(token)))
            .chain(
                self.restored_tokens
                    .iter()
                    .map(|(p, h)| (p.clone(), h.clone())),
            )
            .collect();
        let since = self.since.iter().map(|(p, at)| (p.clone(), *at)).collect();
        Some(StoredRoom::new(
            self.session.as_str().to_owned(),
            self.started_at,
            since,
            resume,
            rules,
        ))
    }

    /// The room closed: its state goes, so that nobody carries on a finished session. Handed
    /// over on a task of its own, since the room may not wait.
    pub(super) fn forget_state(&mut self) {
        let Some(states) = self.states.take() else {
            return;
        };
        let write = StateWrite::Room {
            room: self.room.id().as_str().to_owned(),
            state: None,
        };
        if let Err(mpsc::error::TrySendError::Full(write)) = states.try_send(write) {
            tokio::spawn(async move {
                let _ = states.send(write).await;
            });
        }
    }
}
