//! Where every client-visible failure gets its protocol error code: one place, so that the
//! same failure never answers with two different codes.

use circle_protocol::ErrorCode;

use crate::media::MediaError;
use crate::room::RoomError;
use crate::token::TokenError;

/// A failure a client is told about.
pub trait ClientVisible: std::fmt::Display {
    fn code(&self) -> ErrorCode;
}

impl ClientVisible for RoomError {
    fn code(&self) -> ErrorCode {
        match self {
            RoomError::BadRequest(_) => ErrorCode::BadRequest,
            RoomError::Unauthorized(_) => ErrorCode::Unauthorized,
            RoomError::Forbidden(_) => ErrorCode::Forbidden,
            RoomError::NotFound(_) => ErrorCode::NotFound,
            RoomError::Conflict(_) | RoomError::NotJoined => ErrorCode::Conflict,
            RoomError::RoomLocked => ErrorCode::RoomLocked,
            RoomError::RoomFull => ErrorCode::RoomFull,
            RoomError::RateLimited(_) => ErrorCode::RateLimited,
            RoomError::Closing => ErrorCode::Internal,
        }
    }
}

impl ClientVisible for TokenError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Unauthorized
    }
}

impl RoomError {
    pub fn code(&self) -> ErrorCode {
        ClientVisible::code(self)
    }
}

impl ClientVisible for MediaError {
    fn code(&self) -> ErrorCode {
        match self {
            MediaError::NotFound => ErrorCode::NotFound,
            MediaError::Forbidden(_) => ErrorCode::Forbidden,
            MediaError::Conflict(_) => ErrorCode::Conflict,
            MediaError::BadSdp(_) => ErrorCode::BadRequest,
            MediaError::Config(_) | MediaError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl MediaError {
    pub fn code(&self) -> ErrorCode {
        ClientVisible::code(self)
    }

    /// What the client is told: the library's own words can quote the client's description or
    /// addresses, so those stay in debug logs.
    pub fn client_message(&self) -> String {
        match self {
            MediaError::BadSdp(_) => "the session description could not be used".to_owned(),
            MediaError::Internal(_) | MediaError::Config(_) => {
                "the media server could not do that".to_owned()
            }
            other => other.to_string(),
        }
    }
}
