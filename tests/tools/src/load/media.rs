//! The media scenario: rooms of fake browsers (webrtc-rs peers speaking Circle's protocol over a
//! real WebSocket) that publish stamped synthetic Opus and VP8 at realistic rates, and count and
//! time what they receive; also the scripted part of a session (stick mode, hands, grants,
//! reactions) and the capacity search built on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use circle_protocol::{IceCandidate, PcKind, Role};
use futures_util::{SinkExt, StreamExt};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use super::{now_ns, Histogram};
use circle_tests::browser::{
    client_opus, client_pc, client_vp8, local_track, write_opus, ClientEvent, CLIENT_VP8_PT,
};

/// The audio level every fake participant sends (RFC 6464 −dBov): loud enough to count as speech.
const SPEECH_LEVEL: u8 = 30;

/// Marks our payloads, so that anything else on a track is not mistaken for a stamp.
const MAGIC: [u8; 2] = *b"CL";
pub const AUDIO: u8 = 0;
pub const VIDEO: u8 = 1;
/// Opus at 32 kbit/s in 20 ms packets.
pub const AUDIO_PAYLOAD: usize = 80;
/// 30 frames a second.
const FRAME: Duration = Duration::from_micros(33_333);
/// About 500 kbit/s: a 18 kB keyframe every 90 frames (3 s), 1.8 kB delta frames.
const KEYFRAME_BYTES: usize = 18_000;
const DELTA_BYTES: usize = 1_800;
const KEYFRAME_EVERY: u32 = 90;
const MAX_PACKET: usize = 1_200;
/// An audio packet after this much silence starts a talkspurt (a grant, in stick mode).
const ONSET_GAP: Duration = Duration::from_millis(150);

/// Where a stamp sits in a payload: audio has none before it; VP8 has a one-byte payload
/// descriptor and (on a frame's first packet) the first byte of the VP8 header, whose low bit
/// is clear on keyframes.
fn stamp_offset(kind: u8) -> usize {
    if kind == AUDIO {
        0
    } else {
        2
    }
}

pub fn stamp(buf: &mut BytesMut, publisher: u32, kind: u8, sent_ns: u64) {
    buf.put_slice(&MAGIC);
    buf.put_u32(publisher);
    buf.put_u8(kind);
    buf.put_u64(sent_ns);
}

/// (publisher, kind, sent_ns) from a payload this tool stamped.
pub fn read_stamp(payload: &[u8], kind: u8) -> Option<(u32, u8, u64)> {
    let p = payload.get(stamp_offset(kind)..stamp_offset(kind) + 15)?;
    if p[0..2] != MAGIC {
        return None;
    }
    Some((
        u32::from_be_bytes(p[2..6].try_into().ok()?),
        p[6],
        u64::from_be_bytes(p[7..15].try_into().ok()?),
    ))
}

/// One audio packet's payload: stamp, then filler to the Opus size.
pub fn audio_payload(publisher: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(AUDIO_PAYLOAD);
    stamp(&mut b, publisher, AUDIO, now_ns());
    b.resize(AUDIO_PAYLOAD, 0xA5);
    b.freeze()
}

/// One video frame's packets: the frame's bytes split into nearly equal packets of at most
/// `MAX_PACKET`, each stamped with the same send time.
pub fn video_packets(publisher: u32, keyframe: bool) -> Vec<Bytes> {
    let size = if keyframe {
        KEYFRAME_BYTES
    } else {
        DELTA_BYTES
    };
    let n = size.div_ceil(MAX_PACKET);
    let each = size / n;
    let sent = now_ns();
    (0..n)
        .map(|i| {
            let mut b = BytesMut::with_capacity(each + 2);
            // VP8 payload descriptor: S (start of partition) on the frame's first packet.
            b.put_u8(if i == 0 { 0x10 } else { 0x00 });
            b.put_u8(if i == 0 && keyframe { 0x00 } else { 0x01 });
            stamp(&mut b, publisher, VIDEO, sent);
            b.resize(each + 2, 0x5A);
            b.freeze()
        })
        .collect()
}

