//! What a server-side leg negotiates and how it runs: codecs and header extensions, the
//! interceptors of each direction, and the ICE settings of a lite agent. Also what the router
//! reads of a leg: its subscribe negotiation (`SubscribeState`) and which connection states the
//! room is told.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant};

use circle_protocol::PcKind;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{
    Attribute, Interceptor, NackGeneratorBuilder, Packet, ReceiverReportBuilder, Registry, Slot,
    StreamInfo, TaggedPacket,
};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;

use crate::media::codec::{
    opus, vp8, MediaKind, AUDIO_LEVEL_URI, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE,
};
use crate::media::{internal, MediaConfig, MediaError};

/// Opus and VP8 only, the same on both legs, so a forwarded packet never needs transcoding;
/// the audio level extension only where the browser sends audio to us.
fn media_engine(kind: PcKind) -> Result<MediaEngine, MediaError> {
    let mut engine = MediaEngine::default();
    register_codecs(&mut engine)?;
    if kind == PcKind::Publish {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: AUDIO_LEVEL_URI.to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .map_err(internal)?;
    }
    Ok(engine)
}

/// Opus and VP8, with the payload types the server writes.
pub(crate) fn register_codecs(engine: &mut MediaEngine) -> Result<(), MediaError> {
    for (codec, payload_type, rtp_kind) in [
        (opus(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio),
        (vp8(), VP8_PAYLOAD_TYPE, RtpCodecKind::Video),
    ] {
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type,
                },
                rtp_kind,
            )
            .map_err(internal)?;
    }
    Ok(())
}

/// A track we send: one encoding of `kind` under its own `ssrc` (the one NACKs and sender
/// reports are bound to, and the browser sees in `a=ssrc`). `stream` is the first part of
/// `a=msid`: whose tile the track belongs in.
pub(crate) fn sending_track(
    kind: MediaKind,
    stream: String,
    id: String,
    ssrc: u32,
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream,
        id.clone(),
        id,
        kind.rtp_kind(),
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: kind.codec(),
            ..Default::default()
        }],
    )
}

/// How often the ICE agent's timer runs while connecting (see `settings`).
const ICE_TIMER_INTERVAL: Duration = Duration::from_millis(50);

/// A leg's media engine and its interceptors.
pub(crate) fn media(kind: PcKind) -> Result<(MediaEngine, Registry), MediaError> {
    let mut media_engine = media_engine(kind)?;
    let registry = match kind {
        // A publish leg only receives: NACKs for lost packets, receiver reports and
        // transport-wide congestion feedback for the browser's sender, and the extensions
        // a browser's offer carries. Sender-side interceptors would only be pipeline stages.
        PcKind::Publish => {
            configure_simulcast_extension_headers(&mut media_engine).map_err(internal)?;
            let registry = Registry::new()
                .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
                .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build());
            configure_twcc_receiver_only(registry, &mut media_engine).map_err(internal)?
        }
        // A subscribe leg only sends, and the engine sends forwarded RTP past the pipeline,
        // answering NACKs and sending sender reports itself (`mux::sender`): the chain only
        // passes keyframe requests and NACKs up to it.
        PcKind::Subscribe => Registry::new().with(
            Slot::from(14_000),
            KeyframeRequestsToApp::subscriber_feedback(),
        ),
    };
    Ok((media_engine, registry))
}

