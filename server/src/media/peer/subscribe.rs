//! The subscribe leg: offers one track per other participant's producer, one offer at a time,
//! later changes coalesced into the next, and starts each copy once its answer is applied and
//! the connection is up.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use circle_protocol::{PcKind, SdpType};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverId};
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use super::{Link, PeerCommand};
use crate::media::consumer::Consumer;
use crate::media::leg::SubscribeState;
use crate::media::producer::{Producer, ProducerId};
use crate::media::sdp::keep_freed_slots;
use crate::media::Signal;

/// A consumer on the subscribe connection, and whether an answer has accepted it.
struct Subscribed {
    sender: Arc<dyn RtpSender>,
    consumer: Consumer,
    negotiated: bool,
}

/// Adds a consumer's track on a send-only transceiver. `add_track` reuses the slot of a track
/// removed earlier (RFC 8829 §5.2.2 lets a transceiver without a sender take a new track), so
/// the subscribe offer holds the tracks forwarded now plus the slots freed since, not every
/// track that ever was; a brand-new transceiver comes sendrecv and is turned send-only.
async fn add_sendonly(
    pc: &Arc<dyn PeerConnection>,
    consumer: &Consumer,
) -> webrtc::error::Result<Arc<dyn RtpSender>> {
    let sender = pc.add_track(consumer.track()).await?;
    let slot = RTCRtpTransceiverId::from(sender.id());
    for transceiver in pc.get_transceivers().await {
        if transceiver.id() == slot
            && transceiver.direction().await? != RTCRtpTransceiverDirection::Sendonly
        {
            transceiver
                .set_direction(RTCRtpTransceiverDirection::Sendonly)
                .await?;
        }
    }
    Ok(sender)
}

pub(super) struct SubscribeLeg {
    /// The next offer restarts ICE.
    restart_ice: bool,
    wanted: BTreeMap<ProducerId, Arc<Producer>>,
    consumers: BTreeMap<ProducerId, Subscribed>,
    dirty: bool,
    /// An offer has been sent at least once, so an empty set must still be re-offered.
    negotiated: bool,
    /// Shared with the router, which refuses a stray answer synchronously.
    state: Arc<SubscribeState>,
}

impl SubscribeLeg {
    pub(super) fn new(state: Arc<SubscribeState>) -> Self {
        Self {
            restart_ice: false,
            wanted: BTreeMap::new(),
            consumers: BTreeMap::new(),
            dirty: false,
            negotiated: false,
            state,
        }
    }

    pub(super) async fn command(&mut self, link: &mut Link, command: PeerCommand) {
        match command {
            PeerCommand::Answer(description) => match link.existing() {
                Some(pc) => self.apply_answer(link, &pc, *description).await,
                // No connection means no offer was ever sent.
                None => link.error("no subscribe offer is outstanding").await,
            },
            PeerCommand::AddConsumer(producer) => {
                self.wanted.insert(producer.id, producer);
                self.dirty = true;
            }
            PeerCommand::RemoveConsumer(id) => {
                if self.wanted.remove(&id).is_some() {
                    self.dirty = true;
                }
            }
            PeerCommand::RestartIce => {
                self.restart_ice = true;
                self.dirty = true;
            }
            // The router sends offers to publish legs only; `Close` ends the task before this.
            PeerCommand::Offer { .. } | PeerCommand::Close => {
                tracing::debug!("a publish command reached a subscribe peer");
            }
        }
    }

    async fn apply_answer(
        &mut self,
        link: &Link,
        pc: &Arc<dyn PeerConnection>,
        description: RTCSessionDescription,
    ) {
        if !self.state.offer_outstanding.load(Ordering::Acquire) {
            link.error("no subscribe offer is outstanding").await;
            return;
        }
        // Our offer is still the pending local description while its answer is outstanding.
        let description = match pc.local_description().await {
            Some(offer) => {
                match RTCSessionDescription::answer(keep_freed_slots(&offer.sdp, &description.sdp))
                {
                    Ok(kept) => kept,
                    Err(_) => description,
                }
            }
            None => description,
        };
        if let Err(e) = pc.set_remote_description(description).await {
            tracing::info!("subscribe answer refused");
            tracing::debug!(error = %e, "subscribe answer refused");
            // Offer again from scratch rather than leave the subscriber stuck.
            self.state.offer_outstanding.store(false, Ordering::Release);
            self.dirty = true;
            link.error("the server could not apply the subscribe answer")
                .await;
            return;
        }
        self.state.offer_outstanding.store(false, Ordering::Release);
        // Every consumer present now was in the offer just answered: none are added while an
        // offer is outstanding.
        for subscribed in self.consumers.values_mut() {
            subscribed.negotiated = true;
        }
        self.go_live(link);
    }