/// (subscriber, publisher) → first video packet, first keyframe.
pub type FirstVideo = HashMap<(u32, u32), (Instant, Option<Instant>)>;

/// Counters and timings shared by every fake participant of a run.
#[derive(Default)]
pub struct Metrics {
    /// Only packets sent inside [window_start, window_end) are counted, on both ends.
    window_start: AtomicU64,
    window_end: AtomicU64,
    pub sent: [AtomicU64; 2],
    /// Packets sent in the window times the number of subscribers meant to receive them.
    pub expected: [AtomicU64; 2],
    pub received: [AtomicU64; 2],
    pub latency: Histogram,
    /// (subscriber, publisher) → when the first video packet and the first keyframe arrived.
    pub first_video: Mutex<FirstVideo>,
    /// (subscriber, publisher, arrival) of audio after a silence.
    pub onsets: Mutex<Vec<(u32, u32, Instant)>>,
    pub plis: AtomicU64,
}

impl Metrics {
    pub fn open_window(&self) {
        self.window_end.store(u64::MAX, Ordering::SeqCst);
        self.window_start.store(now_ns(), Ordering::SeqCst);
    }

    pub fn close_window(&self) {
        self.window_end.store(now_ns(), Ordering::SeqCst);
    }

    pub fn reset_window(&self) {
        self.window_start.store(0, Ordering::SeqCst);
        self.window_end.store(0, Ordering::SeqCst);
        for k in 0..2 {
            self.sent[k].store(0, Ordering::SeqCst);
            self.expected[k].store(0, Ordering::SeqCst);
            self.received[k].store(0, Ordering::SeqCst);
        }
        self.latency.reset();
    }

    fn in_window(&self, sent_ns: u64) -> bool {
        let start = self.window_start.load(Ordering::Relaxed);
        start != 0 && sent_ns >= start && sent_ns < self.window_end.load(Ordering::Relaxed)
    }

    pub fn on_sent(&self, kind: u8, sent_ns: u64, packets: u64, subscribers: u64) {
        if self.in_window(sent_ns) {
            self.sent[kind as usize].fetch_add(packets, Ordering::Relaxed);
            self.expected[kind as usize].fetch_add(packets * subscribers, Ordering::Relaxed);
        }
    }

    /// Records one received packet; `sent_ns` is its stamp.
    pub fn on_received(&self, kind: u8, sent_ns: u64) {
        if self.in_window(sent_ns) {
            self.received[kind as usize].fetch_add(1, Ordering::Relaxed);
            self.latency
                .record(Duration::from_nanos(now_ns().saturating_sub(sent_ns)));
        }
    }

    pub fn all_sent(&self) -> u64 {
        self.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    pub fn all_expected(&self) -> u64 {
        self.expected
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum()
    }

    pub fn all_received(&self) -> u64 {
        self.received
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .sum()
    }
}

/// One fake browser in a room on the real server.
pub struct Participant {
    pub index: u32,
    pub id: String,
    writer: mpsc::Sender<String>,
    stop: CancellationToken,
    pcs: Vec<Arc<dyn PeerConnection>>,
    pub joined_at: Instant,
    pub publish_connected: watch::Receiver<bool>,
    /// How many subscribers each of this participant's packets is meant for, kept in step with
    /// the room by the scenario.
    pub subscribers: Arc<AtomicU64>,
}

impl Participant {
    /// Sends one protocol message on this participant's session.
    pub fn send(&self, message: Value) {
        let _ = self.writer.try_send(message.to_string());
    }

