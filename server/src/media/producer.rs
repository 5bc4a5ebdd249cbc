//! A producer: one incoming track. Its forwarding task reads RTP, applies the floor gate to
//! audio, hides gated stretches by rewriting sequence numbers, counts loud audio for speaking
//! detection, and fans packets out to the consumers' bounded queues without ever waiting on one.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use circle_protocol::ParticipantId;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, Notify};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media::engine::MediaKind;
use crate::media::speaking::is_loud;

pub(crate) type ProducerId = u64;

/// Keyframe requests to one publisher are at most this frequent, however many subscribers ask:
/// each keyframe costs the publisher's whole uplink for a moment.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What the producer tells the router about itself.
#[derive(Debug)]
pub(crate) struct ProducerEnded {
    pub(crate) id: ProducerId,
}

struct ConsumerSlot {
    id: u64,
    queue: mpsc::Sender<rtp::Packet>,
}

/// The shared side of a producer: the router, the publish peer and the consumers hold it.
pub(crate) struct Producer {
    pub(crate) id: ProducerId,
    pub(crate) owner: ParticipantId,
    /// Which `add_participant` of `owner` this belongs to, so a late producer of someone who
    /// left and came back is not mistaken for a current one.
    pub(crate) owner_epoch: u64,
    pub(crate) kind: MediaKind,
    consumers: Mutex<Vec<ConsumerSlot>>,
    /// Capacity one: a request while one is pending or throttled is the same request.
    keyframe_requests: mpsc::Sender<()>,
    loud_packets: AtomicU32,
    closed: Notify,
}

impl Producer {
    /// Starts forwarding a track the publish peer just received. Returns `None` for a track
    /// that is neither audio nor video.
    pub(crate) async fn start(
        track: Arc<dyn TrackRemote>,
        owner: ParticipantId,
        owner_epoch: u64,
        gate: Arc<AtomicBool>,
        audio_level_id: Option<u8>,
        ended: mpsc::Sender<ProducerEnded>,
    ) -> Option<Arc<Producer>> {
        let kind = match track.kind().await {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return None,
        };
        let media_ssrc = track.ssrcs().await.first().copied();
        let (keyframe_requests, keyframe_rx) = mpsc::channel(1);
        let producer = Arc::new(Producer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            owner,
            owner_epoch,
            kind,
            consumers: Mutex::new(Vec::new()),
            keyframe_requests,
            loud_packets: AtomicU32::new(0),
            closed: Notify::new(),
        });
        if let (MediaKind::Video, Some(ssrc)) = (kind, media_ssrc) {
            tokio::spawn(request_keyframes(track.clone(), ssrc, keyframe_rx));
        }
        let gate = match kind {
            MediaKind::Audio => Some(gate),
            MediaKind::Video => None,
        };
        tokio::spawn(forward(
            producer.clone(),
            track,
            gate,
            audio_level_id,
            ended,
        ));
        Some(producer)
    }

    pub(crate) fn attach(&self, consumer_id: u64, queue: mpsc::Sender<rtp::Packet>) {
        self.lock_consumers().push(ConsumerSlot {
            id: consumer_id,
            queue,
        });
    }

    pub(crate) fn detach(&self, consumer_id: u64) {
        self.lock_consumers().retain(|slot| slot.id != consumer_id);
    }

    /// Asks the publisher for a keyframe (PLI), throttled. Never blocks.
    pub(crate) fn request_keyframe(&self) {
        let _ = self.keyframe_requests.try_send(());
    }

    /// Loud audio packets since the last call.
    pub(crate) fn take_loud_packets(&self) -> u32 {
        self.loud_packets.swap(0, Ordering::Relaxed)
    }

    /// Stops forwarding; the producer then reports itself ended.
    pub(crate) fn close(&self) {
        self.closed.notify_one();
    }

    fn lock_consumers(&self) -> std::sync::MutexGuard<'_, Vec<ConsumerSlot>> {
        // Nothing panics while holding this lock, so poisoning cannot leave it inconsistent.
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fan_out(&self, packet: &rtp::Packet) {
        for slot in self.lock_consumers().iter() {
            // A full queue means that subscriber is not keeping up: it loses this packet
            // rather than holding back everyone else.
            if let Err(mpsc::error::TrySendError::Full(_)) = slot.queue.try_send(packet.clone()) {
                tracing::trace!(
                    producer = self.id,
                    consumer = slot.id,
                    "consumer queue full"
                );
            }
        }
    }
}