/// The ICE settings every leg shares: a lite agent on the configured address family.
pub(crate) fn settings(config: &MediaConfig) -> SettingEngineBuilder {
    let network = match config.bind_ip {
        IpAddr::V4(_) => NetworkType::Udp4,
        IpAddr::V6(_) => NetworkType::Udp6,
    };
    let mut settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![network])
        // ICE-lite (RFC 8445 §2.5), as mediasoup and Janus: the server answers the browser's
        // connectivity checks and learns its address from them (a peer-reflexive candidate,
        // §7.3.1.3), and never checks an address of its own accord, so no client can aim
        // the server's STUN traffic at someone else. Against a full agent a lite one is
        // always controlled (§6.1.1): the browser nominates, on both legs. (rtc-ice 0.21.1's
        // lite agent still sends one triggered check back to the source of each check it
        // has authenticated and answered, and nowhere else.)
        //
        // The nomination waits (`with_srflx/prflx_acceptance_min_wait`) are read only by a
        // controlling agent, and a lite agent never is one: they are gone.
        .with_lite(true)
        // The check interval still paces the agent's timer while connecting. rtc sent a DTLS
        // client's first flight only on that timer's next tick: at the library's 200 ms a new
        // subscription waited 200 ms after ICE had finished (tests/BENCHMARKS.md, round 3).
        // The vendored rtc now sends it at once (server/vendor/rtc/README.circle.md); RFC
        // 8445's pacing (Ta) is 50 ms. The attempt count is left to the library.
        .with_ice_connection_attempts(Some(ICE_TIMER_INTERVAL), None);
    if let Some((disconnected, failed, keepalive)) = config.ice_timeouts {
        settings = settings.with_ice_timeouts(Some(disconnected), Some(failed), Some(keepalive));
    }
    settings
}

/// Inbound RTCP ends inside the interceptor chain unless an interceptor marks it for the
/// application; this one marks keyframe requests (PLI, FIR) so the SFU can relay them upstream,
/// and leaves everything else (reports, NACKs) to the interceptors that consume it, or with
/// [`subscriber_feedback`](Self::subscriber_feedback) marks NACKs and receiver reports too, for
/// a leg whose sending the engine does itself.
#[derive(Default)]
pub struct KeyframeRequestsToApp {
    marks: Marks,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

/// Which inbound RTCP `KeyframeRequestsToApp` hands to the application.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Marks {
    #[default]
    KeyframeRequests,
    /// A subscribe leg's feedback: keyframe requests, NACKs and receiver reports.
    SubscriberFeedback,
    /// Tests' browsers: everything, so a test sees what the server sends.
    #[cfg(test)]
    All,
}

impl KeyframeRequestsToApp {
    /// Keyframe requests, NACKs and receiver reports: what the engine answers for the tracks
    /// it sends past the chain, and the loss that steps a subscriber's video down.
    pub fn subscriber_feedback() -> Self {
        KeyframeRequestsToApp {
            marks: Marks::SubscriberFeedback,
            ..Default::default()
        }
    }

    #[cfg(test)]
    pub(crate) fn all_rtcp() -> Self {
        KeyframeRequestsToApp {
            marks: Marks::All,
            ..Default::default()
        }
    }

    fn wanted(&self, packet: &dyn rtc::rtcp::Packet) -> bool {
        match self.marks {
            Marks::KeyframeRequests => is_keyframe_request(packet),
            Marks::SubscriberFeedback => {
                is_keyframe_request(packet)
                    || is_nack(packet)
                    || packet.as_any().is::<ReceiverReport>()
            }
            #[cfg(test)]
            Marks::All => true,
        }
    }
}

pub(crate) fn is_nack(packet: &dyn rtc::rtcp::Packet) -> bool {
    packet.as_any().is::<TransportLayerNack>()
}

pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            if packets.iter().any(|p| self.wanted(p.as_ref())) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for KeyframeRequestsToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A subscribe leg's negotiation as the router reads it, written by the engine.
#[derive(Debug, Default)]
pub(crate) struct SubscribeState {
    /// An offer has been sent and its answer not yet applied: an answer now is expected.
    pub(crate) offer_outstanding: AtomicBool,
    /// How many media sections our latest offer had, so many as its answer may have
    /// (RFC 3264 §6: one per offered section).
    pub(crate) offered_sections: AtomicUsize,
}

/// Whether a peer connection's state is worth telling the room, as (connected, failed).
/// `Disconnected` may heal by itself; `Failed` needs an ICE restart; `Closed` by the library
/// counts as failed (our own close ends the peer before it could be told).
pub(crate) fn peer_state(
    state: rtc::peer_connection::state::RTCPeerConnectionState,
) -> Option<(bool, bool)> {
    use rtc::peer_connection::state::RTCPeerConnectionState as State;
    match state {
        State::Connected => Some((true, false)),
        State::Disconnected => Some((false, false)),
        State::Failed | State::Closed => Some((false, true)),
        _ => None,
    }
}
