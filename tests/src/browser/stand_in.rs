//! The stand-in room: a task that owns a `Router` directly, as the room's task does, never
//! awaits it, and routes its events to the browsers; the gate is the test's to set.

use std::collections::BTreeMap;

use circle_protocol::ParticipantId;
use circle_server::media::{Media, MediaConfig, Router, RouterEvent};
use tokio::sync::mpsc;

use super::{init_tracing, BrowserCommand, Command, Room, RoomLink, Speaking};

/// What only the stand-in room does.
enum StandIn {
    Gate(ParticipantId, bool),
}

/// A stand-in for the room's task, for the media module alone.
#[derive(Clone)]
pub struct StandInRoom {
    commands: mpsc::Sender<Command<StandIn>>,
    speaking: Speaking,
}

impl Room for StandInRoom {
    fn link(&self) -> RoomLink {
        RoomLink::new(self.commands.clone())
    }
}

impl StandInRoom {
    pub fn start() -> StandInRoom {
        StandInRoom::start_with(MediaConfig::default())
    }

    pub fn start_with(config: MediaConfig) -> StandInRoom {
        StandInRoom::start_on(&Media::new(config).expect("media"))
    }

    /// A stand-in room on media the test holds too (to read its counters, or its port).
    pub fn start_on(media: &Media) -> StandInRoom {
        init_tracing();
        let (events_tx, mut events) = mpsc::channel(1024);
        let mut router: Router = media.router(events_tx);
        let (commands, mut command_rx) = mpsc::channel::<Command<StandIn>>(1024);
        let (speaking_tx, speaking_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut inboxes: BTreeMap<ParticipantId, mpsc::Sender<RouterEvent>> = BTreeMap::new();
            loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        None => break,
                        Some(Command::Browser(BrowserCommand::Add(id, may_publish, inbox))) => {
                            router.add_participant(id.clone(), may_publish);
                            inboxes.insert(id, inbox);
                        }
                        Some(Command::Browser(BrowserCommand::Remove(id))) => {
                            router.remove_participant(&id);
                            inboxes.remove(&id);
                        }
                        Some(Command::Own(StandIn::Gate(id, open))) => router.set_audio_gate(&id, open),
                        Some(Command::Browser(BrowserCommand::Signal(id, signal))) => {
                            if let Err(e) = router.on_signal(&id, signal) {
                                panic!("router refused a signal from {id}: {e}");
                            }
                        }
                    },
                    Some(event) = events.recv() => match event {
                        RouterEvent::Speaking { participants } => {
                            let _ = speaking_tx.try_send(participants);
                        }
                        RouterEvent::Published { .. } => {}
                        RouterEvent::Signal { ref to, .. }
                        | RouterEvent::Error { ref to, .. }
                        | RouterEvent::PeerState { participant: ref to, .. } => {
                            if let Some(inbox) = inboxes.get(to) {
                                let _ = inbox.try_send(event.clone());
                            }
                        }
                    },
                }
            }
            router.close();
        });
        StandInRoom {
            commands,
            speaking: Speaking::new(speaking_rx),
        }
    }

    pub async fn set_gate(&self, id: &str, open: bool) {
        self.commands
            .send(Command::Own(StandIn::Gate(id.into(), open)))
            .await
            .expect("room task alive");
    }

    pub async fn remove(&self, id: &str) {
        self.link().command(BrowserCommand::Remove(id.into())).await;
    }

    /// Waits for a `speaking` event that satisfies `check`.
    pub async fn speaking_until(
        &self,
        check: impl Fn(&[ParticipantId]) -> bool,
    ) -> Vec<ParticipantId> {
        self.speaking.until(check).await
    }
}
