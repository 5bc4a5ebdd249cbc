//! One task per WebSocket: reads frames (size-capped, rate-limited), decodes them and hands them
//! to the room; a writer task drains the connection's bounded outbound queue onto the socket.
//! The connection moves messages; every rule lives in the room. (One word per idea: a
//! "session" is a room's group session, as in the records; this is one client's connection.)

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use circle_protocol::{close, decode_client, ErrorCode, ParticipantId, ServerFrame, ServerMessage};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::room::{ConnectionLink, Outbound, RoomHandle};

mod allowance;
mod join;
mod relay;
use allowance::{Strikes, TokenBucket};
use join::{join, Joined};

/// A joined connection's place: which room, as whom.
struct Seat {
    room: RoomHandle,
    participant: ParticipantId,
}

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;
type Stream<S> = SplitStream<WebSocketStream<S>>;

/// Bytes a connection may send before it has joined: a `hello` (a token of well under 1 KiB) or
/// a `resume`, with room to spare. Until then nobody is known, so a socket may hold no more than
/// this; afterwards the protocol's 256 KiB per message applies.
pub const FIRST_MESSAGE_BYTES: usize = 8 * 1024;

/// The WebSocket settings every connection gets: protocol.md's 256 KiB cap on a message, and a
/// small read buffer. tungstenite zero-fills its whole read buffer before each read, so the
/// default 128 KiB was resident for every idle connection; nearly every message fits in 4 KiB,
/// and a larger frame (an SDP is 3–6 KiB) grows the buffer to its own length.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .max_message_size(Some(circle_protocol::MAX_MESSAGE_BYTES))
        .max_frame_size(Some(circle_protocol::MAX_MESSAGE_BYTES))
}

/// How many bytes a connection may still send, shared between the connection and the socket it
/// reads through. tungstenite's frame limit cannot be changed on a running stream, so the
/// smaller limit before joining is kept here, below the WebSocket layer.
#[derive(Debug)]
struct ReadBudget {
    /// `usize::MAX` once lifted.
    remaining: AtomicUsize,
}

impl ReadBudget {
    fn lift(&self) {
        self.remaining.store(usize::MAX, Ordering::Relaxed);
    }
}

/// The read error of a spent [`ReadBudget`], told apart from a dropped connection by its type.
#[derive(Debug, thiserror::Error)]
#[error("too much data before joining")]
struct BudgetSpent;

