//! The room's rules as a pure state machine: membership, waiting room, floor, queue, reactions,
//! check-ins and moderation. It takes inputs and the current time and queues effects; it has no
//! sockets, no tokio and never reads a clock, so every rule is tested directly.
//!
//! "Panic means bug, never on user input": every input from a client is validated and answered
//! with an error effect instead.
//!
//! Layout: this file holds the room's state and its entry points (a join, a request, a timer, a
//! peer's state); `admin` is what the admin API may do to a running room; `requests` answers
//! each client request (the permission table is in
//! `room::permissions`); `membership` admits, removes and ends; `announce` tells people what
//! changed. The floor, check-ins and reactions are their own pure types (`room::floor`,
//! `room::anonymous`).

mod admin;
mod announce;
mod membership;
mod moderation;
mod record;
mod requests;

use std::collections::{HashMap, HashSet};

use circle_protocol::{
    close, is_msid_track_id, ClientMessage, Connection, EndReason, FloorMode, FloorState,
    HandStatus, LeaveReason, Participant, ParticipantId, PcKind, RequestId, Role, RoomId,
    RoomState, ServerMessage, MAX_HAND_NOTE_CHARS, MAX_HELP_NOTE_CHARS, MAX_TILE_HEIGHT,
    MAX_TILE_SIZES,
};

use super::anonymous::{CheckIns, Reactions};
use super::floor::{Floor, TurnTimer};
use super::permissions;
use super::RoomError;
pub use crate::config::{RoomConfig, RoomSettings};
use crate::events::{Actor, FinishReason, LeftReason, Moderation, RoomEvent};
use crate::media::Signal;

pub use super::time::Millis;
pub use admin::{OverviewEntry, PresenceState, RoomOverview};
pub use record::RoomRecord;

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            waiting_room: true,
            max_participants: 16,
            reaction_window_ms: 2_000,
            reactions_per_second: 5,
            anonymity_threshold: 3,
            resume_grace_ms: 20_000,
            knock_cooldown_ms: 60_000,
        }
    }
}

/// Someone asking to join, from a verified token.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
}

/// What the room asks its shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Deliver a message to one participant (buffered while they reconnect).
    Send {
        to: ParticipantId,
        message: ServerMessage,
    },
    /// Deliver a `welcome` built from the room's state at the time the shell handles it.
    Welcome { to: ParticipantId },
    /// Close the participant's socket with this code after what was sent before.
    Close { to: ParticipantId, code: u16 },
    /// The participant entered the room proper: give them media.
    Admitted {
        participant: ParticipantId,
        may_publish: bool,
    },
    /// The participant is gone for good: drop their media, resume token and buffers.
    Gone { participant: ParticipantId },
    /// A facilitator removed the participant: the shell remembers it beyond this room's life.
    Banned { participant: ParticipantId },
    /// Whether the media path forwards this participant's audio; emitted on every change.
    AudioGate {
        participant: ParticipantId,
        forward: bool,
    },
    /// The screen-share track the media path forwards for this participant (the `a=msid`
    /// track id they announced), or none; emitted on every change.
    ScreenGate {
        participant: ParticipantId,
        track: Option<String>,
    },
    /// The heights at which `viewer` shows others' cameras, for the media path to choose
    /// their simulcast layers; nothing the rules keep.
    TileSizes {
        viewer: ParticipantId,
        sizes: Vec<(ParticipantId, u32)>,
    },
    /// Restart ICE on the participant's peers: the server re-offers `subscribe` with new ICE
    /// credentials (the browser restarts `publish` itself by offering again). Emitted on a
    /// resume, whose network has likely changed, and when a peer's ICE fails while the session
    /// is up.
    RestartIce { participant: ParticipantId },
    /// Something the rest of the server may want to know (records, metrics, webhooks).
    Event(RoomEvent),
    /// A WebRTC message (`sdp` or `ice`) from an admitted participant, for the media router,
    /// which answers the request.
    Media {
        from: ParticipantId,
        id: Option<RequestId>,
        signal: Signal,
    },
}

