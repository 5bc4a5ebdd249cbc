//! The fake browser: joins a room, optionally publishes a microphone and a camera (and later a
//! screen), answers every subscribe offer and counts what arrives per publisher, with the waits
//! the tests use.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use circle_protocol::{IceCandidate, PcKind, SdpType};
use circle_server::media::{RouterEvent, Signal};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState, RTCSessionDescription,
};

use super::peer::{client_pc, ClientEvent};
use super::rtp::{
    client_opus, client_vp8, labelled_track, local_track, rand_u32, send_audio, send_video, QUIET,
};
use super::{wait_for, within, BrowserCommand, Changes, Room, RoomLink};

/// What a browser received on its subscribe connection, per (publisher, kind): `audio`,
/// `video`, or `screen` for a track whose id says it is one (protocol.md, "Screen share").
#[derive(Default, Debug)]
pub struct Received {
    pub streams: BTreeMap<(String, &'static str), Stream>,
}

#[derive(Default, Debug, Clone)]
pub struct Stream {
    pub sequence_numbers: Vec<u16>,
    pub payload_types: Vec<u8>,
    /// A packet whose payload named someone other than the track's media stream id.
    pub misrouted: u32,
    /// Packets whose payload a screen-share track sent (`S`), whatever track they came on.
    pub screen_frames: u32,
}

impl Stream {
    pub fn count(&self) -> usize {
        self.sequence_numbers.len()
    }
}

/// How this browser answers subscribe offers.
#[derive(Clone, Default)]
struct Answering {
    offers: Arc<Mutex<Vec<String>>>,
    /// Every publish answer the server sent, in order.
    publish_answers: Arc<Mutex<Vec<String>>>,
    /// While set, answers are prepared but held back, as from a slow browser.
    hold: Arc<std::sync::atomic::AtomicBool>,
    held: Arc<Mutex<Option<String>>>,
}

type RemoteTracks = Arc<Mutex<Vec<(String, Arc<dyn TrackRemote>)>>>;

/// A fake browser: joins the room, optionally publishes a microphone and a camera, answers
/// every subscribe offer and counts what arrives.
pub struct Browser {
    pub id: String,
    room: RoomLink,
    pub received: Arc<Mutex<Received>>,
    /// Every subscribe offer this browser answered, in order.
    pub offers: Arc<Mutex<Vec<String>>>,
    /// Keyframe requests that reached this browser's camera.
    pub plis_received: Arc<AtomicU32>,
    /// The loudness written into outgoing audio (RFC 6464 −dBov).
    pub audio_level: Arc<AtomicU8>,
    publish_connected: watch::Receiver<bool>,
    subscribe_connected: watch::Receiver<bool>,
    remote_tracks: RemoteTracks,
    /// `PeerState` events the server reported for this participant.
    pub server_states: Arc<Mutex<Vec<(PcKind, bool)>>>,
    /// Errors the server sent about this browser's negotiation. One is a test failure unless
    /// the test said it expects refusals ([`Browser::expect_refusals`]).
    pub errors: Arc<Mutex<Vec<String>>>,
    refusals_expected: Arc<std::sync::atomic::AtomicBool>,
    /// Candidates the server trickled to this browser.
    pub server_candidates: Arc<Mutex<Vec<IceCandidate>>>,
    pub changes: Changes,
    answering: Answering,
    publish_pc: Option<Arc<dyn PeerConnection>>,
    subscribe_pc: Arc<dyn PeerConnection>,
    /// Cancelled by `close`: stops the browser's own tasks (senders, event loop).
    stop: tokio_util::sync::CancellationToken,
}

impl Browser {
    /// Joins; with `publish`, offers audio and video and starts sending once connected.
    pub async fn join(room: &impl Room, id: &str, publish: bool) -> Browser {
        Self::join_with(room, id, publish, publish).await
    }

    /// Joins and publishes a microphone only, like a member whose camera stays off.
    pub async fn join_audio_only(room: &impl Room, id: &str) -> Browser {
        Self::join_with(room, id, true, false).await
    }

