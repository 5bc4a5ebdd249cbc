//! A peer: one server-side peer connection and the task that owns it. The publish peer answers
//! the browser's offers and turns incoming tracks into producers; the subscribe peer offers one
//! track per other participant's producer, one offer at a time, coalescing changes. The
//! connection itself is built only when first needed (the first publish offer, the first track
//! to offer), so a participant who sends and receives no media costs no socket.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use circle_protocol::{IceCandidate, ParticipantId, PcKind, SdpType};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidate, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::media::codec::MediaKind;
use crate::media::consumer::Consumer;
use crate::media::engine::Engine;
use crate::media::producer::{Producer, ProducerEnded, ProducerId};
use crate::media::{RouterEvent, Signal};

// Logging: library error texts can quote SDP lines and addresses, so they are logged at debug
// only; the line at info or above names the failure without them.

/// Commands queued per peer; a handful per producer change, so this is never the limit.
const COMMAND_QUEUE: usize = 256;
/// Library events per peer: candidates come in bursts of a few, tracks one or two.
const EVENT_QUEUE: usize = 256;

/// Peer connections open now, for `/stats`.
pub(crate) static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts one open peer connection until dropped, however its task ends.
struct Live;

impl Live {
    fn start() -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Large payloads are boxed: a channel allocates its first block of slots when it is created,
/// and every idle participant has two of these channels.
pub(crate) enum PeerCommand {
    /// Publish: a browser offer, already parsed, with its audio level extension id.
    Offer {
        description: Box<RTCSessionDescription>,
        audio_level_id: Option<u8>,
    },
    /// Subscribe: the browser's answer to our outstanding offer.
    Answer(Box<RTCSessionDescription>),
    /// Subscribe: include this producer in the next offer.
    AddConsumer(Arc<Producer>),
    /// Subscribe: drop this producer from the next offer.
    RemoveConsumer(ProducerId),
    /// Subscribe: make the next offer an ICE restart (new credentials), and send it as soon as
    /// no other offer is outstanding.
    RestartIce,
    Close,
}

/// The router's side of a peer task.
pub(crate) struct PeerHandle {
    pub(crate) commands: mpsc::Sender<PeerCommand>,
    /// Subscribe only: an offer has been sent and its answer not yet applied. Read by the
    /// router to refuse a stray answer synchronously.
    pub(crate) offer_outstanding: Arc<AtomicBool>,
}

/// What every peer task of one participant shares.
#[derive(Clone)]
pub(crate) struct PeerContext {
    pub(crate) participant: ParticipantId,
    pub(crate) epoch: u64,
    pub(crate) engine: Arc<Engine>,
    pub(crate) events: mpsc::Sender<RouterEvent>,
    pub(crate) producers_added: mpsc::Sender<Arc<Producer>>,
    pub(crate) producers_ended: mpsc::Sender<ProducerEnded>,
    pub(crate) gate: Arc<AtomicBool>,
}

/// Library callbacks, turned into messages for the peer's task; no logic runs in the library's
/// driver, which awaits each callback. The candidate is boxed for the same reason as in
/// [`PeerCommand`].
enum PeerEvent {
    Candidate(Box<RTCIceCandidate>),
    GatheringComplete,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Forwarder {
    events: mpsc::Sender<PeerEvent>,
}

impl Forwarder {
    fn forward(&self, event: PeerEvent) {
        // Never awaited: a full queue here would stall the library's driver, which the peer
        // task itself waits on.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            tracing::warn!("peer event queue full; event dropped");
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Forwarder {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        self.forward(PeerEvent::Candidate(Box::new(event.candidate)));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.forward(PeerEvent::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.forward(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.forward(PeerEvent::Track(track));
    }
}

pub(crate) fn spawn(kind: PcKind, context: PeerContext) -> PeerHandle {
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let offer_outstanding = Arc::new(AtomicBool::new(false));
    let task = PeerTask {
        kind,
        context,
        pc: None,
        events: None,
        reported: None,
        restart_ice: false,
        audio_level_id: None,
        producers: HashMap::new(),
        wanted: BTreeMap::new(),
        consumers: BTreeMap::new(),
        dirty: false,
        negotiated: false,
        offer_outstanding: offer_outstanding.clone(),
    };
    tokio::spawn(task.run(command_rx));
    PeerHandle {
        commands,
        offer_outstanding,
    }
}

/// Applies a browser's publish offer and the server's answer to it; on failure, what to tell
/// the client.
async fn apply_offer(
    pc: &Arc<dyn PeerConnection>,
    description: RTCSessionDescription,
) -> Result<(), &'static str> {
    if let Err(e) = pc.set_remote_description(description).await {
        tracing::info!("publish offer refused");
        tracing::debug!(error = %e, "publish offer refused");
        return Err("the server could not apply the publish offer");
    }
    let answer = match pc.create_answer(None).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!("could not answer a publish offer");
            tracing::debug!(error = %e, "could not answer a publish offer");
            return Err("the server could not answer the publish offer");
        }
    };
    if let Err(e) = pc.set_local_description(answer).await {
        tracing::warn!("could not apply our own publish answer");
        tracing::debug!(error = %e, "could not apply our own publish answer");
        return Err("the server could not answer the publish offer");
    }
    Ok(())
}

/// Discards a remote offer that was not answered. An offer refused before it changed anything
/// leaves nothing to roll back, and the library says so: that is logged at debug only.
async fn rollback(pc: &Arc<dyn PeerConnection>) {
    let rollback = match RTCSessionDescription::rollback(None) {
        Ok(rollback) => rollback,
        Err(e) => {
            tracing::debug!(error = %e, "could not build a rollback");
            return;
        }
    };
    if let Err(e) = pc.set_remote_description(rollback).await {
        tracing::debug!(error = %e, "rolling back a refused publish offer failed");
    }
}

/// The next library event, once there is a connection to have events.
async fn next_event(events: &mut Option<mpsc::Receiver<PeerEvent>>) -> Option<PeerEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// A consumer on the subscribe connection, and whether an answer has accepted it.
struct Subscribed {
    sender: Arc<dyn RtpSender>,
    consumer: Consumer,
    negotiated: bool,
}

/// `add_track` would make a sendrecv transceiver; the subscribe leg only ever sends.
async fn add_sendonly(
    pc: &Arc<dyn PeerConnection>,
    consumer: &Consumer,
) -> webrtc::error::Result<Arc<dyn RtpSender>> {
    let init = RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Sendonly,
        ..Default::default()
    };
    let transceiver = pc
        .add_transceiver_from_track(consumer.track(), Some(init))
        .await?;
    transceiver
        .sender()
        .await?
        .ok_or(webrtc::error::Error::ErrRTPSenderNotExisted)
}

struct PeerTask {
    kind: PcKind,
    context: PeerContext,
    /// Built on first need; with it, the guard that counts it, and its events.
    pc: Option<(Arc<dyn PeerConnection>, Live)>,
    events: Option<mpsc::Receiver<PeerEvent>>,
    /// The last state told to the room: (connected, failed).
    reported: Option<(bool, bool)>,
    /// Subscribe: the next offer restarts ICE.
    restart_ice: bool,

