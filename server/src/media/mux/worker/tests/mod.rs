//! The worker over real loopback UDP: a browser-like `rtc` peer on its own socket offers, the
//! worker answers, and they connect through the one port.

use std::time::Duration;

use bytes::Bytes;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

use super::*;
use crate::media::codec::{MediaKind, VP8_PAYLOAD_TYPE};
use crate::media::leg::sending_track;
use crate::media::mux::testing::{
    browser, camera_packet, simulcast_browser, vp8_payload, SSRC, SSRC_F, SSRC_Q,
};
use crate::media::udp::route::Dropped;

mod measure;
mod simulcast;

/// The SSRC of a test browser's screen share.
const SCREEN_SSRC: u32 = 0x5C5C_0001;

/// A browser on its own socket, driven by the test.
struct Peer {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    /// RTP this peer received.
    received: Vec<rtc::rtp::packet::Packet>,
    /// RTCP this peer received.
    rtcp: Vec<Box<dyn rtc::rtcp::Packet>>,
    /// RTP sequence numbers the network loses, once each (the header is in the clear).
    lose: Vec<u16>,
    /// The offers the worker made this peer.
    offers: Vec<String>,
}

impl Peer {
    async fn new() -> Peer {
        Peer::with_camera(true).await
    }

    async fn with_camera(camera: bool) -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Peer {
            pc: browser(Instant::now(), camera, local),
            socket,
            local,
            received: Vec::new(),
            rtcp: Vec::new(),
            lose: Vec::new(),
            offers: Vec::new(),
        }
    }

    /// Asks the worker to send this peer `wanted`, and answers its offer.
    async fn receive_from(
        &mut self,
        worker: &TestWorker,
        key: ConnKey,
        wanted: Vec<(ConnKey, MediaKind)>,
    ) {
        worker.open(key, PcKind::Subscribe).await;
        let (reply, offer) = oneshot::channel();
        worker
            .send(Command::Subscribe {
                key,
                wanted,
                restart_ice: false,
                reply,
            })
            .await
            .unwrap();
        let offer = offer.await.unwrap().unwrap();
        self.offers.push(offer.clone());
        self.pc
            .set_remote_description(Instant::now(), RTCSessionDescription::offer(offer).unwrap())
            .unwrap();
        let answer = self.pc.create_answer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), answer.clone())
            .unwrap();
        let (reply, accepted) = oneshot::channel();
        worker
            .send(Command::Accept {
                key,
                answer: as_chromium_answers(&self.offers[self.offers.len() - 1], &answer.sdp),
                reply,
            })
            .await
            .unwrap();
        accepted.await.unwrap().unwrap();
    }

    async fn offer_to(&mut self, worker: &TestWorker, key: ConnKey) {
        self.offer_sharing(worker, key, None).await;
    }

    /// Offers to publish, telling the worker that `screen` is the screen-share track the
    /// rules allow (as the router does).
    async fn offer_sharing(&mut self, worker: &TestWorker, key: ConnKey, screen: Option<&str>) {
        worker.open(key, PcKind::Publish).await;
        let offer = self.pc.create_offer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), offer.clone())
            .unwrap();
        let (reply, answer) = oneshot::channel();
        worker
            .send(Command::Answer {
                key,
                offer: offer.sdp,
                audio_level_id: None,
                screen: screen.map(str::to_owned),
                reply,
            })
            .await
            .unwrap();
        let answer = answer.await.unwrap().unwrap();
        self.pc
            .set_remote_description(
                Instant::now(),
                RTCSessionDescription::answer(answer).unwrap(),
            )
            .unwrap();
    }

    /// Runs the peer for `span`, collecting the worker's reports meanwhile.
    async fn run(
        &mut self,
        span: Duration,
        reports: &mut mpsc::Receiver<Report>,
        seen: &mut Vec<Report>,
    ) {
        let end = tokio::time::Instant::now() + span;
        let mut buf = vec![0u8; 2048];
        while tokio::time::Instant::now() < end {
            while let Some(write) = self.pc.poll_write() {
                let _ = self
                    .socket
                    .send_to(&write.message, write.transport.peer_addr)
                    .await;
            }
            while self.pc.poll_event().is_some() {}
            while let Some(read) = self.pc.poll_read() {
                match read.message {
                    RTCMessage::RtpPacket(_, packet) => self.received.push(packet),
                    RTCMessage::RtcpPacket(_, packets) => self.rtcp.extend(packets),
                    _ => {}
                }
            }
            let wait = self
                .pc
                .poll_timeout()
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(10))
                .min(Duration::from_millis(10));
            tokio::select! {
                got = self.socket.recv_from(&mut buf) => {
                    let (n, from) = got.unwrap();
                    if n >= 12 && stun::classify(&buf[..n]) == stun::Kind::Rtp {
                        let seq = u16::from_be_bytes([buf[2], buf[3]]);
                        // RTCP's second byte is its packet type, 192–223 (RFC 5761 §4).
                        let rtcp = (192..=223).contains(&buf[1]);
                        if let Some(at) = self.lose.iter().position(|&s| s == seq && !rtcp) {
                            self.lose.remove(at);
                            continue;
                        }
                    }
                    let _ = self.pc.handle_read(TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: from,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: BytesMut::from(&buf[..n]),
                    });
                }
                () = tokio::time::sleep(wait) => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                report = reports.recv() => seen.extend(report),
            }
        }
        while let Ok(report) = reports.try_recv() {
            seen.push(report);
        }
    }

    /// A browser whose camera is sent in two simulcast layers.
    async fn with_simulcast_camera() -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Peer {
            pc: simulcast_browser(Instant::now(), local),
            socket,
            local,
            received: Vec::new(),
            rtcp: Vec::new(),
            lose: Vec::new(),
            offers: Vec::new(),
        }
    }

    /// One packet of simulcast layer `rid` (`q` at 160×90 or `f` at 640×360), carrying the
    /// mid and rid header extensions with the ids this peer's offer negotiated.
    fn layer_frame(&mut self, rid: &str, seq: u16, keyframe: bool) {
        self.layer_packet(rid, seq, keyframe, 0);
    }

    /// [`layer_frame`](Self::layer_frame) with its payload padded to `len` bytes.
    fn layer_packet(&mut self, rid: &str, seq: u16, keyframe: bool, len: usize) {
        let offer = self.pc.local_description().unwrap().sdp;
        let id_of = |uri: &str| -> u8 {
            offer
                .lines()
                .find_map(|l| {
                    let rest = l.trim().strip_prefix("a=extmap:")?;
                    let (id, u) = rest.split_once(' ')?;
                    (u.trim() == uri).then(|| id.parse().unwrap())
                })
                .unwrap_or_else(|| panic!("no extmap for {uri}"))
        };
        let (ssrc, width, height) = if rid == "q" {
            (SSRC_Q, 160, 90)
        } else {
            (SSRC_F, 640, 360)
        };
        let mut payload = vp8_payload(keyframe, width, height).to_vec();
        if payload.len() < len {
            payload.resize(len, 0x42);
        }
        let mut packet = camera_packet(seq, u32::from(seq) * 3000, Bytes::from(payload));
        packet.header.ssrc = ssrc;
        packet
            .header
            .set_extension(
                id_of("urn:ietf:params:rtp-hdrext:sdes:mid"),
                Bytes::from_static(b"0"),
            )
            .unwrap();
        packet
            .header
            .set_extension(
                id_of("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"),
                Bytes::copy_from_slice(rid.as_bytes()),
            )
            .unwrap();
        self.write_rtp(packet);
    }

    /// Adds a screen-share track (track id `screen-track`, SSRC [`SCREEN_SSRC`]).
    fn add_screen(&mut self) {
        let track = sending_track(
            MediaKind::Screen,
            "camera".to_owned(),
            "screen-track".to_owned(),
            SCREEN_SSRC,
        );
        self.pc.add_track(track).unwrap();
    }

    fn screen_frame(&mut self, seq: u16) {
        let mut packet = camera_packet(
            seq,
            u32::from(seq) * 9000,
            Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 0]),
        );
        packet.header.ssrc = SCREEN_SSRC;
        self.write_rtp(packet);
    }

    /// Hands one RTP packet to the peer to send (protected, on its next run).
    fn write_rtp(&mut self, packet: rtc::rtp::packet::Packet) {
        self.pc
            .handle_write(TaggedRTCMessage {
                now: Instant::now(),
                message: RTCMessage::RtpPacket(String::new(), packet),
            })
            .unwrap();
    }

    fn camera_frame(&mut self, seq: u16) {
        let packet = camera_packet(
            seq,
            u32::from(seq) * 3000,
            Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 0]),
        );
        self.write_rtp(packet);
    }
}

