//! The room's rules, driven directly: no sockets, no tokio, time passed in by hand.
//!
//! One file per concern, like the rules themselves; the helpers every file uses are here.

use super::state::{Effect, Joiner, Room, RoomConfig};
use super::RoomError;
use crate::events::{Actor, FinishReason, LeftReason, Moderation, RoomEvent};
use circle_protocol::{
    CheckInId, ClientMessage as M, EndReason, ErrorCode, FloorMode, HandStatus, LeaveReason,
    ParticipantId, ReactionKind, Role, RoomId, ServerMessage as S,
};
use proptest::prelude::*;

mod admission;
mod anonymous;
mod floor;
mod properties;
mod record;
mod recovery;
mod room_events;
mod screen;
mod tile_sizes;

fn pid(s: &str) -> ParticipantId {
    ParticipantId::from(s)
}

fn room() -> Room {
    Room::new(RoomId::from("r"), RoomConfig::default())
}

fn join(room: &mut Room, id: &str, role: Role) -> Vec<Effect> {
    room.join(
        0,
        Joiner {
            id: pid(id),
            name: format!("name of {id}"),
            role,
        },
    )
    .unwrap();
    room.take_effects()
}

/// A facilitator `f` and admitted members `a`, `b`, `c`.
fn group() -> Room {
    let mut r = room();
    join(&mut r, "f", Role::Facilitator);
    for m in ["a", "b", "c"] {
        join(&mut r, m, Role::Member);
        req(
            &mut r,
            0,
            "f",
            M::Admit {
                participant: pid(m),
            },
        );
    }
    r.take_effects();
    r
}

fn req(room: &mut Room, now: u64, from: &str, message: M) -> Vec<Effect> {
    room.request(now, &pid(from), Some(1), message);
    room.check_invariants().unwrap();
    room.take_effects()
}

fn to(effects: &[Effect], who: &str) -> Vec<S> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, message } if to.as_str() == who => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn reply(effects: &[Effect], who: &str) -> Result<(), ErrorCode> {
    for m in to(effects, who) {
        match m {
            S::Ok { .. } => return Ok(()),
            S::Error { code, .. } => return Err(code),
            _ => {}
        }
    }
    panic!("no reply to {who} in {effects:?}")
}

fn floor(effects: &[Effect], who: &str) -> circle_protocol::FloorState {
    to(effects, who)
        .into_iter()
        .rev()
        .find_map(|m| match m {
            S::Floor(f) => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no floor for {who}"))
}

fn gate(effects: &[Effect], who: &str) -> Option<bool> {
    effects.iter().rev().find_map(|e| match e {
        Effect::AudioGate {
            participant,
            forward,
        } if participant.as_str() == who => Some(*forward),
        _ => None,
    })
}

/// The room events among the effects.
fn events(effects: &[Effect]) -> Vec<RoomEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Event(event) => Some(event.clone()),
            _ => None,
        })
        .collect()
}
