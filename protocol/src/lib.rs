//! Circle's wire protocol, version 1: every message both ways as plain serde types, no I/O.
//!
//! The contract is `shared/protocol.md`; this crate's README lists what it adds and what it
//! settles where that page is silent. Decoding a client frame goes through [`decode_client`],
//! which tells a malformed frame from an unknown type and keeps the request id so the error
//! reply can carry it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Frames larger than this close the socket with [`close::MESSAGE_TOO_BIG`].
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Longest `raise_hand` note, in characters.
pub const MAX_HAND_NOTE_CHARS: usize = 140;

/// Longest `need_help` note, in characters (an extension: protocol.md sets no bound).
pub const MAX_HELP_NOTE_CHARS: usize = 500;

/// Longest check-in question and option, in characters (an extension: protocol.md sets no bound).
pub const MAX_CHECK_IN_QUESTION_CHARS: usize = 300;
pub const MAX_CHECK_IN_OPTION_CHARS: usize = 100;

/// Longest screen-share track id in `set_media`: an `a=msid` track id is 1 to 64 token
/// characters (RFC 8830 §2).
pub const MAX_SCREEN_TRACK_CHARS: usize = 64;

/// The most entries one `tile_sizes` may carry (an extension: the room cap is lower).
pub const MAX_TILE_SIZES: usize = 64;

/// The largest tile height `tile_sizes` may give, in device pixels.
pub const MAX_TILE_HEIGHT: u32 = 8192;

/// Whether `id` can be an `a=msid` track id (RFC 8830 §2: `1*64token-char`, RFC 4566's
/// token characters), as `set_media`'s `screen` must be.
pub fn is_msid_track_id(id: &str) -> bool {
    (1..=MAX_SCREEN_TRACK_CHARS).contains(&id.len())
        && id.bytes().all(|b| {
            matches!(b, 0x21 | 0x23..=0x27 | 0x2A..=0x2B | 0x2D..=0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
        })
}

/// A field that may be absent, null or a value, told apart: absent is `None`, null is
/// `Some(None)`. Used with `#[serde(default)]`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// WebSocket close codes the server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const REMOVED: u16 = 4001;
    pub const REPLACED: u16 = 4002;
    pub const DENIED: u16 = 4003;
    pub const SESSION_ENDED: u16 = 4004;
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Ids come from tokens; Debug prints them quoted like strings so test failures read well.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

id_newtype!(
    /// A participant: the token's `sub`. Survives reconnects.
    ParticipantId
);
id_newtype!(
    /// A room: the token's `room`.
    RoomId
);
id_newtype!(
    /// An open or closed check-in, chosen by the server.
    CheckInId
);

/// A client's request id, echoed in `ok` and `error`.
pub type RequestId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Facilitator,
    Member,
    Observer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FloorMode {
    /// Everyone may speak.
    Open,
    /// Only the stick holder and facilitators may speak.
    Stick,
}

/// The fixed set of anonymous reactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReactionKind {
    Heart,
    Applause,
    Support,
    Thanks,
    MeToo,
    Laugh,
}

