//! What the engine's tests share: a browser-like `rtc` peer and its camera's packets.

use std::net::SocketAddr;
use std::time::Instant;

use std::collections::VecDeque;

use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;

use crate::media::codec::{MediaKind, VP8_PAYLOAD_TYPE};
use crate::media::leg::{register_codecs, sending_track};
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
        .with_interceptor_registry(Registry::new().with(Slot::from(14_000), RtcpToApp::default()))
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

/// Hands the test every RTCP packet a browser receives (a browser's own interceptors would
/// consume them), so tests can see what the server reports and asks for.
#[derive(Default)]
pub(crate) struct RtcpToApp {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if matches!(msg.message.packet, Packet::Rtcp(_)) {
            msg.message.add(Attribute::DeliverToApplication);
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

impl Interceptor for RtcpToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
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
