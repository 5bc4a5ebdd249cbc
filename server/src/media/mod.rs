//! The media plane: a WebRTC SFU with one [`Router`] per room that relays audio and video between
//! participants and enforces the floor gate. Knows nothing of signalling or floor rules.
//!
//! Layout: `codec` holds the codec facts every part shares (Opus, VP8, payload types, the audio
//! level extension), `leg` what each server-side connection negotiates, `mux` the engine that
//! runs every connection on one UDP port from Circle's own loop on the sans-io `rtc` core, `udp`
//! that port's datagram classification and routing table (public so the fuzz target reaches
//! it), `forward` the per-packet work (public only so `cargo bench` can measure it), `router`
//! a room's checks and gates, `sdp` the plain-text checks of client descriptions, `simulcast` which layer of a camera each
//! subscriber receives (public so `cargo bench` can measure it), `speaking`
//! audio levels into the `speaking` set, and `counters` what the packet path counts for metrics.
//! Every rtc type stays inside this module, behind these types, so the library can be swapped.

mod codec;
mod counters;
pub mod forward;
mod leg;
mod mux;
mod router;
mod sdp;
pub mod simulcast;
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
    /// The UDP port every connection shares (0 for any free port). When `None`, the first free
    /// port of `udp_ports`, or any free port.
    pub udp_port: Option<u16>,
    /// Inclusive UDP port range to take the media port from when `udp_port` is `None`.
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

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce_ip: None,
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
    config: Arc<MediaConfig>,
    /// What every connection and forwarded packet counts.
    counters: Arc<MediaCounters>,
    /// The worker that owns the media port and every connection.
    worker: Arc<mux::worker::WorkerHandle>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Media(..)")
    }
}

impl Media {
    /// Binds the media port and starts its worker.
    pub fn new(config: MediaConfig) -> Result<Media, MediaError> {
        if let Some((lo, hi)) = config.udp_ports {
            if lo == 0 || lo > hi {
                return Err(MediaError::Config(format!(
                    "invalid UDP port range {lo}-{hi}"
                )));
            }
        }
        if config.bind_ip.is_unspecified() {
            // Candidates name the bound address (or the announced one): a wildcard is no
            // address a browser can send to.
            return Err(MediaError::Config(
                "bind_ip must be a concrete address, not a wildcard".to_owned(),
            ));
        }
        let counters = Arc::new(MediaCounters::default());
        let worker = mux::start(&config, counters.clone())?;
        Ok(Media {
            config: Arc::new(config),
            counters,
            worker,
        })
    }

    /// One router per room; `events` is a bounded channel read by the room's task.
    ///
    /// Must be called inside a tokio runtime: the router spawns its task here.
    pub fn router(&self, events: mpsc::Sender<RouterEvent>) -> Router {
        Router::new(mux::room::MuxRoom::new(self.worker.clone(), events))
    }

    /// The media port's local address.
    pub fn udp_addr(&self) -> std::net::SocketAddr {
        self.worker.local_addr()
    }

    /// This server's packet and peer counts.
    pub fn counters(&self) -> &MediaCounters {
        &self.counters
    }

    /// The STUN/TURN servers to hand to clients in `welcome`.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.config.ice_servers
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