impl ReactionKind {
    pub const ALL: [ReactionKind; 6] = [
        ReactionKind::Heart,
        ReactionKind::Applause,
        ReactionKind::Support,
        ReactionKind::Thanks,
        ReactionKind::MeToo,
        ReactionKind::Laugh,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Which of a participant's two peer connections a WebRTC message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PcKind {
    /// The browser sends its microphone and camera; the browser offers.
    Publish,
    /// The browser receives everyone else; the server offers.
    Subscribe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    Offer,
    Answer,
}

/// A browser's `RTCIceCandidateInit`, field names as the browser writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// A browser's `RTCIceServer`, handed to clients in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Every message a client may send. Requests may also carry an `id` (see [`ClientFrame`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Sent first on a new session.
    Hello { protocol: u32, token: String },
    /// Sent first on a reconnect, with the `resume_token` from `welcome`.
    Resume {
        protocol: u32,
        resume_token: String,
        last_seq: u64,
    },
    /// Sent to leave for good; the server closes with 1000.
    Leave,
    /// Sent to check the connection; answered with `pong`.
    Ping,
    /// Sent by a facilitator to let a waiting participant in.
    Admit { participant: ParticipantId },
    /// Sent by a facilitator to refuse a waiting participant.
    Deny { participant: ParticipantId },
    /// Sent by a facilitator to admit everyone waiting.
    AdmitAll,
    /// Sent by a facilitator to switch between open floor and talking stick.
    SetFloorMode { mode: FloorMode },
    /// Sent by a facilitator to give the stick to a member, queued or not.
    GrantFloor { participant: ParticipantId },
    /// Sent by a facilitator to give the stick to the head of the queue.
    GrantNext,
    /// Sent by a facilitator to take the stick back.
    RevokeFloor,
    /// Sent by a facilitator to set (1–3600 s) or clear (null) the per-turn limit.
    SetTurnLimit {
        #[serde(default)]
        seconds: Option<u32>,
    },
    /// Sent by a facilitator to offer the stick to a member.
    InviteToSpeak { participant: ParticipantId },
    /// Sent by a facilitator (anyone's hand) or a member (own hand, no field).
    LowerHand {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<ParticipantId>,
    },
    /// Sent by a facilitator to stop forwarding a member's audio.
    Mute { participant: ParticipantId },
    /// Sent by a facilitator to lift a mute.
    Unmute { participant: ParticipantId },
    /// Sent by a facilitator to remove someone for the rest of the session.
    Remove { participant: ParticipantId },
    /// Sent by a facilitator to lock or unlock the room to new members.
    LockRoom { locked: bool },
    /// Sent by a facilitator to end the session for everyone.
    EndSession,
    /// Sent by a facilitator to open an anonymous check-in.
    StartCheckIn {
        question: String,
        options: Vec<String>,
    },
    /// Sent by a facilitator to close a check-in and publish its result.
    CloseCheckIn { check_in: CheckInId },
    /// Sent by a member to join the queue.
    RaiseHand {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Sent by the stick holder to give the stick back.
    ReleaseFloor,
    /// Sent by the stick holder to hand the stick to a queued member.
    PassFloor { to: ParticipantId },
    /// Sent by an invited member to take the stick or pass.
    AnswerInvite { accept: bool },
    /// Sent by anyone admitted to react anonymously.
    React { kind: ReactionKind },
    /// Sent by a member to signal the facilitators privately.
    NeedHelp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Sent by a member to answer a check-in anonymously; answering again replaces it.
    AnswerCheckIn { check_in: CheckInId, option: u32 },
    /// Sent by anyone when their own microphone, camera or screen share changes. `screen` is
    /// the `a=msid` track id of the screen-share track on `publish` (sharing), null (not
    /// sharing), or absent (unchanged: clients that never share need not send it).
    SetMedia {
        audio: bool,
        video: bool,
        #[serde(
            default,
            deserialize_with = "present",
            skip_serializing_if = "Option::is_none"
        )]
        screen: Option<Option<String>>,
    },
    /// Sent by an admitted client when the size at which it shows others' cameras changes:
    /// the height of each tile in device pixels, 0 while it is not shown. The server sends
    /// each camera in the simulcast layer that fits (an extension, `protocol/README.md`).
    TileSizes { sizes: Vec<TileSize> },
    /// Sent by an admitted client: a WebRTC session description.
    Sdp {
        pc: PcKind,
        sdp_type: SdpType,
        sdp: String,
    },
    /// Sent by an admitted client: a trickled ICE candidate, null at the end.
    Ice {
        pc: PcKind,
        candidate: Option<IceCandidate>,
    },
}