    /// Sends the next subscribe offer if the wanted producers changed and none is outstanding.
    pub(super) async fn offer_if_due(&mut self, link: &mut Link) {
        if !self.dirty || self.state.offer_outstanding.load(Ordering::Acquire) {
            return;
        }
        self.dirty = false;
        if self.wanted.is_empty() && !self.negotiated {
            // Nothing to offer yet, and nothing offered before: no connection is needed.
            self.restart_ice = false;
            return;
        }
        let Some(pc) = link.connection().await else {
            // The client was told; the next change tries again.
            self.dirty = true;
            return;
        };
        let pc = &pc;

        // Adds first, removes after: a slot freed in this offer is reused only in a later one,
        // once the browser has seen it go inactive, so it raises `ontrack` for the new track
        // instead of swapping tracks under a live one.
        let new: Vec<Arc<Producer>> = self
            .wanted
            .values()
            .filter(|p| !self.consumers.contains_key(&p.id))
            .cloned()
            .collect();
        for producer in new {
            let consumer = Consumer::new(producer.clone());
            match add_sendonly(pc, &consumer).await {
                Ok(sender) => {
                    consumer.relay_keyframe_requests();
                    self.consumers.insert(
                        producer.id,
                        Subscribed {
                            sender,
                            consumer,
                            negotiated: false,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!("could not add a subscribed track");
                    tracing::debug!(error = %e, "could not add a subscribed track");
                }
            }
        }

        let gone: Vec<ProducerId> = self
            .consumers
            .keys()
            .filter(|id| !self.wanted.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            if let Some(subscribed) = self.consumers.remove(&id) {
                if let Err(e) = pc.remove_track(&subscribed.sender).await {
                    tracing::warn!("could not remove a subscribed track");
                    tracing::debug!(error = %e, "could not remove a subscribed track");
                }
            }
        }
        if self.consumers.is_empty() && !self.negotiated {
            // Nothing negotiated yet: the first offer brings fresh credentials anyway.
            self.restart_ice = false;
            return;
        }
        let options = self
            .restart_ice
            .then_some(RTCOfferOptions { ice_restart: true });
        let offer = match pc.create_offer(options).await {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!("could not create a subscribe offer");
                tracing::debug!(error = %e, "could not create a subscribe offer");
                return;
            }
        };
        if let Err(e) = pc.set_local_description(offer).await {
            tracing::warn!("could not apply our own subscribe offer");
            tracing::debug!(error = %e, "could not apply our own subscribe offer");
            return;
        }
        let Some(local) = pc.local_description().await else {
            return;
        };
        self.restart_ice = false;
        self.negotiated = true;
        self.state.offered_sections.store(
            crate::media::sdp::media_sections(&local.sdp),
            Ordering::Release,
        );
        self.state.offer_outstanding.store(true, Ordering::Release);
        link.signal(Signal::Sdp {
            pc: PcKind::Subscribe,
            sdp_type: SdpType::Offer,
            sdp: link.context.engine.announce_sdp(local.sdp),
        })
        .await;
    }

    /// Starts sending on negotiated tracks once DTLS is up: a packet written before the
    /// connection has its SRTP keys is dropped by the library with a warning.
    pub(super) fn go_live(&self, link: &Link) {
        if !link.is_connected() {
            return;
        }
        for subscribed in self.consumers.values().filter(|s| s.negotiated) {
            subscribed.consumer.go_live();
        }
    }

    pub(super) fn close(&mut self) {
        self.consumers.clear();
    }
}
