//! A room's media on the webrtc engine: a peer task per leg, and the room's task that keeps the
//! registry of producers and subscribers, tells each subscribe peer what to offer, and reports
//! who is speaking. The [`Router`](crate::media::Router) validates requests before they get here.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use circle_protocol::{ParticipantId, PcKind};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCSessionDescription;

use crate::media::codec::MediaKind;
use crate::media::engine::Engine;
use crate::media::leg::SubscribeState;
use crate::media::peer::{self, PeerCommand, PeerContext, PeerHandle};
use crate::media::producer::{Producer, ProducerEnded, ProducerId};
use crate::media::speaking::{SpeakingDetector, SPEAKING_TICK};
use crate::media::{MediaError, RouterEvent};

/// Membership changes queued to the router task; a room changes far slower than this drains.
const COMMAND_QUEUE: usize = 1024;
/// Producer births and deaths reported by peers; at most two per participant at a time.
const PRODUCER_QUEUE: usize = 256;
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
    publish: Option<PeerHandle>,
    subscribe: PeerHandle,
}

/// A room's media on the webrtc engine. Owned by the room's task; no method blocks or awaits.
pub(crate) struct WebrtcRoom {
    engine: Arc<Engine>,
    events: mpsc::Sender<RouterEvent>,
    commands: Option<mpsc::Sender<RouterCommand>>,
    producers_added: mpsc::Sender<Arc<Producer>>,
    producers_ended: mpsc::Sender<ProducerEnded>,
    participants: HashMap<ParticipantId, Participant>,
}

impl WebrtcRoom {
    pub(crate) fn new(engine: Arc<Engine>, events: mpsc::Sender<RouterEvent>) -> WebrtcRoom {
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
        WebrtcRoom {
            engine,
            events,
            commands: Some(commands),
            producers_added,
            producers_ended,
            participants: HashMap::new(),
        }
    }

    /// Starts a participant's peers under `epoch`, replacing any they had.
    pub(crate) fn add(
        &mut self,
        id: ParticipantId,
        epoch: u64,
        may_publish: bool,
        gate: Arc<AtomicBool>,
        subscribe_state: Arc<SubscribeState>,
    ) {
        let Some(commands) = self.commands.clone() else {
            return;
        };
        self.remove(&id);
        let context = PeerContext {
            participant: id.clone(),
            epoch,
            engine: self.engine.clone(),
            events: self.events.clone(),
            producers_added: self.producers_added.clone(),
            producers_ended: self.producers_ended.clone(),
            gate,
        };
        let publish = may_publish.then(|| peer::spawn(PcKind::Publish, context.clone(), None));
        let subscribe = peer::spawn(PcKind::Subscribe, context, Some(subscribe_state));
        let add = RouterCommand::Add {
            participant: id.clone(),
            epoch,
            subscribe: subscribe.commands.clone(),
        };
        if commands.try_send(add).is_err() {
            tracing::error!("router command queue full; a participant gets no media");
        }
        self.participants
            .insert(id, Participant { publish, subscribe });
    }

    pub(crate) fn restart_ice(&self, id: &ParticipantId) {
        let Some(participant) = self.participants.get(id) else {
            return;
        };
        if send(&participant.subscribe, PeerCommand::RestartIce).is_err() {
            tracing::warn!("could not ask a subscribe peer for an ICE restart");
        }
    }

    /// Closes both of a participant's peers and removes their producers from everyone's
    /// subscribe connection (which re-offers).
    pub(crate) fn remove(&mut self, id: &ParticipantId) {
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

    /// A publish offer the router has checked, for the participant's publish peer.
    pub(crate) fn publish_offer(
        &self,
        id: &ParticipantId,
        sdp: String,
        audio_level_id: Option<u8>,
    ) -> Result<(), MediaError> {
        let publish = self
            .participants
            .get(id)
            .and_then(|p| p.publish.as_ref())
            .ok_or(MediaError::NotFound)?;
        let description =
            RTCSessionDescription::offer(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        send(
            publish,
            PeerCommand::Offer {
                description: Box::new(description),
                audio_level_id,
            },
        )
    }

    /// A subscribe answer the router has checked, for the participant's subscribe peer.
    pub(crate) fn subscribe_answer(
        &self,
        id: &ParticipantId,
        sdp: String,
    ) -> Result<(), MediaError> {
        let participant = self.participants.get(id).ok_or(MediaError::NotFound)?;
        let description =
            RTCSessionDescription::answer(sdp).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        send(
            &participant.subscribe,
            PeerCommand::Answer(Box::new(description)),
        )
    }

    /// Closes every peer and stops the room's task. Later calls do nothing.
    pub(crate) fn close(&mut self) {
        for (_, participant) in self.participants.drain() {
            close_peers(participant);
        }
        // Dropping the command sender ends the router task, which closes the producers.
        self.commands = None;
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
