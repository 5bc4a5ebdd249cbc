//! The task that owns one room: it feeds commands and timers to the rules, and carries their
//! effects out to connections. It never awaits a participant: every delivery is a `try_send`, and a
//! connection that cannot keep up loses reactions first, then its connection (it may resume).
//! It also keeps the server's metrics about rooms up to date, from what the rules did.
//! `delivery` is how messages reach the participants; `cluster` is the room's part in a cluster.

use std::collections::HashMap;
use std::sync::Arc;

use circle_protocol::{ErrorCode, FloorMode, ParticipantId, RoomId, ServerMessage};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handle::{ConnectionLink, Outbound, RoomCommand, RoomHandle, RoomView};
use super::outbox::Outbox;
use super::state::{Effect, Millis, PresenceState, Room, RoomSettings};
use super::stored::StoredRoom;
use super::RoomError;
use crate::cluster::state::StateWrite;
use crate::context::Context;

mod cluster;
mod delivery;
use crate::events::{self, RoomEvent, SessionId, Stamped};
use crate::media::{MediaKind, Router, RouterEvent, Signal};
use crate::metrics::{JoinResult, Presence, RoomGauges};

/// Called once when the room's task ends, so whoever finds rooms forgets this one.
pub type OnClose = Box<dyn FnOnce() + Send>;

/// Anchors the rules' Unix-millisecond clock to tokio's monotonic one, so the room's timers
/// follow tokio's clock (and a paused clock in tests) while `turn_ends_at` stays a Unix time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_unix_ms: u64,
}

impl Clock {
    pub fn new() -> Self {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self {
            base: Instant::now(),
            base_unix_ms: unix,
        }
    }

    pub fn now(&self) -> Millis {
        self.base_unix_ms + self.base.elapsed().as_millis() as u64
    }

