//! The engine's loop: one thread owns the shared port's socket, the datagram table and every
//! connection, and moves datagrams, commands and timers through them. No task per connection:
//! one wake-up takes a batch of datagrams, everything it produced leaves through one send
//! queue, and the connections' timers wait in one heap.
//!
//! Others hold a [`WorkerHandle`]: commands go in over a bounded channel and answers come back
//! on oneshots; what the connections report leaves over a bounded channel that never waits
//! (a full channel drops and counts, as the room's delivery does).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use circle_protocol::PcKind;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use tokio::sync::{mpsc, oneshot};

use super::conn::{Conn, Output};
use super::sender::SentTrack;
use crate::media::codec::MediaKind;
use crate::media::counters::{Live, MediaCounters};
use crate::media::forward::{Ingress, KeyframePacer};
use crate::media::simulcast::{DownlinkControl, LayerCursor, LayerSize};
use crate::media::udp::io::{PortSocket, RecvBuffers, SendQueue};
use crate::media::udp::route::DatagramRouter;
use crate::media::udp::stun;
use crate::media::{internal, MediaConfig, MediaError};

/// A connection's name on the worker.
pub(crate) type ConnKey = u64;

/// Commands waiting for the worker; the rooms never wait long for room in it.
const COMMANDS: usize = 1024;
/// Datagrams waiting for the socket to take them. Past this the socket has been full for a
/// long while, and a datagram is dropped (and counted) rather than queued without end.
const MAX_QUEUED: usize = 16 * 1024;

/// Checks kept per connection while its answer is awaited (see `Slot::early_checks`): a
/// browser checks each of its candidates against ours, a few at most on one port. Any more go
/// to the agent as they come, which drops them as before.
const MAX_EARLY_CHECKS: usize = 16;

/// Who a connection belongs to: where its reports go, and what its media path reads.
pub(crate) struct Owner {
    pub reports: mpsc::Sender<Report>,
    /// The participant: the stream id (`a=msid`) under which others receive its tracks, which
    /// is how a client knows whose tile a track is.
    pub stream: String,
    /// The floor gate on the participant's audio, written by the room's rules.
    pub gate: Arc<AtomicBool>,
    /// The gate on the participant's screen share: open while the rules allow the share they
    /// announced.
    pub screen_gate: Arc<AtomicBool>,
    /// Loud audio packets since the room last counted (RFC 6464 levels, gated or not).
    pub loud: Arc<AtomicU32>,
}