/// A worker whose connections all belong to one owner, reporting on one channel.
struct TestWorker {
    worker: WorkerHandle,
    owner: Arc<Owner>,
    /// What the worker counts.
    media: Arc<MediaCounters>,
}

impl std::ops::Deref for TestWorker {
    type Target = WorkerHandle;
    fn deref(&self) -> &WorkerHandle {
        &self.worker
    }
}

impl TestWorker {
    async fn open(&self, key: ConnKey, kind: PcKind) {
        let owner = self.owner.clone();
        self.send(Command::Open { key, kind, owner }).await.unwrap();
    }
}

/// A worker on a loopback port, and the channel it reports on (`reports` deep).
fn start(config: MediaConfig, reports: usize) -> (TestWorker, mpsc::Receiver<Report>) {
    let (tx, rx) = mpsc::channel(reports);
    let socket =
        crate::media::udp::io::bind("127.0.0.1:0".parse().unwrap(), config.socket_buffer_bytes)
            .unwrap();
    let media = Arc::new(MediaCounters::default());
    let worker = WorkerHandle::start(config, socket, None, media.clone()).unwrap();
    let owner = Arc::new(Owner {
        reports: tx,
        stream: "p".to_owned(),
        gate: Arc::new(AtomicBool::new(true)),
        screen_gate: Arc::new(AtomicBool::new(true)),
        loud: Arc::default(),
    });
    (
        TestWorker {
            worker,
            owner,
            media,
        },
        rx,
    )
}

