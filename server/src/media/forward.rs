//! The forwarder's per-packet work, free of tasks and sockets: the floor gate, the audio level,
//! sequence rewriting on ingress, the per-subscriber SSRC and payload type on egress, and when
//! to ask a publisher for a keyframe. The producer runs it on every packet; `cargo bench
//! --bench forward` measures it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtp;

use crate::media::simulcast::vp8_descriptor_len;
use crate::media::speaking::is_loud;

/// What became of one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Forward it (rewritten in place).
    pub forward: bool,
    /// It carried speech loud enough to count, whether or not the gate let it through.
    pub loud: bool,
}

/// One incoming track's ingress state.
#[derive(Debug)]
pub struct Ingress {
    /// The gate the room's rules write: the floor gate on audio, the share gate on a screen.
    /// A camera has none.
    gate: Option<Arc<AtomicBool>>,
    /// Audio: levels are read, and a talkspurt after a gated stretch is marked.
    audio: bool,
    /// Audio only: the RFC 6464 extension id the publisher negotiated.
    audio_level_id: Option<u8>,
    sequence: SequenceRewriter,
}

impl Ingress {
    /// Ingress for a camera: never gated.
    pub fn video() -> Ingress {
        Ingress {
            gate: None,
            audio: false,
            audio_level_id: None,
            sequence: SequenceRewriter::default(),
        }
    }

    /// Ingress for a video track behind `gate`: a shared screen, forwarded only while the
    /// rules allow the share.
    pub fn gated_video(gate: Arc<AtomicBool>) -> Ingress {
        Ingress {
            gate: Some(gate),
            ..Ingress::video()
        }
    }

    /// Ingress for an audio track behind `gate`.
    pub fn audio(gate: Arc<AtomicBool>, audio_level_id: Option<u8>) -> Ingress {
        Ingress {
            gate: Some(gate),
            audio: true,
            audio_level_id,
            sequence: SequenceRewriter::default(),
        }
    }

    /// The RFC 6464 extension id a renegotiation settled on (audio only).
    pub fn set_audio_level_id(&mut self, audio_level_id: Option<u8>) {
        if self.audio {
            self.audio_level_id = audio_level_id;
        }
    }

    /// The track's source changed (a renegotiated camera, with its own sequence numbers): the
    /// next packet continues the outgoing sequence, as after a gated stretch.
    pub fn new_source(&mut self) {
        self.sequence.skip();
    }

    /// Applies the gate and rewrites `packet` for forwarding.
    pub fn process(&mut self, packet: &mut rtp::Packet) -> Verdict {
        let mut loud = false;
        if let Some(gate) = &self.gate {
            if let Some(level) = self
                .audio_level_id
                .and_then(|id| audio_level(&packet.header, id))
            {
                // Counted before the gate: the facilitator sees who talks without the stick.
                loud = is_loud(level);
            }
            if !gate.load(Ordering::Acquire) {
                self.sequence.skip();
                return Verdict {
                    forward: false,
                    loud,
                };
            }
        }
        let (seq, after_gap) = self.sequence.rewrite(packet.header.sequence_number);
        packet.header.sequence_number = seq;
        if after_gap && self.audio {
            // RFC 3551: the marker bit starts a talkspurt, telling the jitter buffer that the
            // timestamp jump is silence, not loss.
            packet.header.marker = true;
        }
        strip_extensions(&mut packet.header);
        Verdict {
            forward: true,
            loud,
        }
    }
}

/// One subscriber's copy of a forwarded packet: its own SSRC and the payload type the server
/// offered on that leg. The payload is shared, not copied.
pub fn egress_copy(packet: &rtp::Packet, ssrc: u32, payload_type: u8) -> rtp::Packet {
    let mut copy = packet.clone();
    copy.header.ssrc = ssrc;
    copy.header.payload_type = payload_type;
    copy
}

/// RFC 7741: whether a VP8 RTP payload is the first packet of a keyframe (the payload
/// descriptor's S bit with partition 0, then the payload header's P bit clear).
pub fn is_vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0;
    if !start_of_partition || first & 0x07 != 0 {
        return false;
    }
    vp8_descriptor_len(payload)
        .and_then(|at| payload.get(at))
        .is_some_and(|header| header & 0x01 == 0)
}

/// Who wants a keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeWanted {
    /// A subscriber whose track just went live: it can show nothing until the next keyframe.
    NewSubscriber,
    /// A subscriber's own request (PLI or FIR), after loss.
    Subscriber,
}