/// How a join went, when it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new participant: admitted or waiting.
    New,
    /// Same `sub` as someone already here: the new connection takes over.
    Replaced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Waiting,
    Admitted,
}

#[derive(Debug, Clone)]
struct Member {
    id: ParticipantId,
    name: String,
    role: Role,
    presence: Presence,
    audio: bool,
    video: bool,
    /// The screen-share track the participant announced, while the rules allow it.
    screen: Option<String>,
    muted: bool,
    /// When the resume grace runs out, while the socket is gone.
    reconnecting_until: Option<Millis>,
    /// The peers whose ICE failed and has not recovered, and when the grace for them runs
    /// out: media down counts as reconnecting, even with the socket up.
    media_down: MediaDown,
}

impl Member {
    fn view(&self) -> Participant {
        Participant {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            audio: self.audio,
            video: self.video,
            screen: self.screen.is_some(),
            muted: self.muted,
            connection: if self.is_reconnecting() {
                Connection::Reconnecting
            } else {
                Connection::Connected
            },
        }
    }

    fn is_admitted(&self) -> bool {
        self.presence == Presence::Admitted
    }

    fn is_reconnecting(&self) -> bool {
        self.reconnecting_until.is_some() || self.media_down.until.is_some()
    }
}

/// A participant's failed peer connections; `until` is set exactly while one is down.
#[derive(Debug, Clone, Default)]
struct MediaDown {
    publish: bool,
    subscribe: bool,
    until: Option<Millis>,
}

impl MediaDown {
    fn set(&mut self, pc: PcKind, down: bool) {
        match pc {
            PcKind::Publish => self.publish = down,
            PcKind::Subscribe => self.subscribe = down,
        }
    }

    fn any(&self) -> bool {
        self.publish || self.subscribe
    }
}

/// One room's state and rules.
#[derive(Debug)]
pub struct Room {
    id: RoomId,
    config: RoomConfig,
    /// Admitted and waiting participants, in arrival order.
    members: Vec<Member>,
    /// Who was removed; they may not rejoin while this room lives (and, through
    /// [`Effect::Banned`], for as long as their link could be valid).
    banned: HashSet<ParticipantId>,
    /// Who a facilitator denied, and until when they may not knock again.
    denied_until: HashMap<ParticipantId, Millis>,
    locked: bool,
    floor: Floor,
    reactions: Reactions,
    check_ins: CheckIns,
    /// The gate last told to the media path, per participant who may publish.
    gates: HashMap<ParticipantId, bool>,
    /// The screen-share track last told to the media path, per participant sharing.
    screens: HashMap<ParticipantId, String>,
    speaking: Vec<ParticipantId>,
    /// The `speaking` list each participant was last sent: what they may see changes with the
    /// floor as well as with the voices.
    speaking_sent: HashMap<ParticipantId, Vec<ParticipantId>>,
    ended: bool,
    /// Why the session ended, once it did by a decision (not by emptying).
    end_reason: Option<FinishReason>,
    /// The first admission happened (`Started` was told), and `Finished` was told.
    started: bool,
    finish_told: bool,
    /// How many were here when the admin API lowered the cap below that: nobody is turned
    /// out, so the room may hold this many until enough leave.
    over_cap: usize,
    effects: Vec<Effect>,
}

