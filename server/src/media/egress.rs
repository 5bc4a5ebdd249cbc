//! Egress: one subscriber's outgoing copy of a producer. The consumer creates and owns it; the
//! producer's task holds it in its subscriber list and writes every copy into it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// The track on the subscriber's connection, and what every copy written to it carries.
pub(crate) struct Egress {
    pub(crate) track: Arc<TrackLocalStaticRTP>,
    pub(crate) ssrc: u32,
    pub(crate) payload_type: u8,
    /// Set once the subscriber answered the offer that carries this track and the connection
    /// is up; packets written before that would only be refused by the library.
    pub(crate) live: AtomicBool,
}

/// A change to a producer's subscriber list, sent by consumers to the producer's task so that
/// the per-packet path reads a list it owns and takes no lock.
pub(crate) enum Subscription {
    Attach { consumer: u64, egress: Arc<Egress> },
    Detach { consumer: u64 },
}