impl ClientMessage {
    /// The `type` tag as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Hello { .. } => "hello",
            ClientMessage::Resume { .. } => "resume",
            ClientMessage::Leave => "leave",
            ClientMessage::Ping => "ping",
            ClientMessage::Admit { .. } => "admit",
            ClientMessage::Deny { .. } => "deny",
            ClientMessage::AdmitAll => "admit_all",
            ClientMessage::SetFloorMode { .. } => "set_floor_mode",
            ClientMessage::GrantFloor { .. } => "grant_floor",
            ClientMessage::GrantNext => "grant_next",
            ClientMessage::RevokeFloor => "revoke_floor",
            ClientMessage::SetTurnLimit { .. } => "set_turn_limit",
            ClientMessage::InviteToSpeak { .. } => "invite_to_speak",
            ClientMessage::LowerHand { .. } => "lower_hand",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Unmute { .. } => "unmute",
            ClientMessage::Remove { .. } => "remove",
            ClientMessage::LockRoom { .. } => "lock_room",
            ClientMessage::EndSession => "end_session",
            ClientMessage::StartCheckIn { .. } => "start_check_in",
            ClientMessage::CloseCheckIn { .. } => "close_check_in",
            ClientMessage::RaiseHand { .. } => "raise_hand",
            ClientMessage::ReleaseFloor => "release_floor",
            ClientMessage::PassFloor { .. } => "pass_floor",
            ClientMessage::AnswerInvite { .. } => "answer_invite",
            ClientMessage::React { .. } => "react",
            ClientMessage::NeedHelp { .. } => "need_help",
            ClientMessage::AnswerCheckIn { .. } => "answer_check_in",
            ClientMessage::SetMedia { .. } => "set_media",
            ClientMessage::TileSizes { .. } => "tile_sizes",
            ClientMessage::Sdp { .. } => "sdp",
            ClientMessage::Ice { .. } => "ice",
        }
    }
}

/// Every `type` a client may send, for telling an unknown type from a malformed known one.
pub const CLIENT_TYPES: &[&str] = &[
    "hello",
    "resume",
    "leave",
    "ping",
    "admit",
    "deny",
    "admit_all",
    "set_floor_mode",
    "grant_floor",
    "grant_next",
    "revoke_floor",
    "set_turn_limit",
    "invite_to_speak",
    "lower_hand",
    "mute",
    "unmute",
    "remove",
    "lock_room",
    "end_session",
    "start_check_in",
    "close_check_in",
    "raise_hand",
    "release_floor",
    "pass_floor",
    "answer_invite",
    "react",
    "need_help",
    "answer_check_in",
    "set_media",
    "tile_sizes",
    "sdp",
    "ice",
];

/// A client message with its optional request id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    #[serde(flatten)]
    pub message: ClientMessage,
}

impl ClientFrame {
    pub fn new(message: ClientMessage) -> Self {
        Self { id: None, message }
    }

    pub fn with_id(id: RequestId, message: ClientMessage) -> Self {
        Self {
            id: Some(id),
            message,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("client frames always serialize")
    }
}

/// Why a client frame could not be decoded. Always answered with `bad_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The request id, when the frame was an object with a valid one.
    pub id: Option<RequestId>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one text frame from a client.
///
/// Decoding goes through a `Value` first so that a frame with a bad field still yields its `id`
/// for the error reply, and an unknown `type` gets its own message.
pub fn decode_client(text: &str) -> Result<ClientFrame, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| DecodeError {
        id: None,
        message: format!("malformed JSON: {e}"),
    })?;
    let serde_json::Value::Object(object) = &value else {
        return Err(DecodeError {
            id: None,
            message: "a message must be a JSON object".into(),
        });
    };
    let id = match object.get("id") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                return Err(DecodeError {
                    id: None,
                    message: "`id` must be an unsigned 32-bit integer".into(),
                })
            }
        },
    };
    let type_name = match object.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(DecodeError {
                id,
                message: "`type` must be a string".into(),
            })
        }
        None => {
            return Err(DecodeError {
                id,
                message: "missing field `type`".into(),
            })
        }
    };
    if !CLIENT_TYPES.contains(&type_name.as_str()) {
        return Err(DecodeError {
            id,
            message: format!("unknown type `{}`", truncate(&type_name, 64)),
        });
    }
    let message = ClientMessage::deserialize(value).map_err(|e| DecodeError {
        id,
        message: format!("invalid `{type_name}`: {e}"),
    })?;
    Ok(ClientFrame { id, message })
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    Connected,
    Reconnecting,
}

