//! A Circle leg and a plain `rtc` peer (a full ICE agent, as a browser is) joined in memory
//! through the shared port's table, on a simulated clock: what the engine's loop will do with
//! sockets, without them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};

use super::*;
use crate::media::codec::{MediaKind, VP8_PAYLOAD_TYPE};
use crate::media::leg::sending_track;
use crate::media::mux::testing::{browser, camera_packet, SSRC};
use crate::media::udp::route::{DatagramRouter, Dropped};
use crate::media::udp::stun;

const SERVER: &str = "127.0.0.1:5000";
const BROWSER: &str = "127.0.0.1:6000";
const CONN: u32 = 7;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The two peers, the table, a clock, and what the server's connection has said.
struct Net {
    now: Instant,
    server: Conn,
    browser: RTCPeerConnection,
    router: DatagramRouter<u32>,
    /// Where the browser's datagrams come from (it may move).
    browser_at: SocketAddr,
    server_states: Vec<RTCPeerConnectionState>,
    /// When (on the simulated clock) the server's ICE, then its whole connection, came up.
    server_ice_connected_at: Option<Instant>,
    server_connected_at: Option<Instant>,
    server_media: Vec<rtc::rtp::packet::Packet>,
    browser_media: Vec<rtc::rtp::packet::Packet>,
    dropped: Vec<Dropped>,
}

impl Net {
    fn new() -> Net {
        Net::leg(PcKind::Publish)
    }

    fn leg(kind: PcKind) -> Net {
        let now = Instant::now();
        Net {
            now,
            server: Conn::new(kind, &MediaConfig::default(), addr(SERVER), now).unwrap(),
            browser: browser(now, kind == PcKind::Publish, addr(BROWSER)),
            router: DatagramRouter::new(),
            browser_at: addr(BROWSER),
            server_states: Vec::new(),
            server_ice_connected_at: None,
            server_connected_at: None,
            server_media: Vec::new(),
            browser_media: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// The browser offers, the server answers, and the table learns the server's ufrag.
    fn negotiate(&mut self, restart: bool) {
        let options = restart.then_some(RTCOfferOptions { ice_restart: true });
        let offer = self.browser.create_offer(options).unwrap();
        self.browser
            .set_local_description(self.now, offer.clone())
            .unwrap();
        let pc = self.server.pc();
        pc.set_remote_description(self.now, offer).unwrap();
        let answer = pc.create_answer(None).unwrap();
        pc.set_local_description(self.now, answer).unwrap();
        let answer = pc.local_description().unwrap();
        if let Some(ufrag) = self.server.take_new_ufrag() {
            let ufrag = ufrag.to_owned();
            assert!(self.router.set_ufrag(CONN, &ufrag));
        }
        let answer = RTCSessionDescription::answer(answer.sdp).unwrap();
        self.browser
            .set_remote_description(self.now, answer)
            .unwrap();
    }

    /// The server offers (a subscribe leg), the browser answers.
    fn server_offers(&mut self) {
        let pc = self.server.pc();
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(self.now, offer).unwrap();
        let offer = pc.local_description().unwrap();
        if let Some(ufrag) = self.server.take_new_ufrag() {
            let ufrag = ufrag.to_owned();
            assert!(self.router.set_ufrag(CONN, &ufrag));
        }
        let offer = RTCSessionDescription::offer(offer.sdp).unwrap();
        self.browser
            .set_remote_description(self.now, offer)
            .unwrap();
        let answer = self.browser.create_answer(None).unwrap();
        self.browser
            .set_local_description(self.now, answer.clone())
            .unwrap();
        self.server
            .pc()
            .set_remote_description(self.now, answer)
            .unwrap();
    }

    /// Moves datagrams both ways until nothing moves, then lets the clock run to the next
    /// timer, for `span` of simulated time.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            let mut moved = true;
            let mut server_next = None;
            let mut browser_next = None;
            while moved {
                moved = false;
                let mut out = Output::default();
                server_next = self.server.drive(&mut out);
                for event in out.events {
                    match event {
                        RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                            if state == RTCPeerConnectionState::Connected {
                                self.server_connected_at.get_or_insert(self.now);
                            }
                            self.server_states.push(state);
                        }
                        RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                            RTCIceConnectionState::Connected,
                        ) => {
                            self.server_ice_connected_at.get_or_insert(self.now);
                        }
                        _ => {}
                    }
                }
                for message in out.messages {
                    if let RTCMessage::RtpPacket(_, packet) = message {
                        self.server_media.push(packet);
                    }
                }
                for transmit in out.transmits {
                    self.router.learn(CONN, transmit.to);
                    moved = true;
                    if transmit.to == self.browser_at {
                        let _ = self.browser.handle_read(TaggedBytesMut {
                            now: self.now,
                            transport: TransportContext {
                                // The browser's own view: a NAT may show it elsewhere.
                                local_addr: addr(BROWSER),
                                peer_addr: addr(SERVER),
                                transport_protocol: TransportProtocol::UDP,
                                ecn: None,
                            },
                            message: transmit.bytes,
                        });
                    }
                }
                while let Some(read) = self.browser.poll_read() {
                    if let RTCMessage::RtpPacket(_, packet) = read.message {
                        self.browser_media.push(packet);
                    }
                }
                while self.browser.poll_event().is_some() {}
                while let Some(write) = self.browser.poll_write() {
                    moved = true;
                    if write.transport.peer_addr == addr(SERVER) {
                        self.deliver(self.browser_at, write.message);
                    }
                }
                browser_next = self.browser.poll_timeout();
            }
            let next = [server_next, browser_next]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end)
                .max(self.now + Duration::from_millis(1))
                .min(end);
            self.now = next;
            self.server.tick(self.now);
            let _ = self.browser.handle_timeout(self.now);
        }
    }

    /// A datagram reaches the shared port from `from`: the table decides.
    fn deliver(&mut self, from: SocketAddr, bytes: BytesMut) {
        match self.router.route(from, &bytes) {
            Ok(conn) => {
                assert_eq!(conn, CONN);
                self.server.receive(self.now, from, bytes);
            }
            Err(why) => self.dropped.push(why),
        }
    }

    fn connected(&self) -> bool {
        self.server_states.last() == Some(&RTCPeerConnectionState::Connected)
    }

    fn camera_frame(&mut self, seq: u16) {
        let packet = camera_packet(
            seq,
            u32::from(seq) * 3000,
            Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 0]),
        );
        self.browser
            .handle_write(TaggedRTCMessage {
                now: self.now,
                message: RTCMessage::RtpPacket(String::new(), packet),
            })
            .unwrap();
    }
}