/// When to ask one publisher for a keyframe. Each keyframe costs the publisher's uplink a
/// burst, so subscribers' own requests are held to one per `throttle` (a lossy viewer cannot
/// make a publisher send keyframes back to back). A new subscriber's request goes out at
/// once, unless a requested keyframe is still on its way (it will reach the newcomer too):
/// waiting out the throttle there was what kept a new viewer's first picture back.
#[derive(Debug)]
pub struct KeyframePacer {
    throttle: Duration,
    last_sent: Option<Instant>,
    /// A keyframe went by since the last request was sent.
    answered: bool,
    /// A request held back by the throttle, to send at this time.
    due: Option<Instant>,
}

impl KeyframePacer {
    pub fn new(throttle: Duration) -> KeyframePacer {
        KeyframePacer {
            throttle,
            last_sent: None,
            answered: false,
            due: None,
        }
    }

    /// Takes a request; true if a keyframe request should be sent now (then call
    /// [`sent`](Self::sent)). Otherwise it may be held until [`due`](Self::due).
    pub fn request(&mut self, now: Instant, who: KeyframeWanted) -> bool {
        let Some(last) = self.last_sent else {
            return true;
        };
        let free_at = last + self.throttle;
        if now >= free_at {
            return true;
        }
        if who == KeyframeWanted::NewSubscriber && self.answered {
            return true;
        }
        // Either a keyframe is already on its way (and if it never comes, ask again once the
        // throttle allows), or a subscriber asked too soon after the last request.
        self.due = Some(self.due.map_or(free_at, |due| due.min(free_at)));
        false
    }

    /// When a held request becomes due, if one is held.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// True if the held request is due by `now` (then call [`sent`](Self::sent)).
    pub fn poll(&mut self, now: Instant) -> bool {
        self.due.is_some_and(|due| now >= due)
    }

    /// A keyframe request went to the publisher.
    pub fn sent(&mut self, now: Instant) {
        self.last_sent = Some(now);
        self.answered = false;
        self.due = None;
    }

