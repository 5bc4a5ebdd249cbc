//! A connection's first message: a `hello` or `resume`, verified and taken to its room, here or
//! (in a cluster) by relaying the connection to the node that hosts the room; and why a join
//! fails, each with its protocol code.

use std::sync::Arc;
use std::time::Duration;

use circle_protocol::{decode_client, ClientFrame, ClientMessage, ErrorCode, PROTOCOL_VERSION};
use tokio::time::Instant;

use super::{relay, Seat};
use crate::cluster::nodes::NodeInfo;
use crate::error::ClientVisible;
use crate::metrics::JoinResult;
use crate::registry::{Location, Registry, RegistryError};
use crate::room::{ConnectionLink, Joiner, RoomError, Sent};

/// Why a connection could not join. Each is answered with `error` and close 1008.
#[derive(Debug, thiserror::Error)]
pub(super) enum JoinError {
    #[error("{0}")]
    BadRequest(String),
    #[error("this server speaks protocol version {PROTOCOL_VERSION}")]
    UnsupportedProtocol,
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    #[error("unknown or expired resume token")]
    UnknownResumeToken,
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("this group's server cannot be reached right now; try again shortly")]
    Relay(#[from] relay::RelayError),
}

impl JoinError {
    pub(super) fn code(&self) -> ErrorCode {
        match self {
            JoinError::BadRequest(_) => ErrorCode::BadRequest,
            JoinError::UnsupportedProtocol => ErrorCode::UnsupportedProtocol,
            JoinError::Token(e) => e.code(),
            JoinError::UnknownResumeToken => ErrorCode::Unauthorized,
            JoinError::Room(e) => ClientVisible::code(e),
            JoinError::Registry(RegistryError::TooManyRooms) => ErrorCode::RoomFull,
            JoinError::Registry(RegistryError::Cluster(_) | RegistryError::Moved)
            | JoinError::Relay(_) => ErrorCode::Internal,
        }
    }
}

/// Where a connection's first message took it.
pub(super) enum Joined {
    /// Into a room on this node.
    Here(Seat),
    /// To the node that hosts its room, which has the first message and answers it.
    Relay(Box<relay::Upstream>),
}

/// Joins with the connection's first message, and counts the attempt: every first message but
/// a `resume` is one (a `hello`, or what failed to be one), timed from its arrival to the room's
/// answer, which comes once the `welcome` or `waiting` is queued.
pub(super) async fn join(
    registry: &Arc<Registry>,
    text: Option<&str>,
    link: &ConnectionLink,
    relayed: bool,
) -> Result<Joined, (Option<u32>, JoinError)> {
    let received = std::time::Instant::now();
    let metrics = registry.context().metrics();
    let mut resume = false;
    let joined = async {
        let Some(text) = text else {
            let refusal = JoinError::BadRequest("binary frames are not accepted".into());
            return Err((None, refusal));
        };
        let frame = decode_client(text).map_err(|e| (e.id, JoinError::BadRequest(e.message)))?;
        resume = matches!(frame.message, ClientMessage::Resume { .. });
        let id = frame.id;
        join_with(registry, frame, text, link, relayed)
            .await
            .map_err(|e| (id, e))
    }
    .await;
    if !resume {
        match &joined {
            // The room counted whether it admitted the joiner or let them wait.
            Ok(Joined::Here(_)) => metrics.join_time(received.elapsed()),
            // The hosting node counts it, once, wherever its client connected.
            Ok(Joined::Relay(_)) => {}
            Err(_) => metrics.join(JoinResult::Refused),
        }
    }
    joined
}

