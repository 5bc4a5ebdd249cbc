//! Who is in the room: admitting, departing, forgetting, ending the session, and the end of
//! every step (the media gate and the speakers each participant may see).

use super::*;

impl Room {
    pub(super) fn admit_member(&mut self, id: &ParticipantId) {
        let member = self.member_mut(id).expect("admitting someone present");
        member.presence = Presence::Admitted;
        let role = member.role;
        let view = member.view();
        if !self.started {
            self.started = true;
            self.event(RoomEvent::Started);
        }
        self.event(RoomEvent::Admitted {
            participant: id.clone(),
            role,
        });
        self.effects.push(Effect::Welcome { to: id.clone() });
        for to in self.admitted_ids() {
            if &to != id {
                self.send(
                    &to,
                    ServerMessage::ParticipantJoined {
                        participant: view.clone(),
                    },
                );
            }
        }
        if role == Role::Facilitator {
            self.send(id, self.waiting_room_message());
        }
        self.effects.push(Effect::Admitted {
            participant: id.clone(),
            may_publish: role != Role::Observer,
        });
    }

    /// Takes an admitted participant out for good and tells the room.
    pub(super) fn depart(&mut self, id: &ParticipantId, reason: LeaveReason) {
        let Some(i) = self.index_of(id) else { return };
        let was_admitted = self.members[i].is_admitted();
        if was_admitted {
            let reason = match reason {
                LeaveReason::Left => LeftReason::Left,
                LeaveReason::Removed => LeftReason::Removed,
                LeaveReason::Timeout => LeftReason::Timeout,
            };
            self.event(RoomEvent::Left {
                participant: id.clone(),
                role: self.members[i].role,
                reason,
            });
        }
        if reason == LeaveReason::Left {
            self.effects.push(Effect::Close {
                to: id.clone(),
                code: close::NORMAL,
            });
        }
        self.forget(id);
        if !was_admitted {
            self.announce_waiting_room();
            return;
        }
        let floor_changed = self.floor.forget(id);
        for to in self.admitted_ids() {
            self.send(
                &to,
                ServerMessage::ParticipantLeft {
                    participant: id.clone(),
                    reason,
                },
            );
        }
        if floor_changed {
            self.announce_floor();
        }
        self.speaking.retain(|p| p != id);
    }

    /// Removes every trace of a participant but the ban list; no messages.
    pub(super) fn forget(&mut self, id: &ParticipantId) {
        self.members.retain(|m| &m.id != id);
        // An open check-in keeps a leaver's answer: they gave it while here.
        self.gates.remove(id);
        self.screens.remove(id);
        self.speaking_sent.remove(id);
        self.reactions.forget(id);
        self.effects.push(Effect::Gone {
            participant: id.clone(),
        });
    }

    pub(super) fn end(&mut self, reason: EndReason, code: u16) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.end_reason = Some(match reason {
            EndReason::EndedByFacilitator => FinishReason::EndedByFacilitator,
            EndReason::EndedByAdmin => FinishReason::EndedByAdmin,
            EndReason::ServerShutdown => FinishReason::ServerShutdown,
        });
        let admitted: Vec<(ParticipantId, Role)> = self
            .members
            .iter()
            .filter(|m| m.is_admitted())
            .map(|m| (m.id.clone(), m.role))
            .collect();
        for (participant, role) in admitted {
            self.event(RoomEvent::Left {
                participant,
                role,
                reason: LeftReason::Ended,
            });
        }
        let everyone: Vec<ParticipantId> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in &everyone {
            self.send(id, ServerMessage::SessionEnded { reason });
            self.effects.push(Effect::Close {
                to: id.clone(),
                code,
            });
        }
        for id in &everyone {
            self.effects.push(Effect::Gone {
                participant: id.clone(),
            });
        }
        self.members.clear();
        self.gates.clear();
        self.screens.clear();
        self.speaking.clear();
        self.speaking_sent.clear();
        self.floor.clear();
        self.check_ins.clear();
        self.reactions.clear();
    }

    /// Whether the rules let this participant's audio reach the room.
    pub(super) fn audio_forwarded(&self, id: &ParticipantId) -> bool {
        let Some(m) = self.member(id).filter(|m| m.is_admitted()) else {
            return false;
        };
        match m.role {
            Role::Facilitator => true,
            Role::Observer => false,
            Role::Member => {
                !m.muted && (self.floor.mode() == FloorMode::Open || self.floor.holds(id))
            }
        }
    }

    /// Whether the rules let this participant share a screen: a facilitator always, a member
    /// while holding the stick, an observer never (protocol.md, "Screen share").
    pub(super) fn may_share(&self, id: &ParticipantId) -> bool {
        let Some(m) = self.member(id).filter(|m| m.is_admitted()) else {
            return false;
        };
        match m.role {
            Role::Facilitator => true,
            Role::Member => self.floor.holds(id),
            Role::Observer => false,
        }
    }

    /// Ends every step: ends each screen share the rules no longer allow (a member's, when the
    /// stick moves on), tells the media path each gate and screen that changed, and each
    /// participant the speakers they may now see, when that changed.
    pub(super) fn finish(&mut self) {
        if self.started && !self.finish_told && self.is_finished() {
            self.finish_told = true;
            let reason = self.end_reason.unwrap_or(FinishReason::Empty);
            self.event(RoomEvent::Finished { reason });
            if !self.ended {
                // Emptied, not ended: the room's task stops here, but rules that are driven on
                // (tests do) start a new session with the next admission.
                self.started = false;
                self.finish_told = false;
            }
        }
        let publishers: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| m.is_admitted() && m.role != Role::Observer)
            .map(|m| m.id.clone())
            .collect();
        let ended: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| m.screen.is_some())
            .map(|m| m.id.clone())
            .filter(|id| !self.may_share(id))
            .collect();
        for id in ended {
            if let Some(m) = self.member_mut(&id) {
                m.screen = None;
            }
            self.announce_update(&id);
        }
        for id in &publishers {
            let track = self.member(id).and_then(|m| m.screen.clone());
            if self.screens.get(id) != track.as_ref() {
                match &track {
                    Some(track) => self.screens.insert(id.clone(), track.clone()),
                    None => self.screens.remove(id),
                };
                self.effects.push(Effect::ScreenGate {
                    participant: id.clone(),
                    track,
                });
            }
        }
        for id in publishers {
            let forward = self.audio_forwarded(&id);
            if self.gates.get(&id) != Some(&forward) {
                self.gates.insert(id.clone(), forward);
                self.effects.push(Effect::AudioGate {
                    participant: id,
                    forward,
                });
            }
        }
        self.announce_speaking();
    }
}