    /// A keyframe was forwarded: it answers every request made before it, held ones too.
    pub fn keyframe_forwarded(&mut self) {
        self.answered = true;
        self.due = None;
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
struct SequenceRewriter {
    offset: u16,
    last_out: Option<u16>,
    in_gap: bool,
}

impl SequenceRewriter {
    /// A packet was dropped by the gate.
    fn skip(&mut self) {
        self.in_gap = true;
    }

    /// The outgoing sequence number for a forwarded packet, and whether it is the first after
    /// a dropped stretch.
    fn rewrite(&mut self, seq: u16) -> (u16, bool) {
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

    fn packet(seq: u16, level: Option<u8>) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.sequence_number = seq;
        p.header.ssrc = 1234;
        p.header.payload_type = 109;
        if let Some(level) = level {
            p.header
                .set_extension(3, bytes::Bytes::copy_from_slice(&[0x80 | level]))
                .unwrap();
        }
        p
    }

    #[test]
    fn forwarded_sequence_numbers_stay_contiguous_across_a_gated_stretch() {
        let mut r = SequenceRewriter::default();
        assert_eq!(r.rewrite(100), (100, false));
        assert_eq!(r.rewrite(101), (101, false));
        for _ in 102..150 {
            r.skip();
        }
        assert_eq!(r.rewrite(150), (102, true));
        assert_eq!(r.rewrite(151), (103, false));
    }

    #[test]
    fn a_stream_gated_from_the_start_begins_where_it_is() {
        let mut r = SequenceRewriter::default();
        r.skip();
        assert_eq!(r.rewrite(7), (7, true));
        assert_eq!(r.rewrite(8), (8, false));
    }

    #[test]
    fn rewriting_wraps_around_the_sequence_space() {
        let mut r = SequenceRewriter::default();
        assert_eq!(r.rewrite(65534).0, 65534);
        r.skip();
        assert_eq!(r.rewrite(10).0, 65535);
        assert_eq!(r.rewrite(11).0, 0);
    }

    #[test]
    fn the_audio_level_is_read_from_the_negotiated_extension() {
        let mut header = packet(1, Some(30)).header;
        assert_eq!(audio_level(&header, 3), Some(30));
        assert_eq!(audio_level(&header, 4), None);
        strip_extensions(&mut header);
        assert_eq!(audio_level(&header, 3), None);
    }

    #[test]
    fn closed_gate_drops_audio_but_still_counts_who_is_loud() {
        let gate = Arc::new(AtomicBool::new(false));
        let mut ingress = Ingress::audio(gate.clone(), Some(3));
        let mut p = packet(10, Some(20));
        assert_eq!(
            ingress.process(&mut p),
            Verdict {
                forward: false,
                loud: true
            }
        );
        gate.store(true, Ordering::Release);
        let mut p = packet(11, Some(20));
        let verdict = ingress.process(&mut p);
        assert!(verdict.forward && verdict.loud);
        assert!(
            p.header.marker,
            "the first packet after a gated stretch starts a talkspurt"
        );
        assert!(p.header.extensions.is_empty() && !p.header.extension);
    }

    #[test]
    fn a_screen_is_dropped_while_its_gate_is_closed_and_continues_without_a_gap() {
        let gate = Arc::new(AtomicBool::new(true));
        let mut ingress = Ingress::gated_video(gate.clone());
        assert!(ingress.process(&mut packet(100, None)).forward);
        gate.store(false, Ordering::Release);
        assert!(!ingress.process(&mut packet(101, None)).forward);
        gate.store(true, Ordering::Release);
        let mut p = packet(102, None);
        assert!(ingress.process(&mut p).forward);
        assert_eq!(
            p.header.sequence_number, 101,
            "no gap where the gate held one back"
        );
        assert!(
            !p.header.marker,
            "a video marker bit ends a frame; the gate adds none"
        );
    }

    #[test]
    fn video_is_never_gated_and_keeps_its_marker_bits() {
        let mut ingress = Ingress::video();
        let mut p = packet(5, None);
        assert_eq!(
            ingress.process(&mut p),
            Verdict {
                forward: true,
                loud: false
            }
        );
        assert_eq!(p.header.sequence_number, 5);
        assert!(!p.header.marker);
    }

    #[test]
    fn each_copy_carries_its_legs_ssrc_and_payload_type_and_shares_the_payload() {
        let mut p = packet(1, None);
        p.payload = bytes::Bytes::from_static(b"opus");
        let copy = egress_copy(&p, 99, 111);
        assert_eq!((copy.header.ssrc, copy.header.payload_type), (99, 111));
        assert_eq!((p.header.ssrc, p.header.payload_type), (1234, 109));
        assert_eq!(copy.payload.as_ptr(), p.payload.as_ptr());
    }

    #[test]
    fn vp8_keyframes_are_told_from_delta_frames_and_continuations() {
        assert!(is_vp8_keyframe_start(&[0x10, 0x00, 0x9d]));
        assert!(!is_vp8_keyframe_start(&[0x10, 0x01, 0x9d]), "delta frame");
        assert!(
            !is_vp8_keyframe_start(&[0x00, 0x00]),
            "not the frame's first packet"
        );
        assert!(!is_vp8_keyframe_start(&[0x11, 0x00]), "a later partition");
        // X with a 15-bit picture id and TL0PICIDX, as Chromium sends it.
        assert!(is_vp8_keyframe_start(&[0x90, 0xC0, 0x81, 0x23, 0x05, 0x00]));
        assert!(!is_vp8_keyframe_start(&[
            0x90, 0xC0, 0x81, 0x23, 0x05, 0x01
        ]));
        assert!(!is_vp8_keyframe_start(&[0x90, 0xC0]), "truncated");
        assert!(!is_vp8_keyframe_start(&[]));
    }

    #[test]
    fn the_first_keyframe_request_goes_out_at_once() {
        let mut p = KeyframePacer::new(Duration::from_millis(500));
        assert!(p.request(Instant::now(), KeyframeWanted::Subscriber));
    }

    #[test]
    fn subscribers_requests_are_held_to_one_per_throttle_and_sent_when_it_ends() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = KeyframePacer::new(ms(500));
        assert!(p.request(t0, KeyframeWanted::Subscriber));
        p.sent(t0);
        p.keyframe_forwarded();
        assert!(!p.request(t0 + ms(100), KeyframeWanted::Subscriber));
        assert!(!p.request(t0 + ms(200), KeyframeWanted::Subscriber));
        assert_eq!(p.due(), Some(t0 + ms(500)));
        assert!(!p.poll(t0 + ms(499)));
        assert!(p.poll(t0 + ms(500)));
        p.sent(t0 + ms(500));
        assert_eq!(p.due(), None);
    }

    #[test]
    fn a_new_subscriber_is_not_kept_waiting_once_the_last_keyframe_has_gone_by() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = KeyframePacer::new(ms(500));
        assert!(p.request(t0, KeyframeWanted::NewSubscriber));
        p.sent(t0);
        // Before the requested keyframe arrives, a second newcomer will get that one.
        assert!(!p.request(t0 + ms(10), KeyframeWanted::NewSubscriber));
        p.keyframe_forwarded();
        assert_eq!(p.due(), None, "the keyframe answered the held request");
        // After it went by, a third newcomer needs a new one, throttle or not.
        assert!(p.request(t0 + ms(100), KeyframeWanted::NewSubscriber));
    }

    #[test]
    fn a_requested_keyframe_that_never_comes_is_asked_for_again() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = KeyframePacer::new(ms(500));
        p.sent(t0);
        assert!(!p.request(t0 + ms(10), KeyframeWanted::NewSubscriber));
        assert!(p.poll(t0 + ms(500)));
    }
}