/// Joins the room `frame` (whose text is `text`) asks for: here, or by relaying the connection
/// to the node that hosts the room.
async fn join_with(
    registry: &Arc<Registry>,
    frame: ClientFrame,
    text: &str,
    link: &ConnectionLink,
    relayed: bool,
) -> Result<Joined, JoinError> {
    match frame.message {
        ClientMessage::Hello { protocol, token } => {
            if protocol != PROTOCOL_VERSION {
                return Err(JoinError::UnsupportedProtocol);
            }
            let context = registry.context();
            let identity = context.keys().verify(&token)?;
            let removed = || {
                context
                    .is_banned(&identity.room, &identity.participant)
                    .then(|| {
                        JoinError::Room(RoomError::Forbidden(
                            "you were removed from this session".into(),
                        ))
                    })
            };
            if let Some(refusal) = removed() {
                return Err(refusal);
            }
            let locate = || async { registry.locate(&identity.room, relayed).await.map(Some) };
            if let Some(relayed) = relay_if_elsewhere(registry, text, locate).await? {
                return Ok(relayed);
            }
            // A room about to start here: first the removals made from it on other nodes.
            registry.learn_removals(&identity.room).await?;
            if let Some(refusal) = removed() {
                return Err(refusal);
            }
            let joiner = Joiner {
                id: identity.participant.clone(),
                name: identity.name.trim().to_owned(),
                role: identity.role,
            };
            // A room whose task just closed refuses the command; the next look-up starts anew.
            for _ in 0..3 {
                let room = registry.start(&identity.room).await?;
                match room.join(joiner.clone(), frame.id, link.clone()).await {
                    Ok(()) => {
                        return Ok(Joined::Here(Seat {
                            room,
                            participant: joiner.id,
                        }))
                    }
                    Err(Sent::Refused(e)) => return Err(e.into()),
                    Err(Sent::Closed) => registry.forget_closed_room(&identity.room, &room),
                }
            }
            Err(JoinError::Room(RoomError::Closing))
        }
        ClientMessage::Resume {
            protocol,
            resume_token,
            last_seq,
        } => {
            if protocol != PROTOCOL_VERSION {
                return Err(JoinError::UnsupportedProtocol);
            }
            // A resume token names its room; the room alone knows whose seat it holds.
            let room_id = resume_token
                .split_once('.')
                .map(|(room, _)| circle_protocol::RoomId(room.to_owned()))
                .filter(|room| crate::token::valid_room_id(room.as_str()))
                .ok_or(JoinError::UnknownResumeToken)?;
            let locate = || registry.locate_existing(&room_id, relayed);
            if let Some(relayed) = relay_if_elsewhere(registry, text, locate).await? {
                return Ok(relayed);
            }
            let room = registry
                .carry_on(&room_id)
                .await?
                .ok_or(JoinError::UnknownResumeToken)?;
            match room
                .resume(resume_token, frame.id, last_seq, link.clone())
                .await
            {
                Ok(participant) => Ok(Joined::Here(Seat { room, participant })),
                Err(Sent::Refused(e)) => Err(e.into()),
                Err(Sent::Closed) => Err(JoinError::UnknownResumeToken),
            }
        }
        other => Err(JoinError::BadRequest(format!(
            "the first message must be `hello` or `resume`, not `{}`",
            other.type_name()
        ))),
    }
}

/// Relays the connection (whose first message is `text`) to its room's node when `locate` says
/// another node hosts it; `None` when the room is here. A host that cannot be reached has most
/// likely just died, and the cluster notices within a node's time to live: the join asks again
/// until then (the room is carried on by a live node), so a client resuming after a crash is
/// let in, not turned away.
async fn relay_if_elsewhere<F, Fut>(
    registry: &Registry,
    text: &str,
    locate: F,
) -> Result<Option<Joined>, JoinError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Location>, RegistryError>>,
{
    let deadline = Instant::now() + registry.failover_wait();
    loop {
        let host: NodeInfo = match locate().await? {
            None => return Err(JoinError::UnknownResumeToken),
            Some(Location::Here) => return Ok(None),
            Some(Location::Node(host)) => host,
        };
        match relay::open(&host, registry.context().settings(), text).await {
            Ok(upstream) => return Ok(Some(Joined::Relay(Box::new(upstream)))),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "a room's node cannot be reached; asking again");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