pub(crate) enum Command {
    /// Registers a connection and its owner; the connection itself is built at its first use
    /// (a publish offer, or something to offer), so an idle participant costs little.
    Open {
        key: ConnKey,
        kind: PcKind,
        owner: Arc<Owner>,
    },
    /// Answers a browser's offer on a publish connection (rolled back if it cannot be
    /// applied). `audio_level_id` is the RFC 6464 extension id the offer negotiates, `screen`
    /// the track id of the announced screen share it sends, if any.
    Answer {
        key: ConnKey,
        offer: String,
        audio_level_id: Option<u8>,
        screen: Option<String>,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Sets what a subscribe connection receives (publisher and kind) and answers with the
    /// offer that says so (with new ICE credentials if `restart_ice`): new tracks take the
    /// slots of removed ones.
    Subscribe {
        key: ConnKey,
        wanted: Vec<(ConnKey, MediaKind)>,
        restart_ice: bool,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// The browser's answer to the latest subscribe offer.
    Accept {
        key: ConnKey,
        answer: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// The heights (device pixels) at which subscribe connection `key` shows publishers'
    /// cameras, by publish connection; 0 while hidden. They choose among simulcast layers.
    TileSizes {
        key: ConnKey,
        sizes: Vec<(ConnKey, u32)>,
    },
    Close {
        key: ConnKey,
    },
}

/// What the connections tell their owners.
#[derive(Debug)]
pub(crate) enum Report {
    State {
        key: ConnKey,
        state: RTCPeerConnectionState,
    },
    /// A publish connection's track of this kind reached the worker (its first packet), new or
    /// replacing the one before.
    Published { key: ConnKey, kind: MediaKind },
    /// A publisher's packet as it arrived, before the floor gate: what the worker tests watch.
    #[cfg(test)]
    Rtp {
        key: ConnKey,
        packet: rtc::rtp::packet::Packet,
    },
}

/// The handle to a running worker. Dropping it stops the worker and joins its thread.
pub(crate) struct WorkerHandle {
    commands: Option<mpsc::Sender<Command>>,
    local: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker's thread on the shared port's socket (from
    /// [`bind`](crate::media::udp::io::bind)). `announced` is the address the connections'
    /// candidates name (the bound one when `None`); `media` counts what passes.
    pub(crate) fn start(
        config: MediaConfig,
        socket: std::net::UdpSocket,
        announced: Option<SocketAddr>,
        media: Arc<MediaCounters>,
    ) -> Result<WorkerHandle, MediaError> {
        let (commands, command_rx) = mpsc::channel(COMMANDS);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("circle-media".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(internal(e)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let socket = match PortSocket::from_std(socket) {
                        Ok(socket) => socket,
                        Err(e) => {
                            let _ = ready_tx.send(Err(internal(e)));
                            return;
                        }
                    };
                    let local = socket.local_addr();
                    let _ = ready_tx.send(Ok(local));
                    let worker = Worker {
                        config,
                        announced: announced.unwrap_or(local),
                        socket,
                        table: DatagramRouter::new(),
                        owners: HashMap::new(),
                        conns: HashMap::new(),
                        timers: BinaryHeap::new(),
                        sends: SendQueue::default(),
                        media,
                        fanout: HashMap::new(),
                        next_ssrc: rand::random(),
                    };
                    worker.run(command_rx).await;
                });
            })
            .map_err(internal)?;
        let local = ready_rx
            .recv()
            .map_err(|_| internal("the media worker did not start"))??;
        Ok(WorkerHandle {
            commands: Some(commands),
            local,
            thread: Some(thread),
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub(crate) async fn send(&self, command: Command) -> Result<(), MediaError> {
        match &self.commands {
            Some(commands) => commands
                .send(command)
                .await
                .map_err(|_| internal("the media worker has stopped")),
            None => Err(internal("the media worker has stopped")),
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        // The worker ends when its command channel closes.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What woke the loop.
enum Wake {
    Command(Option<Command>),
    Readable(bool),
    Timer,
    Writable,
}

struct Slot {
    conn: Conn,
    owner: Arc<Owner>,
    /// When its timers are next due, as last scheduled.
    due: Option<Instant>,
    state: Option<RTCPeerConnectionState>,
    /// Publish legs: the RFC 6464 extension id of the latest offer.
    audio_level_id: Option<u8>,
    /// Publish legs: the kind of each incoming track, learned at its first packet.
    tracks: HashMap<String, MediaKind>,
    /// Publish legs: the track id of the screen share the latest accepted offer sends: a
    /// video track is a screen only when the rules allowed it as one at its offer.
    screen_track: Option<String>,
    /// Publish legs: the current incoming track of each kind, by [`MediaKind::index`].
    sources: [Option<Source>; 3],
    /// Subscribe legs: what it receives, by publisher and kind.
    consumers: BTreeMap<(ConnKey, MediaKind), Consumed>,
    /// Subscribe legs: its sender reports are on the timer heap.
    reporting: bool,
    /// Subscribe legs: the latest tile height the subscriber gave for each publisher's camera,
    /// kept for cameras it is not yet offered.
    tile_sizes: HashMap<ConnKey, u32>,
    /// Subscribe legs: how much video the connection carries, from its receiver reports.
    downlink: DownlinkControl,
    /// Subscribe legs, from an offer with new ICE credentials (the first, or a restart) until
    /// its answer is applied: the browser's checks that came first. It starts checking as soon
    /// as it has set its answer, and the check outruns the answer, which travels through the
    /// room; the agent cannot judge a check before it knows the browser's credentials, so
    /// the check would be lost and the browser would try again only at its next pacing tick
    /// (200 ms for a webrtc-rs client). They are handed to the agent once the answer is in.
    early_checks: Option<Vec<(SocketAddr, BytesMut)>>,
    /// Counts the connection as open for as long as it is.
    _live: Live,
}

/// One incoming track as the fan-out sees it.
struct Source {
    /// One per simulcast layer (`rid`), or the one stream of a track sent without simulcast.
    layers: Vec<Layer>,
    /// Video only: when to ask the publisher for a keyframe.
    pacer: KeyframePacer,
}

/// One RTP stream of a track: a simulcast layer, or the whole track.
struct Layer {
    rid: Option<String>,
    ssrc: u32,
    ingress: Ingress,
    /// Video: the picture size of its latest keyframe.
    size: Option<LayerSize>,
    /// When its latest packet came: a browser stops sending its upper layers when its
    /// bandwidth or CPU runs short, and a layer gone quiet is not one to wait for.
    last_packet: Option<Instant>,
    /// Since when it has been sending without a pause: a layer a browser has just started
    /// again is often stopped again soon after, while its bandwidth estimate settles.
    sending_since: Option<Instant>,
}

/// One forwarded track on a subscribe leg.
struct Consumed {
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// The track id in our offer, which the subscriber's RTCP about it is delivered under.
    track: String,
    /// An answer has accepted it: packets may go once the connection is up.
    negotiated: bool,
    /// Packets go (set once the answer is in and the connection has come up).
    live: bool,
    /// What was sent of it, for NACKs and sender reports.
    sent: SentTrack,
    /// Which of the source's layers it receives, continuous across moves between them.
    cursor: LayerCursor,
    /// Cameras: the height (device pixels) at which the subscriber shows the tile; `Some(0)`
    /// while hidden, `None` until it says.
    wanted: Option<u32>,
}

/// What a timer in the heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// The connection's own timers (ICE, DTLS, reports).
    Conn,
    /// A publish connection's held keyframe request for its camera or screen.
    Keyframe(MediaKind),
    /// A subscribe connection's sender reports.
    Reports,
}

struct Worker {
    config: MediaConfig,
    announced: SocketAddr,
    socket: PortSocket,
    table: DatagramRouter<ConnKey>,
    /// Registered connections, built or not.
    owners: HashMap<ConnKey, (PcKind, Arc<Owner>)>,
    /// Boxed: a connection is tens of kilobytes, and the table's growth should not move them.
    conns: HashMap<ConnKey, Box<Slot>>,
    /// (when, which, what): entries whose time no longer matches the slot's are stale.
    timers: BinaryHeap<Reverse<(Instant, ConnKey, Timer)>>,
    sends: SendQueue,
    /// What the server's metrics count: packets received, copies forwarded and dropped,
    /// datagrams dropped, peers.
    media: Arc<MediaCounters>,
    /// Who receives each publisher's kind.
    fanout: HashMap<(ConnKey, MediaKind), BTreeSet<ConnKey>>,
    next_ssrc: u32,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buffers = RecvBuffers::default();
        let mut arrived: Vec<(SocketAddr, BytesMut)> = Vec::new();
        loop {
            let next = self.timers.peek().map(|Reverse((at, _, _))| *at);
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                readable = self.socket.readable() => Wake::Readable(readable.is_ok()),
                () = sleep => Wake::Timer,
                _ = self.socket.writable(), if !self.sends.is_empty() => Wake::Writable,
            };
            match wake {
                Wake::Command(Some(command)) => self.command(command),
                Wake::Command(None) => break,
                Wake::Readable(true) => {
                    let taken = self.socket.try_recv(&mut buffers, |from, datagram| {
                        arrived.push((from, BytesMut::from(datagram)));
                    });
                    if let Err(e) = taken {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            tracing::debug!(error = %e, "media port receive failed");
                        }
                    }
                    let now = Instant::now();
                    for (from, datagram) in arrived.drain(..) {
                        self.datagram(now, from, datagram);
                    }
                }
                Wake::Readable(false) | Wake::Writable => {}
                Wake::Timer => self.timers_due(Instant::now()),
            }
            self.flush();
        }
        for (_, mut slot) in self.conns.drain() {
            let _ = rtc::sansio::Protocol::close(slot.conn.pc());
        }
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Open { key, kind, owner } => {
                self.owners.insert(key, (kind, owner));
            }
            Command::Answer {
                key,
                offer,
                audio_level_id,
                screen,
                reply,
            } => {
                let answer = self.answer(now, key, offer, audio_level_id, screen);
                let _ = reply.send(answer);
                self.drive(key);
            }
            Command::Subscribe {
                key,
                wanted,
                restart_ice,
                reply,
            } => {
                let offer = self.subscribe(now, key, wanted, restart_ice);
                let _ = reply.send(offer);
                self.drive(key);
            }
            Command::Accept { key, answer, reply } => {
                let accepted = self.accept(now, key, answer);
                let _ = reply.send(accepted);
                self.go_live(now, key);
                self.drive(key);
            }
            Command::TileSizes { key, sizes } => {
                if let Some(slot) = self.conns.get_mut(&key) {
                    for (publisher, height) in sizes {
                        slot.tile_sizes.insert(publisher, height);
                        if let Some(consumed) =
                            slot.consumers.get_mut(&(publisher, MediaKind::Video))
                        {
                            consumed.wanted = Some(height);
                        }
                    }
                }
            }
            Command::Close { key } => self.close(key),
        }
    }

    fn close(&mut self, key: ConnKey) {
        self.owners.remove(&key);
        for receivers in self.fanout.values_mut() {
            receivers.remove(&key);
        }
        self.fanout.retain(|(publisher, _), _| *publisher != key);
        if let Some(mut slot) = self.conns.remove(&key) {
            // DTLS close_notify, so the browser learns at once rather than at ICE timeout.
            let _ = rtc::sansio::Protocol::close(slot.conn.pc());
            let mut out = Output::default();
            slot.conn.drive(&mut out);
            for transmit in out.transmits {
                self.push(transmit.to, &transmit.bytes);
            }
        }
        self.table.forget(key);
    }

    fn datagram(&mut self, now: Instant, from: SocketAddr, datagram: BytesMut) {
        match self.table.route(from, &datagram) {
            Ok(key) => {
                if let Some(slot) = self.conns.get_mut(&key) {
                    if let Some(early) = &mut slot.early_checks {
                        if early.len() < MAX_EARLY_CHECKS
                            && stun::classify(&datagram) == stun::Kind::Stun
                        {
                            early.push((from, datagram));
                            return;
                        }
                    }
                    slot.conn.receive(now, from, datagram);
                    self.drive(key);
                }
            }
            Err(why) => self.media.count_udp_dropped(why),
        }
    }

    fn timers_due(&mut self, now: Instant) {
        while let Some(Reverse((at, key, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.conns.get_mut(&key) else {
                continue;
            };
            match timer {
                Timer::Conn => {
                    if slot.due != Some(at) {
                        continue; // rescheduled since
                    }
                    slot.due = None;
                    slot.conn.tick(now);
                }
                Timer::Keyframe(kind) => self.keyframe_due(now, key, kind),
                Timer::Reports => self.reports_due(now, key),
            }
            self.drive(key);
        }
    }

    /// Drains what the connection produced: datagrams to the send queue (and the address to
    /// the table), media to the fan-out, reports to its owner, its next timer to the heap.
    fn drive(&mut self, key: ConnKey) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let mut out = Output::default();
        let due = slot.conn.drive(&mut out);
        if due != slot.due {
            slot.due = due;
            if let Some(at) = due {
                self.timers.push(Reverse((at, key, Timer::Conn)));
            }
        }
        for transmit in out.transmits {
            self.table.learn(key, transmit.to);
            self.push(transmit.to, &transmit.bytes);
        }
        let mut came_up = false;
        for event in out.events {
            came_up |= self.event(key, event);
        }
        if !out.messages.is_empty() {
            self.media_in(key, out.messages);
        }
        if came_up {
            self.go_live(Instant::now(), key);
        }
    }

    /// Queues a datagram unless the socket has refused everything for a long while: then it
    /// is lost, and counted.
    fn push(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.sends.len() >= MAX_QUEUED {
            self.media
                .count_dropped(crate::media::DropReason::SubscriberQueueFull, 1);
            return;
        }
        self.sends.push(to, datagram);
    }

    /// A report to a connection's owner; never waits.
    fn report(&self, key: ConnKey, report: Report) {
        let Some(slot) = self.conns.get(&key) else {
            return;
        };
        if slot.owner.reports.try_send(report).is_err() {
            // The room's task reads these all the time and a room makes few; losing one
            // (a connection state) would leave the room with a stale view.
            tracing::warn!("a room's media reports are backed up; a report was lost");
        }
    }

    fn flush(&mut self) {
        if self.sends.is_empty() {
            return;
        }
        match self.sends.flush(&self.socket) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::debug!(error = %e, "media port send failed"),
        }
    }
}

mod legs;
mod media;
mod reports;
#[cfg(test)]
mod tests;
