//! The media plane: a WebRTC SFU with one [`Router`] per room that relays audio and video between
//! participants and enforces the floor gate. Knows nothing of signalling or floor rules.
//!
//! Layout: `codec` holds the codec facts every part shares (Opus, VP8, payload types, the audio
//! level extension), `engine` builds peer connections (the only place that configures webrtc), `peer` runs
//! one task per server-side peer connection, `producer` reads one incoming track and fans it out,
//! `forward` is the per-packet work it does (public only so `cargo bench` can measure it; it
//! names the RTP packet type), `consumer` is one outgoing copy and `egress` the track it writes into, `router` keeps the room's
//! registry of who receives what, `speaking` turns audio levels into the `speaking` set, and
//! `counters` holds what the packet path counts for metrics, and `udp` is the one media port's
//! datagram classification and routing table (for the engine on `rtc`, issue 14; public so the
//! fuzz target reaches it).
//! Every other webrtc type stays inside this module, behind these types, so the library can be
//! swapped.

mod codec;
mod consumer;
mod counters;
mod egress;
mod engine;
mod fanout;
pub mod forward;
mod leg;
mod mux;
mod peer;
mod producer;
mod router;
mod sdp;
mod speaking;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use circle_protocol::{IceCandidate, IceServer, ParticipantId, PcKind, SdpType};
use tokio::sync::mpsc;

pub use codec::MediaKind;
pub use counters::{DropReason, MediaCounters};
pub use leg::KeyframeRequestsToApp;
pub use router::Router;

/// Locks one of the media plane's mutexes. No code panics while holding one, so a poisoned
/// mutex is still consistent and is used as it is.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Server-side peer connections open now, process-wide: a count for `/stats`.
pub fn live_peers() -> usize {
    counters::LIVE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Where and how the SFU listens.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The one local address every peer connection binds to.
    pub bind_ip: IpAddr,
    /// The public address behind a 1:1 NAT, announced in candidates instead of `bind_ip`.
    pub announce_ip: Option<IpAddr>,
    /// Which engine runs the media.
    pub engine: EngineKind,
    /// The one engine: the UDP port every connection shares (0 for any free port). When
    /// `None`, the first free port of `udp_ports`, or any free port.
    pub udp_port: Option<u16>,
    /// Inclusive UDP port range for peer connections; ephemeral ports when `None`.
    pub udp_ports: Option<(u16, u16)>,
    /// STUN/TURN servers handed to clients in `welcome`; the server itself uses none.
    pub ice_servers: Vec<IceServer>,
    /// Requested UDP send and receive buffer size per socket (the kernel may cap it); 0 keeps
    /// the kernel default.
    pub socket_buffer_bytes: usize,
    /// ICE liveness: (silence before `disconnected`, further silence before `failed`,
    /// keepalive interval). `None` keeps the library's 5 s / 25 s / 2 s. Tests shorten it so
    /// that a failure shows within seconds. The server is an ICE-lite agent and sends no
    /// keepalives of its own: silence is measured in the browser's checks alone (the library
    /// does not count media), and the third value only sets how often it is measured. Browsers
    /// check a working pair every few seconds (Chromium every 2.5 s), so the first value must
    /// stay above that.
    pub ice_timeouts: Option<(Duration, Duration, Duration)>,
}

/// The media engines. `Rtc` (the default) drives every connection from one loop on one UDP
/// port (the sans-io `rtc` core, issue 14); `Webrtc` gives each peer connection its own socket
/// and task (the webrtc crate), as Circle did before, kept for one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    Webrtc,
    #[default]
    Rtc,
}

impl std::str::FromStr for EngineKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "webrtc" => Ok(EngineKind::Webrtc),
            "rtc" => Ok(EngineKind::Rtc),
            other => Err(format!("unknown media engine {other:?} (webrtc or rtc)")),
        }
    }
}

impl EngineKind {
    /// The engine named by `CIRCLE_MEDIA_ENGINE`, else the default: how the test suites run
    /// once per engine, and what the `circle` command's `--media-engine` reads too.
    pub fn from_env() -> EngineKind {
        std::env::var("CIRCLE_MEDIA_ENGINE")
            .ok()
            .and_then(|name| name.parse().ok())
            .unwrap_or_default()
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce_ip: None,
            engine: EngineKind::from_env(),
            udp_port: None,
            udp_ports: None,
            ice_servers: Vec::new(),
            // The default 208 KiB overflows in bursts (design.md, measured facts).
            socket_buffer_bytes: 4 * 1024 * 1024,
            ice_timeouts: None,
        }
    }
}