impl Room {
    pub fn new(id: RoomId, config: RoomConfig) -> Self {
        let reactions = Reactions::new(
            config.anonymity_threshold,
            config.reactions_per_second,
            config.reaction_window_ms,
        );
        Self {
            id,
            config,
            members: Vec::new(),
            banned: HashSet::new(),
            denied_until: HashMap::new(),
            locked: false,
            floor: Floor::new(),
            reactions,
            check_ins: CheckIns::new(),
            gates: HashMap::new(),
            screens: HashMap::new(),
            speaking: Vec::new(),
            speaking_sent: HashMap::new(),
            ended: false,
            end_reason: None,
            started: false,
            finish_told: false,
            over_cap: 0,
            effects: Vec::new(),
        }
    }

    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// Takes the effects queued so far, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// True once nobody is present, waiting or reconnecting, or the session was ended.
    pub fn is_finished(&self) -> bool {
        self.ended || self.members.is_empty()
    }

    /// A new connection's `hello`, with the token already verified.
    pub fn join(&mut self, now: Millis, joiner: Joiner) -> Result<Joined, RoomError> {
        if self.ended {
            return Err(RoomError::Conflict("this session has ended".into()));
        }
        if self.banned.contains(&joiner.id) {
            return Err(RoomError::Forbidden(
                "you were removed from this session".into(),
            ));
        }
        if let Some(until) = self.denied_until.get(&joiner.id).filter(|t| **t > now) {
            return Err(RoomError::Forbidden(format!(
                "a facilitator declined your request; you may ask again in {} s",
                (until - now).div_ceil(1000)
            )));
        }
        if let Some(i) = self.index_of(&joiner.id) {
            // The same person from a second tab or device: the newer connection wins, but only as
            // what the newest token says. A role it does not grant is never kept: a member's
            // link carrying a facilitator's `sub` must not inherit the facilitator's seat.
            if self.members[i].role != joiner.role {
                return Err(RoomError::Forbidden(
                    "you are already in this room with another role; leave before joining with this link"
                        .into(),
                ));
            }
            let member = &mut self.members[i];
            let renamed = member.name != joiner.name;
            member.name = joiner.name;
            let was_reconnecting = member.is_reconnecting();
            member.reconnecting_until = None;
            // The new connection gets new peers, so the old ones' failures no longer count,
            // and the old tab's screen share went with it.
            member.media_down = MediaDown::default();
            let stopped_sharing = member.screen.take().is_some();
            match member.presence {
                Presence::Waiting => self.send(&joiner.id, ServerMessage::Waiting),
                Presence::Admitted => {
                    self.effects.push(Effect::Welcome {
                        to: joiner.id.clone(),
                    });
                    // A new tab or device negotiates media from scratch.
                    self.effects.push(Effect::Admitted {
                        participant: joiner.id.clone(),
                        may_publish: member.role != Role::Observer,
                    });
                    if was_reconnecting {
                        self.connection_changed(&joiner.id, false);
                    }
                    if was_reconnecting || renamed || stopped_sharing {
                        self.announce_update(&joiner.id);
                    }
                }
            }
            if renamed && !self.members[i].is_admitted() {
                self.announce_waiting_room();
            }
            self.finish();
            return Ok(Joined::Replaced);
        }
        if self.locked && joiner.role != Role::Facilitator {
            return Err(RoomError::RoomLocked);
        }
        if self.members.len() >= self.config.max_participants {
            return Err(RoomError::RoomFull);
        }
        let waits = self.config.waiting_room && joiner.role != Role::Facilitator;
        self.members.push(Member {
            id: joiner.id.clone(),
            name: joiner.name,
            role: joiner.role,
            presence: Presence::Waiting,
            audio: false,
            video: false,
            screen: None,
            muted: false,
            reconnecting_until: None,
            media_down: MediaDown::default(),
        });
        if waits {
            self.event(RoomEvent::Waiting {
                participant: joiner.id.clone(),
                role: joiner.role,
            });
            self.send(&joiner.id, ServerMessage::Waiting);
            self.announce_waiting_room();
        } else {
            self.admit_member(&joiner.id);
        }
        self.finish();
        Ok(Joined::New)
    }

