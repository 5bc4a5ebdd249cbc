//! The worker's two kinds of leg: answering a browser's publish offers, offering a subscribe
//! leg what it should receive (new tracks in freed slots) and taking its answer, and writing
//! each subscriber's copy of a publisher's packets.

use std::collections::BTreeSet;
use std::time::Instant;

use circle_protocol::PcKind;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;

use super::{ConnKey, Consumed, Slot, Worker};
use crate::media::codec::MediaKind;
use crate::media::forward::egress_copy;
use crate::media::leg::sending_track;
use crate::media::mux::conn::Conn;
use crate::media::sdp::keep_freed_slots;
use crate::media::{internal, MediaError};

impl Worker {
    /// Builds the connection `key` as a `kind` leg unless it exists.
    fn open(&mut self, now: Instant, key: ConnKey, kind: PcKind) -> Result<(), MediaError> {
        if !self.conns.contains_key(&key) {
            let conn = Conn::new(kind, &self.config, self.announced, now)?;
            self.conns.insert(key, Slot::new(conn));
        }
        Ok(())
    }

    /// Names the connection in the table by the ufrag of the local description just set (new
    /// at the first one and at each ICE restart).
    fn name(&mut self, key: ConnKey) -> Result<(), MediaError> {
        let Some(slot) = self.conns.get_mut(&key) else {
            return Ok(());
        };
        if let Some(ufrag) = slot.conn.take_new_ufrag() {
            if !self.table.set_ufrag(key, ufrag) {
                return Err(internal("a connection's ufrag is taken"));
            }
        }
        Ok(())
    }

    pub(super) fn answer(
        &mut self,
        now: Instant,
        key: ConnKey,
        offer: String,
    ) -> Result<String, MediaError> {
        self.open(now, key, PcKind::Publish)?;
        let slot = self.conns.get_mut(&key).expect("opened above");
        let offer =
            RTCSessionDescription::offer(offer).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let pc = slot.conn.pc();
        pc.set_remote_description(now, offer)
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let answer = pc.create_answer(None).map_err(internal)?;
        pc.set_local_description(now, answer).map_err(internal)?;
        let answer = pc
            .local_description()
            .ok_or_else(|| internal("no local description after an answer"))?;
        self.name(key)?;
        Ok(answer.sdp)
    }

    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        key: ConnKey,
        wanted: Vec<(ConnKey, MediaKind)>,
    ) -> Result<String, MediaError> {
        let wanted: BTreeSet<(ConnKey, MediaKind)> = wanted.into_iter().collect();
        self.open(now, key, PcKind::Subscribe)?;
        let slot = self.conns.get_mut(&key).expect("opened above");
        // Adds first, removes after: a slot freed in this offer is reused only in a later one,
        // once the browser has seen it go inactive (and so raises `ontrack` for the new track).
        let new: Vec<(ConnKey, MediaKind)> = wanted
            .iter()
            .filter(|w| !slot.consumers.contains_key(w))
            .copied()
            .collect();
        for (publisher, kind) in new {
            self.next_ssrc = self.next_ssrc.wrapping_add(1).max(1);
            let ssrc = self.next_ssrc;
            let name = format!("{}-{publisher}", kind.as_str());
            let track = sending_track(kind, format!("p{publisher}"), name, ssrc);
            let pc = slot.conn.pc();
            let sender = pc.add_track(track).map_err(internal)?;
            if let Some(mut transceiver) = pc.rtp_transceiver(sender.into()) {
                transceiver.set_direction(RTCRtpTransceiverDirection::Sendonly);
            }
            slot.consumers.insert(
                (publisher, kind),
                Consumed {
                    sender,
                    ssrc,
                    negotiated: false,
                },
            );
            self.fanout
                .entry((publisher, kind))
                .or_default()
                .insert(key);
        }
        let gone: Vec<(ConnKey, MediaKind)> = slot
            .consumers
            .keys()
            .filter(|c| !wanted.contains(c))
            .copied()
            .collect();
        for consumed in gone {
            if let Some(c) = slot.consumers.remove(&consumed) {
                slot.conn.pc().remove_track(c.sender).map_err(internal)?;
            }
            if let Some(receivers) = self.fanout.get_mut(&consumed) {
                receivers.remove(&key);
            }
        }
        let pc = slot.conn.pc();
        let offer = pc.create_offer(None).map_err(internal)?;
        pc.set_local_description(now, offer).map_err(internal)?;
        let offer = pc
            .local_description()
            .ok_or_else(|| internal("no local description after an offer"))?;
        self.name(key)?;
        Ok(offer.sdp)
    }

    pub(super) fn accept(
        &mut self,
        now: Instant,
        key: ConnKey,
        answer: String,
    ) -> Result<(), MediaError> {
        let slot = self
            .conns
            .get_mut(&key)
            .ok_or(MediaError::Conflict("no subscribe offer is outstanding"))?;
        let pc = slot.conn.pc();
        let offer = pc
            .local_description()
            .ok_or(MediaError::Conflict("no subscribe offer is outstanding"))?;
        let answer = RTCSessionDescription::answer(keep_freed_slots(&offer.sdp, &answer))
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        pc.set_remote_description(now, answer)
            .map_err(|e| MediaError::BadSdp(e.to_string()))?;
        for consumed in slot.consumers.values_mut() {
            consumed.negotiated = true;
        }
        Ok(())
    }

    /// Writes each subscriber's copy of a publisher's packets (its own SSRC and our payload
    /// type), once an answer has accepted the track and the connection is up.
    pub(super) fn forward(
        &mut self,
        publisher: ConnKey,
        copies: Vec<(ConnKey, MediaKind, rtc::rtp::packet::Packet)>,
    ) {
        let now = Instant::now();
        let mut touched = BTreeSet::new();
        for (subscriber, kind, packet) in copies {
            let Some(slot) = self.conns.get_mut(&subscriber) else {
                continue;
            };
            if slot.state != Some(RTCPeerConnectionState::Connected) {
                continue;
            }
            let Some(consumed) = slot.consumers.get(&(publisher, kind)) else {
                continue;
            };
            if !consumed.negotiated {
                continue;
            }
            let copy = egress_copy(&packet, consumed.ssrc, kind.payload_type());
            if slot
                .conn
                .send(now, RTCMessage::RtpPacket(String::new(), copy))
                .is_ok()
            {
                touched.insert(subscriber);
                self.counters
                    .forwarded
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        for subscriber in touched {
            self.drive(subscriber);
        }
    }
}
