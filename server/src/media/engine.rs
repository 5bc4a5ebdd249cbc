//! How the webrtc engine builds a server-side peer connection from a leg's pieces (`leg`):
//! socket binding, buffer sizes and the announced address. Every webrtc type stays in here.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use circle_protocol::PcKind;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateType,
};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
    TokioRuntime,
};

use crate::media::counters::MediaCounters;
use crate::media::leg;
use crate::media::{internal, MediaConfig, MediaError};

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
        let (media_engine, registry) = leg::media(kind)?;
        let mut settings = leg::settings(&self.config);
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