    async fn join_with(room: &impl Room, id: &str, publish: bool, with_video: bool) -> Browser {
        let room = room.link();
        let (inbox_tx, mut inbox) = mpsc::channel::<RouterEvent>(1024);
        room.command(BrowserCommand::Add(id.into(), publish, inbox_tx))
            .await;

        let (events_tx, mut events) = mpsc::channel::<ClientEvent>(1024);
        let subscribe_pc = client_pc(PcKind::Subscribe, events_tx.clone()).await;
        let mut publish_pc = None;
        let audio_level = Arc::new(AtomicU8::new(QUIET));
        let plis_received = Arc::new(AtomicU32::new(0));
        let mut local_tracks = None;
        if publish {
            let pc = client_pc(PcKind::Publish, events_tx.clone()).await;
            let audio = local_track(
                id,
                RtpCodecKind::Audio,
                client_opus(),
                0x1000_0000 | rand_u32(id, 1),
            );
            let video = with_video.then(|| {
                local_track(
                    id,
                    RtpCodecKind::Video,
                    client_vp8(),
                    0x2000_0000 | rand_u32(id, 2),
                )
            });
            pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
                .await
                .unwrap();
            if let Some(video) = &video {
                pc.add_track(video.clone() as Arc<dyn TrackLocal>)
                    .await
                    .unwrap();
            }
            let offer = pc.create_offer(None).await.unwrap();
            pc.set_local_description(offer).await.unwrap();
            let sdp = pc.local_description().await.unwrap().sdp;
            room.command(BrowserCommand::Signal(
                id.into(),
                Signal::Sdp {
                    pc: PcKind::Publish,
                    sdp_type: SdpType::Offer,
                    sdp,
                },
            ))
            .await;
            local_tracks = Some((audio, video));
            publish_pc = Some(pc);
        }

        let received = Arc::new(Mutex::new(Received::default()));
        let answering = Answering::default();
        let offers = answering.offers.clone();
        let remote_tracks = Arc::new(Mutex::new(Vec::new()));
        let (publish_connected_tx, publish_connected) = watch::channel(false);
        let (subscribe_connected_tx, subscribe_connected) = watch::channel(false);
        let server_states = Arc::new(Mutex::new(Vec::new()));
        let server_candidates = Arc::new(Mutex::new(Vec::new()));
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let refusals_expected: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let changes = Changes::new();

        let stop = tokio_util::sync::CancellationToken::new();
        // The browser's own event loop: negotiation in, candidates out, tracks counted.
        {
            let stop = stop.clone();
            let room = room.clone();
            let id = id.to_owned();
            let publish_pc = publish_pc.clone();
            let subscribe_pc = subscribe_pc.clone();
            let received = received.clone();
            let answering = answering.clone();
            let remote_tracks = remote_tracks.clone();
            let server_states = server_states.clone();
            let server_candidates = server_candidates.clone();
            let errors = errors.clone();
            let refusals_expected = refusals_expected.clone();
            let changes = changes.clone();
            tokio::spawn(async move {
                let mut removed = false;
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        // A removed participant's inbox closes; the browser itself lives on.
                        event = inbox.recv(), if !removed => {
                            let Some(event) = event else {
                                removed = true;
                                continue;
                            };
                            match event {
                                RouterEvent::Signal { signal, .. } => {
                                    if let Signal::Ice { candidate: Some(c), .. } = &signal {
                                        server_candidates.lock().unwrap().push(c.clone());
                                    }
                                    handle_signal(&room, &id, publish_pc.as_ref(), &subscribe_pc, &answering, signal).await;
                                }
                                RouterEvent::PeerState { pc, connected, .. } => {
                                    server_states.lock().unwrap().push((pc, connected));
                                }
                                RouterEvent::Error { message, .. } => {
                                    assert!(refusals_expected.load(Ordering::SeqCst), "server error for {id}: {message}");
                                    errors.lock().unwrap().push(message);
                                }
                                RouterEvent::Speaking { .. } | RouterEvent::Published { .. } => {}
                            }
                            changes.bump();
                        }
                        event = events.recv() => {
                            let Some(event) = event else { break };
                            changes.bump();
                            match event {
                                ClientEvent::Candidate(pc, init) => {
                                    let signal = Signal::Ice {
                                        pc,
                                        candidate: Some(IceCandidate {
                                            candidate: init.candidate,
                                            sdp_mid: None,
                                            sdp_mline_index: Some(0),
                                            username_fragment: init.username_fragment,
                                        }),
                                    };
                                    let _ = room.send(BrowserCommand::Signal(id.as_str().into(), signal)).await;
                                }
                                ClientEvent::State(pc, state) => {
                                    let connected = state == RTCPeerConnectionState::Connected;
                                    match pc {
                                        PcKind::Publish => { let _ = publish_connected_tx.send(connected); }
                                        PcKind::Subscribe => { let _ = subscribe_connected_tx.send(connected); }
                                    }
                                }
                                ClientEvent::Track(track) => {
                                    let stream_id = track.stream_id().await.to_string();
                                    remote_tracks.lock().unwrap().push((stream_id.clone(), track.clone()));
                                    tokio::spawn(count(track, stream_id, received.clone(), changes.clone()));
                                }
                            }
                        }
                    }
                }
            });
        }

