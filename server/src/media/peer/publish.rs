//! The publish leg: answers the browser's offers (rolling back one that cannot be applied) and
//! turns each incoming track into a producer, one of each kind.

use std::collections::HashMap;
use std::sync::Arc;

use circle_protocol::{PcKind, SdpType};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};

use super::{Link, PeerCommand};
use crate::media::codec::MediaKind;
use crate::media::producer::Producer;
use crate::media::Signal;

pub(super) struct PublishLeg {
    audio_level_id: Option<u8>,
    producers: HashMap<MediaKind, Arc<Producer>>,
}

impl PublishLeg {
    pub(super) fn new() -> Self {
        Self {
            audio_level_id: None,
            producers: HashMap::new(),
        }
    }

    pub(super) async fn command(&mut self, link: &mut Link, command: PeerCommand) {
        match command {
            PeerCommand::Offer {
                description,
                audio_level_id,
            } => {
                if let Some(pc) = link.connection().await {
                    self.answer_offer(link, &pc, *description, audio_level_id)
                        .await;
                }
            }
            // The router sends the others to subscribe legs only.
            _ => tracing::debug!("a subscribe command reached a publish peer"),
        }
    }

    async fn answer_offer(
        &mut self,
        link: &Link,
        pc: &Arc<dyn PeerConnection>,
        description: RTCSessionDescription,
        audio_level_id: Option<u8>,
    ) {
        self.audio_level_id = audio_level_id;
        if let Err(refusal) = apply_offer(pc, description).await {
            // The library moves to `have-remote-offer` before it finds what is wrong with an
            // offer, and stays there, refusing every later offer until a new connection. A
            // rollback (JSEP, RFC 9429) takes it back to the last stable state, so the client's
            // next offer is answered.
            rollback(pc).await;
            link.error(refusal).await;
            return;
        }
        let Some(local) = pc.local_description().await else {
            return;
        };
        link.signal(Signal::Sdp {
            pc: PcKind::Publish,
            sdp_type: SdpType::Answer,
            sdp: link.context.engine.announce_sdp(local.sdp),
        })
        .await;
    }

    pub(super) async fn start_producer(&mut self, link: &Link, track: Arc<dyn TrackRemote>) {
        let context = &link.context;
        let Some(producer) = Producer::start(
            track,
            context.participant.clone(),
            context.epoch,
            context.gate.clone(),
            self.audio_level_id,
            context.producers_ended.clone(),
            context.engine.counters.clone(),
        )
        .await
        else {
            return;
        };
        // At most one track of each kind: a renegotiated camera replaces the old one.
        if let Some(old) = self.producers.insert(producer.kind, producer.clone()) {
            old.close();
        }
        let _ = context.producers_added.send(producer).await;
    }

    pub(super) fn close(&mut self) {
        for producer in self.producers.values() {
            producer.close();
        }
    }
}

/// Applies a browser's publish offer and the server's answer to it; on failure, what to tell
/// the client.
async fn apply_offer(
    pc: &Arc<dyn PeerConnection>,
    description: RTCSessionDescription,
) -> Result<(), &'static str> {
    if let Err(e) = pc.set_remote_description(description).await {
        tracing::info!("publish offer refused");
        tracing::debug!(error = %e, "publish offer refused");
        return Err("the server could not apply the publish offer");
    }
    let answer = match pc.create_answer(None).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::info!("could not answer a publish offer");
            tracing::debug!(error = %e, "could not answer a publish offer");
            return Err("the server could not answer the publish offer");
        }
    };
    if let Err(e) = pc.set_local_description(answer).await {
        tracing::warn!("could not apply our own publish answer");
        tracing::debug!(error = %e, "could not apply our own publish answer");
        return Err("the server could not answer the publish offer");
    }
    Ok(())
}

/// Discards a remote offer that was not answered. An offer refused before it changed anything
/// leaves nothing to roll back, and the library says so: that is logged at debug only.
async fn rollback(pc: &Arc<dyn PeerConnection>) {
    let rollback = match RTCSessionDescription::rollback(None) {
        Ok(rollback) => rollback,
        Err(e) => {
            tracing::debug!(error = %e, "could not build a rollback");
            return;
        }
    };
    if let Err(e) = pc.set_remote_description(rollback).await {
        tracing::debug!(error = %e, "rolling back a refused publish offer failed");
    }
}