/// A socket that fails reads once its [`ReadBudget`] is spent. A read may overshoot by one
/// read's worth (tungstenite asks for 4 KiB at a time); the next one fails.
struct Budgeted<S> {
    inner: S,
    budget: Arc<ReadBudget>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Budgeted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let remaining = self.budget.remaining.load(Ordering::Relaxed);
        if remaining == usize::MAX {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if remaining == 0 {
            return Poll::Ready(Err(io::Error::other(BudgetSpent)));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        // Only this task reads, and only `lift` writes concurrently, to MAX: never lower it.
        let _ = self.budget.remaining.compare_exchange(
            remaining,
            remaining.saturating_sub(read),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budgeted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs one WebSocket connection to its end, on a connection whose upgrade was just answered.
/// A `relayed` connection comes from another node of the cluster, on behalf of its client.
pub async fn run<S>(io: S, registry: Arc<Registry>, relayed: bool)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let budget = Arc::new(ReadBudget {
        remaining: AtomicUsize::new(FIRST_MESSAGE_BYTES),
    });
    let io = Budgeted {
        inner: io,
        budget: budget.clone(),
    };
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket_config())).await;
    serve(ws, registry, budget, relayed).await;
}

async fn serve<S>(
    ws: WebSocketStream<S>,
    registry: Arc<Registry>,
    budget: Arc<ReadBudget>,
    relayed: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let context = registry.context().clone();
    let _counted = context.connection_opened();
    let settings = context.settings().clone();
    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel(settings.outbound_queue);
    let kill = CancellationToken::new();
    // Cancelled by the writer once it has sent a close frame: reading stops soon after.
    let closed = CancellationToken::new();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        kill.clone(),
        closed.clone(),
        settings.ping_interval,
        settings.close_timeout,
    ));
    let link = ConnectionLink {
        id: context.next_connection_id(),
        tx: tx.clone(),
        kill: kill.clone(),
    };

    let shutdown = context.shutdown_token();
    let first = tokio::select! {
        first = timeout(settings.hello_timeout, next_message(&mut stream)) => first,
        () = shutdown.cancelled() => {
            let _ = tx.try_send(Outbound::Close(close::GOING_AWAY));
            drop((tx, link));
            finish(stream, kill, writer, settings.close_timeout).await;
            return;
        }
    };
    let seat = match first {
        Err(_elapsed) => {
            let _ = tx.try_send(Outbound::Close(close::POLICY));
            Err(None)
        }
        Ok(None) => Err(None),
        Ok(Some(Err(code))) => {
            let _ = tx.try_send(Outbound::Close(code));
            Err(None)
        }
        Ok(Some(Ok(text))) => {
            context.metrics().ws_message_received();
            // Boxed, here and below: a join's and a relay's futures (a Redis round trip, a
            // connection to another node) would otherwise be part of every connection's task
            // for its whole life, joined or not.
            Box::pin(join(&registry, text.as_deref(), &link, relayed))
                .await
                .map_err(Some)
        }
    };
    let seat = match seat {
        Ok(Joined::Here(seat)) => seat,
        Ok(Joined::Relay(upstream)) => {
            budget.lift();
            tracing::info!(
                connection = link.id,
                "connection relayed to its room's node"
            );
            Box::pin(relay::pipe(
                &mut stream,
                *upstream,
                &link,
                &closed,
                &shutdown,
                &settings,
            ))
            .await;
            tracing::info!(connection = link.id, "relayed connection ended");
            drop((tx, link));
            finish(stream, kill, writer, settings.close_timeout).await;
            return;
        }
        Err(refusal) => {
            if let Some((id, e)) = refusal {
                tracing::debug!(code = ?e.code(), "join refused");
                context.metrics().error_sent(e.code());
                let frame = ServerFrame {
                    seq: 1,
                    message: ServerMessage::error(id, e.code(), e.to_string()),
                };
                let _ = tx.try_send(Outbound::Text(frame.to_json().into()));
                let _ = tx.try_send(Outbound::Close(close::POLICY));
            }
            drop((tx, link));
            finish(stream, kill, writer, settings.close_timeout).await;
            return;
        }
    };
    budget.lift();
    tracing::info!(connection = link.id, "connection joined");

    read_loop(
        &mut stream,
        &seat,
        &link,
        &closed,
        &settings,
        context.metrics(),
    )
    .await;

    // The room ignores this when it closed the connection itself (leave, removal, replacement).
    let _ = seat
        .room
        .disconnected(seat.participant.clone(), link.id)
        .await;
    tracing::info!(connection = link.id, "connection ended");
    // With every sender gone (the room drops its own on `Disconnected`), the writer ends
    // once it has put out what is queued.
    drop((tx, link, seat));
    finish(stream, kill, writer, settings.close_timeout).await;
}

/// Reads the first message: a text frame (`None` for a binary one), or the close code for what
/// came instead.
async fn next_message<S>(stream: &mut Stream<S>) -> Option<Result<Option<String>, u16>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        return match stream.next().await? {
            Ok(Message::Text(text)) => Some(Ok(Some(text.as_str().to_owned()))),
            Ok(Message::Binary(_)) => Some(Ok(None)),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(Message::Close(_)) => None,
            Err(e) => Some(Err(close_code_for(&e)?)),
        };
    }
}

fn close_code_for(error: &WsError) -> Option<u16> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some(close::MESSAGE_TOO_BIG),
        WsError::Capacity(_) | WsError::Protocol(_) | WsError::Utf8(_) => Some(close::POLICY),
        // Too much sent before joining: a message too big for that moment.
        WsError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<BudgetSpent>()) => {
            Some(close::MESSAGE_TOO_BIG)
        }
        _ => None,
    }
}

