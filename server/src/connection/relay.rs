//! Relaying one client's connection to the node that hosts its room, in a cluster: a WebSocket
//! from this node to the host's `/ws` carries the client's frames up and the host's frames down,
//! in order. The host runs the connection as one of its own (rate limits, the delivery policy,
//! close codes), so a relayed session keeps every rule of a local one; this node only moves
//! frames, and waits for its client's queue to take each one (back-pressure reaches the host's
//! queue for this connection, where the room's policy for a slow client applies).

use std::sync::Arc;
use std::time::Duration;

use circle_protocol::close;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::{close_code_for, websocket_config, Stream};
use crate::cluster::member::{relay_key, RELAY_HEADER};
use crate::cluster::nodes::NodeInfo;
use crate::config::Settings;
use crate::room::{ConnectionLink, Outbound};

/// Why a connection could not be relayed to its room's node.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the node's address is not an http:// URL")]
    Address,
    #[error("the node did not answer in time")]
    Timeout,
    #[error("the node refused or dropped the connection: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// A connection to the hosting node that has been handed the client's first message.
pub struct Upstream {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Connects to `host` as a node of this cluster and hands it the client's first message.
pub async fn open(
    host: &NodeInfo,
    settings: &Settings,
    first: &str,
) -> Result<Upstream, RelayError> {
    // Nodes talk over the cluster's own network, in plain HTTP (server/README.md).
    let address = host
        .http
        .strip_prefix("http://")
        .ok_or(RelayError::Address)?
        .trim_end_matches('/');
    let mut request = format!("ws://{address}/ws").into_client_request()?;
    let key = HeaderValue::from_str(&relay_key(&settings.token_secret))
        .map_err(|_| RelayError::Address)?;
    request.headers_mut().insert(RELAY_HEADER, key);
    let connecting = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(websocket_config()), true)
                .await?;
        ws.send(Message::text(first)).await?;
        Ok::<_, RelayError>(Upstream { ws })
    };
    // A node on the cluster's own network answers at once or is gone.
    timeout(
        settings.hello_timeout.min(Duration::from_secs(3)),
        connecting,
    )
    .await
    .map_err(|_| RelayError::Timeout)?
}

/// How a relayed connection ended.
enum End {
    /// The client went (closed, dropped, fell silent, or broke the protocol with this code).
    Client(Option<u16>),
    /// The host closed the connection with this code, or dropped it without one.
    Host(Option<u16>),
    /// This side is done: the client's writer stopped or the connection was killed.
    Local,
    /// This node is stopping: the client goes with 1001 and resumes through another node.
    Stopping,
}

/// Moves frames both ways until either side ends, then ends the other the way a local
/// connection would have ended.
pub async fn pipe<S>(
    client: &mut Stream<S>,
    upstream: Upstream,
    link: &ConnectionLink,
    closed: &CancellationToken,
    stopping: &CancellationToken,
    settings: &Settings,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut up, mut down) = upstream.ws.split();
    // The same silence limit as a local connection: this node pings its client.
    let idle_limit = settings.ping_interval * 2 + Duration::from_secs(1);
    let upward = async {
        loop {
            let next = tokio::select! {
                next = timeout(idle_limit, client.next()) => next,
                () = closed.cancelled() => return End::Local,
            };
            let message = match next {
                Err(_) | Ok(None) => return End::Client(None),
                Ok(Some(Err(e))) => return End::Client(close_code_for(&e)),
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(_) | Message::Binary(_) => {
                    if up.send(message).await.is_err() {
                        return End::Host(None);
                    }
                }
                Message::Close(_) => return End::Client(None),
                // Answered here; the host pings this node and gets its answers from the
                // WebSocket library.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    };
    let downward = async {
        loop {
            let message = tokio::select! {
                next = down.next() => next,
                () = link.kill.cancelled() => return End::Local,
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    let text: Arc<str> = Arc::from(text.as_str());
                    // Waits while the client's queue is full: the host's queue fills behind it.
                    let queued = tokio::select! {
                        queued = link.tx.send(Outbound::Text(text)) => queued,
                        () = link.kill.cancelled() => return End::Local,
                    };
                    if queued.is_err() {
                        return End::Local;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return End::Host(Some(frame.map_or(close::NORMAL, |f| u16::from(f.code))))
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return End::Host(None),
            }
        }
    };
    let end = tokio::select! {
        end = upward => end,
        end = downward => end,
        () = stopping.cancelled() => End::Stopping,
    };
    match end {
        End::Client(code) => {
            if let Some(code) = code {
                let _ = link.tx.try_send(Outbound::Close(code));
            }
            // The host sees the client go as it would a local socket closing: the participant
            // is reconnecting until they resume or the grace runs out.
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            };
            let _ = timeout(settings.close_timeout, up.send(Message::Close(Some(frame)))).await;
        }
        End::Host(code) => {
            // A host gone without a close frame is a server going away: the client resumes.
            let code = code.unwrap_or(close::GOING_AWAY);
            let _ = link.tx.try_send(Outbound::Close(code));
            let _ = timeout(settings.close_timeout, up.close()).await;
        }
        End::Local => {
            let _ = timeout(settings.close_timeout, up.close()).await;
        }
        End::Stopping => {
            let _ = link.tx.try_send(Outbound::Close(close::GOING_AWAY));
            let frame = CloseFrame {
                code: CloseCode::Away,
                reason: "".into(),
            };
            let _ = timeout(settings.close_timeout, up.send(Message::Close(Some(frame)))).await;
        }
    }
}
