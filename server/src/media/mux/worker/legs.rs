//! The worker's two kinds of leg: answering a browser's publish offers, offering a subscribe
//! leg what it should receive (new tracks in freed slots) and taking its answer.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use circle_protocol::PcKind;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;

use super::{ConnKey, Consumed, Slot, Worker};
use crate::media::codec::MediaKind;
use crate::media::counters::Live;
use crate::media::leg::sending_track;
use crate::media::mux::conn::Conn;
use crate::media::mux::sender::SentTrack;
use crate::media::sdp::keep_freed_slots;
use crate::media::simulcast::{DownlinkControl, LayerCursor};
use crate::media::{internal, MediaError};

// Logging: library error texts can quote SDP lines and addresses, so they are logged at debug
// only; the client is told what failed in words of our own.

impl Worker {
    /// Builds the registered connection `key` unless it exists.
    fn open(&mut self, now: Instant, key: ConnKey, kind: PcKind) -> Result<(), MediaError> {
        if self.conns.contains_key(&key) {
            return Ok(());
        }
        let Some((registered, owner)) = self.owners.get(&key) else {
            return Err(MediaError::NotFound);
        };
        if *registered != kind {
            return Err(MediaError::Conflict("a command for the other leg"));
        }
        let owner = owner.clone();
        let conn = Conn::new(kind, &self.config, self.announced, now)?;
        tracing::debug!(key, ?kind, took = ?now.elapsed(), "connection built");
        self.conns.insert(
            key,
            Box::new(Slot {
                conn,
                owner,
                due: None,
                state: None,
                audio_level_id: None,
                tracks: Default::default(),
                screen_track: None,
                sources: [None, None, None],
                consumers: Default::default(),
                reporting: false,
                tile_sizes: HashMap::new(),
                downlink: DownlinkControl::default(),
                early_checks: None,
                _live: Live::start(Arc::clone(&self.media)),
            }),
        );
        Ok(())
    }

    /// Names the connection in the table by the ufrag of the local description just set (new
    /// at the first one and at each ICE restart); says whether the name is new.
    fn name(&mut self, key: ConnKey) -> Result<bool, MediaError> {
        let Some(slot) = self.conns.get_mut(&key) else {
            return Ok(false);
        };
        if let Some(ufrag) = slot.conn.take_new_ufrag() {
            if !self.table.set_ufrag(key, ufrag) {
                return Err(internal("a connection's ufrag is taken"));
            }
            return Ok(true);
        }
        Ok(false)
    }

