//! What the engine's tests share: a browser-like `rtc` peer.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};

use crate::media::codec::{opus, vp8, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};

/// The SSRC of the browser's camera.
pub(crate) const SSRC: u32 = 0x1234_5678;

/// A browser-like peer: a full (controlling) agent with Circle's codecs, and a camera track
/// if it publishes.
pub(crate) fn browser(now: Instant, camera: bool, at: SocketAddr) -> RTCPeerConnection {
    let mut media = MediaEngine::default();
    for (codec, payload_type, kind) in [
        (opus(), OPUS_PAYLOAD_TYPE, RtpCodecKind::Audio),
        (vp8(), VP8_PAYLOAD_TYPE, RtpCodecKind::Video),
    ] {
        media
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: codec,
                    payload_type,
                },
                kind,
            )
            .unwrap();
    }
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![NetworkType::Udp4])
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_setting_engine(settings)
        .build(now)
        .unwrap();
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: at.ip().to_string(),
            port: at.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json().unwrap())
        .unwrap();
    let track = MediaStreamTrack::new(
        "camera".to_owned(),
        "camera-video".to_owned(),
        "camera-video".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(SSRC),
                ..Default::default()
            },
            codec: vp8(),
            ..Default::default()
        }],
    );
    if camera {
        pc.add_track(track).unwrap();
    }
    pc
}