    // Publish.
    audio_level_id: Option<u8>,
    producers: HashMap<MediaKind, Arc<Producer>>,

    // Subscribe.
    wanted: BTreeMap<ProducerId, Arc<Producer>>,
    consumers: BTreeMap<ProducerId, Subscribed>,
    dirty: bool,
    /// An offer has been sent at least once, so an empty set must still be re-offered.
    negotiated: bool,
    offer_outstanding: Arc<AtomicBool>,
}

impl PeerTask {
    async fn run(mut self, mut commands: mpsc::Receiver<PeerCommand>) {
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { break };
                    // Boxed: the handling futures hold the library's large futures, and a task
                    // is as big as its largest await; an idle peer should cost little.
                    if !Box::pin(self.handle_commands(command, &mut commands)).await {
                        break;
                    }
                }
                Some(event) = next_event(&mut self.events) => {
                    Box::pin(self.handle_event(event)).await;
                }
            }
        }
        for producer in self.producers.values() {
            producer.close();
        }
        self.consumers.clear();
        if let Some((pc, _live)) = self.pc.take() {
            if let Err(e) = Box::pin(pc.close()).await {
                tracing::debug!(error = %e, "closing a peer connection failed");
            }
        }
    }

    /// The peer connection, built now if this is its first use, with the channel its events
    /// arrive on. `None` (the client told) if it cannot be built; the next command that needs
    /// it tries again.
    async fn connection(&mut self) -> Option<Arc<dyn PeerConnection>> {
        if let Some((pc, _)) = &self.pc {
            return Some(pc.clone());
        }
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let handler = Arc::new(Forwarder { events: event_tx });
        match self.context.engine.build_peer(self.kind, handler).await {
            Ok(pc) => {
                self.pc = Some((pc.clone(), Live::start()));
                self.events = Some(events);
                Some(pc)
            }
            Err(e) => {
                tracing::error!(pc = ?self.kind, "could not create a peer connection");
                tracing::debug!(error = %e, "could not create a peer connection");
                self.error("the server could not create a peer connection")
                    .await;
                None
            }
        }
    }

    /// Handles `first` and whatever else is already queued, then offers once, so changes that
    /// arrive together (a leaver's microphone and camera) share one offer. False on close.
    async fn handle_commands(
        &mut self,
        first: PeerCommand,
        queue: &mut mpsc::Receiver<PeerCommand>,
    ) -> bool {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            if matches!(command, PeerCommand::Close) {
                return false;
            }
            self.handle_command(command).await;
            next = queue.try_recv().ok();
        }
        self.offer_if_due().await;
        true
    }

    async fn handle_command(&mut self, command: PeerCommand) {
        match command {
            PeerCommand::Offer {
                description,
                audio_level_id,
            } => {
                if let Some(pc) = self.connection().await {
                    self.answer_offer(&pc, *description, audio_level_id).await;
                }
            }
            PeerCommand::Answer(description) => match self.pc.as_ref().map(|(pc, _)| pc.clone()) {
                Some(pc) => self.apply_answer(&pc, *description).await,
                // No connection means no offer was ever sent.
                None => self.error("no subscribe offer is outstanding").await,
            },
            PeerCommand::AddConsumer(producer) => {
                self.wanted.insert(producer.id, producer);
                self.dirty = true;
            }
            PeerCommand::RemoveConsumer(id) => {
                if self.wanted.remove(&id).is_some() {
                    self.dirty = true;
                }
            }
            PeerCommand::RestartIce => {
                if self.kind == PcKind::Subscribe {
                    self.restart_ice = true;
                    self.dirty = true;
                }
            }
            PeerCommand::Close => {}
        }
    }

    async fn handle_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Candidate(candidate) => {
                let Ok(init) = candidate.to_json() else {
                    return;
                };
                if init.candidate.is_empty() {
                    return;
                }
                let candidate = IceCandidate {
                    candidate: self.context.engine.announce_candidate(init.candidate),
                    // The library writes an empty mid, which a browser may not match to any
                    // section; under BUNDLE the first section carries every candidate.
                    sdp_mid: None,
                    sdp_mline_index: Some(0),
                    username_fragment: init.username_fragment,
                };
                self.signal(Signal::Ice {
                    pc: self.kind,
                    candidate: Some(candidate),
                })
                .await;
            }
            PeerEvent::GatheringComplete => {
                self.signal(Signal::Ice {
                    pc: self.kind,
                    candidate: None,
                })
                .await;
            }
            PeerEvent::State(state) => {
                // `Disconnected` may heal by itself; `Failed` needs an ICE restart. `Closed`
                // reaches this task only when the library closed on its own: our own close
                // ends the task first.
                let (connected, failed) = match state {
                    RTCPeerConnectionState::Connected => (true, false),
                    RTCPeerConnectionState::Disconnected => (false, false),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        (false, true)
                    }
                    _ => return,
                };
                if self.reported == Some((connected, failed)) {
                    return;
                }
                self.reported = Some((connected, failed));
                if connected {
                    self.go_live();
                }
                let _ = self
                    .context
                    .events
                    .send(RouterEvent::PeerState {
                        participant: self.context.participant.clone(),
                        epoch: self.context.epoch,
                        pc: self.kind,
                        connected,
                        failed,
                    })
                    .await;
            }
            PeerEvent::Track(track) => self.start_producer(track).await,
        }
    }

    async fn answer_offer(
        &mut self,
        pc: &Arc<dyn PeerConnection>,
        description: RTCSessionDescription,
        audio_level_id: Option<u8>,
    ) {
        self.audio_level_id = audio_level_id;
        if let Err(refusal) = apply_offer(pc, description).await {
            // The library moves to `have-remote-offer` before it finds what is wrong with an
            // offer, and stays there, refusing every later offer until a new connection. A
            // rollback (JSEP, RFC 9429) takes it back to the last stable state, so the client's
            // next offer is answered.
            rollback(pc).await;
            self.error(refusal).await;
            return;
        }
        let Some(local) = pc.local_description().await else {
            return;
        };
        self.signal(Signal::Sdp {
            pc: PcKind::Publish,
            sdp_type: SdpType::Answer,
            sdp: self.context.engine.announce_sdp(local.sdp),
        })
        .await;
    }

    async fn start_producer(&mut self, track: Arc<dyn TrackRemote>) {
        let Some(producer) = Producer::start(
            track,
            self.context.participant.clone(),
            self.context.epoch,
            self.context.gate.clone(),
            self.audio_level_id,
            self.context.producers_ended.clone(),
        )
        .await
        else {
            return;
        };
        // At most one track of each kind: a renegotiated camera replaces the old one.
        if let Some(old) = self.producers.insert(producer.kind, producer.clone()) {
            old.close();
        }
        let _ = self.context.producers_added.send(producer).await;
    }

    async fn apply_answer(
        &mut self,
        pc: &Arc<dyn PeerConnection>,
        description: RTCSessionDescription,
    ) {
        if !self.offer_outstanding.load(Ordering::Acquire) {
            self.error("no subscribe offer is outstanding").await;
            return;
        }
        if let Err(e) = pc.set_remote_description(description).await {
            tracing::info!("subscribe answer refused");
            tracing::debug!(error = %e, "subscribe answer refused");
            // Offer again from scratch rather than leave the subscriber stuck.
            self.offer_outstanding.store(false, Ordering::Release);
            self.dirty = true;
            self.error("the server could not apply the subscribe answer")
                .await;
            return;
        }
        self.offer_outstanding.store(false, Ordering::Release);
        // Every consumer present now was in the offer just answered: none are added while an
        // offer is outstanding.
        for subscribed in self.consumers.values_mut() {
            subscribed.negotiated = true;
        }
        self.go_live();
    }

    /// Sends the next subscribe offer if the wanted producers changed and none is outstanding.
    async fn offer_if_due(&mut self) {
        if !self.dirty || self.offer_outstanding.load(Ordering::Acquire) {
            return;
        }
        self.dirty = false;
        if self.wanted.is_empty() && !self.negotiated {
            // Nothing to offer yet, and nothing offered before: no connection is needed.
            self.restart_ice = false;
            return;
        }
        let Some(pc) = self.connection().await else {
            // The client was told; the next change tries again.
            self.dirty = true;
            return;
        };
        let pc = &pc;

        let gone: Vec<ProducerId> = self
            .consumers
            .keys()
            .filter(|id| !self.wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(subscribed) = self.consumers.remove(&id) {
                if let Err(e) = pc.remove_track(&subscribed.sender).await {
                    tracing::warn!("could not remove a subscribed track");
                    tracing::debug!(error = %e, "could not remove a subscribed track");
                }
            }
        }
        let new: Vec<Arc<Producer>> = self
            .wanted
            .values()
            .filter(|p| !self.consumers.contains_key(&p.id))
            .cloned()
            .collect();
        for producer in new {
            let consumer = Consumer::new(producer.clone());
            match add_sendonly(pc, &consumer).await {
                Ok(sender) => {
                    consumer.relay_keyframe_requests();
                    self.consumers.insert(
                        producer.id,
                        Subscribed {
                            sender,
                            consumer,
                            negotiated: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("could not add a subscribed track");
                    tracing::debug!(error = %e, "could not add a subscribed track");
                }
            }
        }

        if self.consumers.is_empty() && !self.negotiated {
            // Nothing negotiated yet: the first offer brings fresh credentials anyway.
            self.restart_ice = false;
            return;
        }
        let options = self
            .restart_ice
            .then_some(RTCOfferOptions { ice_restart: true });
        let offer = match pc.create_offer(options).await {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!("could not create a subscribe offer");
                tracing::debug!(error = %e, "could not create a subscribe offer");
                return;
            }
        };
        if let Err(e) = pc.set_local_description(offer).await {
            tracing::warn!("could not apply our own subscribe offer");
            tracing::debug!(error = %e, "could not apply our own subscribe offer");
            return;
        }
        let Some(local) = pc.local_description().await else {
            return;
        };
        self.restart_ice = false;
        self.negotiated = true;
        self.offer_outstanding.store(true, Ordering::Release);
        self.signal(Signal::Sdp {
            pc: PcKind::Subscribe,
            sdp_type: SdpType::Offer,
            sdp: self.context.engine.announce_sdp(local.sdp),
        })
        .await;
    }

    /// Starts sending on negotiated tracks once DTLS is up: a packet written before the
    /// connection has its SRTP keys is dropped by the library with a warning.
    fn go_live(&self) {
        if !self.reported.is_some_and(|(connected, _)| connected) {
            return;
        }
        for subscribed in self.consumers.values().filter(|s| s.negotiated) {
            subscribed.consumer.go_live();
        }
    }

    async fn signal(&self, signal: Signal) {
        let _ = self
            .context
            .events
            .send(RouterEvent::Signal {
                to: self.context.participant.clone(),
                epoch: self.context.epoch,
                signal,
            })
            .await;
    }

    async fn error(&self, message: &str) {
        let _ = self
            .context
            .events
            .send(RouterEvent::Error {
                to: self.context.participant.clone(),
                message: message.to_owned(),
            })
            .await;
    }
}