        let browser = Browser {
            id: id.to_owned(),
            room: room.clone(),
            received,
            offers,
            plis_received: plis_received.clone(),
            audio_level: audio_level.clone(),
            publish_connected,
            subscribe_connected,
            remote_tracks,
            server_states,
            errors,
            refusals_expected,
            server_candidates,
            changes: changes.clone(),
            answering,
            publish_pc,
            subscribe_pc,
            stop,
        };
        if let Some((audio, video)) = local_tracks {
            browser.wait_publish_connected().await;
            let stop = browser.stop.clone();
            tokio::spawn(stop.run_until_cancelled_owned(send_audio(
                audio,
                id.to_owned(),
                audio_level,
            )));
            if let Some(video) = video {
                let stop = browser.stop.clone();
                tokio::spawn(stop.run_until_cancelled_owned(send_video(
                    video.clone(),
                    id.to_owned(),
                    'V',
                )));
                let stop = browser.stop.clone();
                tokio::spawn(stop.run_until_cancelled_owned(count_plis(
                    video,
                    plis_received,
                    changes,
                )));
            }
        }
        browser
    }

    /// From now on the server's errors are recorded in `errors` rather than failing the test.
    pub fn expect_refusals(&self) {
        self.refusals_expected.store(true, Ordering::SeqCst);
    }

    /// Adds a screen-share track (track id `screen-<id>`) to the publish connection, offers
    /// again and sends frames on it, as a browser does after `getDisplayMedia`. The server
    /// accepts it only once `set_media` has announced that track id and the rules allow the
    /// share. Returns the track id.
    pub async fn share_screen(&self) -> String {
        let pc = self
            .publish_pc
            .as_ref()
            .expect("a browser that publishes shares");
        let track = labelled_track(
            &self.id,
            "screen",
            RtpCodecKind::Video,
            client_vp8(),
            0x3000_0000 | rand_u32(&self.id, 3),
        );
        let track_id = format!("screen-{}", self.id);
        pc.add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .unwrap();
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        let sdp = pc.local_description().await.unwrap().sdp;
        self.room
            .command(BrowserCommand::Signal(
                self.id.as_str().into(),
                Signal::Sdp {
                    pc: PcKind::Publish,
                    sdp_type: SdpType::Offer,
                    sdp,
                },
            ))
            .await;
        let stop = self.stop.clone();
        tokio::spawn(stop.run_until_cancelled_owned(send_video(track, self.id.clone(), 'S')));
        track_id
    }

    pub async fn wait_publish_connected(&self) {
        let mut rx = self.publish_connected.clone();
        within("the publish connection", rx.wait_for(|c| *c))
            .await
            .unwrap();
    }

    /// Packets received so far from `publisher`'s `kind` ("audio"/"video").
    pub fn stream(&self, publisher: &str, kind: &'static str) -> Stream {
        self.received
            .lock()
            .unwrap()
            .streams
            .get(&(publisher.to_owned(), kind))
            .cloned()
            .unwrap_or_default()
    }

    pub fn publishers_heard(&self) -> Vec<(String, &'static str)> {
        self.received
            .lock()
            .unwrap()
            .streams
            .keys()
            .cloned()
            .collect()
    }

    /// Waits until at least `n` packets of `publisher`'s `kind` arrived.
    pub async fn wait_packets(&self, publisher: &str, kind: &'static str, n: usize) -> Stream {
        let what = format!("{n} {kind} packets from {publisher} at {}", self.id);
        self.wait_until(&what, || {
            let s = self.stream(publisher, kind);
            (s.count() >= n).then_some(s)
        })
        .await
    }

    /// Rechecks `check` whenever something reaches this browser.
    pub async fn wait_until<T>(&self, what: &str, check: impl FnMut() -> Option<T>) -> T {
        wait_for(what, &self.changes, check).await
    }

    /// Waits until the browser's publish connection is no longer connected.
    pub async fn wait_publish_disconnected(&self) {
        let mut rx = self.publish_connected.clone();
        within("the publish connection to drop", rx.wait_for(|c| !*c))
            .await
            .unwrap();
    }

    /// From now on, prepare subscribe answers but do not send them.
    pub fn hold_answers(&self) {
        self.answering.hold.store(true, Ordering::SeqCst);
    }

    /// Sends the held answer (if any) and answers promptly again.
    pub async fn release_answers(&self) {
        self.answering.hold.store(false, Ordering::SeqCst);
        let held = self.answering.held.lock().unwrap().take();
        if let Some(answer) = held {
            send_answer(&self.room, &self.id, answer).await;
        }
    }

    /// Offers again on `publish` with new ICE credentials, as a browser's `restartIce()`
    /// followed by negotiation does.
    pub async fn restart_publish_ice(&self) {
        let pc = self.publish_pc.as_ref().expect("a browser that publishes");
        let options = rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true };
        let offer = pc.create_offer(Some(options)).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        let sdp = pc.local_description().await.unwrap().sdp;
        self.room
            .command(BrowserCommand::Signal(
                self.id.as_str().into(),
                Signal::Sdp {
                    pc: PcKind::Publish,
                    sdp_type: SdpType::Offer,
                    sdp,
                },
            ))
            .await;
    }

    /// Every publish answer the server sent this browser, in order.
    pub fn publish_answers(&self) -> Vec<String> {
        self.answering.publish_answers.lock().unwrap().clone()
    }

    /// Waits until the subscribe connection is connected.
    pub async fn wait_subscribe_connected(&self) {
        let mut rx = self.subscribe_connected.clone();
        within("the subscribe connection", rx.wait_for(|c| *c))
            .await
            .unwrap();
    }

    pub fn offer_count(&self) -> usize {
        self.offers.lock().unwrap().len()
    }

    pub fn plis(&self) -> u32 {
        self.plis_received.load(Ordering::Relaxed)
    }

    /// Sends a PLI about `publisher`'s video, as a browser's decoder would.
    pub async fn send_pli(&self, publisher: &str) {
        let tracks = self.remote_tracks.lock().unwrap().clone();
        for (stream_id, track) in tracks {
            if stream_id == publisher && track.kind().await == RtpCodecKind::Video {
                let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
                let _ = track
                    .write_rtcp(vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    })])
                    .await;
            }
        }
    }

    pub async fn close(&self) {
        self.stop.cancel();
        if let Some(pc) = &self.publish_pc {
            let _ = pc.close().await;
        }
        let _ = self.subscribe_pc.close().await;
    }
}