    pub fn instant_at(&self, at: Millis) -> Instant {
        self.base + std::time::Duration::from_millis(at.saturating_sub(self.base_unix_ms))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

struct RoomActor {
    room: Room,
    context: Arc<Context>,
    on_close: Option<OnClose>,
    clock: Clock,
    outboxes: HashMap<ParticipantId, Outbox>,
    links: HashMap<ParticipantId, ConnectionLink>,
    /// Each admitted participant's current resume token. A token names its room
    /// (`ROOM.SECRET`), so the connection finds the room by it and the room alone knows the seat.
    resume_tokens: HashMap<ParticipantId, String>,
    /// The room's media fan-out: the room decides policy, the router enforces it.
    router: Router,
    /// Connections dropped for being too slow, to be told to the rules once effects are out.
    dropped: Vec<ParticipantId>,
    /// This run of the room, as the records and the admin API know it.
    session: SessionId,
    started_at: Option<Millis>,
    /// When each participant here was admitted or began waiting, for the admin API.
    since: HashMap<ParticipantId, Millis>,
    /// This room's part in the server's room gauges, taken back when the task ends.
    gauges: RoomGauges,
    /// Someone arrived, was admitted or left since the gauges were last told.
    presence_changed: bool,
    /// The floor's mode and stick holder as last announced, to count changes of either.
    floor: (FloorMode, Option<ParticipantId>),
    /// In a cluster, where the room's newest state goes to be kept in Redis.
    states: Option<mpsc::Sender<StateWrite>>,
    /// The state last handed over, so an unchanged one is not handed again.
    saved: Option<String>,
    /// When to hand the state over again: shortly after the writer's full queue refused it,
    /// or unchanged, in case Redis lost it.
    save_again: Option<Instant>,
    /// Resume tokens of a room carried on from another node, hashed: valid once each, like
    /// the tokens issued here.
    restored_tokens: HashMap<ParticipantId, String>,
    /// Handed off to another node (this one is stopping): the rules no longer move, and the
    /// room waits to be told to send its connections away.
    handed_off: bool,
    /// Told to go after a hand-off: stop, ending nothing.
    departing: bool,
}

impl RoomActor {
    fn new(room: Room, context: Arc<Context>, on_close: OnClose, router: Router) -> Self {
        let gauges = context.metrics().room_opened();
        let context_states = context.room_states().cloned();
        let floor = (room.overview().floor_mode, None);
        Self {
            room,
            context,
            on_close: Some(on_close),
            clock: Clock::new(),
            outboxes: HashMap::new(),
            links: HashMap::new(),
            resume_tokens: HashMap::new(),
            router,
            dropped: Vec::new(),
            session: SessionId::random(),
            started_at: None,
            since: HashMap::new(),
            gauges,
            presence_changed: false,
            floor,
            states: context_states,
            saved: None,
            save_again: None,
            restored_tokens: HashMap::new(),
            handed_off: false,
            departing: false,
        }
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<RoomCommand>,
        mut media_events: mpsc::Receiver<RouterEvent>,
    ) {
        let shutdown = self.context.shutdown_token();
        // In a cluster the node's upkeep decides, when it stops, whether each room is handed
        // off to another node or ended (`HandOff`, `ShutDown`).
        let clustered = self.states.is_some();
        loop {
            let deadline = self
                .room
                .poll_timeout()
                .filter(|_| !self.handed_off)
                .map(|t| self.clock.instant_at(t));
            tokio::select! {
                command = rx.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                () = sleep_until_opt(deadline) => {
                    let now = self.clock.now();
                    self.room.handle_timeout(now);
                }
                // Media tasks await this channel, so the room keeps reading it.
                Some(event) = media_events.recv() => {
                    if !self.handed_off {
                        self.on_media_event(event);
                    }
                }
                () = shutdown.cancelled(), if !clustered => self.room.shut_down(),
                // Due to hand the state over again (see `save_state`).
                () = sleep_until_opt(self.save_again) => {}
            }
            if self.departing {
                break;
            }
            self.apply_effects();
            if self.room.is_finished() {
                break;
            }
            if !self.handed_off {
                self.save_state();
            }
        }
        // A room handed off lives on elsewhere: its state stays for the node carrying it on.
        if !self.departing {
            self.forget_state();
        }
        // Be forgotten first, so that a join which finds this room closed creates a new one;
        // then drop what is queued, which tells those connections to look again.
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
        self.router.close();
        rx.close();
        while rx.try_recv().is_ok() {}
        tracing::debug!(room = %self.room.id(), "room closed");
    }

    fn on_command(&mut self, command: RoomCommand) {
        let now = self.clock.now();
        if self.handed_off {
            self.after_hand_off(command);
            return;
        }
        match command {
            RoomCommand::Join {
                joiner,
                id: request,
                link,
                reply,
            } => {
                let id = joiner.id.clone();
                let known = self.outboxes.contains_key(&id);
                if !known {
                    self.outboxes.insert(id.clone(), self.new_outbox());
                }
                match self.room.join(now, joiner) {
                    Ok(_) => {
                        if let Some(old) = self.links.insert(id.clone(), link) {
                            old.close(circle_protocol::close::REPLACED);
                        }
                        self.acknowledge(&id, request);
                        // The `welcome` or `waiting` is queued before the connection hears back,
                        // so the join time it measures ends with it.
                        self.apply_effects();
                        let result = if self.room.is_admitted(&id) {
                            JoinResult::Admitted
                        } else {
                            JoinResult::Waiting
                        };
                        self.context.metrics().join(result);
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        if !known {
                            self.outboxes.remove(&id);
                        }
                        let _ = reply.send(Err(e));
                    }
                }
            }
            RoomCommand::Resume {
                token,
                id: request,
                last_seq,
                link,
                reply,
            } => {
                let Some(participant) = self.holder_of(&token) else {
                    let _ = reply.send(Err(RoomError::Unauthorized("unknown resume token".into())));
                    return;
                };
                match self.room.resume(&participant) {
                    Ok(()) => {
                        if let Some(old) = self.links.insert(participant.clone(), link) {
                            old.close(circle_protocol::close::REPLACED);
                        }
                        // Each resume token works once: one read off a screen or a log, or used by
                        // a second socket, stops working as soon as its owner resumes.
                        self.resume_tokens.remove(&participant);
                        self.restored_tokens.remove(&participant);
                        // Back in a room carried on from another node: numbered on from what
                        // the client saw there, with a fresh `welcome`, since nothing it missed
                        // can be replayed.
                        let carried_on = !self.outboxes.contains_key(&participant);
                        if carried_on {
                            let outbox = self.new_outbox().continuing_after(last_seq);
                            self.outboxes.insert(participant.clone(), outbox);
                        }
                        let replay = self
                            .outboxes
                            .get_mut(&participant)
                            .filter(|_| !carried_on)
                            .and_then(|o| o.replay_after(now, last_seq));
                        match replay {
                            Some(missed) => {
                                for text in missed {
                                    self.push_raw(&participant, Outbound::Text(text));
                                }
                                let resumed = ServerMessage::Resumed {
                                    resume_token: self.resume_token_for(&participant),
                                    ice_servers: self.context.ice_servers(),
                                };
                                self.deliver(&participant, &resumed);
                            }
                            None => self.send_welcome(&participant),
                        }
                        self.acknowledge(&participant, request);
                        if carried_on {
                            // Media starts here from scratch: the client rebuilds its peers on
                            // the fresh welcome, and the server offers it a new subscribe.
                            self.apply_effects();
                            self.media_from_scratch(&participant);
                        }
                        let _ = reply.send(Ok(participant));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            RoomCommand::Request {
                participant,
                connection,
                frame,
            } => {
                if self.is_current(&participant, connection) {
                    self.room
                        .request(now, &participant, frame.id, frame.message);
                }
            }
            RoomCommand::Refuse {
                participant,
                connection,
                id,
                code,
                message,
                then_close,
            } => {
                if self.is_current(&participant, connection) {
                    self.deliver(&participant, &ServerMessage::error(id, code, message));
                    if let Some(code) = then_close {
                        // The link stays: the connection's end arrives as `Disconnected`, and
                        // the participant gets the resume grace as after any drop.
                        self.push_raw(&participant, Outbound::Close(code));
                    }
                }
            }
            RoomCommand::Disconnected {
                participant,
                connection,
            } => {
                if self.is_current(&participant, connection) {
                    self.links.remove(&participant);
                    self.room.disconnected(now, &participant);
                }
            }
            RoomCommand::Describe { reply } => {
                let overview = self.room.overview();
                let since = overview
                    .participants
                    .iter()
                    .filter_map(|p| self.since.get(&p.id).map(|at| (p.id.clone(), *at)))
                    .collect();
                let _ = reply.send(RoomView {
                    session: self.session.clone(),
                    started_at: self.started_at,
                    overview,
                    since,
                });
            }
            RoomCommand::End { reply } => {
                self.room.end_by_admin();
                self.apply_effects();
                let _ = reply.send(());
            }
            RoomCommand::Remove { participant, reply } => {
                let removed = self.room.remove_by_admin(&participant);
                self.apply_effects();
                let _ = reply.send(removed);
            }
            RoomCommand::Configure { settings } => self.room.configure(now, &settings),
            RoomCommand::HandOff { reply } => {
                self.apply_effects();
                self.handed_off = true;
                let _ = reply.send(self.stored_state().map(|s| s.to_json()));
            }
            RoomCommand::Depart => self.depart(),
            RoomCommand::ShutDown => self.room.shut_down(),
        }
    }

    fn on_media_event(&mut self, event: RouterEvent) {
        match event {
            RouterEvent::Signal { to, epoch, signal } => {
                // Late words of peers a rejoin replaced would confuse the new ones' negotiation.
                if !self.router.is_current(&to, epoch) {
                    return;
                }
                let message = match signal {
                    Signal::Sdp { pc, sdp_type, sdp } => ServerMessage::Sdp { pc, sdp_type, sdp },
                    Signal::Ice { pc, candidate } => ServerMessage::Ice { pc, candidate },
                };
                self.deliver(&to, &message);
            }
            RouterEvent::Speaking { participants } => self.room.speaking(participants),
            RouterEvent::PeerState {
                participant,
                epoch,
                pc,
                connected,
                failed,
            } => {
                tracing::debug!(%participant, ?pc, connected, failed, "peer connection state");
                // A disconnected peer may heal on its own; only up and failed count.
                if self.router.is_current(&participant, epoch) && (connected || failed) {
                    let now = self.clock.now();
                    self.room.peer_state(now, &participant, pc, connected);
                }
            }
            RouterEvent::Published {
                participant,
                epoch,
                kind,
            } => {
                if self.router.is_current(&participant, epoch) {
                    // Attendance records what a person published of themselves (microphone,
                    // camera); a shared screen is neither.
                    let kind = match kind {
                        MediaKind::Audio => Some(events::Published::Audio),
                        MediaKind::Video => Some(events::Published::Video),
                        MediaKind::Screen => None,
                    };
                    if let Some(kind) = kind {
                        self.publish(RoomEvent::Published { participant, kind });
                    }
                }
            }
            RouterEvent::Error { to, message } => {
                // The library's words can quote the client's description: debug only.
                tracing::debug!(participant = %to, %message, "media negotiation failed");
                let refusal = ServerMessage::error(
                    None,
                    ErrorCode::BadRequest,
                    "the session description could not be used",
                );
                self.deliver(&to, &refusal);
            }
        }
    }

    /// Answers a `hello` or `resume` that carried an id, after everything it caused, so that
    /// its `ok` follows the `welcome` (or the replay) like every request's `ok` follows its events.
    fn acknowledge(&mut self, participant: &ParticipantId, request: Option<u32>) {
        if let Some(id) = request {
            self.apply_effects();
            self.deliver(participant, &ServerMessage::Ok { id });
        }
    }

    fn is_current(&self, participant: &ParticipantId, connection: u64) -> bool {
        self.links
            .get(participant)
            .is_some_and(|l| l.id == connection)
    }

    fn apply_effects(&mut self) {
        loop {
            let effects = self.room.take_effects();
            if effects.is_empty() && self.dropped.is_empty() {
                break;
            }
            for effect in effects {
                self.apply(effect);
            }
            let now = self.clock.now();
            for participant in std::mem::take(&mut self.dropped) {
                self.room.disconnected(now, &participant);
            }
        }
        if std::mem::take(&mut self.presence_changed) {
            self.count_presence();
        }
    }

    /// Keeps the server's metrics up to date with one thing the rules did.
    fn count(&mut self, effect: &Effect) {
        match effect {
            // Everyone admitted gets their own view of the floor, but the mode and the holder
            // are the same in each: the first view that differs is the change.
            Effect::Send {
                message: ServerMessage::Floor(floor),
                ..
            } if floor.mode != self.floor.0 || floor.holder != self.floor.1 => {
                self.floor = (floor.mode, floor.holder.clone());
                self.context.metrics().floor_changed();
            }
            Effect::Event(RoomEvent::Started) => self.gauges.set_session_open(true),
            Effect::Event(RoomEvent::Finished { .. }) => self.gauges.set_session_open(false),
            // Leaving the waiting room has no event of its own, but every departure is `Gone`.
            Effect::Event(RoomEvent::Waiting { .. } | RoomEvent::Admitted { .. })
            | Effect::Gone { .. } => self.presence_changed = true,
            _ => {}
        }
    }

    /// Tells the room gauges who is here now; only after a step that changed it, since it
    /// walks the room's members.
    fn count_presence(&mut self) {
        let mut presence = Presence::default();
        for entry in self.room.overview().participants {
            match entry.state {
                PresenceState::Waiting => presence.waiting(),
                PresenceState::Present | PresenceState::Reconnecting => {
                    presence.admitted(entry.role)
                }
            }
        }
        self.gauges.set_presence(presence);
    }

    fn apply(&mut self, effect: Effect) {
        self.count(&effect);
        match effect {
            Effect::Send { to, message } => self.deliver(&to, &message),
            Effect::Welcome { to } => self.send_welcome(&to),
            Effect::Close { to, code } => {
                if let Some(link) = self.links.remove(&to) {
                    link.close(code);
                }
            }
            Effect::Admitted {
                participant,
                may_publish,
            } => self.router.add_participant(participant, may_publish),
            Effect::Gone { participant } => {
                self.outboxes.remove(&participant);
                if let Some(link) = self.links.remove(&participant) {
                    link.kill.cancel();
                }
                self.resume_tokens.remove(&participant);
                self.restored_tokens.remove(&participant);
                self.router.remove_participant(&participant);
            }
            Effect::Banned { participant } => {
                if let Some(states) = &self.states {
                    // Every node keeps the removal, for later runs of this room anywhere.
                    let write = StateWrite::Ban {
                        room: self.room.id().as_str().to_owned(),
                        participant: participant.as_str().to_owned(),
                        keep: self.context.ban_keep(),
                    };
                    if let Err(mpsc::error::TrySendError::Full(write)) = states.try_send(write) {
                        let states = states.clone();
                        tokio::spawn(async move {
                            let _ = states.send(write).await;
                        });
                    }
                }
                self.context.ban(self.room.id().clone(), participant);
            }
            Effect::AudioGate {
                participant,
                forward,
            } => self.router.set_audio_gate(&participant, forward),
            Effect::ScreenGate { participant, track } => {
                self.router.set_screen(&participant, track)
            }
            Effect::TileSizes { viewer, sizes } => self.router.set_tile_sizes(&viewer, sizes),
            Effect::RestartIce { participant } => self.router.restart_ice(&participant),
            Effect::Event(event) => self.publish(event),
            Effect::Media { from, id, signal } => {
                let reply = match self.router.on_signal(&from, signal) {
                    Ok(()) => id.map(|id| ServerMessage::Ok { id }),
                    Err(e) => {
                        tracing::debug!(participant = %from, error = %e, "media request refused");
                        Some(ServerMessage::error(id, e.code(), e.client_message()))
                    }
                };
                if let Some(reply) = reply {
                    self.deliver(&from, &reply);
                }
            }
        }
    }

    /// Tells the rest of the server what happened here.
    fn publish(&mut self, event: RoomEvent) {
        let at = self.clock.now();
        match &event {
            RoomEvent::Started => self.started_at = Some(at),
            RoomEvent::Waiting { participant, .. } | RoomEvent::Admitted { participant, .. } => {
                self.since.insert(participant.clone(), at);
            }
            RoomEvent::Left { participant, .. } => {
                self.since.remove(participant);
            }
            _ => {}
        }
        self.context.events().publish(Stamped {
            room: self.room.id().clone(),
            session: self.session.clone(),
            at,
            event,
        });
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Spawns a room's task and returns its handle; `on_close` runs when the task ends. With
/// `stored`, the room carries on from the state another node left (its host died): the same
/// group session, everyone reconnecting, each holding their old resume token.
pub fn spawn(
    id: RoomId,
    generation: u64,
    context: Arc<Context>,
    on_close: OnClose,
    stored: Option<StoredRoom>,
) -> RoomHandle {
    let settings = context.settings();
    let (tx, rx) = mpsc::channel(settings.room_queue);
    let (media_tx, media_rx) = mpsc::channel(settings.room_queue);
    let router = context.media().router(media_tx);
    let now = Clock::new().now();
    let tracker = context.tracker().clone();
    let actor = match stored {
        None => {
            let overrides: RoomSettings = context.room_settings(&id);
            let mut room = Room::new(id, overrides.apply_to(settings.room.clone()));
            // The turn limit is the floor's, not a start-up setting: set it as a facilitator
            // would.
            room.configure(now, &overrides);
            RoomActor::new(room, context, on_close, router)
        }
        Some(stored) => {
            let room = Room::restore(id, stored.rules.clone(), now);
            let mut actor = RoomActor::new(room, context, on_close, router);
            actor.carry_on(stored);
            actor
        }
    };
    tracker.spawn(actor.run(rx, media_rx));
    RoomHandle::new(tx, generation)
}
