//! How a server-side peer connection is built: codecs, header extensions, interceptors, ICE
//! settings, socket binding and buffer sizes. Every webrtc configuration type stays in here.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circle_protocol::PcKind;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{
    Attribute, Interceptor, NackGeneratorBuilder, NackResponderBuilder, Packet,
    ReceiverReportBuilder, SenderReportBuilder, Slot, StreamInfo, TaggedPacket,
};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateType, Registry, SettingEngineBuilder,
};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

use crate::media::codec::{opus, vp8, AUDIO_LEVEL_URI, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};
use crate::media::counters::MediaCounters;
use crate::media::{MediaConfig, MediaError};

/// Opus and VP8 only, the same on both legs, so a forwarded packet never needs transcoding;
/// the audio level extension only where the browser sends audio to us.
fn media_engine(kind: PcKind) -> Result<MediaEngine, MediaError> {
    let mut engine = MediaEngine::default();
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

/// How often the ICE agent's timer runs while connecting (see `build_at`).
const ICE_TIMER_INTERVAL: Duration = Duration::from_millis(50);

pub(crate) fn internal(e: impl fmt::Display) -> MediaError {
    MediaError::Internal(e.to_string())
}

/// Process-wide media state: the configuration, the runtime that sizes socket buffers, and the
/// cursor over the configured UDP port range.
pub(crate) struct Engine {
    pub(crate) config: MediaConfig,
    runtime: Arc<dyn Runtime>,
    next_port: AtomicU32,
    /// What every peer and producer built from this engine counts.
    pub(crate) counters: Arc<MediaCounters>,
}

impl Engine {
    pub(crate) fn new(config: MediaConfig) -> Result<Engine, MediaError> {
        if let Some((lo, hi)) = config.udp_ports {
            if lo == 0 || lo > hi {
                return Err(MediaError::Config(format!(
                    "invalid UDP port range {lo}-{hi}"
                )));
            }
        }
        if config.bind_ip.is_unspecified() {
            // A wildcard makes the library bind one socket per interface, which is not what a
            // deployment with one announced address wants.
            return Err(MediaError::Config(
                "bind_ip must be a concrete address, not a wildcard".to_owned(),
            ));
        }
        let runtime: Arc<dyn Runtime> = Arc::new(BufferedRuntime {
            inner: TokioRuntime,
            buffer_bytes: config.socket_buffer_bytes,
        });
        Ok(Engine {
            config,
            runtime,
            next_port: AtomicU32::new(0),
            counters: Arc::default(),
        })
    }

    /// A candidate as the client must see it: with the announced address, if one is set.
    pub(crate) fn announce_candidate(&self, candidate: String) -> String {
        match self.config.announce_ip {
            Some(public) => {
                crate::media::sdp::announce_candidate(&candidate, self.config.bind_ip, public)
            }
            None => candidate,
        }
    }

    /// A description as the client must see it: with the announced address, if one is set.
    pub(crate) fn announce_sdp(&self, sdp: String) -> String {
        match self.config.announce_ip {
            Some(public) => crate::media::sdp::announce_sdp(&sdp, self.config.bind_ip, public),
            None => sdp,
        }
    }

    /// Builds one server-side peer connection bound to `bind_ip` only.
    pub(crate) async fn build_peer(
        &self,
        kind: PcKind,
        handler: Arc<dyn PeerConnectionEventHandler>,
    ) -> Result<Arc<dyn PeerConnection>, MediaError> {
        let attempts = match self.config.udp_ports {
            Some((lo, hi)) => (u32::from(hi) - u32::from(lo) + 1).min(64),
            None => 1,
        };
        let mut last_error = None;
        for _ in 0..attempts {
            let addr = match self.pick_addr() {
                Ok(addr) => addr,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            match self.build_at(kind, handler.clone(), addr).await {
                Ok(pc) => return Ok(pc),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| internal("no UDP port available")))
    }

    /// An address to bind: port 0 (ephemeral) without a range, otherwise the next free port of
    /// the range, probed by binding it, since the library offers no range of its own.
    fn pick_addr(&self) -> Result<SocketAddr, MediaError> {
        let ip = self.config.bind_ip;
        let Some((lo, hi)) = self.config.udp_ports else {
            return Ok(SocketAddr::new(ip, 0));
        };
        let span = u32::from(hi) - u32::from(lo) + 1;
        for _ in 0..span {
            let offset = self.next_port.fetch_add(1, Ordering::Relaxed) % span;
            let port = u16::try_from(u32::from(lo) + offset).map_err(internal)?;
            let addr = SocketAddr::new(ip, port);
            if UdpSocket::bind(addr).is_ok() {
                return Ok(addr);
            }
        }
        Err(MediaError::Internal("UDP port range exhausted".to_owned()))
    }

    async fn build_at(
        &self,
        kind: PcKind,
        handler: Arc<dyn PeerConnectionEventHandler>,
        addr: SocketAddr,
    ) -> Result<Arc<dyn PeerConnection>, MediaError> {
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
            // A subscribe leg only sends, and every outgoing packet passes through each
            // interceptor as a pipeline stage, so it gets only what a sender needs: answers to
            // NACKs, sender reports, and keyframe requests passed up to the SFU (last in the
            // chain, so the others have seen everything first). The receive-side interceptors
            // (NACK generator, receiver reports, TWCC receiver) would have nothing to report on.
            PcKind::Subscribe => Registry::new()
                .with(Slot::NackResponder, NackResponderBuilder::new().build())
                .with(Slot::SenderReport, SenderReportBuilder::new().build())
                .with(Slot::from(14_000), KeyframeRequestsToApp::default()),
        };

        let network = match self.config.bind_ip {
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
            // The check interval still paces the agent's timer while connecting, and the
            // connection's first DTLS flight (the server starts the handshake on every leg now)
            // leaves only on that timer's next tick: at the library's 200 ms a new subscription
            // waited 200 ms after ICE had finished (tests/BENCHMARKS.md, round 3). RFC 8445's
            // pacing (Ta) is 50 ms. The attempt count is left to the library.
            .with_ice_connection_attempts(Some(ICE_TIMER_INTERVAL), None);
        if let Some((disconnected, failed, keepalive)) = self.config.ice_timeouts {
            settings =
                settings.with_ice_timeouts(Some(disconnected), Some(failed), Some(keepalive));
        }
        if let Some(public) = self.config.announce_ip {
            settings =
                settings.with_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
        }
        // The server gathers no server-reflexive or relay candidates: it has a known address.
        let configuration = RTCConfigurationBuilder::new().build();

        let pc = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media_engine)
            .with_setting_engine(settings.build())
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_runtime(self.runtime.clone())
            .with_udp_addrs(vec![addr])
            .build()
            .await
            .map_err(internal)?;
        Ok(Arc::new(pc))
    }
}

/// Inbound RTCP ends inside the interceptor chain unless an interceptor marks it for the
/// application; this one marks keyframe requests (PLI, FIR) so the SFU can relay them upstream,
/// and leaves everything else (reports, NACKs) to the interceptors that consume it.
#[derive(Default)]
pub struct KeyframeRequestsToApp {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
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
            if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
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

/// The tokio runtime with larger UDP socket buffers, and without outbound TCP. The kernel's
/// default receive buffer (208 KiB) overflows in bursts of video, and the library has no
/// setting for it, but every socket it binds passes through `wrap_udp_socket`.
#[derive(Debug)]
struct BufferedRuntime {
    inner: TokioRuntime,
    buffer_bytes: usize,
}

impl Runtime for BufferedRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        if self.buffer_bytes > 0 {
            let sock = socket2::SockRef::from(&socket);
            // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer than asked for
            // is still better than failing the connection, so errors are only logged.
            if let Err(e) = sock.set_recv_buffer_size(self.buffer_bytes) {
                tracing::debug!(error = %e, "could not enlarge UDP receive buffer");
            }
            if let Err(e) = sock.set_send_buffer_size(self.buffer_bytes) {
                tracing::debug!(error = %e, "could not enlarge UDP send buffer");
            }
        }
        self.inner.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    /// Refuses every outbound TCP connection: the SFU is UDP only and never needs one, but
    /// webrtc 0.21.1 dials any passive TCP candidate it is given, whatever the network types.
    /// The router already keeps every client-named candidate from the library; this is the
    /// second wall. (The library logs a refused dial with its address at `error`, so it must
    /// stay the second wall, never the first.)
    fn connect_tcp<'a>(
        &'a self,
        _remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(std::future::ready(Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the media engine opens no outbound TCP connection",
        ))))
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn name(&self) -> &'static str {
        "tokio-buffered"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_the_library_binds_get_the_configured_buffer_size() {
        let runtime = BufferedRuntime {
            inner: TokioRuntime,
            buffer_bytes: 1024 * 1024,
        };
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let probe = socket.try_clone().unwrap();
        let default = socket2::SockRef::from(&probe).recv_buffer_size().unwrap();
        runtime.wrap_udp_socket(socket).unwrap();
        let now = socket2::SockRef::from(&probe).recv_buffer_size().unwrap();
        // Linux reports double the requested size (bookkeeping overhead), capped by rmem_max.
        assert!(now > default, "receive buffer stayed at {default}");
    }

    #[tokio::test]
    async fn the_runtime_opens_no_outbound_tcp_connection() {
        let runtime = BufferedRuntime {
            inner: TokioRuntime,
            buffer_bytes: 0,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let Err(e) = runtime.connect_tcp(addr).await else {
            panic!("the runtime connected out by TCP");
        };
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "a connection reached the listener");
    }

    #[test]
    fn ports_are_taken_from_the_configured_range() {
        let engine = Engine::new(MediaConfig {
            udp_ports: Some((47300, 47301)),
            ..MediaConfig::default()
        })
        .unwrap();
        for _ in 0..4 {
            let port = engine.pick_addr().unwrap().port();
            assert!((47300..=47301).contains(&port));
        }
    }
}