#[test]
fn a_browser_connects_to_a_leg_through_the_shared_ports_table_and_its_media_arrives_intact() {
    let mut net = Net::new();
    net.negotiate(false);
    assert!(net.server.ufrag().is_some());
    net.run(Duration::from_secs(3));
    assert!(net.connected(), "server states: {:?}", net.server_states);
    assert_eq!(
        net.router.addresses(CONN).collect::<Vec<_>>(),
        vec![addr(BROWSER)],
        "the table learned the browser's address from the server's answer to its check"
    );
    for seq in 1..=5 {
        net.camera_frame(seq);
    }
    net.run(Duration::from_millis(50));
    let seqs: Vec<u16> = net
        .server_media
        .iter()
        .map(|p| p.header.sequence_number)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(net.server_media.iter().all(|p| p.header.ssrc == SSRC));
    assert!(net.dropped.is_empty(), "{:?}", net.dropped);
}

#[test]
fn a_strangers_datagrams_never_reach_the_connection() {
    let mut net = Net::new();
    net.negotiate(false);
    net.run(Duration::from_secs(3));
    assert!(net.connected());
    let stranger = addr("127.0.0.1:6666");
    // The browser's own SRTP, replayed from another address, and a DTLS alert.
    net.camera_frame(1);
    let mut srtp = None;
    while let Some(write) = net.browser.poll_write() {
        if write.message.get(1).map(|b| b & 0x7F) == Some(VP8_PAYLOAD_TYPE) {
            srtp = Some(write.message);
        }
    }
    net.deliver(stranger, srtp.unwrap());
    net.deliver(
        stranger,
        BytesMut::from(&[21u8, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2][..]),
    );
    // A check that names the leg's ufrag still reaches it, whose agent refuses it: no integrity.
    let ufrag = net.server.ufrag().unwrap().to_owned();
    let check = stun::tests::check(&format!("{ufrag}:someone"));
    net.deliver(stranger, BytesMut::from(&check[..]));
    net.run(Duration::from_millis(200));
    assert_eq!(
        net.dropped,
        vec![Dropped::UnknownAddress, Dropped::UnknownAddress]
    );
    assert!(
        net.server_media.is_empty(),
        "the replayed packet reached the leg"
    );
    assert!(
        net.router.addresses(CONN).all(|a| a != stranger),
        "the leg answered a check without integrity"
    );
    assert!(net.connected());
}

