//! A browser's peer connection, as the fake browsers and the tools build it: the client's
//! codecs and audio level extension, the default interceptors plus the server's own
//! [`KeyframeRequestsToApp`] (so a camera sees keyframe requests), and a quick ICE keepalive.

use std::sync::Arc;
use std::time::Duration;

use circle_protocol::PcKind;
use circle_server::media::KeyframeRequestsToApp;
use rtc::interceptor::Slot;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, Registry, SettingEngineBuilder,
};

use super::rtp::{client_opus, client_vp8, AUDIO_LEVEL_URI, CLIENT_OPUS_PT, CLIENT_VP8_PT};

pub enum ClientEvent {
    Candidate(PcKind, RTCIceCandidateInit),
    State(PcKind, RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct ClientHandler {
    kind: PcKind,
    events: mpsc::Sender<ClientEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self
                .events
                .try_send(ClientEvent::Candidate(self.kind, init));
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.try_send(ClientEvent::State(self.kind, state));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.try_send(ClientEvent::Track(track));
    }
}

pub async fn client_pc(kind: PcKind, events: mpsc::Sender<ClientEvent>) -> Arc<dyn PeerConnection> {
    client_pc_at(kind, events, "127.0.0.1:0").await
}

/// A client peer connection whose one UDP socket is bound to `addr`.
pub async fn client_pc_at(
    kind: PcKind,
    events: mpsc::Sender<ClientEvent>,
    addr: &str,
) -> Arc<dyn PeerConnection> {
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: client_opus(),
                payload_type: CLIENT_OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: client_vp8(),
                payload_type: CLIENT_VP8_PT,
            },
            RtpCodecKind::Video,
        )
        .unwrap();
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut engine)
        .unwrap()
        .with(Slot::from(14_000), KeyframeRequestsToApp::default());
    // The server is an ICE-lite agent and sends no checks of its own, so its liveness timers
    // run on this browser's checks alone (rtc 0.21.1 does not count media as a sign of life).
    // A check every 250 ms keeps a live browser alive under the 1 s timeouts the recovery
    // tests give the server; the library's own 2 s would let it lapse between checks.
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_timeouts(None, None, Some(Duration::from_millis(250)))
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(ClientHandler { kind, events }))
        .with_udp_addrs(vec![addr.to_owned()])
        .build()
        .await
        .expect("client peer connection");
    Arc::new(pc)
}