    pub async fn close(self) {
        self.stop.cancel();
        let _ = self.writer.try_send(r#"{"type":"leave"}"#.to_owned());
        for pc in &self.pcs {
            let _ = pc.close().await;
        }
    }
}

/// Joins `room` as `id` over WebSocket, publishes audio and video when `publish`, and answers
/// every subscribe offer. Returns once `welcome` arrived.
pub async fn join(
    url: &str,
    token: &str,
    index: u32,
    id: String,
    publish: bool,
    metrics: Arc<Metrics>,
) -> Result<Participant, String> {
    let joined_at = Instant::now();
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| format!("connect: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let hello = json!({"type":"hello","protocol":1,"token": token});
    sink.send(Message::text(hello.to_string()))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .map_err(|_| "no welcome".to_owned())?
            .ok_or("closed before welcome")?
            .map_err(|e| e.to_string())?;
        let m: Value = serde_json::from_str(frame.to_text().unwrap_or("{}")).unwrap_or_default();
        match m["type"].as_str() {
            Some("welcome") => break,
            Some("waiting") | None => continue,
            _ => return Err(format!("not admitted: {}", m["type"])),
        }
    }
    let stop = CancellationToken::new();
    let (writer, mut out) = mpsc::channel::<String>(256);
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    text = out.recv() => {
                        let Some(text) = text else { break };
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Drain what was queued before the stop (the `leave`), then close.
            while let Ok(text) = out.try_recv() {
                let _ = sink.send(Message::text(text)).await;
            }
            let _ = sink.close().await;
        });
    }

    let (events_tx, mut events) = mpsc::channel::<ClientEvent>(1024);
    let subscribe_pc = client_pc(PcKind::Subscribe, events_tx.clone()).await;
    let mut pcs = vec![subscribe_pc.clone()];
    let (publish_connected_tx, publish_connected) = watch::channel(false);
    let subscribers = Arc::new(AtomicU64::new(0));
    let mut publish_pc = None;
    if publish {
        let pc = client_pc(PcKind::Publish, events_tx.clone()).await;
        let audio = local_track(
            &id,
            RtpCodecKind::Audio,
            client_opus(),
            0x1000_0000 | (index & 0x0fff_ffff),
        );
        let video = local_track(
            &id,
            RtpCodecKind::Video,
            client_vp8(),
            0x2000_0000 | (index & 0x0fff_ffff),
        );
        pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| e.to_string())?;
        pc.add_track(video.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(|e| e.to_string())?;
        let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
        pc.set_local_description(offer)
            .await
            .map_err(|e| e.to_string())?;
        let sdp = pc
            .local_description()
            .await
            .ok_or("no local description")?
            .sdp;
        let _ = writer
            .send(json!({"type":"sdp","pc":"publish","sdp_type":"offer","sdp": sdp}).to_string())
            .await;
        send_once_connected(
            audio,
            video,
            index,
            publish_connected.clone(),
            stop.clone(),
            metrics.clone(),
            subscribers.clone(),
        );
        pcs.push(pc.clone());
        publish_pc = Some(pc);
    }

    // The browser's event loop: the server's negotiation in, our candidates out, tracks counted.
    {
        let writer = writer.clone();
        let stop = stop.clone();
        let subscribe_pc = subscribe_pc.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    frame = stream.next() => {
                        let Some(Ok(frame)) = frame else { break };
                        let Ok(text) = frame.to_text() else { continue };
                        if !(text.contains(r#""type":"sdp""#) || text.contains(r#""type":"ice""#)) {
                            continue;
                        }
                        let Ok(m) = serde_json::from_str::<Value>(text) else { continue };
                        if let Err(e) = on_signal(&m, publish_pc.as_ref(), &subscribe_pc, &writer).await {
                            tracing::warn!(error = %e, "negotiation failed");
                        }
                    }
                    event = events.recv() => {
                        let Some(event) = event else { break };
                        match event {
                            ClientEvent::Candidate(pc, init) => {
                                let candidate = IceCandidate {
                                    candidate: init.candidate,
                                    sdp_mid: None,
                                    sdp_mline_index: Some(0),
                                    username_fragment: init.username_fragment,
                                };
                                let m = json!({"type":"ice","pc": pc,"candidate": candidate});
                                let _ = writer.send(m.to_string()).await;
                            }
                            ClientEvent::State(PcKind::Publish, state) => {
                                let _ = publish_connected_tx.send(state == RTCPeerConnectionState::Connected);
                            }
                            ClientEvent::State(..) => {}
                            ClientEvent::Track(track) => {
                                tokio::spawn(receive(track, index, metrics.clone(), stop.clone()));
                            }
                        }
                    }
                }
            }
        });
    }

    Ok(Participant {
        index,
        id,
        writer,
        stop,
        pcs,
        joined_at,
        publish_connected,
        subscribers,
    })
}