#[test]
fn an_ice_restart_gives_the_leg_a_new_name_and_media_keeps_flowing() {
    let mut net = Net::new();
    net.negotiate(false);
    net.run(Duration::from_secs(3));
    assert!(net.connected());
    let before = net.server.ufrag().unwrap().to_owned();
    // The browser restarts ICE from a new address (a network change).
    net.browser_at = addr("127.0.0.1:6001");
    net.negotiate(true);
    let after = net.server.ufrag().unwrap().to_owned();
    assert_ne!(before, after, "a restart must change the server's ufrag");
    let old_check = stun::tests::check(&format!("{before}:x"));
    assert_eq!(
        net.router.route(net.browser_at, &old_check),
        Err(Dropped::UnknownUfrag)
    );
    net.run(Duration::from_secs(3));
    assert!(net.connected(), "server states: {:?}", net.server_states);
    assert!(net.router.addresses(CONN).any(|a| a == net.browser_at));
    net.camera_frame(1);
    net.run(Duration::from_millis(50));
    assert_eq!(net.server_media.len(), 1);
}

#[test]
fn a_subscribe_leg_sends_our_packets_as_they_are_with_our_ssrc_type_and_sequence() {
    const OURS: u32 = 0xC1C1_0001;
    let mut net = Net::leg(PcKind::Subscribe);
    let track = sending_track(
        MediaKind::Video,
        "publisher".to_owned(),
        "publisher-video".to_owned(),
        OURS,
    );
    net.server.pc().add_track(track).unwrap();
    net.server_offers();
    net.run(Duration::from_secs(3));
    assert!(net.connected(), "server states: {:?}", net.server_states);
    for seq in [40_000u16, 40_001, 40_002] {
        let packet = rtc::rtp::packet::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: VP8_PAYLOAD_TYPE,
                sequence_number: seq,
                timestamp: 9_000,
                ssrc: OURS,
                ..Default::default()
            },
            payload: Bytes::from_static(&[0x10, 0, 0, 0x9d, 0x01, 0x2a]),
        };
        net.server
            .send(net.now, RTCMessage::RtpPacket(String::new(), packet))
            .unwrap();
    }
    net.run(Duration::from_millis(50));
    let got: Vec<(u32, u8, u16)> = net
        .browser_media
        .iter()
        .map(|p| {
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (OURS, VP8_PAYLOAD_TYPE, 40_000),
            (OURS, VP8_PAYLOAD_TYPE, 40_001),
            (OURS, VP8_PAYLOAD_TYPE, 40_002)
        ]
    );
}

#[test]
fn a_subscribe_leg_that_sends_many_short_lived_tracks_keeps_statistics_only_for_the_current_ones() {
    let mut net = Net::leg(PcKind::Subscribe);
    let mut current = None;
    for n in 0..10u32 {
        let track = sending_track(
            MediaKind::Video,
            format!("publisher-{n}"),
            format!("video-{n}"),
            0xC1C1_0100 + n,
        );
        let sender = net.server.pc().add_track(track).unwrap();
        if let Some(mut transceiver) = net.server.pc().rtp_transceiver(sender.into()) {
            transceiver.set_direction(rtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly);
        }
        net.server_offers();
        if let Some(old) = current.replace(sender) {
            net.server.pc().remove_track(old).unwrap();
            net.server_offers();
        }
    }
    let stats = net
        .server
        .pc()
        .get_stats(net.now, rtc::statistics::StatsSelector::None);
    let streams = stats.outbound_rtp_streams().count();
    assert_eq!(
        streams, 1,
        "outbound stream statistics after ten tracks came and went"
    );
}

#[test]
fn the_dtls_handshake_begins_the_moment_ice_connects_rather_than_at_the_next_timer() {
    // Both legs: the server is the DTLS client on one of them whichever role the browser
    // takes, and a client's first flight used to wait for the connection's next timer (the
    // ICE agent's 50 ms tick): that long added to every new subscription's first picture.
    for kind in [PcKind::Publish, PcKind::Subscribe] {
        let mut net = Net::leg(kind);
        match kind {
            PcKind::Publish => net.negotiate(false),
            PcKind::Subscribe => {
                let track = sending_track(
                    MediaKind::Video,
                    "publisher".to_owned(),
                    "publisher-video".to_owned(),
                    0xC1C1_0002,
                );
                net.server.pc().add_track(track).unwrap();
                net.server_offers();
            }
        }
        net.run(Duration::from_secs(3));
        assert!(net.connected(), "{kind:?}: {:?}", net.server_states);
        let ice = net.server_ice_connected_at.unwrap();
        let dtls = net.server_connected_at.unwrap();
        assert!(
            dtls - ice < Duration::from_millis(5),
            "{kind:?}: DTLS finished {:?} after ICE connected",
            dtls - ice
        );
    }
}
