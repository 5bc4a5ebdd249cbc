//! A consumer: one outgoing copy of a producer on one subscriber's connection. Owns that copy's
//! bounded queue, its egress SSRC and payload type, and relays the subscriber's keyframe
//! requests upstream.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::MediaStreamTrack;

use crate::media::engine::{is_keyframe_request, MediaKind};
use crate::media::producer::Producer;

/// Packets a consumer may fall behind its producer before it loses some: about a second of
/// video, several of audio.
const QUEUE_PACKETS: usize = 256;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct Consumer {
    id: u64,
    pub(crate) producer: Arc<Producer>,
    track: Arc<TrackLocalStaticRTP>,
    /// Set once the subscriber answered the offer that carries this track; packets written
    /// before that would only be refused by the library.
    live: Arc<AtomicBool>,
}

impl Consumer {
    /// Creates the egress track. Its media stream id (the first part of `a=msid`) is the
    /// publisher's participant id, which is how a client knows whose tile a track is.
    pub(crate) fn new(producer: Arc<Producer>) -> Consumer {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let kind = producer.kind;
        let ssrc = rand_ssrc(id);
        let kind_name = match kind {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        };
        let track = MediaStreamTrack::new(
            producer.owner.as_str().to_owned(),
            format!("{kind_name}-{}", producer.id),
            format!("{kind_name}-{}", producer.id),
            kind.rtp_kind(),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: kind.codec(),
                ..Default::default()
            }],
        );
        Consumer {
            id,
            producer,
            track: Arc::new(TrackLocalStaticRTP::new(track)),
            live: Arc::new(AtomicBool::new(false)),
        }
        .started(ssrc)
    }

    fn started(self, ssrc: u32) -> Consumer {
        let (queue, rx) = mpsc::channel(QUEUE_PACKETS);
        tokio::spawn(write(
            self.track.clone(),
            rx,
            ssrc,
            self.producer.kind.payload_type(),
            self.live.clone(),
        ));
        self.producer.attach(self.id, queue);
        self
    }

    pub(crate) fn track(&self) -> Arc<dyn TrackLocal> {
        self.track.clone()
    }

    /// The library binds a track when it is added to the connection; from then on it can read
    /// the subscriber's RTCP about it.
    pub(crate) fn relay_keyframe_requests(&self) {
        tokio::spawn(relay_keyframe_requests(
            self.track.clone(),
            Arc::downgrade(&self.producer),
        ));
    }

    /// The subscriber accepted the track: start sending, beginning with a fresh keyframe so
    /// the new viewer does not wait for the next periodic one.
    pub(crate) fn go_live(&self) {
        if !self.live.swap(true, Ordering::AcqRel) && self.producer.kind == MediaKind::Video {
            self.producer.request_keyframe();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Dropping the producer's end of the queue ends the writer task.
        self.producer.detach(self.id);
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

async fn write(
    track: Arc<TrackLocalStaticRTP>,
    mut queue: mpsc::Receiver<rtp::Packet>,
    ssrc: u32,
    payload_type: u8,
    live: Arc<AtomicBool>,
) {
    while let Some(mut packet) = queue.recv().await {
        if !live.load(Ordering::Acquire) {
            continue;
        }
        packet.header.ssrc = ssrc;
        packet.header.payload_type = payload_type;
        // Waits only on this subscriber's own connection; errors mean it is closing.
        if let Err(e) = track.write_rtp(packet).await {
            tracing::trace!(error = %e, "consumer write failed");
        }
    }
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
                Some(producer) => producer.request_keyframe(),
                None => break,
            }
        }
    }
}