async fn forward(
    producer: Arc<Producer>,
    track: Arc<dyn TrackRemote>,
    gate: Option<Arc<AtomicBool>>,
    audio_level_id: Option<u8>,
    ended: mpsc::Sender<ProducerEnded>,
) {
    let mut sequence = SequenceRewriter::default();
    loop {
        let event = tokio::select! {
            _ = producer.closed.notified() => break,
            event = track.poll() => event,
        };
        let mut packet = match event {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(packet)) => packet,
            Some(_) => continue,
        };
        if let Some(gate) = &gate {
            if let Some(level) = audio_level_id.and_then(|id| audio_level(&packet.header, id)) {
                // Counted before the gate: the facilitator sees who talks without the stick.
                if is_loud(level) {
                    producer.loud_packets.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !gate.load(Ordering::Acquire) {
                sequence.skip();
                continue;
            }
        }
        let (seq, after_gap) = sequence.forward(packet.header.sequence_number);
        packet.header.sequence_number = seq;
        if after_gap && gate.is_some() {
            // RFC 3551: the marker bit starts a talkspurt, telling the jitter buffer that the
            // timestamp jump is silence, not loss.
            packet.header.marker = true;
        }
        strip_extensions(&mut packet.header);
        producer.fan_out(&packet);
    }
    tracing::debug!(producer = producer.id, "producer ended");
    let _ = ended.send(ProducerEnded { id: producer.id }).await;
}

async fn request_keyframes(
    track: Arc<dyn TrackRemote>,
    media_ssrc: u32,
    mut requests: mpsc::Receiver<()>,
) {
    while requests.recv().await.is_some() {
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
            break;
        }
        tokio::time::sleep(KEYFRAME_THROTTLE).await;
    }
}

/// The ingress extension ids mean nothing on an egress leg (and the library drops a packet
/// whose extension id is not negotiated there, logging only at trace), so none are forwarded.
fn strip_extensions(header: &mut rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
}

/// RFC 6464: one byte, the voice-activity bit and the level in −dBov.
fn audio_level(header: &rtp::header::Header, id: u8) -> Option<u8> {
    header
        .get_extension(id)
        .and_then(|payload| payload.first().map(|b| b & 0x7f))
}

/// Keeps a forwarded stream's sequence numbers contiguous across packets the gate dropped, so
/// subscribers see neither loss nor a reason to send NACKs. Timestamps are left alone: after a
/// gated stretch they jump by its length, exactly as after Opus DTX silence, which keeps audio
/// in step with video.
#[derive(Debug, Default)]
pub(crate) struct SequenceRewriter {
    offset: u16,
    last_out: Option<u16>,
    in_gap: bool,
}

impl SequenceRewriter {
    /// A packet was dropped by the gate.
    pub(crate) fn skip(&mut self) {
        self.in_gap = true;
    }

    /// The outgoing sequence number for a forwarded packet, and whether it is the first after
    /// a dropped stretch.
    pub(crate) fn forward(&mut self, seq: u16) -> (u16, bool) {
        let after_gap = std::mem::take(&mut self.in_gap);
        if after_gap {
            if let Some(last) = self.last_out {
                // Whatever was dropped (including any ingress loss meanwhile) disappears.
                self.offset = seq.wrapping_sub(last.wrapping_add(1));
            }
        }
        let out = seq.wrapping_sub(self.offset);
        let newer = match self.last_out {
            None => true,
            Some(last) => out.wrapping_sub(last) < 0x8000,
        };
        if newer {
            self.last_out = Some(out);
        }
        (out, after_gap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_sequence_numbers_stay_contiguous_across_a_gated_stretch() {
        let mut r = SequenceRewriter::default();
        assert_eq!(r.forward(100), (100, false));
        assert_eq!(r.forward(101), (101, false));
        for _ in 102..150 {
            r.skip();
        }
        assert_eq!(r.forward(150), (102, true));
        assert_eq!(r.forward(151), (103, false));
    }

    #[test]
    fn a_stream_gated_from_the_start_begins_where_it_is() {
        let mut r = SequenceRewriter::default();
        r.skip();
        assert_eq!(r.forward(7), (7, true));
        assert_eq!(r.forward(8), (8, false));
    }

    #[test]
    fn rewriting_wraps_around_the_sequence_space() {
        let mut r = SequenceRewriter::default();
        assert_eq!(r.forward(65534).0, 65534);
        r.skip();
        assert_eq!(r.forward(10).0, 65535);
        assert_eq!(r.forward(11).0, 0);
    }

    #[test]
    fn the_audio_level_is_read_from_the_negotiated_extension() {
        let mut header = rtp::header::Header::default();
        header
            .set_extension(3, bytes::Bytes::from_static(&[0x80 | 30]))
            .unwrap();
        assert_eq!(audio_level(&header, 3), Some(30));
        assert_eq!(audio_level(&header, 4), None);
        strip_extensions(&mut header);
        assert_eq!(audio_level(&header, 3), None);
    }
}
