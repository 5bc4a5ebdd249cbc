//! The room's rules as a pure state machine: membership, waiting room, floor, queue, reactions,
//! check-ins and moderation. It takes inputs and the current time and queues effects; it has no
//! sockets, no tokio and never reads a clock, so every rule is tested directly.
//!
//! "Panic means bug, never on user input": every input from a client is validated and answered
//! with an error effect instead.

use std::collections::{HashMap, HashSet};

use circle_protocol::{
    close, ClientMessage, Connection, EndReason, FloorMode, FloorState, HandStatus, LeaveReason,
    Participant, ParticipantId, PcKind, RequestId, Role, RoomId, RoomState, ServerMessage,
    MAX_HAND_NOTE_CHARS, MAX_HELP_NOTE_CHARS,
};

use super::anonymous::{CheckIns, Reactions};
use super::floor::{Floor, TurnTimer};
use super::permissions;
use super::RoomError;
pub use crate::config::RoomConfig;
use crate::events::{FinishReason, LeftReason, Moderation, RoomEvent};

/// Unix time in milliseconds: the only clock the rules know, always passed in.
pub type Millis = u64;

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
        message: ClientMessage,
    },
}

/// How a join went, when it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// A new participant: admitted or waiting.
    New,
    /// Same `sub` as someone already here: the new session takes over.
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
            speaking: Vec::new(),
            speaking_sent: HashMap::new(),
            ended: false,
            end_reason: None,
            started: false,
            finish_told: false,
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

    /// A new session's `hello`, with the token already verified.
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
            // The same person from a second tab or device: the newer session wins, but only as
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
            // The new session gets new peers, so the old ones' failures no longer count.
            member.media_down = MediaDown::default();
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
                    if was_reconnecting || renamed {
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
        if self.members.len() > self.config.max_participants {
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
        Ok(())
    }

    fn apply(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        id: Option<RequestId>,
        message: ClientMessage,
    ) -> Result<Reply, RoomError> {
        let me = self.member(from).ok_or(RoomError::NotJoined)?;
        let role = me.role;
        let admitted = me.is_admitted();
        use ClientMessage as M;
        match message {
            M::Ping => {
                self.send(from, ServerMessage::Pong);
                return Ok(Reply::Ok);
            }
            M::Leave => {
                if let Some(id) = id {
                    self.send(from, ServerMessage::Ok { id });
                }
                self.depart(from, LeaveReason::Left);
                return Ok(Reply::Sent);
            }
            M::Hello { .. } | M::Resume { .. } => {
                return Err(RoomError::Conflict(
                    "this session has already joined".into(),
                ))
            }
            _ => {}
        }
        permissions::check(&message, role, admitted)?;
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
            M::SetFloorMode { mode } => {
                if self.floor.set_mode(mode) {
                    self.announce_floor();
                }
            }
            M::GrantFloor { participant } => {
                self.expect_speaker(&participant)?;
                if self.floor.holds(&participant) {
                    return Err(RoomError::Conflict(
                        "that member already holds the stick".into(),
                    ));
                }
                self.give_stick(now, &participant);
            }
            M::GrantNext => {
                let next = self
                    .floor
                    .head_of_queue()
                    .cloned()
                    .ok_or_else(|| RoomError::Conflict("the queue is empty".into()))?;
                self.give_stick(now, &next);
            }
            M::RevokeFloor => {
                let holder = self.floor.revoke()?;
                self.hand(&holder, HandStatus::Revoked, None);
                self.announce_floor();
            }
            M::SetTurnLimit { seconds } => {
                if self.floor.set_turn_limit(now, seconds)? {
                    self.announce_room_settings();
                    if self.floor.holder().is_some() {
                        self.announce_floor();
                    }
                }
            }
            M::InviteToSpeak { participant } => {
                self.expect_speaker(&participant)?;
                self.floor.invite(&participant)?;
                self.send(&participant, ServerMessage::InvitedToSpeak);
            }
            M::LowerHand { participant } => {
                let target = match (role, participant) {
                    (Role::Facilitator, Some(p)) => p,
                    (Role::Facilitator, None) => {
                        return Err(RoomError::BadRequest(
                            "a facilitator names whose hand to lower in `participant`".into(),
                        ))
                    }
                    (_, Some(p)) if &p != from => {
                        return Err(RoomError::Forbidden(
                            "only a facilitator may lower someone else's hand".into(),
                        ))
                    }
                    (_, _) => from.clone(),
                };
                if self.member(&target).is_none() {
                    return Err(RoomError::NotFound(
                        "no such participant in this room".into(),
                    ));
                }
                self.floor.lower(&target)?;
                let status = if &target == from {
                    HandStatus::Cancelled
                } else {
                    HandStatus::Denied
                };
                self.hand(&target, status, None);
                self.announce_floor();
            }
            M::Mute { participant } => self.set_muted(from, &participant, true)?,
            M::Unmute { participant } => self.set_muted(from, &participant, false)?,
            M::Remove { participant } => {
                let target = self.member(&participant).ok_or_else(|| {
                    RoomError::NotFound("no such participant in this room".into())
                })?;
                if target.role == Role::Facilitator {
                    return Err(RoomError::Conflict(
                        "a facilitator cannot be removed".into(),
                    ));
                }
                let was_admitted = target.is_admitted();
                self.banned.insert(participant.clone());
                self.moderated(from, Moderation::Removed, Some(&participant));
                self.effects.push(Effect::Banned {
                    participant: participant.clone(),
                });
                self.send(&participant, ServerMessage::Removed);
                self.effects.push(Effect::Close {
                    to: participant.clone(),
                    code: close::REMOVED,
                });
                if was_admitted {
                    self.depart(&participant, LeaveReason::Removed);
                } else {
                    self.forget(&participant);
                    self.announce_waiting_room();
                }
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
            M::StartCheckIn { question, options } => {
                let check_in = self.check_ins.start(&question, &options)?;
                self.broadcast(ServerMessage::CheckIn(check_in));
            }
            M::CloseCheckIn { check_in } => {
                let result = self
                    .check_ins
                    .close(&check_in, self.config.anonymity_threshold)?;
                self.broadcast(ServerMessage::CheckInResult {
                    check_in,
                    counts: result.counts,
                    responses: result.responses,
                });
            }
            M::RaiseHand { note } => {
                let note = match note.map(|n| n.trim().to_owned()) {
                    Some(n) if n.chars().count() > MAX_HAND_NOTE_CHARS => {
                        return Err(RoomError::BadRequest(format!(
                            "a note is at most {MAX_HAND_NOTE_CHARS} characters"
                        )))
                    }
                    Some(n) if n.is_empty() => None,
                    other => other,
                };
                let position = self.floor.raise(from, note)?;
                self.hand(from, HandStatus::Queued, Some(position));
                self.announce_floor();
            }
            M::ReleaseFloor => {
                self.floor.release(from)?;
                self.hand(from, HandStatus::Released, None);
                self.announce_floor();
            }
            M::PassFloor { to } => {
                if !self.floor.holds(from) {
                    return Err(RoomError::Conflict("you do not hold the stick".into()));
                }
                if self.member(&to).is_none() {
                    return Err(RoomError::NotFound(
                        "no such participant in this room".into(),
                    ));
                }
                self.floor.check_pass(from, &to)?;
                self.floor.release(from)?;
                self.hand(from, HandStatus::Released, None);
                self.give_stick(now, &to);
            }
            M::AnswerInvite { accept } => {
                self.floor.answer_invite(from)?;
                for f in self.facilitator_ids() {
                    self.send(
                        &f,
                        ServerMessage::InviteAnswered {
                            participant: from.clone(),
                            accepted: accept,
                        },
                    );
                }
                // Only members are ever invited (`expect_speaker`), so the stick may go to them.
                if accept {
                    self.give_stick(now, from);
                }
            }
            M::React { kind } => {
                let present = self
                    .members
                    .iter()
                    .filter(|m| m.is_admitted() && !m.is_reconnecting())
                    .count();
                self.reactions.react(now, from, kind, present)?;
            }
            M::NeedHelp { note } => {
                let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
                if note
                    .as_ref()
                    .is_some_and(|n| n.chars().count() > MAX_HELP_NOTE_CHARS)
                {
                    return Err(RoomError::BadRequest(format!(
                        "a note is at most {MAX_HELP_NOTE_CHARS} characters"
                    )));
                }
                for f in self.facilitator_ids() {
                    self.send(
                        &f,
                        ServerMessage::HelpRequested {
                            participant: from.clone(),
                            note: note.clone(),
                        },
                    );
                }
            }
            M::AnswerCheckIn { check_in, option } => {
                self.check_ins.answer(from, &check_in, option)?;
            }
            M::SetMedia { audio, video } => {
                let member = self.member_mut(from).expect("checked above");
                if (member.audio, member.video) != (audio, video) {
                    member.audio = audio;
                    member.video = video;
                    self.announce_update(from);
                }
            }
            message @ (M::Sdp { .. } | M::Ice { .. }) => {
                self.effects.push(Effect::Media {
                    from: from.clone(),
                    id,
                    message,
                });
                return Ok(Reply::Sent);
            }
            M::Ping | M::Leave | M::Hello { .. } | M::Resume { .. } => {
                unreachable!("answered before the admission check")
            }
        }
        Ok(Reply::Ok)
    }

    fn set_muted(
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

    fn expect_waiting(&self, id: &ParticipantId) -> Result<(), RoomError> {
        match self.member(id) {
            None => Err(RoomError::NotFound("nobody by that id is waiting".into())),
            Some(m) if m.is_admitted() => Err(RoomError::Conflict("already admitted".into())),
            Some(_) => Ok(()),
        }
    }

    /// The participant may be given or offered the stick.
    fn expect_speaker(&self, id: &ParticipantId) -> Result<(), RoomError> {
        let m = self
            .member(id)
            .filter(|m| m.is_admitted())
            .ok_or_else(|| RoomError::NotFound("no such participant in this room".into()))?;
        match m.role {
            Role::Member => Ok(()),
            Role::Facilitator => Err(RoomError::Conflict(
                "facilitators may always speak; the stick is for members".into(),
            )),
            Role::Observer => Err(RoomError::Conflict("observers do not speak".into())),
        }
    }

    fn give_stick(&mut self, now: Millis, to: &ParticipantId) {
        if let Some(previous) = self.floor.give(now, to) {
            self.hand(&previous, HandStatus::Revoked, None);
        }
        self.hand(to, HandStatus::Granted, None);
        self.announce_floor();
    }

    fn admit_member(&mut self, id: &ParticipantId) {
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
    fn depart(&mut self, id: &ParticipantId, reason: LeaveReason) {
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
    fn forget(&mut self, id: &ParticipantId) {
        self.members.retain(|m| &m.id != id);
        // An open check-in keeps a leaver's answer: they gave it while here.
        self.gates.remove(id);
        self.speaking_sent.remove(id);
        self.reactions.forget(id);
        self.effects.push(Effect::Gone {
            participant: id.clone(),
        });
    }

    fn end(&mut self, reason: EndReason, code: u16) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.end_reason = Some(match reason {
            EndReason::EndedByFacilitator => FinishReason::EndedByFacilitator,
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
        self.speaking.clear();
        self.speaking_sent.clear();
        self.floor.clear();
        self.check_ins.clear();
        self.reactions.clear();
    }

    /// Whether the rules let this participant's audio reach the room.
    fn audio_forwarded(&self, id: &ParticipantId) -> bool {
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

    /// Ends every step: tells the media path each gate that changed, and each participant the
    /// speakers they may now see, when that changed.
    fn finish(&mut self) {
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

    fn announce_speaking(&mut self) {
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

    fn floor_for(&self, to: &ParticipantId) -> FloorState {
        let facilitator = self.role_of(to) == Some(Role::Facilitator);
        self.floor.view_for(to, facilitator)
    }

    fn announce_floor(&mut self) {
        for to in self.admitted_ids() {
            let floor = self.floor_for(&to);
            self.send(&to, ServerMessage::Floor(floor));
        }
    }

    fn announce_update(&mut self, id: &ParticipantId) {
        let Some(m) = self.member(id).filter(|m| m.is_admitted()) else {
            return;
        };
        let participant = m.view();
        self.broadcast(ServerMessage::ParticipantUpdated { participant });
    }

    fn announce_room_settings(&mut self) {
        self.broadcast(ServerMessage::RoomUpdated {
            locked: self.locked,
            turn_limit: self.floor.turn_limit(),
        });
    }

    fn waiting_room_message(&self) -> ServerMessage {
        ServerMessage::WaitingRoom {
            waiting: self
                .members
                .iter()
                .filter(|m| !m.is_admitted())
                .map(Member::view)
                .collect(),
        }
    }

    fn announce_waiting_room(&mut self) {
        let message = self.waiting_room_message();
        for f in self.facilitator_ids() {
            self.send(&f, message.clone());
        }
    }

    fn hand(&mut self, to: &ParticipantId, status: HandStatus, position: Option<u32>) {
        self.send(to, ServerMessage::Hand { status, position });
    }

    fn broadcast(&mut self, message: ServerMessage) {
        for to in self.admitted_ids() {
            self.send(&to, message.clone());
        }
    }

    fn event(&mut self, event: RoomEvent) {
        self.effects.push(Effect::Event(event));
    }

    fn moderated(
        &mut self,
        by: &ParticipantId,
        action: Moderation,
        target: Option<&ParticipantId>,
    ) {
        self.event(RoomEvent::Moderated {
            by: by.clone(),
            action,
            target: target.cloned(),
        });
    }

    /// Tells the rest of the server that someone's connection dropped or came back.
    fn connection_changed(&mut self, id: &ParticipantId, reconnecting: bool) {
        let participant = id.clone();
        self.event(if reconnecting {
            RoomEvent::Reconnecting { participant }
        } else {
            RoomEvent::Back { participant }
        });
    }

    fn send(&mut self, to: &ParticipantId, message: ServerMessage) {
        self.effects.push(Effect::Send {
            to: to.clone(),
            message,
        });
    }

    fn admitted_ids(&self) -> Vec<ParticipantId> {
        self.members
            .iter()
            .filter(|m| m.is_admitted())
            .map(|m| m.id.clone())
            .collect()
    }

    fn facilitator_ids(&self) -> Vec<ParticipantId> {
        self.members
            .iter()
            .filter(|m| m.is_admitted() && m.role == Role::Facilitator)
            .map(|m| m.id.clone())
            .collect()
    }

    fn index_of(&self, id: &ParticipantId) -> Option<usize> {
        self.members.iter().position(|m| &m.id == id)
    }

    fn member(&self, id: &ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| &m.id == id)
    }

    fn member_mut(&mut self, id: &ParticipantId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.id == id)
    }
}

enum Reply {
    /// Answer `ok` when the request had an id.
    Ok,
    /// The handler already answered.
    Sent,
}