/// Process-wide media state; cheap to clone.
#[derive(Clone)]
pub struct Media {
    engine: Arc<engine::Engine>,
    /// The one-port engine's worker, when that engine runs the media.
    mux: Option<Arc<mux::worker::WorkerHandle>>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Media(..)")
    }
}

impl Media {
    pub fn new(config: MediaConfig) -> Result<Media, MediaError> {
        let engine = Arc::new(engine::Engine::new(config)?);
        let mux = match engine.config.engine {
            EngineKind::Webrtc => None,
            EngineKind::Rtc => Some(mux::start(&engine.config, engine.counters.clone())?),
        };
        Ok(Media { engine, mux })
    }

    /// One router per room; `events` is a bounded channel read by the room's task.
    ///
    /// Must be called inside a tokio runtime: the router spawns its task here.
    pub fn router(&self, events: mpsc::Sender<RouterEvent>) -> Router {
        let room = match &self.mux {
            None => {
                router::EngineRoom::Webrtc(fanout::WebrtcRoom::new(self.engine.clone(), events))
            }
            Some(worker) => {
                router::EngineRoom::Mux(mux::room::MuxRoom::new(worker.clone(), events))
            }
        };
        Router::new(room)
    }

    /// The one-port engine's UDP address (`None` on the webrtc engine).
    pub fn udp_addr(&self) -> Option<std::net::SocketAddr> {
        self.mux.as_ref().map(|worker| worker.local_addr())
    }

    /// This server's packet and peer counts.
    pub fn counters(&self) -> &MediaCounters {
        &self.engine.counters
    }

    /// The STUN/TURN servers to hand to clients in `welcome`.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.engine.config.ice_servers
    }
}

/// One WebRTC negotiation message, either way.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Sdp {
        pc: PcKind,
        sdp_type: SdpType,
        sdp: String,
    },
    /// `None` is the end of candidates.
    Ice {
        pc: PcKind,
        candidate: Option<IceCandidate>,
    },
}

/// What a router tells its room.
#[derive(Debug, Clone, PartialEq)]
pub enum RouterEvent {
    /// Sent when the server has negotiation to pass to a client: the answer on `publish`, an
    /// offer on `subscribe`, or a trickled candidate.
    /// `epoch` names the peers that produced it (see [`Router::is_current`]): a rejoin under
    /// the same id must not receive its replaced peers' late answers.
    Signal {
        to: ParticipantId,
        epoch: u64,
        signal: Signal,
    },
    /// Sent when the set of participants whose audio level says they are speaking changes,
    /// including those whose audio the gate holds back; at most 4 times a second. Sorted.
    Speaking { participants: Vec<ParticipantId> },
    /// Sent when one of a participant's peer connections connects (`connected`), disconnects
    /// (neither), or fails or is closed by the library (`failed`: only an ICE restart or new
    /// peers bring it back). `epoch` tells the participant's current peers from ones already
    /// replaced: see [`Router::is_current`].
    PeerState {
        participant: ParticipantId,
        epoch: u64,
        pc: PcKind,
        connected: bool,
        failed: bool,
    },
    /// Sent when asynchronous work for a client failed (e.g. its description was refused).
    Error { to: ParticipantId, message: String },
    /// Sent when a participant's track of this kind reaches the router: what they really
    /// publish, as opposed to what their client says.
    Published {
        participant: ParticipantId,
        epoch: u64,
        kind: MediaKind,
    },
}

/// Why a router request was refused. The room maps these to protocol error codes.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The participant is not in this router (`not_found`).
    #[error("no such participant")]
    NotFound,
    /// The participant may not do this, e.g. an observer publishing (`forbidden`).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request does not fit the negotiation state, e.g. an answer with no offer
    /// outstanding (`conflict`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The session description or candidate could not be used (`bad_request`).
    #[error("bad session description: {0}")]
    BadSdp(String),
    /// The configuration given to [`Media::new`] is unusable.
    #[error("media configuration: {0}")]
    Config(String),
    /// The router is closed or overloaded, or the library failed (`internal`).
    #[error("internal media error: {0}")]
    Internal(String),
}

/// A library failure as a [`MediaError::Internal`].
pub(crate) fn internal(e: impl std::fmt::Display) -> MediaError {
    MediaError::Internal(e.to_string())
}