async fn handle_signal(
    room: &RoomLink,
    id: &str,
    publish_pc: Option<&Arc<dyn PeerConnection>>,
    subscribe_pc: &Arc<dyn PeerConnection>,
    answering: &Answering,
    signal: Signal,
) {
    match signal {
        Signal::Sdp {
            pc: PcKind::Publish,
            sdp_type: SdpType::Answer,
            sdp,
        } => {
            let pc = publish_pc.expect("an answer for a browser that did not publish");
            answering.publish_answers.lock().unwrap().push(sdp.clone());
            pc.set_remote_description(RTCSessionDescription::answer(sdp).unwrap())
                .await
                .expect("publish answer applies");
        }
        Signal::Sdp {
            pc: PcKind::Subscribe,
            sdp_type: SdpType::Offer,
            sdp,
        } => {
            subscribe_pc
                .set_remote_description(RTCSessionDescription::offer(sdp.clone()).unwrap())
                .await
                .expect("subscribe offer applies");
            let answer = subscribe_pc.create_answer(None).await.unwrap();
            subscribe_pc.set_local_description(answer).await.unwrap();
            let answer = subscribe_pc.local_description().await.unwrap().sdp;
            answering.offers.lock().unwrap().push(sdp);
            if answering.hold.load(Ordering::SeqCst) {
                *answering.held.lock().unwrap() = Some(answer);
                return;
            }
            send_answer(room, id, answer).await;
        }
        Signal::Ice {
            pc,
            candidate: Some(candidate),
        } => {
            let target = match pc {
                PcKind::Publish => publish_pc.expect("publish candidate"),
                PcKind::Subscribe => subscribe_pc,
            };
            target
                .add_ice_candidate(RTCIceCandidateInit {
                    candidate: candidate.candidate,
                    sdp_mid: candidate.sdp_mid,
                    sdp_mline_index: candidate.sdp_mline_index,
                    username_fragment: candidate.username_fragment,
                    url: None,
                })
                .await
                .expect("server candidate applies");
        }
        Signal::Ice {
            candidate: None, ..
        } => {}
        other => panic!("unexpected signal for {id}: {other:?}"),
    }
}

