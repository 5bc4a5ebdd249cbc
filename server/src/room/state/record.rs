//! The room's rules state as another node carries it on (issue 16, "a node's death loses
//! nobody's place"): who is admitted and as what, who was removed or turned away, the lock, the
//! floor (stick, running turn, queue with notes, mode, limit) and the open check-in's question.
//! Never kept: check-in answers, the reaction window, who is speaking, screen shares (they
//! end with their peers) and the waiting room (waiting people hold nothing and knock again).

use std::collections::{HashMap, HashSet};

use circle_protocol::{ParticipantId, Role, RoomId};
use serde::{Deserialize, Serialize};

use super::{MediaDown, Member, Millis, Presence, Room, RoomConfig};
use crate::room::anonymous::{CheckIns, CheckInsRecord};
use crate::room::floor::{Floor, FloorRecord};

/// Everything [`Room::restore`] needs, serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomRecord {
    config: RoomConfig,
    members: Vec<MemberRecord>,
    banned: Vec<ParticipantId>,
    denied_until: Vec<(ParticipantId, Millis)>,
    locked: bool,
    floor: FloorRecord,
    check_ins: CheckInsRecord,
    started: bool,
    over_cap: usize,
}

/// One admitted participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct MemberRecord {
    id: ParticipantId,
    name: String,
    role: Role,
    audio: bool,
    video: bool,
    muted: bool,
}

impl RoomRecord {
    /// The admitted participants' ids, in arrival order.
    pub fn participants(&self) -> impl Iterator<Item = &ParticipantId> {
        self.members.iter().map(|m| &m.id)
    }
}

impl Room {
    /// The rules state another node would carry on from; `None` once the room is finished,
    /// when there is nothing to carry on.
    pub fn record(&self) -> Option<RoomRecord> {
        if self.is_finished() {
            return None;
        }
        let mut denied_until: Vec<(ParticipantId, Millis)> = self
            .denied_until
            .iter()
            .map(|(id, until)| (id.clone(), *until))
            .collect();
        denied_until.sort();
        let mut banned: Vec<ParticipantId> = self.banned.iter().cloned().collect();
        banned.sort();
        Some(RoomRecord {
            config: self.config.clone(),
            members: self
                .members
                .iter()
                .filter(|m| m.is_admitted())
                .map(|m| MemberRecord {
                    id: m.id.clone(),
                    name: m.name.clone(),
                    role: m.role,
                    audio: m.audio,
                    video: m.video,
                    muted: m.muted,
                })
                .collect(),
            banned,
            denied_until,
            locked: self.locked,
            floor: self.floor.record(),
            check_ins: self.check_ins.record(),
            started: self.started,
            over_cap: self.over_cap,
        })
    }

    /// The room `record` describes, carried on at `now` by a node whose connections to its
    /// participants are all new: every participant is reconnecting, with the whole resume
    /// grace from now to come back in, and keeps the stick, their place in the queue and their
    /// note. The media path is told what it may forward of each.
    pub fn restore(id: RoomId, record: RoomRecord, now: Millis) -> Room {
        let config = record.config;
        let grace = config.resume_grace_ms;
        let members: Vec<Member> = record
            .members
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: m.name,
                role: m.role,
                presence: Presence::Admitted,
                audio: m.audio,
                video: m.video,
                screen: None,
                muted: m.muted,
                reconnecting_until: Some(now + grace),
                media_down: MediaDown::default(),
            })
            .collect();
        let present: HashSet<ParticipantId> = members.iter().map(|m| m.id.clone()).collect();
        let floor = Floor::restore(record.floor, |id| present.contains(id));
        // A new room with the same settings, then everything it had.
        let mut room = Room::new(id, config);
        room.members = members;
        room.banned = record.banned.into_iter().collect();
        room.denied_until = record.denied_until.into_iter().collect::<HashMap<_, _>>();
        room.locked = record.locked;
        room.floor = floor;
        room.check_ins = CheckIns::restore(record.check_ins);
        room.started = record.started;
        room.over_cap = record.over_cap;
        // Tells the media path each gate, as every step does. Nobody's media is set up yet:
        // each person's starts when they resume (the room's shell sees to it).
        room.finish();
        room
    }
}
