//! One server-side peer connection on the shared port, as a value: datagrams and time in,
//! datagrams, events and media out. No socket and no task of its own; the engine's loop owns
//! many of these and calls them in turn.
//!
//! `rtc`'s connection moves its internal events (among them the DTLS handshake's end, which
//! installs the SRTP keys) only inside `poll_event`, so every input is followed by a full
//! drain of reads, events and writes before the next timeout is read (see `drive`).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use circle_protocol::PcKind;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::media::leg;
use crate::media::{internal, MediaConfig, MediaError};

/// A datagram to send.
#[derive(Debug)]
pub(crate) struct Transmit {
    pub to: SocketAddr,
    pub bytes: BytesMut,
}

/// What one drain produced besides datagrams.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub transmits: Vec<Transmit>,
    pub events: Vec<RTCPeerConnectionEvent>,
    pub messages: Vec<RTCMessage>,
}

pub(crate) struct Conn {
    pc: RTCPeerConnection,
    /// The address every candidate of ours names (the announced one, if set): the agent matches
    /// an inbound datagram to a local candidate by it.
    local: SocketAddr,
    /// The ICE ufrag of the latest local description.
    ufrag: Option<String>,
}

impl Conn {
    /// A lite leg whose only candidate is `local`, the shared port as browsers reach it.
    pub(crate) fn new(
        kind: PcKind,
        config: &MediaConfig,
        local: SocketAddr,
        now: Instant,
    ) -> Result<Conn, MediaError> {
        let (media_engine, registry) = leg::media(kind)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(leg::settings(config).build())
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(internal)?;
        let init = host_candidate(local)?;
        pc.add_local_candidate(init).map_err(internal)?;
        Ok(Conn {
            pc,
            local,
            ufrag: None,
        })
    }

    pub(crate) fn pc(&mut self) -> &mut RTCPeerConnection {
        &mut self.pc
    }

    #[cfg(test)]
    pub(crate) fn ufrag(&self) -> Option<&str> {
        self.ufrag.as_deref()
    }

    /// Reads the ufrag of the local description just set. The agent draws fresh credentials
    /// for every ICE restart (fixed ones would make a restart invisible to the browser), so
    /// the engine learns the name from the description, and re-keys its table when this
    /// returns a new one.
    pub(crate) fn take_new_ufrag(&mut self) -> Option<&str> {
        let sdp = self.pc.local_description()?.sdp;
        let ufrag = sdp
            .lines()
            .find_map(|line| line.trim_end().strip_prefix("a=ice-ufrag:"))?
            .to_owned();
        if self.ufrag.as_deref() == Some(ufrag.as_str()) {
            return None;
        }
        self.ufrag = Some(ufrag);
        self.ufrag.as_deref()
    }

    /// A datagram from `from` that the table routed here.
    pub(crate) fn receive(&mut self, now: Instant, from: SocketAddr, bytes: BytesMut) {
        // Always Ok: the library logs what it cannot use and carries on.
        let _ = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                transport_protocol: TransportProtocol::UDP,
                ecn: None,
            },
            message: bytes,
        });
    }

    /// Time has come for the connection's timers.
    pub(crate) fn tick(&mut self, now: Instant) {
        // An error here is one handler's timer failing; the connection's state says the rest.
        let _ = self.pc.handle_timeout(now);
    }

    /// Media to send on this connection through its pipeline: the packet goes out as it is
    /// (our SSRC, payload type and sequence), through the interceptors and SRTP. The engine
    /// sends RTCP this way; forwarded RTP takes `protect_rtp`.
    pub(crate) fn send(&mut self, now: Instant, message: RTCMessage) -> Result<(), MediaError> {
        self.pc
            .handle_write(TaggedRTCMessage { now, message })
            .map_err(internal)
    }

    /// One forwarded RTP packet, marshalled, protected for the wire and its destination: sent
    /// past the pipeline (see `mux::sender`). `None` until DTLS has keyed the connection and
    /// ICE has chosen a path.
    pub(crate) fn protect_rtp(
        &mut self,
        plaintext: &[u8],
    ) -> Option<Result<(SocketAddr, BytesMut), MediaError>> {
        let to = self.pc.selected_remote_address()?;
        let protected = self.pc.protect_rtp(plaintext)?;
        Some(protected.map(|bytes| (to, bytes)).map_err(internal))
    }

    /// Drains everything the last inputs produced into `out`, and says when to call `tick`.
    pub(crate) fn drive(&mut self, out: &mut Output) -> Option<Instant> {
        loop {
            let mut moved = false;
            while let Some(read) = self.pc.poll_read() {
                out.messages.push(read.message);
                moved = true;
            }
            while let Some(event) = self.pc.poll_event() {
                out.events.push(event);
                moved = true;
            }
            while let Some(write) = self.pc.poll_write() {
                out.transmits.push(Transmit {
                    to: write.transport.peer_addr,
                    bytes: write.message,
                });
                moved = true;
            }
            if !moved {
                return self.pc.poll_timeout();
            }
        }
    }
}

/// A UDP host candidate at `at`, as a description carries it.
pub(crate) fn host_candidate(at: SocketAddr) -> Result<RTCIceCandidateInit, MediaError> {
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
    .map_err(internal)?;
    RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(internal)
}

#[cfg(test)]
mod tests;