async fn send_answer(room: &RoomLink, id: &str, answer: String) {
    room.command(BrowserCommand::Signal(
        id.into(),
        Signal::Sdp {
            pc: PcKind::Subscribe,
            sdp_type: SdpType::Answer,
            sdp: answer,
        },
    ))
    .await;
}

async fn count_plis(track: Arc<TrackLocalStaticRTP>, plis: Arc<AtomicU32>, changes: Changes) {
    while let Some(event) = track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for p in packets {
            if p.as_any().is::<PictureLossIndication>() {
                plis.fetch_add(1, Ordering::Relaxed);
                changes.bump();
            }
        }
    }
}

async fn count(
    track: Arc<dyn TrackRemote>,
    stream_id: String,
    received: Arc<Mutex<Received>>,
    changes: Changes,
) {
    let kind = if track.kind().await == RtpCodecKind::Audio {
        "audio"
    } else if track.track_id().await.starts_with("screen") {
        "screen"
    } else {
        "video"
    };
    received
        .lock()
        .unwrap()
        .streams
        .entry((stream_id.clone(), kind))
        .or_default();
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let payload = String::from_utf8_lossy(&packet.payload).to_string();
                let mut received = received.lock().unwrap();
                let stream = received
                    .streams
                    .entry((stream_id.clone(), kind))
                    .or_default();
                if !payload.ends_with(stream_id.as_str()) {
                    stream.misrouted += 1;
                }
                if packet.payload.get(2) == Some(&b'S') {
                    stream.screen_frames += 1;
                }
                stream.sequence_numbers.push(packet.header.sequence_number);
                stream.payload_types.push(packet.header.payload_type);
                drop(received);
                changes.bump();
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// The `a=ice-ufrag` of a session description: a new one means an ICE restart.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}
