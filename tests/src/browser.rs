//! Fake browsers built with the same webrtc crate, publishing synthetic Opus/VP8 RTP and counting
//! what they receive, and the room they talk to: either a stand-in task that owns a Router
//! directly (`Room::start`, for the media module alone), or the real server over WebSocket
//! (`Room::over_server`, where the room's rules decide the gate).

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use circle_protocol::{IceCandidate, ParticipantId, PcKind, SdpType};
use circle_server::media::{Media, MediaConfig, Router, RouterEvent, Signal};
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(30);

/// Browsers number their payload types differently from the server (111/96), so forwarding
/// must rewrite them.
pub const CLIENT_OPUS_PT: u8 = 109;
pub const CLIENT_VP8_PT: u8 = 98;
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

pub const QUIET: u8 = 127;
pub const LOUD: u8 = 20;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Something in a browser changed (a packet, an offer, a PLI, a server event): waiters recheck.
#[derive(Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Changes {
    fn new() -> Changes {
        Changes(Arc::new(watch::channel(0).0))
    }

    fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Rechecks `check` after every change until it returns `Some`, for at most `WAIT`.
pub async fn wait_for<T>(what: &str, changes: &Changes, mut check: impl FnMut() -> Option<T>) -> T {
    // Subscribing first means no change between the check and the wait is missed.
    let mut rx = changes.0.subscribe();
    within(what, async {
        loop {
            if let Some(v) = check() {
                return v;
            }
            rx.changed()
                .await
                .expect("changes sender lives in the browser");
        }
    })
    .await
}

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------------------------------------
// The stand-in room.

enum RoomCommand {
    Add(ParticipantId, bool, mpsc::Sender<RouterEvent>),
    Remove(ParticipantId),
    Gate(ParticipantId, bool),
    Signal(ParticipantId, Signal),
    /// Over the real server only: any protocol message, sent on that participant's session.
    Send(ParticipantId, serde_json::Value),
    /// Over the real server only: drop the participant's socket without a close frame.
    DropSession(ParticipantId),
    /// Over the real server only: reconnect with `resume`.
    Resume(ParticipantId),
}

/// A stand-in for the room's task: owns the Router, never awaits it, routes its events.
#[derive(Clone)]
pub struct Room {
    commands: mpsc::Sender<RoomCommand>,
    speaking: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<ParticipantId>>>>,
    /// Over the real server: every message each participant's session received.
    pub messages: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
}

impl Room {
    pub fn start() -> Room {
        Room::start_with(MediaConfig::default())
    }

