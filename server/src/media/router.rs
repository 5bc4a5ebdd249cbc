//! The router: a room's media fan-out. The synchronous [`Router`] handle, owned by the room's
//! task, validates requests and passes them on; the router task keeps the registry of producers
//! and subscribers, tells each subscribe peer what to offer, and reports who is speaking.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circle_protocol::{ParticipantId, PcKind, SdpType};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCSessionDescription;

use crate::media::codec::MediaKind;
use crate::media::engine::Engine;
use crate::media::peer::{self, PeerCommand, PeerContext, PeerHandle};
use crate::media::producer::{Producer, ProducerEnded, ProducerId};
use crate::media::sdp::{
    check_client_description, inspect_publish_offer, strip_candidates, MAX_PUBLISH_SECTIONS,
};
use crate::media::speaking::SpeakingDetector;
use crate::media::{lock, MediaError, RouterEvent, Signal};

/// Membership changes queued to the router task; a room changes far slower than this drains.
const COMMAND_QUEUE: usize = 1024;
/// Producer births and deaths reported by peers; at most two per participant at a time.
const PRODUCER_QUEUE: usize = 256;
/// `speaking` is reported at most this often (protocol.md: at most 4 times a second).
const SPEAKING_TICK: Duration = Duration::from_millis(250);

static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

enum RouterCommand {
    Add {
        participant: ParticipantId,
        epoch: u64,
        subscribe: mpsc::Sender<PeerCommand>,
    },
    Remove {
        participant: ParticipantId,
    },
}

struct Participant {
    epoch: u64,
    publish: Option<PeerHandle>,
    subscribe: PeerHandle,
}

/// A room's media router. Owned by the room's task; no method blocks or awaits.
pub struct Router {
    engine: Arc<Engine>,
    events: mpsc::Sender<RouterEvent>,
    commands: Option<mpsc::Sender<RouterCommand>>,
    producers_added: mpsc::Sender<Arc<Producer>>,
    producers_ended: mpsc::Sender<ProducerEnded>,
    participants: HashMap<ParticipantId, Participant>,
    /// Gates outlive producers (a republished microphone keeps its gate) and may be set
    /// before the participant's media exists. Behind a mutex only because `set_audio_gate`
    /// takes `&self`; the room's task is the only user.
    gates: Mutex<HashMap<ParticipantId, Arc<AtomicBool>>>,
}