/// A person in the room as everyone sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    pub role: Role,
    /// The client's own microphone state.
    pub audio: bool,
    /// The client's own camera state.
    pub video: bool,
    /// Sharing a screen now (announced with `set_media`'s `screen`, and allowed).
    #[serde(default)]
    pub screen: bool,
    /// A facilitator's block on this participant's audio.
    pub muted: bool,
    pub connection: Connection,
}

/// How large a client shows one participant's camera (`tile_sizes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileSize {
    pub participant: ParticipantId,
    /// Device pixels; 0 while the tile is not shown.
    pub height: u32,
}

/// One entry of the raise-hand queue, as facilitators see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub participant: ParticipantId,
    pub note: Option<String>,
}

/// The floor as one recipient sees it: `position` and `queue` depend on who receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloorState {
    pub mode: FloorMode,
    pub holder: Option<ParticipantId>,
    pub queue_length: u32,
    /// The receiver's own place in the queue, 1 = next; null when not queued.
    pub position: Option<u32>,
    /// The ordered queue with notes, for facilitators; null for everyone else.
    pub queue: Option<Vec<QueueEntry>>,
    /// When the current turn's limit runs out, Unix milliseconds.
    pub turn_ends_at: Option<u64>,
    /// Extension: for the stick holder only, the queued participants in order (without notes), so
    /// that `pass_floor` has someone to name. Absent for everyone else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_to: Option<Vec<ParticipantId>>,
}

/// An open check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    pub check_in: CheckInId,
    pub question: String,
    pub options: Vec<String>,
}

/// The full room state handed to a joiner in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    pub id: RoomId,
    pub participants: Vec<Participant>,
    pub floor: FloorState,
    pub locked: bool,
    /// Per-turn limit in seconds, or null.
    pub turn_limit: Option<u32>,
    pub check_in: Option<CheckIn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    Left,
    Removed,
    Timeout,
}

/// The status of a participant's own hand or turn, in `hand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandStatus {
    /// In the queue, at `position`.
    Queued,
    /// The stick is theirs.
    Granted,
    /// A facilitator lowered their hand.
    Denied,
    /// They lowered their own hand.
    Cancelled,
    /// They gave the stick back or passed it on.
    Released,
    /// A facilitator took the stick back, or the turn limit ran out.
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnsupportedProtocol,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RoomLocked,
    RoomFull,
    RateLimited,
    Internal,
}

/// Why a session ended, in `session_ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A facilitator ended the session.
    EndedByFacilitator,
    /// The clinic's system ended it through the admin API (`operations.md`).
    EndedByAdmin,
    /// The server is shutting down.
    ServerShutdown,
}

