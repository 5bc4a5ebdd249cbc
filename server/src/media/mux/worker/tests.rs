//! The worker over real loopback UDP: a browser-like `rtc` peer on its own socket offers, the
//! worker answers, and they connect through the one port.

use std::time::Duration;

use bytes::Bytes;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

use super::*;
use crate::media::codec::VP8_PAYLOAD_TYPE;
use crate::media::mux::testing::{browser, SSRC};

/// A browser on its own socket, driven by the test.
struct Peer {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
}

impl Peer {
    async fn new() -> Peer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Peer {
            pc: browser(Instant::now(), true, local),
            socket,
            local,
        }
    }

    async fn offer_to(&mut self, worker: &WorkerHandle, key: ConnKey) {
        let offer = self.pc.create_offer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), offer.clone())
            .unwrap();
        let (reply, answer) = oneshot::channel();
        worker
            .send(Command::Answer {
                key,
                offer: offer.sdp,
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
            while self.pc.poll_read().is_some() {}
            let wait = self
                .pc
                .poll_timeout()
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(10))
                .min(Duration::from_millis(10));
            tokio::select! {
                got = self.socket.recv_from(&mut buf) => {
                    let (n, from) = got.unwrap();
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

    fn camera_frame(&mut self, seq: u16) {
        let packet = rtc::rtp::packet::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: VP8_PAYLOAD_TYPE,
                sequence_number: seq,
                timestamp: u32::from(seq) * 3000,
                ssrc: SSRC,
                ..Default::default()
            },
            payload: Bytes::from_static(&[0x10, 0, 0, 0, 0, 0, 0, 0]),
        };
        self.pc
            .handle_write(TaggedRTCMessage {
                now: Instant::now(),
                message: RTCMessage::RtpPacket(String::new(), packet),
            })
            .unwrap();
    }
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
    let (tx, mut reports) = mpsc::channel(1024);
    let worker = WorkerHandle::start(
        MediaConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        tx,
    )
    .unwrap();
    let mut a = Peer::new().await;
    let mut b = Peer::new().await;
    a.offer_to(&worker, 1).await;
    b.offer_to(&worker, 2).await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        a.run(Duration::from_millis(50), &mut reports, &mut seen)
            .await;
        b.run(Duration::from_millis(50), &mut reports, &mut seen)
            .await;
        if connected(&seen, 1) && connected(&seen, 2) {
            break;
        }
    }
    assert!(connected(&seen, 1) && connected(&seen, 2), "{seen:?}");
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
    let (tx, mut reports) = mpsc::channel(4096);
    let worker = WorkerHandle::start(
        MediaConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        tx,
    )
    .unwrap();
    let mut a = Peer::new().await;
    a.offer_to(&worker, 1).await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        a.run(Duration::from_millis(50), &mut reports, &mut seen)
            .await;
        if connected(&seen, 1) {
            break;
        }
    }
    assert!(connected(&seen, 1));
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
    let counted = worker.counters.dropped(Dropped::Junk)
        + worker.counters.dropped(Dropped::UnknownAddress)
        + worker.counters.dropped(Dropped::BadStun);
    assert!(
        counted > 1000,
        "only {counted} of 2000 junk datagrams counted"
    );
    assert!(worker.counters.dropped(Dropped::UnknownAddress) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_is_reached_by_nothing() {
    let (tx, mut reports) = mpsc::channel(1024);
    let worker = WorkerHandle::start(
        MediaConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        tx,
    )
    .unwrap();
    let mut a = Peer::new().await;
    a.offer_to(&worker, 1).await;
    let mut seen = Vec::new();
    for _ in 0..30 {
        a.run(Duration::from_millis(50), &mut reports, &mut seen)
            .await;
        if connected(&seen, 1) {
            break;
        }
    }
    assert!(connected(&seen, 1));
    worker.send(Command::Close { key: 1 }).await.unwrap();
    a.run(Duration::from_millis(100), &mut reports, &mut seen)
        .await;
    let before = worker.counters.dropped(Dropped::UnknownAddress);
    for seq in 1..=5 {
        a.camera_frame(seq);
    }
    a.run(Duration::from_millis(200), &mut reports, &mut seen)
        .await;
    assert!(
        rtp_seqs(&seen, 1).is_empty(),
        "media reached a closed connection"
    );
    assert!(worker.counters.dropped(Dropped::UnknownAddress) >= before + 5);
}