    /// A `resume` within the grace period, with the token already matched to this participant.
    pub fn resume(&mut self, id: &ParticipantId) -> Result<(), RoomError> {
        let Some(i) = self.index_of(id) else {
            return Err(RoomError::Unauthorized("unknown resume token".into()));
        };
        let member = &mut self.members[i];
        if !member.is_admitted() {
            return Err(RoomError::Unauthorized("unknown resume token".into()));
        }
        let was_reconnecting = member.is_reconnecting();
        member.reconnecting_until = None;
        if was_reconnecting != member.is_reconnecting() {
            self.connection_changed(id, false);
            self.announce_update(id);
        }
        // A socket that dropped usually means a network that changed: the peers' ICE is
        // restarted at once rather than left to fail on its own tens of seconds later.
        self.effects.push(Effect::RestartIce {
            participant: id.clone(),
        });
        self.finish();
        Ok(())
    }

    /// One of the participant's peer connections came up (`up`) or its ICE failed. A failure
    /// shows the participant as reconnecting and starts the resume grace; they leave with
    /// `timeout` when it runs out, unless every failed peer recovers first. With the socket up,
    /// a failed `subscribe` is restarted at once (the server offers on it); a failed `publish`
    /// waits for the browser's re-offer.
    pub fn peer_state(&mut self, now: Millis, id: &ParticipantId, pc: PcKind, up: bool) {
        let grace = self.config.resume_grace_ms;
        let Some(member) = self.member_mut(id).filter(|m| m.is_admitted()) else {
            return;
        };
        let was_reconnecting = member.is_reconnecting();
        let was_down = match pc {
            PcKind::Publish => member.media_down.publish,
            PcKind::Subscribe => member.media_down.subscribe,
        };
        member.media_down.set(pc, !up);
        if member.media_down.any() {
            member.media_down.until.get_or_insert(now + grace);
        } else {
            member.media_down.until = None;
        }
        let socket_up = member.reconnecting_until.is_none();
        let reconnecting = member.is_reconnecting();
        let changed = was_reconnecting != reconnecting;
        if !up && !was_down && pc == PcKind::Subscribe && socket_up {
            self.effects.push(Effect::RestartIce {
                participant: id.clone(),
            });
        }
        if changed {
            self.connection_changed(id, reconnecting);
            self.announce_update(id);
        }
        self.finish();
    }

    /// The participant's socket went away without `leave`.
    pub fn disconnected(&mut self, now: Millis, id: &ParticipantId) {
        let Some(i) = self.index_of(id) else { return };
        match self.members[i].presence {
            // A waiting participant holds no state worth keeping: they knock again.
            Presence::Waiting => {
                self.members.remove(i);
                self.effects.push(Effect::Gone {
                    participant: id.clone(),
                });
                self.announce_waiting_room();
            }
            Presence::Admitted => {
                let member = &mut self.members[i];
                if member.reconnecting_until.is_none() {
                    let was_reconnecting = member.is_reconnecting();
                    member.reconnecting_until = Some(now + self.config.resume_grace_ms);
                    if !was_reconnecting {
                        self.connection_changed(id, true);
                        self.announce_update(id);
                    }
                }
            }
        }
        self.finish();
    }

    /// Who the media path hears speaking now. Members see only voices the room can hear;
    /// facilitators also see someone talking without the stick.
    pub fn speaking(&mut self, participants: Vec<ParticipantId>) {
        self.speaking = participants
            .into_iter()
            .filter(|p| self.member(p).is_some_and(Member::is_admitted))
            .collect();
        self.finish();
    }

    /// The server is going away: everyone is told and closed with 1001.
    pub fn shut_down(&mut self) {
        self.end(EndReason::ServerShutdown, close::GOING_AWAY);
        self.finish();
    }

    /// One request from a joined participant.
    pub fn request(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        id: Option<RequestId>,
        message: ClientMessage,
    ) {
        match self.apply(now, from, id, message) {
            Ok(Reply::Ok) => {
                if let Some(id) = id {
                    self.send(from, ServerMessage::Ok { id });
                }
            }
            Ok(Reply::Sent) => {}
            Err(e) => self.send(from, ServerMessage::error(id, e.code(), e.to_string())),
        }
        self.finish();
    }

