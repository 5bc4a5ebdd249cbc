//! What the one-port engine keeps of each track it sends a subscriber: the packets lately sent,
//! to answer NACKs (RFC 4585 §6.2.1), and the counts and clock its sender reports carry
//! (RFC 3550 §6.4.1). Pure: packets and time in, packets and reports out.
//!
//! The engine sends forwarded RTP past `rtc`'s pipeline (protected with the connection's SRTP
//! context and queued for the port directly), because the pipeline's stages and interceptor
//! chain cost more than everything else a copy needs (tests/BENCHMARKS.md, round 9). What the
//! chain did for a sender is done here: its NACK responder and its sender reports.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::packet::Packet;

use crate::media::codec::MediaKind;

/// Packets kept for NACKs per video track: about a second of a camera at 500 packets a
/// second, longer than a browser's NACKs keep asking (its jitter buffer gives up sooner).
const HISTORY: usize = 512;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905 §6.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// One track sent to one subscriber.
pub(crate) struct SentTrack {
    ssrc: u32,
    clock_rate: u32,
    /// Video only: the packets lately sent, by sequence number modulo the size. Kept before
    /// protection, so their payloads are the one buffer every subscriber's copy shares, and
    /// protected again when asked for (as `rtc`'s NACK responder does). Audio is not
    /// retransmitted (Opus conceals a loss better than a late packet does, and browsers do
    /// not NACK it).
    history: Option<Vec<Option<Packet>>>,
    /// RFC 3550 §6.4.1: packets and payload octets sent, both wrapping.
    packets: u32,
    octets: u32,
    /// The RTP timestamp of the newest frame sent and when it went: a report's RTP time is
    /// extrapolated from it, as `rtc`'s sender report interceptor does.
    newest: Option<(u32, Instant)>,
}

impl SentTrack {
    pub(crate) fn new(ssrc: u32, kind: MediaKind) -> SentTrack {
        let clock_rate = match kind {
            MediaKind::Audio => 48_000,
            MediaKind::Video | MediaKind::Screen => 90_000,
        };
        SentTrack {
            ssrc,
            clock_rate,
            history: kind.is_video().then(|| vec![None; HISTORY]),
            packets: 0,
            octets: 0,
            newest: None,
        }
    }

    /// A packet went (kept, if video, until the history wraps round to its place).
    pub(crate) fn sent(&mut self, now: Instant, packet: Packet) {
        let (seq, timestamp) = (packet.header.sequence_number, packet.header.timestamp);
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(packet.payload.len() as u32);
        // The first packet of each frame sets the clock: the later ones of a large frame
        // leave later only because they queue behind it.
        if self.newest.is_none_or(|(ts, _)| ts != timestamp) {
            self.newest = Some((timestamp, now));
        }
        if let Some(history) = &mut self.history {
            history[usize::from(seq) % HISTORY] = Some(packet);
        }
    }

    /// The packet `seq` as it went, if it is still kept.
    pub(crate) fn resend(&self, seq: u16) -> Option<&Packet> {
        self.history.as_ref()?[usize::from(seq) % HISTORY]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
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

    fn packet(seq: u16, timestamp: u32, payload_len: usize) -> Packet {
        Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                sequence_number: seq,
                timestamp,
                ssrc: 7,
                ..Default::default()
            },
            payload: bytes::Bytes::from(vec![seq as u8; payload_len]),
        }
    }

    #[test]
    fn a_nacked_video_packet_still_kept_is_found_as_it_went() {
        let mut track = SentTrack::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in 100..110u16 {
            track.sent(now, packet(seq, 3000, 8));
        }
        assert_eq!(track.resend(104), Some(&packet(104, 3000, 8)));
        assert_eq!(track.resend(110), None, "never sent");
    }

    #[test]
    fn a_packet_pushed_out_of_the_history_is_not_mistaken_for_its_successor() {
        let mut track = SentTrack::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in 0..=(HISTORY as u16) {
            track.sent(now, packet(seq, 3000, 8));
        }
        // `HISTORY` took packet 0's place.
        assert_eq!(track.resend(0), None);
        let last = HISTORY as u16;
        assert_eq!(track.resend(last), Some(&packet(last, 3000, 8)));
    }

    #[test]
    fn the_history_follows_the_sequence_number_across_its_wrap() {
        let mut track = SentTrack::new(7, MediaKind::Video);
        let now = Instant::now();
        for seq in [65_534u16, 65_535, 0, 1] {
            track.sent(now, packet(seq, 3000, 8));
        }
        assert_eq!(track.resend(65_535), Some(&packet(65_535, 3000, 8)));
        assert_eq!(track.resend(1), Some(&packet(1, 3000, 8)));
    }

    #[test]
    fn audio_is_never_retransmitted() {
        let mut track = SentTrack::new(7, MediaKind::Audio);
        track.sent(Instant::now(), packet(5, 960, 8));
        assert_eq!(track.resend(5), None);
    }

    #[test]
    fn no_sender_report_is_made_before_the_first_packet() {
        let track = SentTrack::new(7, MediaKind::Video);
        assert!(track.report(Instant::now(), SystemTime::now()).is_none());
    }

    #[test]
    fn a_sender_report_counts_packets_and_payload_octets_and_runs_the_rtp_clock_on() {
        let mut track = SentTrack::new(7, MediaKind::Video);
        let start = Instant::now();
        track.sent(start, packet(1, 90_000, 1000));
        // The second packet of the same frame, later: the frame's clock stays at the first.
        track.sent(start + Duration::from_millis(5), packet(2, 90_000, 500));
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let report = track
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
