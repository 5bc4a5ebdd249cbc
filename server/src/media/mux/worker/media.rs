//! The worker's media path: a publisher's tracks as they open, each packet through the floor
//! gate and the sequence rewriting to every live subscriber's copy (protected and sent past
//! `rtc`'s pipeline, see `mux::sender`), subscribers' NACKs to `reports`, and keyframe
//! requests (a new viewer's, and subscribers' own PLI and FIR) paced to the publisher.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::shared::marshal::Marshal;

use super::reports::lost;
use super::{ConnKey, Layer, Report, Source, Timer, Worker};
use crate::media::codec::MediaKind;
use crate::media::counters::DropReason;
use crate::media::forward::{
    egress_copy, is_vp8_keyframe_start, Ingress, KeyframePacer, KeyframeWanted,
};
use crate::media::leg::is_keyframe_request;
use crate::media::simulcast::{
    choose_layer, settle, vp8_keyframe_size, Admit, Downlink, LayerSize,
};

/// The most simulcast layers of one track the fan-out keeps (browsers send two or three).
const MAX_LAYERS: usize = 4;

/// A layer with no packet for this long is not chosen for anyone: its sender has stopped it
/// (browsers drop upper layers when bandwidth or CPU runs short). A camera sends at least a
/// dozen packets a second on every layer it keeps.
const LAYER_IDLE: Duration = Duration::from_millis(500);

/// A subscriber moves up only onto a layer that has been sending this long without a pause
/// (see `simulcast::settle`).
const LAYER_STEADY: Duration = Duration::from_secs(2);

/// One packet on its way to the subscribers: its track, its layer and what the layers are.
struct Copy {
    kind: MediaKind,
    layer: usize,
    keyframe_start: bool,
    /// The size of each of the source's layers (`None` until its first keyframe, or while
    /// it is quiet).
    sizes: [Option<LayerSize>; MAX_LAYERS],
    /// Each layer has been sending for `LAYER_STEADY`.
    steady: [bool; MAX_LAYERS],
    layers: usize,
    packet: rtc::rtp::packet::Packet,
}

/// Subscribers' own keyframe requests reach one publisher at most this often, however many
/// ask: each keyframe costs the publisher's whole uplink for a moment.
const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);

