//! Fake browsers built with the same webrtc crate, and the rooms they talk to: a stand-in task
//! that owns a Router directly ([`StandInRoom`], for the media module alone) or the real server
//! over WebSocket ([`ServerRoom`], where the room's rules decide the gate). This module owns what
//! they share: bounded waits, change notification, and the commands a browser gives its room.

mod fake;
mod peer;
mod rtp;
mod server_room;
mod stand_in;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use circle_protocol::ParticipantId;
use circle_server::media::{RouterEvent, Signal};
use tokio::sync::{mpsc, watch};

pub use fake::{ice_ufrag, Browser, Received, Stream};
pub use peer::{client_pc, client_pc_at, ClientEvent};
pub use rtp::{
    client_opus, client_vp8, contiguous, local_track, write_opus, AUDIO_LEVEL_URI, CLIENT_OPUS_PT,
    CLIENT_VP8_PT, LOUD, QUIET,
};
pub use server_room::ServerRoom;
pub use stand_in::StandInRoom;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Something in a browser changed (a packet, an offer, a PLI, a server event): waiters recheck.
#[derive(Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Changes {
    fn new() -> Changes {
        Changes(Arc::new(watch::channel(0).0))
    }

    fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Rechecks `check` after every change until it returns `Some`, for at most `WAIT`.
pub async fn wait_for<T>(what: &str, changes: &Changes, mut check: impl FnMut() -> Option<T>) -> T {
    // Subscribing first means no change between the check and the wait is missed.
    let mut rx = changes.0.subscribe();
    within(what, async {
        loop {
            if let Some(v) = check() {
                return v;
            }
            rx.changed()
                .await
                .expect("changes sender lives in the browser");
        }
    })
    .await
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// What a browser asks of its room, whichever room it is.
enum BrowserCommand {
    /// Joins `id` (may they publish?), with the inbox for what the room sends them.
    Add(ParticipantId, bool, mpsc::Sender<RouterEvent>),
    Remove(ParticipantId),
    Signal(ParticipantId, Signal),
}

/// A room's command: a browser's, or one only that kind of room understands. One channel
/// carries both, so that the room handles them in the order they were given.
enum Command<Own> {
    Browser(BrowserCommand),
    Own(Own),
}

type Sending = Pin<Box<dyn Future<Output = bool> + Send>>;

/// A browser's way to its room's task: sends [`BrowserCommand`]s on the room's one channel.
#[derive(Clone)]
pub struct RoomLink(Arc<dyn Fn(BrowserCommand) -> Sending + Send + Sync>);

impl RoomLink {
    fn new<Own: Send + 'static>(commands: mpsc::Sender<Command<Own>>) -> RoomLink {
        RoomLink(Arc::new(move |command| {
            let commands = commands.clone();
            Box::pin(async move { commands.send(Command::Browser(command)).await.is_ok() })
        }))
    }

    /// False when the room's task is gone.
    async fn send(&self, command: BrowserCommand) -> bool {
        (self.0)(command).await
    }

    /// Panics when the room's task is gone.
    async fn command(&self, command: BrowserCommand) {
        assert!(self.send(command).await, "room task alive");
    }
}

/// A room a [`Browser`] can join.
pub trait Room {
    fn link(&self) -> RoomLink;
}

/// The `speaking` sets a room passes on, for one waiter at a time.
#[derive(Clone)]
struct Speaking(Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<ParticipantId>>>>);

impl Speaking {
    fn new(rx: mpsc::Receiver<Vec<ParticipantId>>) -> Speaking {
        Speaking(Arc::new(tokio::sync::Mutex::new(rx)))
    }

    /// Waits for a `speaking` event that satisfies `check`.
    async fn until(&self, check: impl Fn(&[ParticipantId]) -> bool) -> Vec<ParticipantId> {
        let mut rx = self.0.lock().await;
        within("a speaking event", async {
            loop {
                let set = rx.recv().await.expect("speaking channel open");
                if check(&set) {
                    return set;
                }
            }
        })
        .await
    }
}