/// Every message the server sends. On the wire each also carries `seq` (see [`ServerFrame`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent when the joiner is admitted (or resumes and cannot be replayed): the full state.
    Welcome {
        protocol: u32,
        you: Participant,
        room: Box<RoomState>,
        resume_token: String,
        ice_servers: Vec<IceServer>,
    },
    /// Sent after a successful `resume` has replayed what the client missed (extension; a
    /// resume answered with a fresh `welcome` gets its token there): the resume token for the
    /// next reconnect, since each one works once, and current ICE servers (TURN credentials
    /// are short-lived).
    Resumed {
        resume_token: String,
        ice_servers: Vec<IceServer>,
    },
    /// Sent when the joiner is placed in the waiting room.
    Waiting,
    /// Sent when a facilitator refuses the waiting joiner; the socket then closes with 4003.
    Denied,
    /// Sent to facilitators after every change to the waiting room, and on their join.
    WaitingRoom { waiting: Vec<Participant> },
    /// Sent to the room when someone is admitted.
    ParticipantJoined { participant: Participant },
    /// Sent to the room when a field of someone changes (media, muted, connection).
    ParticipantUpdated { participant: Participant },
    /// Sent to the room when someone is gone.
    ParticipantLeft {
        participant: ParticipantId,
        reason: LeaveReason,
    },
    /// Sent to each participant after every change to the floor or the queue.
    Floor(FloorState),
    /// Extension: sent to the room when the lock or the turn limit changes.
    RoomUpdated {
        locked: bool,
        turn_limit: Option<u32>,
    },
    /// Sent to a participant when their own hand or turn changes.
    Hand {
        status: HandStatus,
        position: Option<u32>,
    },
    /// Sent to the invited member when a facilitator offers the stick.
    InvitedToSpeak,
    /// Sent to facilitators when an invited member answers.
    InviteAnswered {
        participant: ParticipantId,
        accepted: bool,
    },
    /// Sent to the holder and facilitators when the turn limit is near.
    TurnWarning { seconds_left: u32 },
    /// Sent to the room at the end of each reaction window that saw reactions; no sender.
    Reactions { counts: BTreeMap<ReactionKind, u32> },
    /// Sent to facilitators when a member asks for help.
    HelpRequested {
        participant: ParticipantId,
        note: Option<String>,
    },
    /// Sent to the room when a check-in opens.
    CheckIn(CheckIn),
    /// Sent to the room when a check-in closes.
    CheckInResult {
        check_in: CheckInId,
        counts: Option<Vec<u32>>,
        responses: u32,
    },
    /// Sent to the room when the set of people speaking changes, at most 4 times a second.
    Speaking { participants: Vec<ParticipantId> },
    /// Sent to a client during WebRTC negotiation.
    Sdp {
        pc: PcKind,
        sdp_type: SdpType,
        sdp: String,
    },
    /// Sent to a client: a trickled ICE candidate of the server, null at the end.
    Ice {
        pc: PcKind,
        candidate: Option<IceCandidate>,
    },
    /// Sent when a request with an `id` has been applied.
    Ok { id: RequestId },
    /// Sent when a request is refused.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        code: ErrorCode,
        message: String,
    },
    /// Sent to the room when the session is over; the socket then closes (4004, or 1001 on shutdown).
    SessionEnded { reason: EndReason },
    /// Sent to a removed participant; the socket then closes with 4001.
    Removed,
    /// Sent in answer to `ping`.
    Pong,
}

impl ServerMessage {
    /// The `type` tag as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Resumed { .. } => "resumed",
            ServerMessage::Waiting => "waiting",
            ServerMessage::Denied => "denied",
            ServerMessage::WaitingRoom { .. } => "waiting_room",
            ServerMessage::ParticipantJoined { .. } => "participant_joined",
            ServerMessage::ParticipantUpdated { .. } => "participant_updated",
            ServerMessage::ParticipantLeft { .. } => "participant_left",
            ServerMessage::Floor(_) => "floor",
            ServerMessage::RoomUpdated { .. } => "room_updated",
            ServerMessage::Hand { .. } => "hand",
            ServerMessage::InvitedToSpeak => "invited_to_speak",
            ServerMessage::InviteAnswered { .. } => "invite_answered",
            ServerMessage::TurnWarning { .. } => "turn_warning",
            ServerMessage::Reactions { .. } => "reactions",
            ServerMessage::HelpRequested { .. } => "help_requested",
            ServerMessage::CheckIn(_) => "check_in",
            ServerMessage::CheckInResult { .. } => "check_in_result",
            ServerMessage::Speaking { .. } => "speaking",
            ServerMessage::Sdp { .. } => "sdp",
            ServerMessage::Ice { .. } => "ice",
            ServerMessage::Ok { .. } => "ok",
            ServerMessage::Error { .. } => "error",
            ServerMessage::SessionEnded { .. } => "session_ended",
            ServerMessage::Removed => "removed",
            ServerMessage::Pong => "pong",
        }
    }

    /// Messages a slow client may lose without losing state: the next one supersedes them.
    pub fn is_droppable(&self) -> bool {
        matches!(
            self,
            ServerMessage::Reactions { .. } | ServerMessage::Speaking { .. }
        )
    }

    pub fn error(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            id,
            code,
            message: message.into(),
        }
    }
}