async fn on_signal(
    m: &Value,
    publish_pc: Option<&Arc<dyn PeerConnection>>,
    subscribe_pc: &Arc<dyn PeerConnection>,
    writer: &mpsc::Sender<String>,
) -> Result<(), String> {
    let pc_kind = m["pc"].as_str().unwrap_or_default();
    let pc = match pc_kind {
        "publish" => publish_pc.ok_or("publish signal without a publish connection")?,
        _ => subscribe_pc,
    };
    match m["type"].as_str() {
        Some("sdp") => {
            let sdp = m["sdp"].as_str().unwrap_or_default().to_owned();
            if m["sdp_type"] == "answer" {
                let answer = RTCSessionDescription::answer(sdp).map_err(|e| e.to_string())?;
                pc.set_remote_description(answer)
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                let offer = RTCSessionDescription::offer(sdp).map_err(|e| e.to_string())?;
                pc.set_remote_description(offer)
                    .await
                    .map_err(|e| e.to_string())?;
                let answer = pc.create_answer(None).await.map_err(|e| e.to_string())?;
                pc.set_local_description(answer)
                    .await
                    .map_err(|e| e.to_string())?;
                let sdp = pc
                    .local_description()
                    .await
                    .ok_or("no local description")?
                    .sdp;
                let reply = json!({"type":"sdp","pc": pc_kind,"sdp_type":"answer","sdp": sdp});
                let _ = writer.send(reply.to_string()).await;
            }
        }
        Some("ice") => {
            if let Ok(c) = serde_json::from_value::<IceCandidate>(m["candidate"].clone()) {
                pc.add_ice_candidate(RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                    username_fragment: c.username_fragment,
                    url: None,
                })
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Starts a publisher's audio and video (and its answers to keyframe requests) once its
/// publish connection is up; the same for Circle's and Janus's fake participants.
pub(crate) fn send_once_connected(
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    index: u32,
    mut connected: watch::Receiver<bool>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    subscribers: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        if connected.wait_for(|c| *c).await.is_err() {
            return;
        }
        let keyframe = Arc::new(AtomicBool::new(true));
        tokio::spawn(send_audio(
            audio,
            index,
            stop.clone(),
            metrics.clone(),
            subscribers.clone(),
        ));
        tokio::spawn(watch_plis(
            video.clone(),
            keyframe.clone(),
            metrics.clone(),
            stop.clone(),
        ));
        send_video(video, index, keyframe, stop, metrics, subscribers).await;
    });
}

async fn send_audio(
    track: Arc<TrackLocalStaticRTP>,
    index: u32,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    subscribers: Arc<AtomicU64>,
) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(1);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = 1000;
    let mut timestamp: u32 = 5000;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let payload = audio_payload(index);
        let sent = read_stamp(&payload, AUDIO).map(|s| s.2).unwrap_or_default();
        if write_opus(&track, ssrc, seq, timestamp, payload, SPEECH_LEVEL, true).await {
            metrics.on_sent(AUDIO, sent, 1, subscribers.load(Ordering::Relaxed));
        }
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
    }
}

