//! What the engine's tests share: a browser-like `rtc` peer and its camera's packets.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};

use crate::media::codec::{MediaKind, VP8_PAYLOAD_TYPE};
use crate::media::leg::{register_codecs, sending_track, KeyframeRequestsToApp};
use crate::media::mux::conn::host_candidate;

/// The SSRC of the browser's camera.
pub(crate) const SSRC: u32 = 0x1234_5678;

/// A browser-like peer: a full (controlling) agent with Circle's codecs, and a camera track
/// if it publishes.
pub(crate) fn browser(now: Instant, camera: bool, at: SocketAddr) -> RTCPeerConnection {
    let mut media = MediaEngine::default();
    register_codecs(&mut media).unwrap();
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
