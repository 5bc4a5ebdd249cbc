//! The room's media task: what each participant's legs should do, one command or report at a
//! time, waiting only on the worker's replies and the room's event channel.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use circle_protocol::{IceCandidate, ParticipantId, PcKind, SdpType};
use tokio::sync::{mpsc, oneshot};

use super::{Gates, RoomCommand, NEXT_KEY};
use crate::media::codec::MediaKind;
use crate::media::leg::{peer_state, SubscribeState};
use crate::media::mux::worker::{Command, ConnKey, Owner, Report, WorkerHandle};
use crate::media::sdp::media_sections;
use crate::media::speaking::{SpeakingDetector, SPEAKING_TICK};
use crate::media::{MediaError, RouterEvent, Signal};

/// One participant's legs and what its subscribe leg should receive.
struct Member {
    epoch: u64,
    publish: Option<ConnKey>,
    subscribe: ConnKey,
    state: Arc<SubscribeState>,
    loud: Arc<AtomicU32>,
    /// The kinds the publish leg has sent us: every other member's subscribe leg receives them
    /// (a screen only while `sharing`).
    published: BTreeSet<MediaKind>,
    /// The rules allow the screen share the participant announced.
    sharing: bool,
    /// The heights at which this participant shows the others' cameras (`tile_sizes`), by
    /// participant: kept here, because the worker knows them by publish connection, and a
    /// publisher who rejoins has a new one while the viewer's tile has not changed.
    tile_sizes: HashMap<ParticipantId, u32>,
    /// What the subscribe leg should receive (everyone else's published tracks) changed, or an
    /// ICE restart was asked for, since the last offer.
    dirty: bool,
    restart_ice: bool,
    /// An offer has been sent at least once, so an empty set must still be re-offered.
    negotiated: bool,
    /// The last state told to the room, per leg: (connected, failed).
    reported: [Option<(bool, bool)>; 2],
}

pub(super) struct RoomTask {
    worker: Arc<WorkerHandle>,
    events: mpsc::Sender<RouterEvent>,
    /// Given to the worker with each connection: its reports come back here.
    reports: mpsc::Sender<Report>,
    members: HashMap<ParticipantId, Member>,
    /// Whose leg each connection is.
    by_key: HashMap<ConnKey, (ParticipantId, PcKind)>,
    speaking: SpeakingDetector,
}

fn leg_index(kind: PcKind) -> usize {
    match kind {
        PcKind::Publish => 0,
        PcKind::Subscribe => 1,
    }
}

