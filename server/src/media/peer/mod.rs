//! A peer: one server-side peer connection and the task that owns it, built only when first
//! needed (the first publish offer, the first track to offer), so a participant who sends and
//! receives no media costs no socket. What both legs share is here (the connection, its events,
//! the state told to the room); what differs is in `publish` (answers the browser's offers,
//! turns incoming tracks into producers) and `subscribe` (offers one track per other
//! participant's producer, one offer at a time, coalescing changes).

mod publish;
mod subscribe;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use circle_protocol::{IceCandidate, ParticipantId, PcKind};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidate, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
};

use crate::media::counters::Live;
use crate::media::engine::Engine;
use crate::media::leg::SubscribeState;
use crate::media::producer::{Producer, ProducerEnded, ProducerId};
use crate::media::{RouterEvent, Signal};
use publish::PublishLeg;
use subscribe::SubscribeLeg;

// Logging: library error texts can quote SDP lines and addresses, so they are logged at debug
// only; the line at info or above names the failure without them.

/// Commands queued per peer; a handful per producer change, so this is never the limit.
const COMMAND_QUEUE: usize = 256;
/// Library events per peer: candidates come in bursts of a few, tracks one or two.
const EVENT_QUEUE: usize = 256;

/// Large payloads are boxed: a channel allocates its first block of slots when it is created,
/// and every idle participant has two of these channels. Each command is for one leg; the
/// router never sends one to the other.
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

/// Hands the library's callbacks to the peer task as events.
struct EventRelay {
    events: mpsc::Sender<PeerEvent>,
}

impl EventRelay {
    fn relay(&self, event: PeerEvent) {
        // Never awaited: a full queue here would stall the library's driver, which the peer
        // task itself waits on.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            tracing::warn!("peer event queue full; event dropped");
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventRelay {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        self.relay(PeerEvent::Candidate(Box::new(event.candidate)));
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.relay(PeerEvent::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.relay(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        self.relay(PeerEvent::Track(track));
    }
}

/// Starts a peer's task; a subscribe peer shares `subscribe` with the router.
pub(crate) fn spawn(
    kind: PcKind,
    context: PeerContext,
    subscribe: Option<Arc<SubscribeState>>,
) -> PeerHandle {
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let leg = match kind {
        PcKind::Publish => Leg::Publish(PublishLeg::new()),
        PcKind::Subscribe => Leg::Subscribe(SubscribeLeg::new(subscribe.unwrap_or_default())),
    };
    let task = PeerTask {
        link: Link {
            kind,
            context,
            pc: None,
            events: None,
            reported: None,
        },
        leg,
    };
    tokio::spawn(task.run(command_rx));
    PeerHandle { commands }
}

/// The next library event, once there is a connection to have events.
async fn next_event(events: &mut Option<mpsc::Receiver<PeerEvent>>) -> Option<PeerEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// What both legs share: the connection (built on first need), its events, and what was last
/// told to the room about it.
struct Link {
    kind: PcKind,
    context: PeerContext,
    /// Built on first need; with it, the guard that counts it.
    pc: Option<(Arc<dyn PeerConnection>, Live)>,
    events: Option<mpsc::Receiver<PeerEvent>>,
    /// The last state told to the room: (connected, failed).
    reported: Option<(bool, bool)>,
}

impl Link {
    /// The peer connection if it has been built.
    fn existing(&self) -> Option<Arc<dyn PeerConnection>> {
        self.pc.as_ref().map(|(pc, _)| pc.clone())
    }

    fn is_connected(&self) -> bool {
        self.reported.is_some_and(|(connected, _)| connected)
    }

    /// The peer connection, built now if this is its first use, with the channel its events
    /// arrive on. `None` (the client told) if it cannot be built; the next command that needs
    /// it tries again.
    async fn connection(&mut self) -> Option<Arc<dyn PeerConnection>> {
        if let Some(pc) = self.existing() {
            return Some(pc);
        }
        let (event_tx, events) = mpsc::channel(EVENT_QUEUE);
        let handler = Arc::new(EventRelay { events: event_tx });
        match self.context.engine.build_peer(self.kind, handler).await {
            Ok(pc) => {
                let live = Live::start(self.context.engine.counters.clone());
                self.pc = Some((pc.clone(), live));
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

    /// Tells the room a state change that matters (connected, or failed); true when the
    /// connection has just come up.
    async fn report(&mut self, state: RTCPeerConnectionState) -> bool {
        let Some((connected, failed)) = crate::media::leg::peer_state(state) else {
            return false;
        };
        if self.reported == Some((connected, failed)) {
            return false;
        }
        self.reported = Some((connected, failed));
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
        connected
    }

    /// Passes the server's own candidate (and the end of them) to the client.
    async fn candidate(&self, candidate: Option<Box<RTCIceCandidate>>) {
        let candidate = match candidate {
            None => None,
            Some(candidate) => {
                let Ok(init) = candidate.to_json() else {
                    return;
                };
                if init.candidate.is_empty() {
                    return;
                }
                Some(IceCandidate {
                    candidate: self.context.engine.announce_candidate(init.candidate),
                    // The library writes an empty mid, which a browser may not match to any
                    // section; under BUNDLE the first section carries every candidate.
                    sdp_mid: None,
                    sdp_mline_index: Some(0),
                    username_fragment: init.username_fragment,
                })
            }
        };
        self.signal(Signal::Ice {
            pc: self.kind,
            candidate,
        })
        .await;
    }

    async fn close(&mut self) {
        if let Some((pc, _live)) = self.pc.take() {
            if let Err(e) = Box::pin(pc.close()).await {
                tracing::debug!(error = %e, "closing a peer connection failed");
            }
        }
    }
}

/// The leg this peer is: each is its own type.
enum Leg {
    Publish(PublishLeg),
    Subscribe(SubscribeLeg),
}

struct PeerTask {
    link: Link,
    leg: Leg,
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
                Some(event) = next_event(&mut self.link.events) => {
                    Box::pin(self.handle_event(event)).await;
                }
            }
        }
        match &mut self.leg {
            Leg::Publish(publish) => publish.close(),
            Leg::Subscribe(subscribe) => subscribe.close(),
        }
        self.link.close().await;
    }

    /// Handles `first` and whatever else is already queued, then lets the leg act once, so
    /// changes that arrive together (a leaver's microphone and camera) share one offer. False
    /// on close.
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
            match &mut self.leg {
                Leg::Publish(publish) => publish.command(&mut self.link, command).await,
                Leg::Subscribe(subscribe) => subscribe.command(&mut self.link, command).await,
            }
            next = queue.try_recv().ok();
        }
        if let Leg::Subscribe(subscribe) = &mut self.leg {
            subscribe.offer_if_due(&mut self.link).await;
        }
        true
    }

    async fn handle_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Candidate(candidate) => self.link.candidate(Some(candidate)).await,
            PeerEvent::GatheringComplete => self.link.candidate(None).await,
            PeerEvent::State(state) => {
                if self.link.report(state).await {
                    if let Leg::Subscribe(subscribe) = &self.leg {
                        subscribe.go_live(&self.link);
                    }
                }
            }
            PeerEvent::Track(track) => {
                if let Leg::Publish(publish) = &mut self.leg {
                    publish.start_producer(&self.link, track).await;
                }
            }
        }
    }
}