impl Router {
    pub(crate) fn new(engine: Arc<Engine>, events: mpsc::Sender<RouterEvent>) -> Router {
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (producers_added, added_rx) = mpsc::channel(PRODUCER_QUEUE);
        let (producers_ended, ended_rx) = mpsc::channel(PRODUCER_QUEUE);
        let task = RouterTask {
            events: events.clone(),
            subscribers: HashMap::new(),
            producers: HashMap::new(),
            speaking: SpeakingDetector::default(),
        };
        tokio::spawn(task.run(command_rx, added_rx, ended_rx));
        Router {
            engine,
            events,
            commands: Some(commands),
            producers_added,
            producers_ended,
            participants: HashMap::new(),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a participant's peers: `subscribe` always, `publish` if they may publish. The
    /// audio gate starts closed unless it was already set: the room opens it.
    pub fn add_participant(&mut self, id: ParticipantId, may_publish: bool) {
        let Some(commands) = self.commands.clone() else {
            return;
        };
        // A second add replaces the first (a rejoin); the gate the room set is kept.
        self.remove_peers(&id);
        let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
        let context = PeerContext {
            participant: id.clone(),
            epoch,
            engine: self.engine.clone(),
            events: self.events.clone(),
            producers_added: self.producers_added.clone(),
            producers_ended: self.producers_ended.clone(),
            gate: self.gate(&id),
        };
        let publish = may_publish.then(|| peer::spawn(PcKind::Publish, context.clone()));
        let subscribe = peer::spawn(PcKind::Subscribe, context);
        let add = RouterCommand::Add {
            participant: id.clone(),
            epoch,
            subscribe: subscribe.commands.clone(),
        };
        if commands.try_send(add).is_err() {
            tracing::error!("router command queue full; a participant gets no media");
        }
        self.participants.insert(
            id,
            Participant {
                epoch,
                publish,
                subscribe,
            },
        );
    }

    /// Whether `epoch` names the participant's current peers (an event from peers a rejoin
    /// replaced is stale).
    pub fn is_current(&self, id: &ParticipantId, epoch: u64) -> bool {
        self.participants.get(id).is_some_and(|p| p.epoch == epoch)
    }

    /// Restarts ICE on the participant's `subscribe` peer: its next offer carries new
    /// credentials, sent as soon as no other offer is outstanding. The browser restarts
    /// `publish` itself, by offering again with new credentials, which the publish peer
    /// answers like any offer.
    pub fn restart_ice(&self, id: &ParticipantId) {
        let Some(participant) = self.participants.get(id) else {
            return;
        };
        if send(&participant.subscribe, PeerCommand::RestartIce).is_err() {
            tracing::warn!("could not ask a subscribe peer for an ICE restart");
        }
    }

    /// Closes both of a participant's peers and removes their producers from everyone's
    /// subscribe connection (which re-offers).
    pub fn remove_participant(&mut self, id: &ParticipantId) {
        lock(&self.gates).remove(id);
        self.remove_peers(id);
    }

    fn remove_peers(&mut self, id: &ParticipantId) {
        let Some(participant) = self.participants.remove(id) else {
            return;
        };
        close_peers(participant);
        if let Some(commands) = &self.commands {
            let remove = RouterCommand::Remove {
                participant: id.clone(),
            };
            if commands.try_send(remove).is_err() {
                tracing::error!("router command queue full; a leaver's tracks stay offered");
            }
        }
    }

    /// Opens or closes a participant's audio: read by their audio producer on every packet.
    pub fn set_audio_gate(&self, id: &ParticipantId, forward: bool) {
        self.gate(id).store(forward, Ordering::Release);
    }

    /// Takes a client's `sdp` or `ice` message. Refuses what can be judged at once; the rest
    /// happens in the peer's task, whose failures arrive as [`RouterEvent::Error`]. The client's
    /// candidates, trickled or inside a description, never reach the library.
    pub fn on_signal(&mut self, from: &ParticipantId, signal: Signal) -> Result<(), MediaError> {
        if self.commands.is_none() {
            return Err(MediaError::Internal("the router is closed".to_owned()));
        }
        let participant = self.participants.get(from).ok_or(MediaError::NotFound)?;
        match signal {
            Signal::Sdp {
                pc: PcKind::Publish,
                sdp_type,
                sdp,
            } => {
                let publish = participant
                    .publish
                    .as_ref()
                    .ok_or(MediaError::Forbidden("observers do not publish"))?;
                if sdp_type != SdpType::Offer {
                    return Err(MediaError::Conflict(
                        "the client offers on publish and the server answers",
                    ));
                }
                check_client_description(&sdp, MAX_PUBLISH_SECTIONS)?;
                let sdp = strip_candidates(&sdp);
                let offer = inspect_publish_offer(&sdp)?;
                let description = RTCSessionDescription::offer(sdp)
                    .map_err(|e| MediaError::BadSdp(e.to_string()))?;
                send(
                    publish,
                    PeerCommand::Offer {
                        description: Box::new(description),
                        audio_level_id: offer.audio_level_id,
                    },
                )
            }
            Signal::Sdp {
                pc: PcKind::Subscribe,
                sdp_type,
                sdp,
            } => {
                if sdp_type != SdpType::Answer {
                    return Err(MediaError::Conflict(
                        "the server offers on subscribe and the client answers",
                    ));
                }
                if !participant
                    .subscribe
                    .offer_outstanding
                    .load(Ordering::Acquire)
                {
                    return Err(MediaError::Conflict("no subscribe offer is outstanding"));
                }
                let offered = participant
                    .subscribe
                    .offered_sections
                    .load(Ordering::Acquire);
                check_client_description(&sdp, offered)?;
                let description = RTCSessionDescription::answer(strip_candidates(&sdp))
                    .map_err(|e| MediaError::BadSdp(e.to_string()))?;
                send(
                    &participant.subscribe,
                    PeerCommand::Answer(Box::new(description)),
                )
            }
            Signal::Ice { pc, .. } => {
                if pc == PcKind::Publish && participant.publish.is_none() {
                    return Err(MediaError::Forbidden("observers do not publish"));
                }
                // Accepted and dropped: the server is an ICE-lite agent (RFC 8445 §2.5) that
                // learns the browser's address from the browser's own checks, and the library
                // would send checks to, or open a TCP connection to, any address a client names.
                Ok(())
            }
        }
    }

    /// Closes every peer and stops the router task. Later calls do nothing.
    pub fn close(&mut self) {
        for (_, participant) in self.participants.drain() {
            close_peers(participant);
        }
        lock(&self.gates).clear();
        // Dropping the command sender ends the router task, which closes the producers.
        self.commands = None;
    }

    fn gate(&self, id: &ParticipantId) -> Arc<AtomicBool> {
        lock(&self.gates)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(AtomicBool::new(false)))
            .clone()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.close();
    }
}

fn close_peers(participant: Participant) {
    for peer in participant.publish.iter().chain([&participant.subscribe]) {
        // If the queue is full the task still ends: dropping the handle closes its channel.
        let _ = peer.commands.try_send(PeerCommand::Close);
    }
}

fn send(peer: &PeerHandle, command: PeerCommand) -> Result<(), MediaError> {
    peer.commands.try_send(command).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => {
            MediaError::Internal("too many signalling messages in flight".to_owned())
        }
        mpsc::error::TrySendError::Closed(_) => {
            MediaError::Internal("the peer connection is gone".to_owned())
        }
    })
}