/// Moves a joined connection's frames to its room until the socket ends.
async fn read_loop<S>(
    stream: &mut Stream<S>,
    seat: &Seat,
    link: &ConnectionLink,
    closed: &CancellationToken,
    settings: &crate::config::Settings,
    metrics: &Metrics,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Pings go out every interval; a peer silent for two of them is gone.
    let idle_limit = settings.ping_interval * 2 + Duration::from_secs(1);
    let mut bucket = TokenBucket::new(settings.message_rate, settings.message_burst);
    let mut strikes = Strikes::new(settings.message_burst);
    loop {
        let next = tokio::select! {
            next = timeout(idle_limit, stream.next()) => next,
            () = link.kill.cancelled() => return,
            () = closed.cancelled() => return,
        };
        let message = match next {
            Err(_) | Ok(None) => return,
            Ok(Some(Err(e))) => {
                if let Some(code) = close_code_for(&e) {
                    let _ = link.tx.try_send(Outbound::Close(code));
                }
                return;
            }
            Ok(Some(Ok(message))) => message,
        };
        if matches!(message, Message::Close(_)) {
            return;
        }
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            metrics.ws_message_received();
        }
        // Every frame costs, whatever its kind: binary frames and pings are work too.
        let now = Instant::now();
        let refusal = if !bucket.take(now) {
            if strikes.strike(now) {
                tracing::info!(connection = link.id, "closing an abusive connection");
                // Through the room, so the answers it still owes this connection go out first.
                let told = seat
                    .room
                    .refuse_and_close(
                        seat.participant.clone(),
                        link.id,
                        ErrorCode::RateLimited,
                        "too many messages; closing this connection".to_owned(),
                        close::POLICY,
                    )
                    .await;
                if told.is_err() {
                    let _ = link.tx.try_send(Outbound::Close(close::POLICY));
                }
                return;
            }
            Some((
                None,
                ErrorCode::RateLimited,
                "too many messages; slow down".to_owned(),
            ))
        } else {
            match message {
                Message::Text(text) => match decode_client(text.as_str()) {
                    Ok(frame) => {
                        let sent = seat
                            .room
                            .request(seat.participant.clone(), link.id, frame)
                            .await;
                        if sent.is_err() {
                            return;
                        }
                        None
                    }
                    Err(e) => Some((e.id, ErrorCode::BadRequest, e.message)),
                },
                Message::Binary(_) => Some((
                    None,
                    ErrorCode::BadRequest,
                    "binary frames are not accepted".to_owned(),
                )),
                Message::Close(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
            }
        };
        if let Some((id, code, message)) = refusal {
            let sent = seat
                .room
                .refuse(seat.participant.clone(), link.id, id, code, message)
                .await;
            if sent.is_err() {
                return;
            }
        }
    }
}

/// Lets the writer put out what is queued (a close frame last), waits briefly for the peer's
/// answer to a close, then stops everything.
async fn finish<S>(
    mut stream: Stream<S>,
    kill: CancellationToken,
    mut writer: tokio::task::JoinHandle<()>,
    close_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let writer_done = timeout(close_timeout, &mut writer).await.is_ok();
    if !kill.is_cancelled() {
        let drain = async { while let Some(Ok(_)) = stream.next().await {} };
        let _ = timeout(close_timeout, drain).await;
    }
    kill.cancel();
    if !writer_done {
        let _ = writer.await;
    }
}

async fn write_loop<S>(
    mut sink: Sink<S>,
    mut rx: mpsc::Receiver<Outbound>,
    kill: CancellationToken,
    closed: CancellationToken,
    ping_interval: Duration,
    close_timeout: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    loop {
        let message = tokio::select! {
            () = kill.cancelled() => break,
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => Message::text(text.as_ref()),
                Some(Outbound::Close(code)) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(code),
                        reason: "".into(),
                    };
                    tokio::select! {
                        _ = timeout(close_timeout, sink.send(Message::Close(Some(frame)))) => {}
                        () = kill.cancelled() => {}
                    }
                    closed.cancel();
                    return;
                }
                None => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        let sent = tokio::select! {
            sent = sink.send(message) => sent,
            () = kill.cancelled() => break,
        };
        if sent.is_err() {
            break;
        }
    }
    // The socket is unusable or the connection is over: stop the reader too.
    kill.cancel();
}
