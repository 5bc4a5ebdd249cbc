//! A consumer: one outgoing copy of a producer on one subscriber's connection. Owns that copy's
//! egress track, SSRC and payload type (the producer writes into it), and relays the
//! subscriber's keyframe requests upstream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use crate::media::codec::MediaKind;
use crate::media::egress::{Egress, Subscription};
use crate::media::forward::KeyframeWanted;
use crate::media::leg::{is_keyframe_request, sending_track};
use crate::media::producer::Producer;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Consumer {
    id: u64,
    pub(crate) producer: Arc<Producer>,
    egress: Arc<Egress>,
}

impl Consumer {
    /// Creates the egress track. Its media stream id (the first part of `a=msid`) is the
    /// publisher's participant id, which is how a client knows whose tile a track is.
    pub(crate) fn new(producer: Arc<Producer>) -> Consumer {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let kind = producer.kind;
        let ssrc = rand_ssrc(id);
        let name = format!("{}-{}", kind.as_str(), producer.id);
        let track = sending_track(kind, producer.owner.as_str().to_owned(), name, ssrc);
        let egress = Arc::new(Egress {
            track: Arc::new(TrackLocalStaticRTP::new(track)),
            ssrc,
            payload_type: kind.payload_type(),
            live: AtomicBool::new(false),
        });
        producer.subscription(Subscription::Attach {
            consumer: id,
            egress: egress.clone(),
        });
        Consumer {
            id,
            producer,
            egress,
        }
    }

    pub(crate) fn track(&self) -> Arc<dyn TrackLocal> {
        self.egress.track.clone()
    }

    /// The library binds a track when it is added to the connection; from then on it can read
    /// the subscriber's RTCP about it.
    pub(crate) fn relay_keyframe_requests(&self) {
        tokio::spawn(relay_keyframe_requests(
            self.egress.track.clone(),
            Arc::downgrade(&self.producer),
        ));
    }

    /// The subscriber accepted the track: start sending, beginning with a fresh keyframe so
    /// the new viewer does not wait for the next periodic one.
    pub(crate) fn go_live(&self) {
        if !self.egress.live.swap(true, Ordering::AcqRel) && self.producer.kind == MediaKind::Video
        {
            self.producer
                .request_keyframe(KeyframeWanted::NewSubscriber);
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.producer
            .subscription(Subscription::Detach { consumer: self.id });
    }
}

/// SSRCs must differ between the tracks of one connection; mixing a counter into the clock
/// is enough for that and needs no random number generator.
fn rand_ssrc(id: u64) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(nanos)) as u32;
    mixed.max(1)
}

async fn relay_keyframe_requests(
    track: Arc<TrackLocalStaticRTP>,
    producer: std::sync::Weak<Producer>,
) {
    // Ends when the track is removed or its connection closes.
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            match producer.upgrade() {
                Some(producer) => producer.request_keyframe(KeyframeWanted::Subscriber),
                None => break,
            }
        }
    }
}