fn connected(seen: &[Report], key: ConnKey) -> bool {
    seen.iter().any(|r| {
        matches!(r, Report::State { key: k, state } if *k == key && *state == RTCPeerConnectionState::Connected)
    })
}

fn rtp_seqs(seen: &[Report], key: ConnKey) -> Vec<u16> {
    seen.iter()
        .filter_map(|r| match r {
            Report::Rtp { key: k, packet } if *k == key && packet.header.ssrc == SSRC => {
                Some(packet.header.sequence_number)
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_publish_through_the_one_port_and_each_ones_media_is_told_apart() {
    let (worker, mut reports) = start(MediaConfig::default(), 1024);
    let mut a = Peer::new().await;
    let mut b = Peer::new().await;
    a.offer_to(&worker, 1).await;
    b.offer_to(&worker, 2).await;
    let mut seen = Vec::new();
    connect_all(&mut [&mut a, &mut b], &[1, 2], &mut reports, &mut seen).await;
    for seq in 1..=5 {
        a.camera_frame(seq);
        b.camera_frame(100 + seq);
    }
    a.run(Duration::from_millis(100), &mut reports, &mut seen)
        .await;
    b.run(Duration::from_millis(100), &mut reports, &mut seen)
        .await;
    assert_eq!(rtp_seqs(&seen, 1), vec![1, 2, 3, 4, 5]);
    assert_eq!(rtp_seqs(&seen, 2), vec![101, 102, 103, 104, 105]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_from_anywhere_is_dropped_and_counted_while_media_keeps_flowing() {
    let (worker, mut reports) = start(MediaConfig::default(), 4096);
    let mut a = Peer::new().await;
    a.offer_to(&worker, 1).await;
    let mut seen = Vec::new();
    connect_all(&mut [&mut a], &[1], &mut reports, &mut seen).await;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for n in 0..2000u32 {
        let junk: &[u8] = match n % 3 {
            0 => &[0xFF; 64],                   // not WebRTC at all
            1 => &[0x80, 96, 0, 1, 0, 0, 0, 0], // RTP from a stranger
            _ => &[0, 1, 0, 4, 0, 0, 0, 0],     // broken STUN
        };
        let _ = attacker.send_to(junk, worker.local_addr()).await;
    }
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    a.run(Duration::from_millis(300), &mut reports, &mut seen)
        .await;
    assert_eq!(rtp_seqs(&seen, 1), vec![1, 2, 3, 4, 5]);
    let counted = worker.media.udp_dropped(Dropped::Junk)
        + worker.media.udp_dropped(Dropped::UnknownAddress)
        + worker.media.udp_dropped(Dropped::BadStun);
    assert!(
        counted > 1000,
        "only {counted} of 2000 junk datagrams counted"
    );
    assert!(worker.media.udp_dropped(Dropped::UnknownAddress) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_reached_by_nothing() {
    let (worker, mut reports) = start(MediaConfig::default(), 1024);
    let mut a = Peer::new().await;
    a.offer_to(&worker, 1).await;
    let mut seen = Vec::new();
    connect_all(&mut [&mut a], &[1], &mut reports, &mut seen).await;
    worker.send(Command::Close { key: 1 }).await.unwrap();
    a.run(Duration::from_millis(100), &mut reports, &mut seen)
        .await;
    let before = worker.media.udp_dropped(Dropped::UnknownAddress);
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    a.run(Duration::from_millis(200), &mut reports, &mut seen)
        .await;
    assert!(
        rtp_seqs(&seen, 1).is_empty(),
        "media reached a closed connection"
    );
    assert!(worker.media.udp_dropped(Dropped::UnknownAddress) >= before + 5);
}

/// Chromium answers a section offered `inactive` with `inactive`, where the rtc peer says
/// `recvonly`: the worker must cope with both.
fn as_chromium_answers(offer: &str, answer: &str) -> String {
    let section_of = |sdp: &str| -> Vec<(Option<String>, bool)> {
        sdp.split("m=")
            .skip(1)
            .map(|section| {
                let mid = section
                    .lines()
                    .find_map(|l| l.strip_prefix("a=mid:"))
                    .map(|m| m.trim().to_owned());
                (mid, section.lines().any(|l| l.trim() == "a=inactive"))
            })
            .collect()
    };
    let inactive: Vec<String> = section_of(offer)
        .into_iter()
        .filter_map(|(mid, inactive)| mid.filter(|_| inactive))
        .collect();
    let mut parts = answer.split("m=");
    let mut out = parts.next().unwrap_or_default().to_owned();
    for section in parts {
        let mid = section
            .lines()
            .find_map(|l| l.strip_prefix("a=mid:"))
            .map(str::trim);
        out.push_str("m=");
        if mid.is_some_and(|m| inactive.iter().any(|i| i == m)) {
            out.push_str(&section.replace("a=recvonly", "a=inactive"));
        } else {
            out.push_str(section);
        }
    }
    out
}

async fn connect_all(
    peers: &mut [&mut Peer],
    keys: &[ConnKey],
    reports: &mut mpsc::Receiver<Report>,
    seen: &mut Vec<Report>,
) {
    for _ in 0..40 {
        for peer in peers.iter_mut() {
            peer.run(Duration::from_millis(25), reports, seen).await;
        }
        if keys.iter().all(|k| connected(seen, *k)) {
            return;
        }
    }
    panic!("not all of {keys:?} connected: {seen:?}");
}

/// A worker with a publisher (connection 1) and a viewer of its camera (connection 2), both
/// connected.
async fn publisher_and_viewer() -> (TestWorker, mpsc::Receiver<Report>, Peer, Peer, Vec<Report>) {
    viewer_of(Peer::new().await).await
}

/// [`publisher_and_viewer`] with the publisher `a`, not yet offered.
async fn viewer_of(mut a: Peer) -> (TestWorker, mpsc::Receiver<Report>, Peer, Peer, Vec<Report>) {
    let (worker, mut reports) = start(MediaConfig::default(), 4096);
    let mut b = Peer::with_camera(false).await;
    a.offer_to(&worker, 1).await;
    b.receive_from(&worker, 2, vec![(1, MediaKind::Video)])
        .await;
    let mut seen = Vec::new();
    connect_all(&mut [&mut a, &mut b], &[1, 2], &mut reports, &mut seen).await;
    (worker, reports, a, b, seen)
}

/// Runs two peers in turn, 25 ms each, `rounds` times.
async fn run_both(
    a: &mut Peer,
    b: &mut Peer,
    rounds: usize,
    reports: &mut mpsc::Receiver<Report>,
    seen: &mut Vec<Report>,
) {
    for _ in 0..rounds {
        a.run(Duration::from_millis(25), reports, seen).await;
        b.run(Duration::from_millis(25), reports, seen).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_is_a_track_of_its_own_and_reaches_nobody_once_its_gate_closes() {
    let (worker, mut reports) = start(MediaConfig::default(), 4096);
    let mut a = Peer::new().await;
    a.add_screen();
    let mut b = Peer::with_camera(false).await;
    a.offer_sharing(&worker, 1, Some("screen-track")).await;
    b.receive_from(
        &worker,
        2,
        vec![(1, MediaKind::Video), (1, MediaKind::Screen)],
    )
    .await;
    assert!(
        b.offers[0].contains("a=msid:p screen-1"),
        "the subscriber's track id says it is a screen: {}",
        b.offers[0]
    );
    let mut seen = Vec::new();
    connect_all(&mut [&mut a, &mut b], &[1, 2], &mut reports, &mut seen).await;
    for seq in 1..=3 {
        a.camera_frame(seq);
        a.screen_frame(100 + seq);
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    assert!(seen.iter().any(|r| matches!(
        r,
        Report::Published {
            key: 1,
            kind: MediaKind::Screen
        }
    )));
    let ssrcs = |b: &Peer| -> BTreeSet<u32> { b.received.iter().map(|p| p.header.ssrc).collect() };
    assert_eq!(
        ssrcs(&b).len(),
        2,
        "a camera and a screen, each with its own SSRC"
    );
    // A forwarded stream begins at its publisher's sequence number: the screen's at 101.
    let screen_ssrc = b
        .received
        .iter()
        .find(|p| p.header.sequence_number > 100)
        .map(|p| p.header.ssrc)
        .expect("the screen reached the subscriber");

    worker
        .owner
        .screen_gate
        .store(false, std::sync::atomic::Ordering::Release);
    let before = b.received.len();
    for seq in 4..=6 {
        a.camera_frame(seq);
        a.screen_frame(100 + seq);
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    let after = &b.received[before..];
    assert_eq!(after.len(), 3, "the camera goes on: {after:?}");
    assert!(
        after.iter().all(|p| p.header.ssrc != screen_ssrc),
        "no screen packet passes a closed gate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_receives_a_publishers_packets_with_its_own_ssrc_through_the_one_port() {
    let (_worker, mut reports, mut a, mut b, mut seen) = publisher_and_viewer().await;
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    let got: Vec<(u8, u16)> = b
        .received
        .iter()
        .map(|p| (p.header.payload_type, p.header.sequence_number))
        .collect();
    assert_eq!(
        got,
        (1..=5).map(|s| (VP8_PAYLOAD_TYPE, s)).collect::<Vec<_>>()
    );
    let ssrc = b.received[0].header.ssrc;
    assert!(ssrc != SSRC && b.received.iter().all(|p| p.header.ssrc == ssrc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_who_come_and_go_reuse_one_slot_of_the_subscribers_connection() {
    let (worker, mut reports) = start(MediaConfig::default(), 16_384);
    let mut b = Peer::with_camera(false).await;
    let mut seen = Vec::new();
    for round in 0..8u64 {
        let key = 10 + round;
        let mut p = Peer::new().await;
        p.offer_to(&worker, key).await;
        b.receive_from(&worker, 2, vec![(key, MediaKind::Video)])
            .await;
        connect_all(&mut [&mut p, &mut b], &[key, 2], &mut reports, &mut seen).await;
        let before = b.received.len();
        for seq in 1..=3 {
            p.camera_frame(seq);
        }
        for _ in 0..6 {
            p.run(Duration::from_millis(20), &mut reports, &mut seen)
                .await;
            b.run(Duration::from_millis(20), &mut reports, &mut seen)
                .await;
        }
        assert_eq!(
            b.received.len(),
            before + 3,
            "round {round}: the newcomer's packets"
        );
        worker.send(Command::Close { key }).await.unwrap();
        b.receive_from(&worker, 2, vec![]).await;
    }
    let most = b
        .offers
        .iter()
        .map(|o| o.lines().filter(|l| l.starts_with("m=")).count())
        .max()
        .unwrap();
    assert!(most <= 2, "the subscriber's offers grew to {most} sections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_outruns_the_subscribe_answer_is_answered_once_the_answer_is_in() {
    let (worker, mut reports) = start(MediaConfig::default(), 1024);
    let mut publisher = Peer::new().await;
    publisher.offer_to(&worker, 1).await;
    let mut seen = Vec::new();
    connect_all(&mut [&mut publisher], &[1], &mut reports, &mut seen).await;

    let mut viewer = Peer::with_camera(false).await;
    worker.open(2, PcKind::Subscribe).await;
    let (reply, offer) = oneshot::channel();
    worker
        .send(Command::Subscribe {
            key: 2,
            wanted: vec![(1, MediaKind::Video)],
            restart_ice: false,
            reply,
        })
        .await
        .unwrap();
    let offer = offer.await.unwrap().unwrap();
    let pc = &mut viewer.pc;
    pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::offer(offer.clone()).unwrap(),
    )
    .unwrap();
    let answer = pc.create_answer(None).unwrap();
    pc.set_local_description(Instant::now(), answer.clone())
        .unwrap();
    // A browser checks as soon as it has set its answer; the check takes the direct path and
    // the answer goes through the room, so the check is first at the server.
    let _ = pc.handle_timeout(Instant::now());
    let mut checks = 0;
    while let Some(write) = pc.poll_write() {
        if stun::classify(&write.message) == stun::Kind::Stun {
            checks += 1;
            viewer
                .socket
                .send_to(&write.message, worker.local_addr())
                .await
                .unwrap();
        }
    }
    assert!(checks > 0, "the browser sent no check");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (reply, accepted) = oneshot::channel();
    worker
        .send(Command::Accept {
            key: 2,
            answer: as_chromium_answers(&offer, &answer.sdp),
            reply,
        })
        .await
        .unwrap();
    accepted.await.unwrap().unwrap();

    // The browser sends nothing more (its next check would come only at its next pacing
    // tick): the check it has already sent is answered.
    let mut buf = vec![0u8; 2048];
    let answered = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let (n, _) = viewer.socket.recv_from(&mut buf).await.unwrap();
            // A binding success response (RFC 8489 §5: type 0x0101).
            if n >= 2 && buf[..2] == [0x01, 0x01] {
                return;
            }
        }
    })
    .await;
    assert!(
        answered.is_ok(),
        "the check that came before the answer was lost"
    );
    viewer
        .run(Duration::from_secs(2), &mut reports, &mut seen)
        .await;
    assert!(connected(&seen, 2), "the subscribe leg did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_lost_a_video_packet_gets_it_again_when_it_sends_a_nack() {
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    let (_worker, mut reports, mut a, mut b, mut seen) = publisher_and_viewer().await;
    b.lose = vec![3, 4];
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    run_both(&mut a, &mut b, 4, &mut reports, &mut seen).await;
    let seqs = |b: &Peer| -> Vec<u16> {
        b.received
            .iter()
            .map(|p| p.header.sequence_number)
            .collect()
    };
    assert_eq!(seqs(&b), vec![1, 2, 5], "the network lost 3 and 4");
    let ssrc = b.received[0].header.ssrc;
    let nack = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        // 3, and the bitmask's first bit: 4.
        nacks: vec![NackPair {
            packet_id: 3,
            lost_packets: 0b1,
        }],
    };
    b.pc.handle_write(TaggedRTCMessage {
        now: Instant::now(),
        message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(nack)]),
    })
    .unwrap();
    for _ in 0..4 {
        b.run(Duration::from_millis(25), &mut reports, &mut seen)
            .await;
    }
    assert_eq!(seqs(&b), vec![1, 2, 5, 3, 4], "the lost packets came again");
    assert!(b.received.iter().all(|p| p.header.ssrc == ssrc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_a_sender_report_for_each_track_it_receives_every_second() {
    use rtc::rtcp::sender_report::SenderReport;
    let (_worker, mut reports, mut a, mut b, mut seen) = publisher_and_viewer().await;
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    run_both(&mut a, &mut b, 40, &mut reports, &mut seen).await;
    let ssrc = b.received[0].header.ssrc;
    let reports: Vec<&SenderReport> = b
        .rtcp
        .iter()
        .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
        .collect();
    assert!(!reports.is_empty(), "no sender report in 2 s: {:?}", b.rtcp);
    let last = reports.last().unwrap();
    assert_eq!(last.ssrc, ssrc);
    assert_eq!(last.packet_count, 5);
    assert_eq!(last.octet_count, 5 * 8);
}
