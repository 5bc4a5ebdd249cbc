//! What the worker does as the sender of its subscribers' tracks, which `rtc`'s interceptors
//! did while forwarded RTP went through the pipeline: answering NACKs from what was sent, and
//! a sender report for each track every second.

use std::cmp::Reverse;
use std::time::{Duration, Instant, SystemTime};

use rtc::peer_connection::message::RTCMessage;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::Marshal;

use super::{ConnKey, Timer, Worker};

/// How often a subscribe leg's tracks are reported: `rtc`'s sender report interceptor's
/// interval, and Chromium's.
pub(super) const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The sequence numbers a NACK asks for (RFC 4585 §6.2.1: a packet id and a bitmask of the
/// 16 that follow).
pub(super) fn lost(nack: &TransportLayerNack) -> Vec<u16> {
    let mut seqs = Vec::new();
    for pair in &nack.nacks {
        seqs.push(pair.packet_id);
        for bit in 0..16u16 {
            if pair.lost_packets & (1 << bit) != 0 {
                seqs.push(pair.packet_id.wrapping_add(bit + 1));
            }
        }
    }
    seqs
}

impl Worker {
    /// A subscriber lost packets of the track it names `track`: what is still kept goes again,
    /// protected anew (SRTP of the same packet index gives the same bytes), to where the
    /// connection sends now.
    pub(super) fn answer_nack(&mut self, key: ConnKey, track: &str, seqs: &[u16]) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let Some(consumed) = slot.consumers.values().find(|c| c.track == track) else {
            return;
        };
        let again: Vec<Packet> = seqs
            .iter()
            .filter_map(|&seq| consumed.sent.resend(seq).cloned())
            .collect();
        let mut sends = Vec::new();
        for packet in again {
            let Ok(plain) = packet.marshal() else {
                continue;
            };
            if let Some(Ok(sent)) = slot.conn.protect_rtp(&plain) {
                sends.push(sent);
            }
        }
        for (to, protected) in sends {
            self.push(to, &protected);
        }
    }

    /// Starts a subscribe leg's reports, once, when it first has something live.
    pub(super) fn start_reports(&mut self, now: Instant, key: ConnKey) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        if !std::mem::replace(&mut slot.reporting, true) {
            self.timers
                .push(Reverse((now + REPORT_INTERVAL, key, Timer::Reports)));
        }
    }

    /// A subscribe leg's reports are due: one compound packet with a sender report for each
    /// track that has sent anything, through the connection's pipeline (SRTCP), and the next
    /// one in a second.
    pub(super) fn reports_due(&mut self, now: Instant, key: ConnKey) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let wall = SystemTime::now();
        let reports: Vec<Box<dyn rtc::rtcp::Packet>> = slot
            .consumers
            .values()
            .filter(|c| c.live)
            .filter_map(|c| c.sent.report(now, wall))
            .map(|r| Box::new(r) as Box<dyn rtc::rtcp::Packet>)
            .collect();
        if !reports.is_empty() {
            if let Err(e) = slot
                .conn
                .send(now, RTCMessage::RtcpPacket(String::new(), reports))
            {
                tracing::trace!(error = %e, "sender reports not sent");
            }
        }
        self.timers
            .push(Reverse((now + REPORT_INTERVAL, key, Timer::Reports)));
    }
}
