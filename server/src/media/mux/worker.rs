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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpSenderId;
use tokio::sync::{mpsc, oneshot};

use super::conn::{Conn, Output};
use crate::media::codec::MediaKind;
use crate::media::udp::io::{PortSocket, RecvBuffers, SendQueue};
use crate::media::udp::route::{DatagramRouter, Dropped};
use crate::media::{internal, MediaConfig, MediaError};

/// A connection's name on the worker.
pub(crate) type ConnKey = u64;

/// Commands waiting for the worker; the rooms never wait long for room in it.
const COMMANDS: usize = 1024;

pub(crate) enum Command {
    /// Answers a browser's offer on a new or existing publish connection.
    Answer {
        key: ConnKey,
        offer: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// Sets what a subscribe connection receives (publisher and kind) and answers with the
    /// offer that says so: new tracks take the slots of removed ones.
    Subscribe {
        key: ConnKey,
        wanted: Vec<(ConnKey, MediaKind)>,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    /// The browser's answer to the latest subscribe offer.
    Accept {
        key: ConnKey,
        answer: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Close {
        key: ConnKey,
    },
}

/// What the connections tell the rest of the server.
#[derive(Debug)]
pub(crate) enum Report {
    State {
        key: ConnKey,
        state: RTCPeerConnectionState,
    },
    Rtp {
        key: ConnKey,
        packet: rtc::rtp::packet::Packet,
    },
}

/// Counts of what the worker dropped, read by metrics and tests.
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub dropped: [AtomicU64; 4],
    pub reports_lost: AtomicU64,
    /// Copies written to subscribers.
    pub forwarded: AtomicU64,
}

impl WorkerCounters {
    pub(crate) fn dropped(&self, why: Dropped) -> u64 {
        let at = Dropped::ALL.iter().position(|d| *d == why).expect("listed");
        self.dropped[at].load(Ordering::Relaxed)
    }
}

/// The handle to a running worker. Dropping it stops the worker and joins its thread.
pub(crate) struct WorkerHandle {
    commands: Option<mpsc::Sender<Command>>,
    local: SocketAddr,
    pub(crate) counters: Arc<WorkerCounters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkerHandle {
    /// Binds the shared port and starts the worker's thread. `announced` is the address the
    /// connections' candidates name (the bound one when `None`).
    pub(crate) fn start(
        config: MediaConfig,
        bind: SocketAddr,
        announced: Option<SocketAddr>,
        reports: mpsc::Sender<Report>,
    ) -> Result<WorkerHandle, MediaError> {
        let (commands, command_rx) = mpsc::channel(COMMANDS);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let counters = Arc::new(WorkerCounters::default());
        let thread_counters = counters.clone();
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
                    let socket = match PortSocket::bind(bind, config.socket_buffer_bytes) {
                        Ok(socket) => socket,
                        Err(e) => {
                            let _ = ready_tx.send(Err(MediaError::Config(format!(
                                "the media port {bind} could not be bound: {e}"
                            ))));
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
                        conns: HashMap::new(),
                        timers: BinaryHeap::new(),
                        sends: SendQueue::default(),
                        reports,
                        counters: thread_counters,
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
            counters,
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
    /// When its timers are next due, as last scheduled.
    due: Option<Instant>,
    state: Option<RTCPeerConnectionState>,
    /// Publish legs: the kind of each incoming track, learned at its first packet.
    tracks: HashMap<String, MediaKind>,
    /// Subscribe legs: what it receives, by publisher and kind.
    consumers: BTreeMap<(ConnKey, MediaKind), Consumed>,
}

impl Slot {
    fn new(conn: Conn) -> Slot {
        Slot {
            conn,
            due: None,
            state: None,
            tracks: HashMap::new(),
            consumers: BTreeMap::new(),
        }
    }
}

/// One forwarded track on a subscribe leg.
struct Consumed {
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// An answer has accepted it: packets may go.
    negotiated: bool,
}

struct Worker {
    config: MediaConfig,
    announced: SocketAddr,
    socket: PortSocket,
    table: DatagramRouter<ConnKey>,
    conns: HashMap<ConnKey, Slot>,
    /// (when, which): entries whose time no longer matches the slot's `due` are stale.
    timers: BinaryHeap<Reverse<(Instant, ConnKey)>>,
    sends: SendQueue,
    reports: mpsc::Sender<Report>,
    counters: Arc<WorkerCounters>,
    /// Who receives each publisher's kind.
    fanout: HashMap<(ConnKey, MediaKind), BTreeSet<ConnKey>>,
    next_ssrc: u32,
}

impl Worker {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buffers = RecvBuffers::default();
        let mut arrived: Vec<(SocketAddr, BytesMut)> = Vec::new();
        loop {
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
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
            Command::Answer { key, offer, reply } => {
                let answer = self.answer(now, key, offer);
                let _ = reply.send(answer);
                self.drive(key);
            }
            Command::Subscribe { key, wanted, reply } => {
                let offer = self.subscribe(now, key, wanted);
                let _ = reply.send(offer);
                self.drive(key);
            }
            Command::Accept { key, answer, reply } => {
                let accepted = self.accept(now, key, answer);
                let _ = reply.send(accepted);
                self.drive(key);
            }
            Command::Close { key } => {
                for receivers in self.fanout.values_mut() {
                    receivers.remove(&key);
                }
                self.fanout.retain(|(publisher, _), _| *publisher != key);
                if let Some(mut slot) = self.conns.remove(&key) {
                    let _ = rtc::sansio::Protocol::close(slot.conn.pc());
                    let mut out = Output::default();
                    slot.conn.drive(&mut out);
                    for transmit in out.transmits {
                        self.sends.push(transmit.to, &transmit.bytes);
                    }
                }
                self.table.forget(key);
            }
        }
    }

    fn datagram(&mut self, now: Instant, from: SocketAddr, datagram: BytesMut) {
        match self.table.route(from, &datagram) {
            Ok(key) => {
                if let Some(slot) = self.conns.get_mut(&key) {
                    slot.conn.receive(now, from, datagram);
                    self.drive(key);
                }
            }
            Err(why) => {
                let at = Dropped::ALL.iter().position(|d| *d == why).expect("listed");
                self.counters.dropped[at].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn timers_due(&mut self, now: Instant) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.conns.get_mut(&key) else {
                continue;
            };
            if slot.due != Some(at) {
                continue; // rescheduled since
            }
            slot.due = None;
            slot.conn.tick(now);
            self.drive(key);
        }
    }

    /// Drains what the connection produced: datagrams to the send queue (and the address to
    /// the table), reports to the rest of the server, its next timer to the heap.
    fn drive(&mut self, key: ConnKey) {
        let Some(slot) = self.conns.get_mut(&key) else {
            return;
        };
        let mut out = Output::default();
        let due = slot.conn.drive(&mut out);
        if due != slot.due {
            slot.due = due;
            if let Some(at) = due {
                self.timers.push(Reverse((at, key)));
            }
        }
        let mut reports = Vec::new();
        for event in out.events {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state)
                    if slot.state != Some(state) =>
                {
                    slot.state = Some(state);
                    reports.push(Report::State { key, state });
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = slot
                        .conn
                        .pc()
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind());
                    let kind = match kind {
                        Some(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio) => {
                            MediaKind::Audio
                        }
                        _ => MediaKind::Video,
                    };
                    slot.tracks.insert(init.track_id, kind);
                }
                _ => {}
            }
        }
        let mut copies = Vec::new();
        for message in out.messages {
            if let RTCMessage::RtpPacket(track, packet) = message {
                if let Some(&kind) = slot.tracks.get(&track) {
                    if let Some(receivers) = self.fanout.get(&(key, kind)) {
                        copies.extend(receivers.iter().map(|r| (*r, kind, packet.clone())));
                    }
                }
                reports.push(Report::Rtp { key, packet });
            }
        }
        for transmit in out.transmits {
            self.table.learn(key, transmit.to);
            self.sends.push(transmit.to, &transmit.bytes);
        }
        for report in reports {
            if self.reports.try_send(report).is_err() {
                self.counters.reports_lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !copies.is_empty() {
            self.forward(key, copies);
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
#[cfg(test)]
mod tests;