/// A server message as sent: the message and its per-participant sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFrame {
    pub seq: u64,
    #[serde(flatten)]
    pub message: ServerMessage,
}

impl ServerFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }

    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_media_tells_an_absent_screen_from_a_null_one() {
        let decode = |json: &str| match decode_client(json).unwrap().message {
            ClientMessage::SetMedia { screen, .. } => screen,
            other => panic!("decoded {other:?}"),
        };
        let base = r#"{"type":"set_media","audio":true,"video":true"#;
        assert_eq!(decode(&format!("{base}}}")), None);
        assert_eq!(decode(&format!(r#"{base},"screen":null}}"#)), Some(None));
        assert_eq!(
            decode(&format!(r#"{base},"screen":"t1"}}"#)),
            Some(Some("t1".to_owned()))
        );
    }

    #[test]
    fn a_screen_track_id_is_one_to_64_token_characters() {
        assert!(is_msid_track_id("3b1f6a52-6d0e-4d43-9d6b-2f1c1e0a7c11"));
        assert!(is_msid_track_id("{b0e6d4b2}"));
        assert!(!is_msid_track_id(""));
        assert!(!is_msid_track_id(&"a".repeat(65)));
        assert!(!is_msid_track_id("two words"));
        assert!(!is_msid_track_id("line\nbreak"));
    }

    #[test]
    fn every_client_type_is_listed_once() {
        let mut types = CLIENT_TYPES.to_vec();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), CLIENT_TYPES.len());
    }

    #[test]
    fn an_unknown_type_is_named_as_such_and_keeps_the_id() {
        let err = decode_client(r#"{"type":"fly","id":7}"#).unwrap_err();
        assert_eq!(err.id, Some(7));
        assert!(err.message.contains("unknown type"), "{}", err.message);
    }

    #[test]
    fn a_missing_field_keeps_the_id() {
        let err = decode_client(r#"{"type":"admit","id":9}"#).unwrap_err();
        assert_eq!(err.id, Some(9));
        assert!(err.message.contains("participant"), "{}", err.message);
    }

    #[test]
    fn malformed_json_is_an_error_without_id() {
        let err = decode_client(r#"{"type":"ping","#).unwrap_err();
        assert_eq!(err.id, None);
        assert!(err.message.starts_with("malformed JSON"));
    }

    #[test]
    fn unit_messages_accept_an_id_and_unknown_fields() {
        let frame = decode_client(r#"{"type":"leave","id":3,"extra":true}"#).unwrap();
        assert_eq!(frame, ClientFrame::with_id(3, ClientMessage::Leave));
    }

    #[test]
    fn an_id_out_of_range_is_refused() {
        assert!(decode_client(r#"{"type":"ping","id":4294967296}"#).is_err());
        assert!(decode_client(r#"{"type":"ping","id":-1}"#).is_err());
    }

    #[test]
    fn lower_hand_without_participant_means_own_hand() {
        let frame = decode_client(r#"{"type":"lower_hand"}"#).unwrap();
        assert_eq!(
            frame.message,
            ClientMessage::LowerHand { participant: None }
        );
    }

    #[test]
    fn set_turn_limit_null_clears_it() {
        let frame = decode_client(r#"{"type":"set_turn_limit","seconds":null}"#).unwrap();
        assert_eq!(frame.message, ClientMessage::SetTurnLimit { seconds: None });
    }

    #[test]
    fn server_frames_carry_seq_beside_the_type() {
        let frame = ServerFrame {
            seq: 4,
            message: ServerMessage::Ok { id: 2 },
        };
        let v: serde_json::Value = serde_json::from_str(&frame.to_json()).unwrap();
        assert_eq!(v, serde_json::json!({"type":"ok","id":2,"seq":4}));
    }

    #[test]
    fn reaction_counts_use_wire_names() {
        let mut counts = BTreeMap::new();
        counts.insert(ReactionKind::MeToo, 2);
        let json = serde_json::to_string(&ServerMessage::Reactions { counts }).unwrap();
        assert_eq!(json, r#"{"type":"reactions","counts":{"me_too":2}}"#);
    }
}
