//! A facilitator's decisions about people and the room: admitting, denying, muting, removing,
//! locking and ending. The admin API's removal comes through `remove` too (`admin.rs`).

use super::*;

impl Room {
    /// A facilitator's decision about someone, or about the room.
    pub(super) fn moderate(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        id: Option<RequestId>,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        use ClientMessage as M;
        match message {
            M::Admit { participant } => {
                self.expect_waiting(&participant)?;
                self.moderated(from, Moderation::Admitted, Some(&participant));
                self.admit_member(&participant);
                self.announce_waiting_room();
            }
            M::Deny { participant } => {
                self.expect_waiting(&participant)?;
                // Without a pause, a denied person could knock again at once, over and over.
                self.denied_until.retain(|_, until| *until > now);
                self.denied_until
                    .insert(participant.clone(), now + self.config.knock_cooldown_ms);
                self.moderated(from, Moderation::Denied, Some(&participant));
                self.send(&participant, ServerMessage::Denied);
                self.effects.push(Effect::Close {
                    to: participant.clone(),
                    code: close::DENIED,
                });
                self.forget(&participant);
                self.announce_waiting_room();
            }
            M::AdmitAll => {
                let waiting: Vec<ParticipantId> = self
                    .members
                    .iter()
                    .filter(|m| !m.is_admitted())
                    .map(|m| m.id.clone())
                    .collect();
                if !waiting.is_empty() {
                    for p in &waiting {
                        self.moderated(from, Moderation::Admitted, Some(p));
                        self.admit_member(p);
                    }
                    self.announce_waiting_room();
                }
            }
            M::Mute { participant } => self.set_muted(from, &participant, true)?,
            M::Unmute { participant } => self.set_muted(from, &participant, false)?,
            M::Remove { participant } => {
                self.remove(Actor::Facilitator(from.clone()), &participant)?;
            }
            M::LockRoom { locked } => {
                if locked != self.locked {
                    self.locked = locked;
                    let action = if locked {
                        Moderation::Locked
                    } else {
                        Moderation::Unlocked
                    };
                    self.moderated(from, action, None);
                    self.announce_room_settings();
                }
            }
            M::EndSession => {
                if let Some(id) = id {
                    self.send(from, ServerMessage::Ok { id });
                }
                self.moderated(from, Moderation::Ended, None);
                self.end(EndReason::EndedByFacilitator, close::SESSION_ENDED);
                return Ok(Reply::Sent);
            }
            other => unreachable!("`{}` is not moderation", other.type_name()),
        }
        Ok(Reply::Ok)
    }

    /// Removes someone for good (a facilitator's `remove`, or the admin API's): told, closed
    /// with 4001, and kept out while the room lives and for as long as their link could work.
    pub(super) fn remove(
        &mut self,
        by: Actor,
        participant: &ParticipantId,
    ) -> Result<(), RoomError> {
        let target = self
            .member(participant)
            .ok_or_else(|| RoomError::NotFound("no such participant in this room".into()))?;
        if target.role == Role::Facilitator {
            return Err(RoomError::Conflict(
                "a facilitator cannot be removed".into(),
            ));
        }
        let was_admitted = target.is_admitted();
        self.banned.insert(participant.clone());
        self.moderated_by(by, Moderation::Removed, Some(participant));
        self.effects.push(Effect::Banned {
            participant: participant.clone(),
        });
        self.send(participant, ServerMessage::Removed);
        self.effects.push(Effect::Close {
            to: participant.clone(),
            code: close::REMOVED,
        });
        if was_admitted {
            self.depart(participant, LeaveReason::Removed);
        } else {
            self.forget(participant);
            self.announce_waiting_room();
        }
        Ok(())
    }

    pub(super) fn set_muted(
        &mut self,
        by: &ParticipantId,
        participant: &ParticipantId,
        muted: bool,
    ) -> Result<(), RoomError> {
        let target = self
            .member(participant)
            .filter(|m| m.is_admitted())
            .ok_or_else(|| RoomError::NotFound("no such participant in this room".into()))?;
        if target.role == Role::Facilitator {
            return Err(RoomError::Conflict(
                "a facilitator's microphone is theirs alone".into(),
            ));
        }
        let member = self.member_mut(participant).expect("checked above");
        if member.muted != muted {
            member.muted = muted;
            let action = if muted {
                Moderation::Muted
            } else {
                Moderation::Unmuted
            };
            self.moderated(by, action, Some(participant));
            self.announce_update(participant);
        }
        Ok(())
    }

    pub(super) fn expect_waiting(&self, id: &ParticipantId) -> Result<(), RoomError> {
        match self.member(id) {
            None => Err(RoomError::NotFound("nobody by that id is waiting".into())),
            Some(m) if m.is_admitted() => Err(RoomError::Conflict("already admitted".into())),
            Some(_) => Ok(()),
        }
    }
}