    pub(super) fn answer(
        &mut self,
        now: Instant,
        key: ConnKey,
        offer: String,
        audio_level_id: Option<u8>,
        screen: Option<String>,
    ) -> Result<String, MediaError> {
        self.open(now, key, PcKind::Publish)?;
        let slot = self.conns.get_mut(&key).expect("opened above");
        let offer =
            RTCSessionDescription::offer(offer).map_err(|e| MediaError::BadSdp(e.to_string()))?;
        let pc = slot.conn.pc();
        let answered = pc
            .set_remote_description(now, offer)
            .map_err(|e| {
                tracing::info!("publish offer refused");
                tracing::debug!(error = %e, "publish offer refused");
                MediaError::BadSdp("the server could not apply the publish offer".to_owned())
            })
            .and_then(|()| {
                let answer = pc.create_answer(None).map_err(|e| {
                    tracing::info!("could not answer a publish offer");
                    tracing::debug!(error = %e, "could not answer a publish offer");
                    MediaError::BadSdp("the server could not answer the publish offer".to_owned())
                })?;
                pc.set_local_description(now, answer).map_err(|e| {
                    tracing::warn!("could not apply our own publish answer");
                    tracing::debug!(error = %e, "could not apply our own publish answer");
                    MediaError::BadSdp("the server could not answer the publish offer".to_owned())
                })
            });
        if let Err(refusal) = answered {
            // The library may stay in `have-remote-offer` after refusing an offer, refusing
            // every later one; a rollback (JSEP, RFC 9429) takes it back to the last stable
            // state, so the client's next offer is answered. Nothing to roll back is fine.
            if let Ok(rollback) = RTCSessionDescription::rollback(None) {
                if let Err(e) = pc.set_remote_description(now, rollback) {
                    tracing::debug!(error = %e, "rolling back a refused publish offer failed");
                }
            }
            return Err(refusal);
        }
        slot.audio_level_id = audio_level_id;
        slot.screen_track = screen;
        for layer in slot
            .sources
            .iter_mut()
            .flatten()
            .flat_map(|s| s.layers.iter_mut())
        {
            layer.ingress.set_audio_level_id(audio_level_id);
        }
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
        restart_ice: bool,
    ) -> Result<String, MediaError> {
        let wanted: BTreeSet<(ConnKey, MediaKind)> = wanted.into_iter().collect();
        self.open(now, key, PcKind::Subscribe)?;
        // Adds first, removes after: a slot freed in this offer is reused only in a later one,
        // once the browser has seen it go inactive (and so raises `ontrack` for the new track).
        let new: Vec<(ConnKey, MediaKind, String)> = {
            let slot = &self.conns[&key];
            wanted
                .iter()
                .filter(|w| !slot.consumers.contains_key(w))
                .map(|&(publisher, kind)| {
                    // Registered connections stay in `owners` until they close.
                    let stream = self
                        .owners
                        .get(&publisher)
                        .map(|(_, owner)| owner.stream.clone())
                        .unwrap_or_default();
                    (publisher, kind, stream)
                })
                .collect()
        };
        let slot = self.conns.get_mut(&key).expect("opened above");
        for (publisher, kind, stream) in new {
            self.next_ssrc = self.next_ssrc.wrapping_add(1).max(1);
            let ssrc = self.next_ssrc;
            let name = format!("{}-{publisher}", kind.as_str());
            let track = sending_track(kind, stream, name.clone(), ssrc);
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
                    track: name,
                    negotiated: false,
                    live: false,
                    sent: SentTrack::new(ssrc, kind),
                    cursor: LayerCursor::default(),
                    wanted: slot.tile_sizes.get(&publisher).copied(),
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
            // A publisher who has gone takes the size of their tile with them.
            if !wanted.iter().any(|&(publisher, _)| publisher == consumed.0) {
                slot.tile_sizes.remove(&consumed.0);
            }
            if let Some(c) = slot.consumers.remove(&consumed) {
                slot.conn.pc().remove_track(c.sender).map_err(internal)?;
            }
            if let Some(receivers) = self.fanout.get_mut(&consumed) {
                receivers.remove(&key);
            }
        }
        let pc = slot.conn.pc();
        let options = restart_ice.then_some(RTCOfferOptions { ice_restart: true });
        let offer = pc.create_offer(options).map_err(internal)?;
        pc.set_local_description(now, offer).map_err(internal)?;
        let offer = pc
            .local_description()
            .ok_or_else(|| internal("no local description after an offer"))?;
        if self.name(key)? {
            if let Some(slot) = self.conns.get_mut(&key) {
                slot.early_checks = Some(Vec::new());
            }
        }
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
        pc.set_remote_description(now, answer).map_err(|e| {
            tracing::info!("subscribe answer refused");
            tracing::debug!(error = %e, "subscribe answer refused");
            MediaError::BadSdp("the server could not apply the subscribe answer".to_owned())
        })?;
        // Every consumer present now was in the offer just answered: none are added while an
        // offer is outstanding.
        for consumed in slot.consumers.values_mut() {
            consumed.negotiated = true;
        }
        tracing::debug!(
            key,
            tracks = slot.consumers.len(),
            "subscribe answer applied"
        );
        for (from, check) in slot.early_checks.take().unwrap_or_default() {
            slot.conn.receive(now, from, check);
        }
        Ok(())
    }
}
