//! What the clinic's system may do to a running room through the admin API: end it, remove
//! someone, change its settings, and see who is where (ids, roles and states, never names).

use super::*;

/// Where someone is, as the admin API tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceState {
    Present,
    Waiting,
    Reconnecting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverviewEntry {
    pub id: ParticipantId,
    pub role: Role,
    pub state: PresenceState,
}

/// A room as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOverview {
    pub locked: bool,
    pub floor_mode: FloorMode,
    pub turn_limit: Option<u32>,
    pub participants: Vec<OverviewEntry>,
}

impl Room {
    /// The clinic's system ends the session (the admin API): everyone is told
    /// `ended_by_admin` and closed with 4004.
    pub fn end_by_admin(&mut self) {
        if !self.ended {
            self.moderated_by(Actor::Api, Moderation::Ended, None);
        }
        self.end(EndReason::EndedByAdmin, close::SESSION_ENDED);
        self.finish();
    }

    /// The admin API removes someone, as a facilitator's `remove` would.
    pub fn remove_by_admin(&mut self, participant: &ParticipantId) -> Result<(), RoomError> {
        let removed = self.remove(Actor::Api, participant);
        self.finish();
        removed
    }

    /// Settings changed through the admin API, applied to the running room where they can be:
    /// a smaller cap turns nobody away who is already here, and a new turn limit starts with
    /// the next turn.
    pub fn configure(&mut self, now: Millis, settings: &RoomSettings) {
        if let Some(max) = settings.max_participants {
            self.config.max_participants = max;
            self.over_cap = self.over_cap.max(self.members.len());
        }
        if let Some(waiting_room) = settings.waiting_room {
            self.config.waiting_room = waiting_room;
        }
        if let Some(threshold) = settings.anonymity_threshold {
            self.config.anonymity_threshold = threshold;
            self.reactions.set_threshold(threshold);
        }
        if let Some(limit) = settings.turn_limit_seconds {
            let limit = (limit > 0).then_some(limit);
            if self.floor.set_turn_limit(now, limit).unwrap_or(false) {
                self.announce_room_settings();
            }
        }
        self.finish();
    }

    /// Counts and states for the admin API: ids, roles and presence, never names.
    pub fn overview(&self) -> RoomOverview {
        RoomOverview {
            locked: self.locked,
            floor_mode: self.floor.mode(),
            turn_limit: self.floor.turn_limit(),
            participants: self
                .members
                .iter()
                .map(|m| OverviewEntry {
                    id: m.id.clone(),
                    role: m.role,
                    state: match (m.presence, m.is_reconnecting()) {
                        (Presence::Waiting, _) => PresenceState::Waiting,
                        (Presence::Admitted, true) => PresenceState::Reconnecting,
                        (Presence::Admitted, false) => PresenceState::Present,
                    },
                })
                .collect(),
        }
    }
}