async fn send_video(
    track: Arc<TrackLocalStaticRTP>,
    index: u32,
    keyframe_wanted: Arc<AtomicBool>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
    subscribers: Arc<AtomicU64>,
) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(2);
    let mut ticker = tokio::time::interval(FRAME);
    let mut seq: u16 = 60000;
    let mut timestamp: u32 = 7;
    let mut frame: u32 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        // `frame` counts 0..KEYFRAME_EVERY and wraps: 0 is the periodic keyframe.
        let keyframe = frame == 0 || keyframe_wanted.swap(false, Ordering::Relaxed);
        if keyframe {
            // A periodic keyframe also answers any pending request.
            keyframe_wanted.store(false, Ordering::Relaxed);
            frame = 0;
        }
        let packets = video_packets(index, keyframe);
        let sent = read_stamp(&packets[0], VIDEO)
            .map(|s| s.2)
            .unwrap_or_default();
        let last = packets.len() - 1;
        let mut written = 0;
        for (i, payload) in packets.into_iter().enumerate() {
            let packet = rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    payload_type: CLIENT_VP8_PT,
                    sequence_number: seq,
                    timestamp,
                    ssrc,
                    marker: i == last,
                    ..Default::default()
                },
                payload,
            };
            if track.write_rtp(packet).await.is_ok() {
                written += 1;
            }
            seq = seq.wrapping_add(1);
        }
        metrics.on_sent(VIDEO, sent, written, subscribers.load(Ordering::Relaxed));
        frame = (frame + 1) % KEYFRAME_EVERY;
        timestamp = timestamp.wrapping_add(3000);
    }
}

/// A browser's encoder answers a keyframe request with its next frame.
async fn watch_plis(
    track: Arc<TrackLocalStaticRTP>,
    keyframe_wanted: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = track.poll() => event,
        };
        let Some(event) = event else { break };
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        if packets
            .iter()
            .any(|p| p.as_any().is::<PictureLossIndication>())
        {
            metrics.plis.fetch_add(1, Ordering::Relaxed);
            keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }
}

pub(crate) async fn receive(
    track: Arc<dyn TrackRemote>,
    subscriber: u32,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let kind = if track.kind().await == RtpCodecKind::Audio {
        AUDIO
    } else {
        VIDEO
    };
    let mut last_audio: Option<Instant> = None;
    let mut seen_video = false;
    let mut seen_keyframe = false;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = track.poll() => event,
        };
        let packet = match event {
            None | Some(TrackRemoteEvent::OnEnded) => break,
            Some(TrackRemoteEvent::OnRtpPacket(p)) => p,
            Some(_) => continue,
        };
        let now = Instant::now();
        let Some((publisher, k, sent)) = read_stamp(&packet.payload, kind) else {
            continue;
        };
        if k != kind {
            continue;
        }
        metrics.on_received(kind, sent);
        if kind == AUDIO {
            if last_audio.is_none_or(|t| now.duration_since(t) > ONSET_GAP) {
                metrics
                    .onsets
                    .lock()
                    .unwrap()
                    .push((subscriber, publisher, now));
            }
            last_audio = Some(now);
        } else {
            let key = packet.payload.first() == Some(&0x10) && packet.payload.get(1) == Some(&0x00);
            if !seen_video || (key && !seen_keyframe) {
                let mut first = metrics.first_video.lock().unwrap();
                let e = first.entry((subscriber, publisher)).or_insert((now, None));
                if key && e.1.is_none() {
                    e.1 = Some(now);
                }
                seen_video = true;
                seen_keyframe |= key;
            }
        }
    }
}

/// A room of fake browsers: participant 0 is the facilitator, the rest members.
pub struct LoadRoom {
    pub id: String,
    pub participants: Vec<Participant>,
}

pub fn member_role(i: usize) -> Role {
    if i == 0 {
        Role::Facilitator
    } else {
        Role::Member
    }
}