    /// The earliest time [`Room::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let graces = self
            .members
            .iter()
            .flat_map(|m| [m.reconnecting_until, m.media_down.until])
            .flatten();
        self.floor
            .poll_timeout()
            .into_iter()
            .chain(self.reactions.poll_timeout())
            .chain(graces)
            .min()
    }

    /// Runs every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Millis) {
        if let Some(counts) = self.reactions.handle_timeout(now) {
            self.broadcast(ServerMessage::Reactions { counts });
        }
        match self.floor.handle_timeout(now) {
            Some(TurnTimer::Ended(holder)) => {
                self.hand(&holder, HandStatus::Revoked, None);
                self.announce_floor();
            }
            Some(TurnTimer::Warn {
                holder,
                seconds_left,
            }) => {
                let message = ServerMessage::TurnWarning { seconds_left };
                self.send(&holder, message.clone());
                for f in self.facilitator_ids() {
                    self.send(&f, message.clone());
                }
            }
            None => {}
        }
        let expired: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|m| {
                [m.reconnecting_until, m.media_down.until]
                    .into_iter()
                    .flatten()
                    .any(|t| t <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            self.depart(&id, LeaveReason::Timeout);
        }
        self.finish();
    }

    /// The participant and room state as `welcome` carries them.
    pub fn snapshot(&self, to: &ParticipantId) -> Option<(Participant, RoomState)> {
        let me = self.member(to)?;
        let state = RoomState {
            id: self.id.clone(),
            participants: self
                .members
                .iter()
                .filter(|m| m.is_admitted())
                .map(Member::view)
                .collect(),
            floor: self.floor_for(to),
            locked: self.locked,
            turn_limit: self.floor.turn_limit(),
            check_in: self.check_ins.open().cloned(),
        };
        Some((me.view(), state))
    }

    /// Whether the participant is admitted (as opposed to waiting or unknown).
    pub fn is_admitted(&self, id: &ParticipantId) -> bool {
        self.member(id).is_some_and(Member::is_admitted)
    }

    pub fn role_of(&self, id: &ParticipantId) -> Option<Role> {
        self.member(id).map(|m| m.role)
    }

    /// Checks every invariant the rules promise; used by tests after each step.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        for m in &self.members {
            if !seen.insert(&m.id) {
                return Err(format!("{} is present twice", m.id));
            }
            if self.banned.contains(&m.id) {
                return Err(format!("{} is banned but present", m.id));
            }
        }
        if self.members.len() > self.config.max_participants.max(self.over_cap) {
            return Err("more participants than the cap".into());
        }
        self.floor.check_invariants(|id| {
            self.member(id)
                .is_some_and(|m| m.is_admitted() && m.role == Role::Member)
        })?;
        for m in &self.members {
            if m.media_down.any() != m.media_down.until.is_some() {
                return Err(format!("{}'s media grace is out of step", m.id));
            }
        }
        for (p, open) in &self.gates {
            if *open != self.audio_forwarded(p) {
                return Err(format!("the gate told for {p} is stale"));
            }
        }
        for m in &self.members {
            if m.screen.is_some() && !self.may_share(&m.id) {
                return Err(format!("{} shares a screen without being allowed to", m.id));
            }
            if self.screens.get(&m.id) != m.screen.as_ref() {
                return Err(format!("the screen told for {} is stale", m.id));
            }
        }
        if self.screens.keys().any(|p| self.member(p).is_none()) {
            return Err("a screen is told for someone who has gone".into());
        }
        Ok(())
    }
}

enum Reply {
    /// Answer `ok` when the request had an id.
    Ok,
    /// The handler already answered.
    Sent,
}