    pub fn start_with(config: MediaConfig) -> Room {
        init_tracing();
        let media = Media::new(config).expect("media");
        let (events_tx, mut events) = mpsc::channel(1024);
        let mut router: Router = media.router(events_tx);
        let (commands, mut command_rx) = mpsc::channel::<RoomCommand>(1024);
        let (speaking_tx, speaking_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut inboxes: BTreeMap<ParticipantId, mpsc::Sender<RouterEvent>> = BTreeMap::new();
            loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        None => break,
                        Some(RoomCommand::Add(id, may_publish, inbox)) => {
                            router.add_participant(id.clone(), may_publish);
                            inboxes.insert(id, inbox);
                        }
                        Some(RoomCommand::Remove(id)) => {
                            router.remove_participant(&id);
                            inboxes.remove(&id);
                        }
                        Some(RoomCommand::Gate(id, open)) => router.set_audio_gate(&id, open),
                        Some(RoomCommand::Send(..) | RoomCommand::DropSession(_) | RoomCommand::Resume(_)) => {
                            panic!("the stand-in room has no protocol session")
                        }
                        Some(RoomCommand::Signal(id, signal)) => {
                            if let Err(e) = router.on_signal(&id, signal) {
                                panic!("router refused a signal from {id}: {e}");
                            }
                        }
                    },
                    Some(event) = events.recv() => match event {
                        RouterEvent::Speaking { participants } => {
                            let _ = speaking_tx.try_send(participants);
                        }
                        RouterEvent::Published { .. } => {}
                        RouterEvent::Signal { ref to, .. }
                        | RouterEvent::Error { ref to, .. }
                        | RouterEvent::PeerState { participant: ref to, .. } => {
                            if let Some(inbox) = inboxes.get(to) {
                                let _ = inbox.try_send(event.clone());
                            }
                        }
                    },
                }
            }
            router.close();
        });
        Room {
            commands,
            speaking: Arc::new(tokio::sync::Mutex::new(speaking_rx)),
            messages: Arc::default(),
        }
    }

    /// A room on the real server: each browser that joins opens its own WebSocket session with
    /// a token for the role given here (members by default), and negotiates over it. `speaking`
    /// events are taken from the facilitators' sessions, which see every speaker.
    pub fn over_server(
        server: &crate::TestServer,
        room: &str,
        roles: &[(&str, crate::Role)],
    ) -> Room {
        let tokens = roles
            .iter()
            .map(|(id, r)| (id.to_string(), (server.token(room, id, *r), *r)))
            .collect();
        Room::over_url(server.url(), tokens)
    }

    /// A room on a server reached at `url` (`ws://…/ws`), with each participant's join token
    /// and role given: for a server running as its own process.
    pub fn over_url(url: String, tokens: BTreeMap<String, (String, crate::Role)>) -> Room {
        init_tracing();
        let (commands, mut command_rx) = mpsc::channel::<RoomCommand>(1024);
        let (speaking_tx, speaking_rx) = mpsc::channel(64);
        let messages: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>> = Arc::default();
        let log = messages.clone();
        tokio::spawn(async move {
            let mut sessions: BTreeMap<ParticipantId, Session> = BTreeMap::new();
            while let Some(command) = command_rx.recv().await {
                match command {
                    RoomCommand::Add(id, _, inbox) => {
                        let (token, role) = tokens
                            .get(id.as_str())
                            .unwrap_or_else(|| panic!("no role given for {id}"))
                            .clone();
                        let facilitator = role == crate::Role::Facilitator;
                        let hello = serde_json::json!({"type":"hello","protocol":1,"token": token});
                        let session = open_session(
                            &url,
                            hello,
                            id.clone(),
                            inbox,
                            facilitator.then(|| speaking_tx.clone()),
                            log.clone(),
                        )
                        .await;
                        sessions.insert(id, session);
                    }
                    RoomCommand::Signal(id, signal) => {
                        let message = match signal {
                            Signal::Sdp { pc, sdp_type, sdp } => {
                                serde_json::json!({"type":"sdp","pc": pc,"sdp_type": sdp_type,"sdp": sdp})
                            }
                            Signal::Ice { pc, candidate } => {
                                serde_json::json!({"type":"ice","pc": pc,"candidate": candidate})
                            }
                        };
                        if let Some(s) = sessions.get(&id) {
                            let _ = s.writer.send(message.to_string()).await;
                        }
                    }
                    RoomCommand::Send(id, message) => {
                        let s = sessions
                            .get(&id)
                            .unwrap_or_else(|| panic!("{id} has no session"));
                        s.writer
                            .send(message.to_string())
                            .await
                            .expect("session open");
                    }
                    RoomCommand::DropSession(id) => {
                        if let Some(s) = sessions.get(&id) {
                            s.kill.cancel();
                        }
                    }
                    RoomCommand::Resume(id) => {
                        let old = sessions
                            .remove(&id)
                            .unwrap_or_else(|| panic!("{id} has no session to resume"));
                        old.kill.cancel();
                        let last_seq = log
                            .lock()
                            .unwrap()
                            .get(id.as_str())
                            .and_then(|ms| ms.iter().filter_map(|m| m["seq"].as_u64()).max())
                            .unwrap_or(0);
                        let resume = serde_json::json!({
                            "type":"resume","protocol":1,
                            "resume_token": old.resume_token,"last_seq": last_seq
                        });
                        let session = open_session(
                            &url,
                            resume,
                            id.clone(),
                            old.inbox,
                            old.speaking,
                            log.clone(),
                        )
                        .await;
                        sessions.insert(id, session);
                    }
                    RoomCommand::Remove(id) => {
                        if let Some(s) = sessions.remove(&id) {
                            let _ = s.writer.send(r#"{"type":"leave"}"#.to_owned()).await;
                        }
                    }
                    RoomCommand::Gate(..) => {
                        panic!("over the real server, the room's rules decide the gate")
                    }
                }
            }
        });
        Room {
            commands,
            speaking: Arc::new(tokio::sync::Mutex::new(speaking_rx)),
            messages,
        }
    }

    /// Over the real server: drops `id`'s WebSocket without a close frame, as a lost network
    /// would. Their peer connections stay up.
    pub async fn drop_session(&self, id: &str) {
        self.command(RoomCommand::DropSession(id.into())).await;
    }

    /// Over the real server: opens a new WebSocket for `id` and sends `resume` with their token
    /// and the last `seq` they saw (dropping the old socket first if it is still open).
    pub async fn resume_session(&self, id: &str) {
        self.command(RoomCommand::Resume(id.into())).await;
    }

    /// Over the real server: sends a protocol message on `id`'s session.
    pub async fn send_as(&self, id: &str, message: serde_json::Value) {
        self.command(RoomCommand::Send(id.into(), message)).await;
    }

    /// Over the real server: waits until `id`'s session has received a message that satisfies
    /// `check`, and returns it.
    pub async fn wait_message(
        &self,
        id: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        within("a message from the server", async {
            loop {
                if let Some(m) = self
                    .messages
                    .lock()
                    .unwrap()
                    .get(id)
                    .and_then(|ms| ms.iter().find(|m| check(m)).cloned())
                {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    async fn command(&self, command: RoomCommand) {
        self.commands.send(command).await.expect("room task alive");
    }

    pub async fn set_gate(&self, id: &str, open: bool) {
        self.command(RoomCommand::Gate(id.into(), open)).await;
    }

    pub async fn remove(&self, id: &str) {
        self.command(RoomCommand::Remove(id.into())).await;
    }

    /// Waits for a `speaking` event that satisfies `check`.
    pub async fn speaking_until(
        &self,
        check: impl Fn(&[ParticipantId]) -> bool,
    ) -> Vec<ParticipantId> {
        let mut rx = self.speaking.lock().await;
        within("a speaking event", async {
            loop {
                let set = rx.recv().await.expect("speaking channel open");
                if check(&set) {
                    return set;
                }
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Fake browsers.

/// What a browser received on its subscribe connection, per (publisher, kind).
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
}

impl Stream {
    pub fn count(&self) -> usize {
        self.sequence_numbers.len()
    }
}

/// Marks inbound PLI/FIR for the application, as a browser's encoder would see them.
#[derive(Default)]
pub struct KeyframeRequestsToApp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            if packets
                .iter()
                .any(|p| p.as_any().is::<PictureLossIndication>())
            {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestsToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

pub fn client_opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "audio/opus".to_owned(),
        clock_rate: 48000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn client_vp8() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: "video/VP8".to_owned(),
        clock_rate: 90000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

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
    room: Room,
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
    pub async fn join(room: &Room, id: &str, publish: bool) -> Browser {
        let (inbox_tx, mut inbox) = mpsc::channel::<RouterEvent>(1024);
        room.command(RoomCommand::Add(id.into(), publish, inbox_tx))
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
            let video = local_track(
                id,
                RtpCodecKind::Video,
                client_vp8(),
                0x2000_0000 | rand_u32(id, 2),
            );
            pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
                .await
                .unwrap();
            pc.add_track(video.clone() as Arc<dyn TrackLocal>)
                .await
                .unwrap();
            let offer = pc.create_offer(None).await.unwrap();
            pc.set_local_description(offer).await.unwrap();
            let sdp = pc.local_description().await.unwrap().sdp;
            room.command(RoomCommand::Signal(
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
                                RouterEvent::Error { message, .. } => panic!("server error for {id}: {message}"),
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
                                    let _ = room.commands.send(RoomCommand::Signal(id.as_str().into(), signal)).await;
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
            let stop = browser.stop.clone();
            tokio::spawn(stop.run_until_cancelled_owned(send_video(video.clone(), id.to_owned())));
            let stop = browser.stop.clone();
            tokio::spawn(stop.run_until_cancelled_owned(count_plis(video, plis_received, changes)));
        }
        browser
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
            .command(RoomCommand::Signal(
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
    room: &Room,
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

async fn send_answer(room: &Room, id: &str, answer: String) {
    room.command(RoomCommand::Signal(
        id.into(),
        Signal::Sdp {
            pc: PcKind::Subscribe,
            sdp_type: SdpType::Answer,
            sdp: answer,
        },
    ))
    .await;
}

fn rand_u32(id: &str, salt: u32) -> u32 {
    id.bytes().fold(salt.wrapping_mul(2654435761), |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    }) & 0x0fff_ffff
}

pub fn local_track(
    id: &str,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    let name = if kind == RtpCodecKind::Audio {
        "mic"
    } else {
        "cam"
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("local-{id}"),
        format!("{name}-{id}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )))
}

/// Opus-like: a packet every 20 ms with the audio level extension; the payload names the
/// sender so a receiver can check routing.
async fn send_audio(track: Arc<TrackLocalStaticRTP>, id: String, level: Arc<AtomicU8>) {
    let ssrc = track.ssrcs().await[0];
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut seq: u16 = 1000;
    let mut timestamp: u32 = 5000;
    loop {
        ticker.tick().await;
        let level = level.load(Ordering::Relaxed);
        let payload = Bytes::from(format!("A{id}"));
        // Not bound yet or closed: the packet is lost, as a browser's would be.
        let _ = write_opus(&track, ssrc, seq, timestamp, payload, level, level < QUIET).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(960);
    }
}

/// Writes one Opus packet as a browser sends it: the client's payload type and the RFC 6464
/// audio level extension. Whether the track took it.
pub async fn write_opus(
    track: &TrackLocalStaticRTP,
    ssrc: u32,
    sequence_number: u16,
    timestamp: u32,
    payload: Bytes,
    level: u8,
    voice: bool,
) -> bool {
    let packet = rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: CLIENT_OPUS_PT,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    };
    let ext = HeaderExtension::AudioLevel(AudioLevelExtension { level, voice });
    track
        .write_rtp_with_extensions(packet, &[ext])
        .await
        .is_ok()
}

/// VP8-like: a frame every 33 ms in one packet.
async fn send_video(track: Arc<TrackLocalStaticRTP>, id: String) {
    let ssrc = track.ssrcs().await[0];
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    let mut seq: u16 = 60000;
    let mut timestamp: u32 = 7;
    loop {
        ticker.tick().await;
        let mut payload = vec![0x10, 0x00];
        payload.extend_from_slice(format!("V{id}").as_bytes());
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: CLIENT_VP8_PT,
                sequence_number: seq,
                timestamp,
                ssrc,
                marker: true,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        let _ = track.write_rtp(packet).await;
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(3000);
    }
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

/// True when every step between consecutive sequence numbers is exactly one.
pub fn contiguous(seqs: &[u16]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

/// One participant's WebSocket session to the real server.
struct Session {
    writer: mpsc::Sender<String>,
    /// Cancelled to drop the socket at once, without a close frame.
    kill: tokio_util::sync::CancellationToken,
    resume_token: String,
    inbox: mpsc::Sender<RouterEvent>,
    speaking: Option<mpsc::Sender<Vec<ParticipantId>>>,
}

/// Opens one participant's WebSocket session with `first` (`hello` or `resume`) and bridges
/// it: the server's `sdp`/`ice` (and errors) become router events in the browser's inbox,
/// `speaking` goes to the room's speaking channel when given, and every message is logged.
/// After `hello` it waits for `welcome`.
async fn open_session(
    url: &str,
    first: serde_json::Value,
    id: ParticipantId,
    inbox: mpsc::Sender<RouterEvent>,
    speaking: Option<mpsc::Sender<Vec<ParticipantId>>>,
    log: Arc<Mutex<BTreeMap<String, Vec<serde_json::Value>>>>,
) -> Session {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (ws, _) = within(
        "a WebSocket connection",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("connect");
    let (mut sink, mut stream) = ws.split();
    let is_hello = first["type"] == "hello";
    sink.send(Message::text(first.to_string())).await.unwrap();
    let resume_token;
    if is_hello {
        let welcome = within("welcome", stream.next()).await.unwrap().unwrap();
        let welcome: serde_json::Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
        assert_eq!(
            welcome["type"], "welcome",
            "{id} was not admitted: {welcome}"
        );
        resume_token = welcome["resume_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        log.lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .push(welcome);
    } else {
        resume_token = first["resume_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    let kill = tokio_util::sync::CancellationToken::new();
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let (sink_done_tx, sink_done) = tokio::sync::oneshot::channel::<()>();
    {
        let kill = kill.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = kill.cancelled() => break,
                    text = rx.recv() => {
                        let Some(text) = text else { break };
                        if sink.send(Message::text(text)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            // Dropped, not closed: the reader's half goes with it, and the socket with both.
            let _ = sink_done_tx.send(());
            drop(sink);
        });
    }
    {
        let kill = kill.clone();
        let inbox = inbox.clone();
        let speaking = speaking.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    () = kill.cancelled() => break,
                    frame = stream.next() => frame,
                };
                let Some(Ok(frame)) = frame else { break };
                let Ok(text) = frame.to_text() else { continue };
                let Ok(m) = serde_json::from_str::<serde_json::Value>(text) else {
                    continue;
                };
                log.lock()
                    .unwrap()
                    .entry(id.to_string())
                    .or_default()
                    .push(m.clone());
                let event = match m["type"].as_str() {
                    Some("sdp") => Some(RouterEvent::Signal {
                        to: id.clone(),
                        epoch: 0,
                        signal: Signal::Sdp {
                            pc: serde_json::from_value(m["pc"].clone()).unwrap(),
                            sdp_type: serde_json::from_value(m["sdp_type"].clone()).unwrap(),
                            sdp: m["sdp"].as_str().unwrap().to_owned(),
                        },
                    }),
                    Some("ice") => Some(RouterEvent::Signal {
                        to: id.clone(),
                        epoch: 0,
                        signal: Signal::Ice {
                            pc: serde_json::from_value(m["pc"].clone()).unwrap(),
                            candidate: serde_json::from_value(m["candidate"].clone()).unwrap(),
                        },
                    }),
                    Some("error") => Some(RouterEvent::Error {
                        to: id.clone(),
                        message: m.to_string(),
                    }),
                    Some("speaking") => {
                        if let Some(speaking) = &speaking {
                            let set = serde_json::from_value(m["participants"].clone()).unwrap();
                            let _ = speaking.try_send(set);
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(event) = event {
                    if inbox.send(event).await.is_err() {
                        break;
                    }
                }
            }
            kill.cancel();
            // Both halves must be gone for the socket to close.
            let _ = sink_done.await;
            drop(stream);
        });
    }
    Session {
        writer: tx,
        kill,
        resume_token,
        inbox,
        speaking,
    }
}