struct Subscriber {
    epoch: u64,
    commands: mpsc::Sender<PeerCommand>,
}

impl Subscriber {
    fn tell(&self, command: PeerCommand) {
        // A subscriber whose queue is full is stuck; it would rather miss a track than stall
        // the whole room's fan-out.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.commands.try_send(command) {
            tracing::warn!("subscribe peer queue full; a track change was dropped");
        }
    }
}

struct RouterTask {
    events: mpsc::Sender<RouterEvent>,
    subscribers: HashMap<ParticipantId, Subscriber>,
    producers: HashMap<ProducerId, Arc<Producer>>,
    speaking: SpeakingDetector,
}

impl RouterTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<RouterCommand>,
        mut added: mpsc::Receiver<Arc<Producer>>,
        mut ended: mpsc::Receiver<ProducerEnded>,
    ) {
        let mut tick = tokio::time::interval(SPEAKING_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => break,
                },
                Some(producer) = added.recv() => self.add_producer(producer).await,
                Some(ProducerEnded { id }) = ended.recv() => self.remove_producer(id),
                _ = tick.tick() => self.report_speaking().await,
            }
        }
        for producer in self.producers.values() {
            producer.close();
        }
    }

    fn handle_command(&mut self, command: RouterCommand) {
        match command {
            RouterCommand::Add {
                participant,
                epoch,
                subscribe,
            } => {
                let subscriber = Subscriber {
                    epoch,
                    commands: subscribe,
                };
                for producer in self.producers.values() {
                    if producer.owner != participant {
                        subscriber.tell(PeerCommand::AddConsumer(producer.clone()));
                    }
                }
                self.subscribers.insert(participant, subscriber);
            }
            RouterCommand::Remove { participant } => {
                self.subscribers.remove(&participant);
                self.speaking.forget(&participant);
                let theirs: Vec<ProducerId> = self
                    .producers
                    .values()
                    .filter(|p| p.owner == participant)
                    .map(|p| p.id)
                    .collect();
                for id in theirs {
                    if let Some(producer) = self.producers.get(&id) {
                        producer.close();
                    }
                    self.remove_producer(id);
                }
            }
        }
    }

    async fn add_producer(&mut self, producer: Arc<Producer>) {
        let current = self
            .subscribers
            .get(&producer.owner)
            .is_some_and(|s| s.epoch == producer.owner_epoch);
        if !current {
            // Its owner left (or left and came back) while the track was being set up.
            producer.close();
            return;
        }
        for (participant, subscriber) in &self.subscribers {
            if *participant != producer.owner {
                subscriber.tell(PeerCommand::AddConsumer(producer.clone()));
            }
        }
        let published = RouterEvent::Published {
            participant: producer.owner.clone(),
            epoch: producer.owner_epoch,
            kind: producer.kind,
        };
        self.producers.insert(producer.id, producer);
        // The room reads this channel all the time; the rest of the router waits on it anyway.
        let _ = self.events.send(published).await;
    }

    fn remove_producer(&mut self, id: ProducerId) {
        let Some(producer) = self.producers.remove(&id) else {
            return;
        };
        for (participant, subscriber) in &self.subscribers {
            if *participant != producer.owner {
                subscriber.tell(PeerCommand::RemoveConsumer(id));
            }
        }
    }

    async fn report_speaking(&mut self) {
        let counts: Vec<(ParticipantId, u32)> = self
            .producers
            .values()
            .filter(|p| p.kind == MediaKind::Audio)
            .map(|p| (p.owner.clone(), p.take_loud_packets()))
            .collect();
        if let Some(participants) = self.speaking.tick(counts) {
            let _ = self
                .events
                .send(RouterEvent::Speaking { participants })
                .await;
        }
    }
}
