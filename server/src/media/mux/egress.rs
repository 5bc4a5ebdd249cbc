//! What the one-port engine keeps of each track it sends a subscriber: the packets lately sent,
//! to answer NACKs (RFC 4585 §6.2.1), and the counts and clock its sender reports carry
//! (RFC 3550 §6.4.1). Pure: packets and time in, bytes and reports out.
//!
//! The engine sends forwarded RTP past `rtc`'s pipeline (protected with the connection's SRTP
//! context and queued for the port directly), because the pipeline's stages and interceptor
//! chain cost more than everything else a copy needs (tests/BENCHMARKS.md, round 9). What the
//! chain did for a sender is done here: its NACK responder and its sender reports.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtc::rtcp::sender_report::SenderReport;

use crate::media::codec::MediaKind;

/// Packets kept for NACKs per video track: about a second of a camera at 500 packets a
/// second, longer than a browser's NACKs keep asking (its jitter buffer gives up sooner).
const HISTORY: usize = 512;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905 §6.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One track sent to one subscriber.
pub(crate) struct Egress {
    ssrc: u32,
    clock_rate: u32,
    /// Video only: the protected packets lately sent, by sequence number modulo the size.
    /// Audio is not retransmitted (Opus conceals a loss better than a late packet does, and
    /// browsers do not NACK it).
    history: Option<Vec<Option<(u16, Bytes)>>>,
    /// RFC 3550 §6.4.1: packets and payload octets sent, both wrapping.
    packets: u32,
    octets: u32,
    /// The RTP timestamp of the newest frame sent and when it went: a report's RTP time is
    /// extrapolated from it, as `rtc`'s sender report interceptor does.
    newest: Option<(u32, Instant)>,
}

impl Egress {
    pub(crate) fn new(ssrc: u32, kind: MediaKind) -> Egress {
        let clock_rate = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video => 90_000,
        };
        Egress {
            ssrc,
            clock_rate,
            history: (kind == MediaKind::Video).then(|| vec![None; HISTORY]),
            packets: 0,
            octets: 0,
            newest: None,
        }
    }

    /// A packet went: `protected` is what went on the wire (kept for a NACK), and
    /// `payload_len` its RTP payload's length.
    pub(crate) fn sent(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        payload_len: usize,
        protected: &Bytes,
    ) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        // The first packet of each frame sets the clock: the later ones of a large frame
        // leave later only because they queue behind it.
        if self.newest.is_none_or(|(ts, _)| ts != timestamp) {
            self.newest = Some((timestamp, now));
        }
        if let Some(history) = &mut self.history {
            history[usize::from(seq) % HISTORY] = Some((seq, protected.clone()));
        }
    }

    /// The packet `seq` exactly as it went, if it is still kept.
    pub(crate) fn resend(&self, seq: u16) -> Option<&Bytes> {
        match &self.history.as_ref()?[usize::from(seq) % HISTORY] {
            Some((kept, bytes)) if *kept == seq => Some(bytes),
            _ => None,
        }
    }

    /// A sender report for this track as of `now` (`wall` being the same instant on the
    /// wall clock); none before anything has been sent.
    pub(crate) fn report(&self, now: Instant, wall: SystemTime) -> Option<SenderReport> {
        let (timestamp, at) = self.newest?;
        let elapsed = now.saturating_duration_since(at);
        let ticks = elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time: ntp(wall),
            rtp_time: timestamp.wrapping_add(ticks as u32),
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }
}

/// A wall-clock instant as a 64-bit NTP timestamp (RFC 5905 §6: seconds since 1900 and the
/// fraction of a second in units of 2^-32).
fn ntp(wall: SystemTime) -> u64 {
    let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: u8) -> Bytes {
        Bytes::from(vec![n; 8])
    }

    #[test]
    fn a_nacked_video_packet_still_kept_is_sent_again_byte_for_byte() {
        let mut egress = Egress::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in 100..110u16 {
            egress.sent(now, seq, 3000, 8, &bytes(seq as u8));
        }
        assert_eq!(egress.resend(104), Some(&bytes(104)));
        assert_eq!(egress.resend(110), None, "never sent");
    }

    #[test]
    fn a_packet_pushed_out_of_the_history_is_not_mistaken_for_its_successor() {
        let mut egress = Egress::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in 0..=(HISTORY as u16) {
            egress.sent(now, seq, 3000, 8, &bytes(seq as u8));
        }
        // `HISTORY` took packet 0's place.
        assert_eq!(egress.resend(0), None);
        assert_eq!(egress.resend(HISTORY as u16), Some(&bytes(HISTORY as u8)));
    }

    #[test]
    fn the_history_follows_the_sequence_number_across_its_wrap() {
        let mut egress = Egress::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in [65_534u16, 65_535, 0, 1] {
            egress.sent(now, seq, 3000, 8, &bytes(seq as u8));
        }
        assert_eq!(egress.resend(65_535), Some(&bytes(255)));
        assert_eq!(egress.resend(1), Some(&bytes(1)));
    }

    #[test]
    fn audio_is_never_retransmitted() {
        let mut egress = Egress::new(7, MediaKind::Audio);
        egress.sent(Instant::now(), 5, 960, 8, &bytes(5));
        assert_eq!(egress.resend(5), None);
    }

    #[test]
    fn no_sender_report_is_made_before_the_first_packet() {
        let egress = Egress::new(7, MediaKind::Video);
        assert!(egress.report(Instant::now(), SystemTime::now()).is_none());
    }

    #[test]
    fn a_sender_report_counts_packets_and_payload_octets_and_runs_the_rtp_clock_on() {
        let mut egress = Egress::new(7, MediaKind::Video);
        let start = Instant::now();
        egress.sent(start, 1, 90_000, 1000, &bytes(1));
        // The second packet of the same frame, later: the frame's clock stays at the first.
        egress.sent(start + Duration::from_millis(5), 2, 90_000, 500, &bytes(2));
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let report = egress
            .report(start + Duration::from_millis(100), wall)
            .unwrap();
        assert_eq!(report.ssrc, 7);
        assert_eq!(report.packet_count, 2);
        assert_eq!(report.octet_count, 1500);
        // 100 ms of a 90 kHz clock after the frame's first packet.
        assert_eq!(report.rtp_time, 90_000 + 9_000);
        assert_eq!(report.ntp_time >> 32, 1_000_000 + NTP_UNIX_OFFSET);
        assert_eq!(report.ntp_time & 0xFFFF_FFFF, 0);
    }

    #[test]
    fn the_ntp_fraction_is_in_units_of_two_to_the_minus_32() {
        let half = UNIX_EPOCH + Duration::from_millis(500);
        assert_eq!(ntp(half) & 0xFFFF_FFFF, 1 << 31);
    }
}
