//! What the engine's tests share: a browser-like `rtc` peer and its camera's packets, plain or
//! in simulcast layers.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};

use crate::media::codec::{MediaKind, VP8_PAYLOAD_TYPE};
use crate::media::leg::{register_codecs, sending_track, KeyframeRequestsToApp};
use crate::media::mux::conn::host_candidate;

/// The SSRC of the browser's camera.
pub(crate) const SSRC: u32 = 0x1234_5678;

/// The SSRCs of a simulcast camera's two layers: `q` (160×90) and `f` (640×360).
pub(crate) const SSRC_Q: u32 = 0x0A0A_0001;
pub(crate) const SSRC_F: u32 = 0x0A0A_0002;

/// A browser-like peer: a full (controlling) agent with Circle's codecs, and a camera track
/// if it publishes.
pub(crate) fn browser(now: Instant, camera: bool, at: SocketAddr) -> RTCPeerConnection {
    let mut pc = peer(now, at, false);
    if camera {
        let track = sending_track(
            MediaKind::Video,
            "camera".to_owned(),
            "camera-video".to_owned(),
            SSRC,
        );
        pc.add_track(track).unwrap();
    }
    pc
}

/// A browser-like peer whose camera is sent in two simulcast layers, `q` ([`SSRC_Q`]) and `f`
/// ([`SSRC_F`]), as a browser's `sendEncodings` would.
pub(crate) fn simulcast_browser(now: Instant, at: SocketAddr) -> RTCPeerConnection {
    let mut pc = peer(now, at, true);
    let encodings = [("q", SSRC_Q), ("f", SSRC_F)]
        .into_iter()
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: rid.to_owned(),
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: MediaKind::Video.codec(),
            ..Default::default()
        })
        .collect();
    let track = rtc::media_stream::MediaStreamTrack::new(
        "camera".to_owned(),
        "camera-video".to_owned(),
        "camera-video".to_owned(),
        MediaKind::Video.rtp_kind(),
        encodings,
    );
    pc.add_track(track).unwrap();
    pc
}

fn peer(now: Instant, at: SocketAddr, simulcast: bool) -> RTCPeerConnection {
    let mut media = MediaEngine::default();
    register_codecs(&mut media).unwrap();
    if simulcast {
        configure_simulcast_extension_headers(&mut media).unwrap();
    }
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![NetworkType::Udp4])
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_setting_engine(settings)
        // Every RTCP packet to the test (a browser's own interceptors would consume them), so
        // tests can see what the server reports.
        .with_interceptor_registry(
            Registry::new().with(Slot::from(14_000), KeyframeRequestsToApp::all_rtcp()),
        )
        .build(now)
        .unwrap();
    pc.add_local_candidate(host_candidate(at).unwrap()).unwrap();
    pc
}

/// A VP8 payload: a keyframe's first packet of `width`×`height`, or an interframe.
pub(crate) fn vp8_payload(keyframe: bool, width: u16, height: u16) -> Bytes {
    let mut p = vec![0x10, if keyframe { 0x00 } else { 0x01 }, 0x00, 0x00];
    if keyframe {
        p.truncate(2);
        p.extend_from_slice(&[0x00, 0x00, 0x9d, 0x01, 0x2a]);
        p.extend_from_slice(&width.to_le_bytes());
        p.extend_from_slice(&height.to_le_bytes());
    }
    Bytes::from(p)
}

/// The camera's packet `seq`: a VP8 frame of its own, carrying `payload`.
pub(crate) fn camera_packet(seq: u16, timestamp: u32, payload: Bytes) -> rtc::rtp::packet::Packet {
    rtc::rtp::packet::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            payload_type: VP8_PAYLOAD_TYPE,
            sequence_number: seq,
            timestamp,
            ssrc: SSRC,
            ..Default::default()
        },
        payload,
    }
}
