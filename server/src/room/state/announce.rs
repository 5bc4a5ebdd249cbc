//! Telling people what changed: the floor, updates, settings, the waiting room, speakers, room
//! events, and the look-ups every rule uses to find whom to tell.

use super::*;

impl Room {
    pub(super) fn announce_speaking(&mut self) {
        if self.speaking.is_empty() && self.speaking_sent.is_empty() {
            return;
        }
        let heard: Vec<ParticipantId> = self
            .speaking
            .iter()
            .filter(|p| self.audio_forwarded(p))
            .cloned()
            .collect();
        for to in self.admitted_ids() {
            let list = if self.role_of(&to) == Some(Role::Facilitator) {
                self.speaking.clone()
            } else {
                heard.clone()
            };
            let told = self.speaking_sent.get(&to);
            if told == Some(&list) || (told.is_none() && list.is_empty()) {
                continue;
            }
            self.speaking_sent.insert(to.clone(), list.clone());
            self.send(&to, ServerMessage::Speaking { participants: list });
        }
    }

    pub(super) fn floor_for(&self, to: &ParticipantId) -> FloorState {
        let facilitator = self.role_of(to) == Some(Role::Facilitator);
        self.floor.view_for(to, facilitator)
    }

    pub(super) fn announce_floor(&mut self) {
        for to in self.admitted_ids() {
            let floor = self.floor_for(&to);
            self.send(&to, ServerMessage::Floor(floor));
        }
    }

    pub(super) fn announce_update(&mut self, id: &ParticipantId) {
        let Some(m) = self.member(id).filter(|m| m.is_admitted()) else {
            return;
        };
        let participant = m.view();
        self.broadcast(ServerMessage::ParticipantUpdated { participant });
    }

    pub(super) fn announce_room_settings(&mut self) {
        self.broadcast(ServerMessage::RoomUpdated {
            locked: self.locked,
            turn_limit: self.floor.turn_limit(),
        });
    }

    pub(super) fn waiting_room_message(&self) -> ServerMessage {
        ServerMessage::WaitingRoom {
            waiting: self
                .members
                .iter()
                .filter(|m| !m.is_admitted())
                .map(Member::view)
                .collect(),
        }
    }

    pub(super) fn announce_waiting_room(&mut self) {
        let message = self.waiting_room_message();
        for f in self.facilitator_ids() {
            self.send(&f, message.clone());
        }
    }

    pub(super) fn hand(&mut self, to: &ParticipantId, status: HandStatus, position: Option<u32>) {
        self.send(to, ServerMessage::Hand { status, position });
    }

    pub(super) fn broadcast(&mut self, message: ServerMessage) {
        for to in self.admitted_ids() {
            self.send(&to, message.clone());
        }
    }

    pub(super) fn event(&mut self, event: RoomEvent) {
        self.effects.push(Effect::Event(event));
    }

    pub(super) fn moderated(
        &mut self,
        by: &ParticipantId,
        action: Moderation,
        target: Option<&ParticipantId>,
    ) {
        self.moderated_by(Actor::Facilitator(by.clone()), action, target);
    }

    pub(super) fn moderated_by(
        &mut self,
        by: Actor,
        action: Moderation,
        target: Option<&ParticipantId>,
    ) {
        self.event(RoomEvent::Moderated {
            by,
            action,
            target: target.cloned(),
        });
    }

    /// Tells the rest of the server that someone's connection dropped or came back.
    pub(super) fn connection_changed(&mut self, id: &ParticipantId, reconnecting: bool) {
        let participant = id.clone();
        self.event(if reconnecting {
            RoomEvent::Reconnecting { participant }
        } else {
            RoomEvent::Back { participant }
        });
    }

    pub(super) fn send(&mut self, to: &ParticipantId, message: ServerMessage) {
        self.effects.push(Effect::Send {
            to: to.clone(),
            message,
        });
    }

    pub(super) fn admitted_ids(&self) -> Vec<ParticipantId> {
        self.members
            .iter()
            .filter(|m| m.is_admitted())
            .map(|m| m.id.clone())
            .collect()
    }

    pub(super) fn facilitator_ids(&self) -> Vec<ParticipantId> {
        self.members
            .iter()
            .filter(|m| m.is_admitted() && m.role == Role::Facilitator)
            .map(|m| m.id.clone())
            .collect()
    }

    pub(super) fn index_of(&self, id: &ParticipantId) -> Option<usize> {
        self.members.iter().position(|m| &m.id == id)
    }

    pub(super) fn member(&self, id: &ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| &m.id == id)
    }

    pub(super) fn member_mut(&mut self, id: &ParticipantId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.id == id)
    }
}
