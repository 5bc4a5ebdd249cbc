//! What a hostile client can make the media plane do to others, through the real server: every
//! attack aims at sockets the test itself opens on 127.0.0.1 and counts what reaches them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use circle_protocol::PcKind;
use circle_tests::browser::{
    client_opus, client_pc, client_vp8, local_track, within, Browser, ClientEvent, ServerRoom,
    CLIENT_VP8_PT,
};
use circle_tests::{Client, Role};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use super::server;

/// How long an attack is given to have an effect before the test says it had none.
const ATTACK_WINDOW: Duration = Duration::from_secs(3);

fn roles() -> Vec<(&'static str, Role)> {
    vec![
        ("fac", Role::Facilitator),
        ("ann", Role::Member),
        ("obs", Role::Observer),
    ]
}

/// UDP sockets on loopback that count every datagram they receive.
struct Victims {
    ports: Vec<u16>,
    received: Arc<AtomicUsize>,
}

impl Victims {
    async fn bind(n: usize) -> Victims {
        let received = Arc::new(AtomicUsize::new(0));
        let mut ports = Vec::new();
        for _ in 0..n {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            ports.push(socket.local_addr().unwrap().port());
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while socket.recv_from(&mut buf).await.is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        Victims { ports, received }
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

fn udp_candidate(foundation: usize, port: u16) -> String {
    format!("candidate:{foundation} 1 udp 2130706431 127.0.0.1 {port} typ host")
}

/// `sdp` with `lines` added to every media section, right after its `a=mid`.
fn inject(sdp: &str, lines: &[String]) -> String {
    let mut out = String::new();
    for line in sdp.split_inclusive('\n') {
        out.push_str(line);
        if line.starts_with("a=mid:") {
            for extra in lines {
                out.push_str(extra);
                out.push_str("\r\n");
            }
        }
    }
    out
}

fn ice(pc: &str, candidate: &str) -> Value {
    json!({"type":"ice","pc": pc,"candidate":{"candidate": candidate,"sdpMid":"0","sdpMLineIndex":0}})
}

fn sdp_message(pc: &str, sdp_type: &str, sdp: &str) -> Value {
    json!({"type":"sdp","pc": pc,"sdp_type": sdp_type,"sdp": sdp})
}

/// A webrtc-rs publish connection with a microphone and a camera, its offer set locally.
struct Publisher {
    pc: Arc<dyn PeerConnection>,
    video: Arc<TrackLocalStaticRTP>,
    offer: String,
    events: mpsc::Receiver<ClientEvent>,
}

impl Publisher {
    async fn new(id: &str) -> Publisher {
        let (events_tx, events) = mpsc::channel(1024);
        let pc = client_pc(PcKind::Publish, events_tx).await;
        let audio = local_track(id, RtpCodecKind::Audio, client_opus(), 0x1000_0001);
        let video = local_track(id, RtpCodecKind::Video, client_vp8(), 0x2000_0001);
        pc.add_track(audio as Arc<dyn TrackLocal>).await.unwrap();
        pc.add_track(video.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        let offer = pc.local_description().await.unwrap().sdp;
        Publisher {
            pc,
            video,
            offer,
            events,
        }
    }

    /// Applies the server's answer and candidates as they reach `client`, until connected.
    async fn connect(&mut self, client: &mut Client) {
        within("the hand-made publisher to connect", async {
            loop {
                while let Ok(event) = self.events.try_recv() {
                    if let ClientEvent::State(_, RTCPeerConnectionState::Connected) = event {
                        return;
                    }
                }
                let Some(m) = client.try_recv(Duration::from_millis(50)).await else {
                    continue;
                };
                match m["type"].as_str() {
                    Some("sdp") if m["pc"] == "publish" => {
                        let answer = m["sdp"].as_str().unwrap().to_owned();
                        self.pc
                            .set_remote_description(RTCSessionDescription::answer(answer).unwrap())
                            .await
                            .expect("the server's answer applies");
                    }
                    Some("ice") if m["pc"] == "publish" && !m["candidate"].is_null() => {
                        let candidate = m["candidate"]["candidate"].as_str().unwrap().to_owned();
                        self.pc
                            .add_ice_candidate(RTCIceCandidateInit {
                                candidate,
                                sdp_mline_index: Some(0),
                                ..Default::default()
                            })
                            .await
                            .expect("the server's candidate applies");
                    }
                    Some("error") => panic!("the good offer was refused: {m}"),
                    _ => {}
                }
            }
        })
        .await;
    }

    /// Sends VP8-like frames, one packet every 33 ms, until the task is dropped.
    fn send_video(&self) -> tokio::task::JoinHandle<()> {
        let track = self.video.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_millis(33));
            for i in 0u32.. {
                ticker.tick().await;
                let packet = rtp::Packet {
                    header: rtp::header::Header {
                        version: 2,
                        payload_type: CLIENT_VP8_PT,
                        sequence_number: i as u16,
                        timestamp: i.wrapping_mul(3000),
                        ssrc: 0x2000_0001,
                        marker: true,
                        ..Default::default()
                    },
                    payload: Bytes::from_static(b"\x10\x00Vann"),
                };
                let _ = track.write_rtp(packet).await;
            }
        })
    }
}

/// Sends `message` and waits for the server to refuse it, at once (an error reply) or once the
/// peer's task has tried it (an error after the `ok`).
async fn expect_refused(client: &mut Client, message: Value) -> Value {
    let reply = client.request(message).await.0;
    if reply["type"] == "error" {
        return reply;
    }
    let after = reply["seq"].as_u64().unwrap();
    loop {
        let m = client.recv_type("error").await;
        if m["seq"].as_u64().unwrap() > after {
            return m;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn candidates_a_client_names_receive_nothing_from_the_server() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let fac = Browser::join(&room, "fac", true).await;
    let victims = Victims::bind(3).await;
    let sdp_lines: Vec<String> = victims
        .ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("a={}", udp_candidate(100 + i, *port)))
        .collect();

    // Eve names the victims in her publish offer, and trickles them on publish.
    let mut eve = s.join("r", "eve", Role::Member).await;
    let publisher = Publisher::new("eve").await;
    let offer = inject(&publisher.offer, &sdp_lines);
    eve.request(sdp_message("publish", "offer", &offer))
        .await
        .ok();
    for (i, port) in victims.ports.iter().enumerate() {
        eve.request(ice("publish", &udp_candidate(200 + i, *port)))
            .await
            .ok();
    }

    // Fac publishes, so the server offers Eve a subscribe leg; her answer names the victims too,
    // and so do the candidates she trickles on it.
    let offer = eve.recv_with("sdp", "pc", json!("subscribe")).await;
    let (events_tx, _events) = mpsc::channel(1024);
    let subscribe_pc = client_pc(PcKind::Subscribe, events_tx).await;
    subscribe_pc
        .set_remote_description(
            RTCSessionDescription::offer(offer["sdp"].as_str().unwrap().to_owned()).unwrap(),
        )
        .await
        .unwrap();
    let answer = subscribe_pc.create_answer(None).await.unwrap();
    subscribe_pc.set_local_description(answer).await.unwrap();
    let answer = subscribe_pc.local_description().await.unwrap().sdp;
    eve.request(sdp_message(
        "subscribe",
        "answer",
        &inject(&answer, &sdp_lines),
    ))
    .await
    .ok();
    for (i, port) in victims.ports.iter().enumerate() {
        eve.request(ice("subscribe", &udp_candidate(300 + i, *port)))
            .await
            .ok();
    }

    // Meanwhile an ordinary browser joins the same room and media flows both ways.
    let ann = Browser::join(&room, "ann", true).await;
    ann.wait_packets("fac", "video", 15).await;
    fac.wait_packets("ann", "video", 15).await;

    tokio::time::sleep(ATTACK_WINDOW).await;
    let received = victims.received();
    eprintln!("datagrams the named sockets received: {received}");
    assert_eq!(received, 0, "the server sent to addresses a client named");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tcp_candidate_makes_the_server_open_no_connection() {
    let s = server().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut eve = s.join("r", "eve", Role::Member).await;
    let publisher = Publisher::new("eve").await;
    eve.request(sdp_message("publish", "offer", &publisher.offer))
        .await
        .ok();
    eve.recv_with("sdp", "pc", json!("publish")).await;
    let tcp = format!("candidate:1 1 tcp 1518280447 127.0.0.1 {port} typ host tcptype passive");
    for pc in ["publish", "subscribe"] {
        eve.request(ice(pc, &tcp)).await.ok();
    }

    let accepted = tokio::time::timeout(ATTACK_WINDOW, listener.accept()).await;
    assert!(
        accepted.is_err(),
        "the server connected out by TCP to a client-named address"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_publish_offer_leaves_the_next_good_offer_working() {
    let s = server().await;
    let room = ServerRoom::over_server(&s, "r", &roles());
    let mut ann = s.join("r", "ann", Role::Member).await;
    let mut publisher = Publisher::new("ann").await;

    // Refused before the library sees it: no ICE credentials at all.
    let no_ufrag: String = publisher
        .offer
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("a=ice-ufrag:"))
        .collect();
    // Refused by the library, after it has begun to apply it: two sections, two ufrags.
    let second_ufrag = publisher
        .offer
        .replacen("a=ice-ufrag:", "a=ice-ufrag:zz", 1);
    assert_ne!(second_ufrag, publisher.offer);
    for bad in [no_ufrag, second_ufrag] {
        let error = expect_refused(&mut ann, sdp_message("publish", "offer", &bad)).await;
        assert_eq!(error["code"], "bad_request", "{error}");
    }

    // The browser's real offer still gets an answer, connects, and its video reaches others.
    ann.request(sdp_message("publish", "offer", &publisher.offer))
        .await
        .ok();
    publisher.connect(&mut ann).await;
    let sender = publisher.send_video();
    let obs = Browser::join(&room, "obs", false).await;
    obs.wait_packets("ann", "video", 15).await;
    sender.abort();
    s.stop().await;
}