impl RoomTask {
    pub(super) fn new(
        worker: Arc<WorkerHandle>,
        events: mpsc::Sender<RouterEvent>,
        reports: mpsc::Sender<Report>,
    ) -> RoomTask {
        RoomTask {
            worker,
            events,
            reports,
            members: HashMap::new(),
            by_key: HashMap::new(),
            speaking: SpeakingDetector::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<RoomCommand>,
        mut reports: mpsc::Receiver<Report>,
    ) {
        let mut tick = tokio::time::interval(SPEAKING_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    self.command(command).await;
                    // Changes that arrive together (a leaver's microphone and camera) share
                    // one offer.
                    while let Ok(command) = commands.try_recv() {
                        self.command(command).await;
                    }
                }
                Some(report) = reports.recv() => self.report(report).await,
                _ = tick.tick() => self.report_speaking().await,
            }
            self.offer_due().await;
        }
        let keys: Vec<ConnKey> = self.by_key.keys().copied().collect();
        for key in keys {
            let _ = self.worker.send(Command::Close { key }).await;
        }
    }

    async fn command(&mut self, command: RoomCommand) {
        match command {
            RoomCommand::Add {
                participant,
                epoch,
                may_publish,
                gates,
                subscribe,
            } => {
                self.add(participant, epoch, may_publish, gates, subscribe)
                    .await
            }
            RoomCommand::Remove { participant } => {
                self.remove(&participant).await;
                for other in self.members.values_mut() {
                    other.tile_sizes.remove(&participant);
                }
            }
            RoomCommand::RestartIce { participant } => {
                if let Some(member) = self.members.get_mut(&participant) {
                    member.restart_ice = true;
                    member.dirty = true;
                }
            }
            RoomCommand::PublishOffer {
                participant,
                sdp,
                audio_level_id,
                screen,
            } => {
                self.publish_offer(participant, sdp, audio_level_id, screen)
                    .await
            }
            RoomCommand::Screen { participant, on } => self.set_screen(&participant, on),
            RoomCommand::TileSizes { viewer, sizes } => {
                if let Some(member) = self.members.get_mut(&viewer) {
                    member.tile_sizes.extend(sizes.iter().cloned());
                    let key = member.subscribe;
                    self.tile_sizes(key, sizes).await;
                }
            }
            RoomCommand::SubscribeAnswer { participant, sdp } => {
                self.subscribe_answer(participant, sdp).await
            }
        }
    }

    async fn add(
        &mut self,
        participant: ParticipantId,
        epoch: u64,
        may_publish: bool,
        gates: Gates,
        state: Arc<SubscribeState>,
    ) {
        // A rejoin replaces the participant's legs.
        self.remove(&participant).await;
        let loud = Arc::new(AtomicU32::new(0));
        let owner = Arc::new(Owner {
            reports: self.reports.clone(),
            stream: participant.as_str().to_owned(),
            gate: gates.audio,
            screen_gate: gates.screen,
            loud: loud.clone(),
        });
        let publish = may_publish.then(|| NEXT_KEY.fetch_add(1, Ordering::Relaxed));
        let subscribe = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        for (key, kind) in publish
            .map(|k| (k, PcKind::Publish))
            .into_iter()
            .chain([(subscribe, PcKind::Subscribe)])
        {
            let owner = owner.clone();
            if self
                .worker
                .send(Command::Open { key, kind, owner })
                .await
                .is_err()
            {
                tracing::error!("the media worker has stopped; a participant gets no media");
            }
            self.by_key.insert(key, (participant.clone(), kind));
        }
        let anything_published = self.members.values().any(|m| !m.published.is_empty());
        // A rejoin: the tiles that show this participant have not changed, but its camera now
        // comes from another connection.
        let shown_at: Vec<(ConnKey, u32)> = self
            .members
            .values()
            .filter_map(|m| Some((m.subscribe, *m.tile_sizes.get(&participant)?)))
            .collect();
        self.members.insert(
            participant.clone(),
            Member {
                epoch,
                publish,
                subscribe,
                state,
                loud,
                published: BTreeSet::new(),
                sharing: false,
                tile_sizes: HashMap::new(),
                dirty: anything_published,
                restart_ice: false,
                negotiated: false,
                reported: [None, None],
            },
        );
        for (key, height) in shown_at {
            self.tile_sizes(key, vec![(participant.clone(), height)])
                .await;
        }
    }

    async fn remove(&mut self, participant: &ParticipantId) {
        let Some(member) = self.members.remove(participant) else {
            return;
        };
        self.speaking.forget(participant);
        for key in member.publish.into_iter().chain([member.subscribe]) {
            self.by_key.remove(&key);
            let _ = self.worker.send(Command::Close { key }).await;
        }
        if !member.published.is_empty() {
            for other in self.members.values_mut() {
                other.dirty = true;
            }
        }
    }

    async fn publish_offer(
        &mut self,
        participant: ParticipantId,
        sdp: String,
        audio_level_id: Option<u8>,
        screen: Option<String>,
    ) {
        let Some(member) = self.members.get(&participant) else {
            return;
        };
        let (epoch, Some(key)) = (member.epoch, member.publish) else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        let command = Command::Answer {
            key,
            offer: sdp,
            audio_level_id,
            screen,
            reply,
        };
        match self.ask(command, answer).await {
            Ok(sdp) => {
                self.signal(&participant, epoch, PcKind::Publish, SdpType::Answer, sdp)
                    .await
            }
            Err(e) => {
                let message = match e {
                    MediaError::BadSdp(message) => message,
                    _ => "the server could not answer the publish offer".to_owned(),
                };
                self.error(&participant, message).await;
            }
        }
    }

    async fn subscribe_answer(&mut self, participant: ParticipantId, sdp: String) {
        let Some(member) = self.members.get(&participant) else {
            return;
        };
        let key = member.subscribe;
        if !member.state.offer_outstanding.load(Ordering::Acquire) {
            self.error(&participant, "no subscribe offer is outstanding".to_owned())
                .await;
            return;
        }
        let (reply, accepted) = oneshot::channel();
        let command = Command::Accept {
            key,
            answer: sdp,
            reply,
        };
        let accepted = self.ask(command, accepted).await;
        let Some(member) = self.members.get_mut(&participant) else {
            return;
        };
        member
            .state
            .offer_outstanding
            .store(false, Ordering::Release);
        if accepted.is_err() {
            // Offer again from scratch rather than leave the subscriber stuck.
            member.dirty = true;
            self.error(
                &participant,
                "the server could not apply the subscribe answer".to_owned(),
            )
            .await;
        }
    }

    /// Tells the worker the sizes at which the viewer whose subscribe leg is `key` shows each
    /// publisher's camera, by publish connection.
    async fn tile_sizes(&self, key: ConnKey, sizes: Vec<(ParticipantId, u32)>) {
        let sizes: Vec<(ConnKey, u32)> = sizes
            .into_iter()
            .filter_map(|(p, h)| Some((self.members.get(&p)?.publish?, h)))
            .collect();
        if sizes.is_empty() {
            return;
        }
        let command = Command::TileSizes { key, sizes };
        if self.worker.send(command).await.is_err() {
            tracing::error!("the media worker has stopped");
        }
    }

    /// A screen share started or stopped: everyone else's subscribe leg gains or loses it.
    fn set_screen(&mut self, participant: &ParticipantId, on: bool) {
        let Some(member) = self.members.get_mut(participant) else {
            return;
        };
        if member.sharing == on {
            return;
        }
        member.sharing = on;
        if member.published.contains(&MediaKind::Screen) {
            self.others_changed(participant);
        }
    }

    /// What `participant`'s subscribe leg should receive: everyone else's published tracks (a
    /// screen while it is shared), by publish connection and kind.
    fn wanted_by(&self, participant: &ParticipantId) -> Vec<(ConnKey, MediaKind)> {
        self.members
            .iter()
            .filter(|(id, _)| *id != participant)
            .filter_map(|(_, m)| m.publish.map(|key| (key, m)))
            .flat_map(|(key, m)| {
                m.published
                    .iter()
                    .filter(|kind| **kind != MediaKind::Screen || m.sharing)
                    .map(move |kind| (key, *kind))
            })
            .collect()
    }

    /// Every subscribe leg but `participant`'s is offered again.
    fn others_changed(&mut self, participant: &ParticipantId) {
        for (id, other) in self.members.iter_mut() {
            if id != participant {
                other.dirty = true;
            }
        }
    }

    /// Sends each subscribe leg whose wanted tracks changed its next offer, unless one is
    /// outstanding.
    async fn offer_due(&mut self) {
        let due: Vec<ParticipantId> = self
            .members
            .iter()
            .filter(|(_, m)| m.dirty && !m.state.offer_outstanding.load(Ordering::Acquire))
            .map(|(id, _)| id.clone())
            .collect();
        for participant in due {
            let wanted = self.wanted_by(&participant);
            let Some(member) = self.members.get_mut(&participant) else {
                continue;
            };
            member.dirty = false;
            if wanted.is_empty() && !member.negotiated {
                // Nothing to offer yet, and nothing offered before: no connection is needed,
                // and the first offer brings fresh credentials anyway.
                member.restart_ice = false;
                continue;
            }
            let (reply, offer) = oneshot::channel();
            let command = Command::Subscribe {
                key: member.subscribe,
                wanted,
                restart_ice: member.restart_ice,
                reply,
            };
            let epoch = member.epoch;
            let offered = self.ask(command, offer).await;
            let Some(member) = self.members.get_mut(&participant) else {
                continue;
            };
            match offered {
                Ok(sdp) => {
                    member.restart_ice = false;
                    member.negotiated = true;
                    member
                        .state
                        .offered_sections
                        .store(media_sections(&sdp), Ordering::Release);
                    member
                        .state
                        .offer_outstanding
                        .store(true, Ordering::Release);
                    self.signal(&participant, epoch, PcKind::Subscribe, SdpType::Offer, sdp)
                        .await;
                }
                Err(e) => {
                    tracing::warn!("could not create a subscribe offer");
                    tracing::debug!(error = %e, "could not create a subscribe offer");
                }
            }
        }
    }

    async fn report(&mut self, report: Report) {
        match report {
            Report::State { key, state } => {
                let Some((participant, kind)) = self.by_key.get(&key).cloned() else {
                    return;
                };
                let Some(member) = self.members.get_mut(&participant) else {
                    return;
                };
                let Some((connected, failed)) = peer_state(state) else {
                    return;
                };
                let reported = &mut member.reported[leg_index(kind)];
                if *reported == Some((connected, failed)) {
                    return;
                }
                *reported = Some((connected, failed));
                let event = RouterEvent::PeerState {
                    participant,
                    epoch: member.epoch,
                    pc: kind,
                    connected,
                    failed,
                };
                let _ = self.events.send(event).await;
            }
            Report::Published { key, kind } => {
                let Some((participant, PcKind::Publish)) = self.by_key.get(&key).cloned() else {
                    return;
                };
                let Some(member) = self.members.get_mut(&participant) else {
                    return;
                };
                let new = member.published.insert(kind);
                let epoch = member.epoch;
                let shown = kind != MediaKind::Screen || member.sharing;
                if new && shown {
                    // A replaced camera changes nothing anyone receives.
                    self.others_changed(&participant);
                }
                let published = RouterEvent::Published {
                    participant,
                    epoch,
                    kind,
                };
                let _ = self.events.send(published).await;
            }
            #[cfg(test)]
            Report::Rtp { .. } => {}
        }
    }

    async fn report_speaking(&mut self) {
        let counts: Vec<(ParticipantId, u32)> = self
            .members
            .iter()
            .filter(|(_, m)| m.published.contains(&MediaKind::Audio))
            .map(|(id, m)| (id.clone(), m.loud.swap(0, Ordering::Relaxed)))
            .collect();
        if let Some(participants) = self.speaking.tick(counts) {
            let _ = self
                .events
                .send(RouterEvent::Speaking { participants })
                .await;
        }
    }

    /// Sends the worker a command and waits for its reply.
    async fn ask<T>(
        &self,
        command: Command,
        reply: oneshot::Receiver<Result<T, MediaError>>,
    ) -> Result<T, MediaError> {
        self.worker.send(command).await?;
        reply
            .await
            .map_err(|_| MediaError::Internal("the media worker has stopped".to_owned()))?
    }

    /// Passes a description of ours to the client, then our one candidate and the end of
    /// candidates (the description carries them too; clients that trickle read these).
    async fn signal(
        &self,
        to: &ParticipantId,
        epoch: u64,
        pc: PcKind,
        sdp_type: SdpType,
        sdp: String,
    ) {
        let candidate = local_candidate(&sdp);
        let mut signals = vec![Signal::Sdp { pc, sdp_type, sdp }];
        if let Some(candidate) = candidate {
            signals.push(Signal::Ice {
                pc,
                candidate: Some(candidate),
            });
        }
        signals.push(Signal::Ice {
            pc,
            candidate: None,
        });
        for signal in signals {
            let event = RouterEvent::Signal {
                to: to.clone(),
                epoch,
                signal,
            };
            let _ = self.events.send(event).await;
        }
    }

    async fn error(&self, to: &ParticipantId, message: String) {
        let _ = self
            .events
            .send(RouterEvent::Error {
                to: to.clone(),
                message,
            })
            .await;
    }
}

/// Our candidate as a description of ours carries it, for trickling: under BUNDLE the first
/// section carries every candidate.
fn local_candidate(sdp: &str) -> Option<IceCandidate> {
    let ufrag = sdp
        .lines()
        .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))?;
    let candidate = sdp
        .lines()
        .filter_map(|line| line.trim_end().strip_prefix("a="))
        .find(|attribute| attribute.starts_with("candidate:"))?;
    Some(IceCandidate {
        candidate: candidate.to_owned(),
        sdp_mid: None,
        sdp_mline_index: Some(0),
        username_fragment: Some(ufrag.to_owned()),
    })
}