impl Worker {
    /// One event of connection `key`; true when the connection has just come up.
    pub(super) fn event(&mut self, key: ConnKey, event: RTCPeerConnectionEvent) -> bool {
        let Some(slot) = self.conns.get_mut(&key) else {
            return false;
        };
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state)
                if slot.state != Some(state) =>
            {
                slot.state = Some(state);
                tracing::debug!(key, ?state, "connection state");
                self.report(key, Report::State { key, state });
                state == RTCPeerConnectionState::Connected
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                let kind = match slot
                    .conn
                    .pc()
                    .rtp_receiver(init.receiver_id)
                    .map(|r| r.track().kind())
                {
                    Some(RtpCodecKind::Audio) => MediaKind::Audio,
                    Some(RtpCodecKind::Video)
                        if slot.screen_track.as_deref() == Some(init.track_id.as_str()) =>
                    {
                        MediaKind::Screen
                    }
                    Some(RtpCodecKind::Video) => MediaKind::Video,
                    _ => return false,
                };
                slot.tracks.insert(init.track_id, kind);
                let rid = init.rid.filter(|rid| !rid.is_empty());
                let fresh = |rid| Layer {
                    rid,
                    ssrc: init.ssrc,
                    ingress: match kind {
                        MediaKind::Audio => {
                            Ingress::audio(slot.owner.gate.clone(), slot.audio_level_id)
                        }
                        MediaKind::Video => Ingress::video(),
                        MediaKind::Screen => Ingress::gated_video(slot.owner.screen_gate.clone()),
                    },
                    size: None,
                    last_packet: None,
                    sending_since: None,
                };
                let at = kind.index();
                let Some(source) = slot.sources[at].as_mut() else {
                    slot.sources[at] = Some(Source {
                        layers: vec![fresh(rid)],
                        pacer: KeyframePacer::new(KEYFRAME_THROTTLE),
                    });
                    self.report(key, Report::Published { key, kind });
                    return false;
                };
                // Every renegotiation opens the same streams again; only a new SSRC is a new
                // one (a renegotiated camera replaces the old).
                if source.layers.iter().any(|l| l.ssrc == init.ssrc) {
                    return false;
                }
                // A track that starts or stops sending layers drops the streams of the other
                // shape.
                source.layers.retain(|l| l.rid.is_some() == rid.is_some());
                let full = source.layers.len() >= MAX_LAYERS;
                match source.layers.iter_mut().find(|l| l.rid == rid) {
                    // The subscribers' copies go on under the same SSRC: the new stream's
                    // first packet continues their sequence.
                    Some(layer) => {
                        layer.ssrc = init.ssrc;
                        layer.size = None;
                        layer.ingress.new_source();
                    }
                    None if !full => source.layers.push(fresh(rid)),
                    None => {}
                }
                false
            }
            _ => false,
        }
    }

    /// What connection `key` decrypted: a publisher's packets to the fan-out, a subscriber's
    /// keyframe requests to the publisher concerned.
    pub(super) fn media_in(&mut self, key: ConnKey, messages: Vec<RTCMessage>) {
        let now = Instant::now();
        let mut copies: Vec<Copy> = Vec::new();
        let mut keyframes_wanted = Vec::new();
        let mut nacked = Vec::new();
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        for message in messages {
            match message {
                RTCMessage::RtpPacket(track, mut packet) => {
                    let Some(&kind) = slot.tracks.get(&track) else {
                        continue;
                    };
                    let Some(source) = slot.sources[kind.index()].as_mut() else {
                        continue;
                    };
                    let Some(at) = source
                        .layers
                        .iter()
                        .position(|l| l.ssrc == packet.header.ssrc)
                    else {
                        continue; // a replaced stream's last packets
                    };
                    let layer = &mut source.layers[at];
                    let paused = layer
                        .last_packet
                        .is_none_or(|at| now.saturating_duration_since(at) >= LAYER_IDLE);
                    if paused {
                        layer.sending_since = Some(now);
                    }
                    layer.last_packet = Some(now);
                    #[cfg(test)]
                    let _ = slot.owner.reports.try_send(Report::Rtp {
                        key,
                        packet: packet.clone(),
                    });
                    self.media.count_received(kind);
                    let verdict = layer.ingress.process(&mut packet);
                    if verdict.loud {
                        slot.owner.loud.fetch_add(1, Ordering::Relaxed);
                    }
                    if !verdict.forward {
                        // Only the floor gate holds a packet back.
                        self.media.count_dropped(DropReason::FloorGate, 1);
                        continue;
                    }
                    let keyframe_start = kind.is_video() && is_vp8_keyframe_start(&packet.payload);
                    if keyframe_start {
                        if let Some(size) = vp8_keyframe_size(&packet.payload) {
                            layer.size = Some(size);
                        }
                        // A subscriber that goes live after this asks for a new keyframe
                        // rather than waiting on this one.
                        source.pacer.keyframe_forwarded();
                    }
                    // The layers anyone may be sent: known in size, and not gone quiet.
                    let mut sizes = [None; MAX_LAYERS];
                    let mut steady = [false; MAX_LAYERS];
                    for ((size, steady), layer) in
                        sizes.iter_mut().zip(steady.iter_mut()).zip(&source.layers)
                    {
                        let live = layer
                            .last_packet
                            .is_some_and(|at| now.saturating_duration_since(at) < LAYER_IDLE);
                        *size = layer.size.filter(|_| live);
                        *steady = live
                            && layer.sending_since.is_some_and(|since| {
                                now.saturating_duration_since(since) >= LAYER_STEADY
                            });
                    }
                    copies.push(Copy {
                        kind,
                        layer: at,
                        keyframe_start,
                        sizes,
                        steady,
                        layers: source.layers.len(),
                        packet,
                    });
                }
                RTCMessage::RtcpPacket(track, packets) => {
                    // A subscriber's receiver reports: the worst loss any of its tracks saw
                    // decides how much video its connection is sent.
                    let worst = packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<ReceiverReport>())
                        .flat_map(|rr| rr.reports.iter().map(|r| r.fraction_lost))
                        .max();
                    if let Some(worst) = worst {
                        if slot.downlink.report(now, worst) {
                            tracing::debug!(key, level = ?slot.downlink.level(), "downlink");
                        }
                    }
                    for nack in packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>())
                    {
                        nacked.push((track.clone(), lost(nack)));
                    }
                    if !packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                        continue;
                    }
                    let asked = slot
                        .consumers
                        .iter()
                        .find(|(_, c)| c.track == track)
                        .map(|(&consumed, _)| consumed);
                    keyframes_wanted.extend(asked);
                }
                _ => {}
            }
        }
        for (publisher, kind) in keyframes_wanted {
            self.request_keyframe(now, publisher, kind, KeyframeWanted::Subscriber);
        }
        for (track, seqs) in nacked {
            self.answer_nack(key, &track, &seqs);
        }
        if !copies.is_empty() {
            self.forward(now, key, copies);
        }
    }

    /// Sends each live subscriber's copy of a publisher's packets (its own SSRC and our
    /// payload type; of a camera sent in layers, the layer that subscriber should receive,
    /// renumbered to continue what it has had), protected with the subscriber's SRTP context
    /// and queued for the port directly (see `mux::sender`). Subscribers not yet live are
    /// skipped, not counted: nothing was meant for them yet.
    fn forward(&mut self, now: Instant, publisher: ConnKey, copies: Vec<Copy>) {
        let mut sends = Vec::new();
        let mut keyframes_wanted = Vec::new();
        for Copy {
            kind,
            layer,
            keyframe_start,
            sizes,
            steady,
            layers,
            packet,
        } in copies
        {
            let Some(receivers) = self.fanout.get(&(publisher, kind)) else {
                continue;
            };
            let (sizes, steady) = (&sizes[..layers], &steady[..layers]);
            let header = (packet.header.sequence_number, packet.header.timestamp);
            let (mut written, mut closed) = (0, 0);
            for subscriber in receivers {
                let Some(slot) = self.conns.get_mut(subscriber) else {
                    continue;
                };
                let Some(consumed) = slot.consumers.get_mut(&(publisher, kind)) else {
                    continue;
                };
                if !consumed.live {
                    continue;
                }
                // The tile's size and the connection choose among a camera's layers; a screen
                // is sent whole, whatever the loss: it is what the session is looking at.
                let (wanted, downlink) = if kind == MediaKind::Video {
                    (consumed.wanted, slot.downlink.level())
                } else {
                    (None, Downlink::Full)
                };
                let target = settle(
                    choose_layer(sizes, wanted, downlink),
                    consumed.cursor.current(),
                    sizes,
                    steady,
                );
                let (seq, timestamp) = match consumed.cursor.admit(
                    layer,
                    target,
                    header,
                    keyframe_start,
                    layers == 1,
                    now,
                ) {
                    Admit::Send { seq, timestamp } => (seq, timestamp),
                    Admit::Skip => continue,
                    Admit::SkipUntilKeyframe => {
                        keyframes_wanted.push(kind);
                        continue;
                    }
                };
                let mut copy = egress_copy(&packet, consumed.ssrc, kind.payload_type());
                copy.header.sequence_number = seq;
                copy.header.timestamp = timestamp;
                let Ok(plain) = copy.marshal() else {
                    closed += 1;
                    continue;
                };
                match slot.conn.protect_rtp(&plain) {
                    Some(Ok((to, protected))) => {
                        consumed.sent.sent(now, copy);
                        sends.push((to, protected));
                        written += 1;
                    }
                    // No keys or no path any more: the connection has failed or closed.
                    None => closed += 1,
                    Some(Err(e)) => {
                        closed += 1;
                        tracing::trace!(error = %e, "consumer write failed");
                    }
                }
            }
            for (to, protected) in sends.drain(..) {
                self.push(to, &protected);
            }
            self.media.count_forwarded(kind, written);
            self.media
                .count_dropped(DropReason::SubscriberClosed, closed);
        }
        keyframes_wanted.dedup();
        for kind in keyframes_wanted {
            // A subscriber moving to another layer waits for its keyframe: ask, paced.
            self.request_keyframe(now, publisher, kind, KeyframeWanted::NewSubscriber);
        }
    }

    /// Starts sending on a subscribe connection's negotiated tracks once it is up (a packet
    /// written before it has its SRTP keys would be lost), beginning each video copy with a
    /// fresh keyframe so the new viewer does not wait for the next periodic one.
    pub(super) fn go_live(&mut self, now: Instant, key: ConnKey) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        if slot.state != Some(RTCPeerConnectionState::Connected) {
            return;
        }
        let mut wanted = Vec::new();
        for (&(publisher, kind), consumed) in slot.consumers.iter_mut() {
            if consumed.negotiated && !consumed.live {
                consumed.live = true;
                if kind.is_video() {
                    wanted.push((publisher, kind));
                }
            }
        }
        let any_live = slot.consumers.values().any(|c| c.live);
        for (publisher, kind) in wanted {
            self.request_keyframe(now, publisher, kind, KeyframeWanted::NewSubscriber);
        }
        if any_live {
            self.start_reports(now, key);
        }
    }

    /// Asks publisher `key` for a keyframe of its camera or screen (`kind`), now or when its
    /// pacer allows.
    fn request_keyframe(
        &mut self,
        now: Instant,
        key: ConnKey,
        kind: MediaKind,
        who: KeyframeWanted,
    ) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let Some(source) = slot.sources[kind.index()].as_mut() else {
            return;
        };
        if source.pacer.request(now, who) {
            self.send_keyframe_request(now, key, kind);
        } else if let Some(due) = source.pacer.due() {
            self.timers
                .push(std::cmp::Reverse((due, key, Timer::Keyframe(kind))));
        }
    }

    /// A held keyframe request's time may have come.
    pub(super) fn keyframe_due(&mut self, now: Instant, key: ConnKey, kind: MediaKind) {
        let due = self.conns.get_mut(&key).and_then(|slot| {
            slot.sources[kind.index()]
                .as_mut()
                .map(|source| source.pacer.poll(now))
        });
        if due == Some(true) {
            self.send_keyframe_request(now, key, kind);
        }
    }

    fn send_keyframe_request(&mut self, now: Instant, key: ConnKey, kind: MediaKind) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let Some(source) = slot.sources[kind.index()].as_mut() else {
            return;
        };
        source.pacer.sent(now);
        tracing::debug!(key, "keyframe requested");
        // Every layer at once: subscribers may be waiting on any of them.
        let plis: Vec<Box<dyn rtc::rtcp::Packet>> = source
            .layers
            .iter()
            .map(|layer| {
                Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc: layer.ssrc,
                }) as Box<dyn rtc::rtcp::Packet>
            })
            .collect();
        if let Err(e) = slot
            .conn
            .send(now, RTCMessage::RtcpPacket(String::new(), plis))
        {
            tracing::debug!(error = %e, "could not ask a publisher for a keyframe");
        }
    }
}
