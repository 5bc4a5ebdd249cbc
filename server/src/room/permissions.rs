//! Who may send what: the one permission table of the room's requests (protocol.md's "who"
//! column, and what protocol/README.md settles beyond it). The room checks it before any rule.

use circle_protocol::{ClientMessage, PcKind, Role};

use super::RoomError;

/// Who may send a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    /// Anyone connected, even while waiting to be admitted.
    Anyone,
    /// Anyone admitted.
    Admitted,
    /// Admitted facilitators.
    Facilitator,
    /// Admitted members.
    Member,
    /// Admitted facilitators and members: observers never publish.
    Publisher,
}

/// The table.
pub(super) fn who_may_send(message: &ClientMessage) -> Who {
    use ClientMessage as M;
    match message {
        M::Ping | M::Leave | M::Hello { .. } | M::Resume { .. } => Who::Anyone,
        M::Admit { .. }
        | M::Deny { .. }
        | M::AdmitAll
        | M::SetFloorMode { .. }
        | M::GrantFloor { .. }
        | M::GrantNext
        | M::RevokeFloor
        | M::SetTurnLimit { .. }
        | M::InviteToSpeak { .. }
        | M::Mute { .. }
        | M::Unmute { .. }
        | M::Remove { .. }
        | M::LockRoom { .. }
        | M::EndSession
        | M::StartCheckIn { .. }
        | M::CloseCheckIn { .. } => Who::Facilitator,
        M::RaiseHand { .. } | M::NeedHelp { .. } | M::AnswerCheckIn { .. } => Who::Member,
        M::Sdp {
            pc: PcKind::Publish,
            ..
        }
        | M::Ice {
            pc: PcKind::Publish,
            ..
        } => Who::Publisher,
        M::LowerHand { .. }
        | M::ReleaseFloor
        | M::PassFloor { .. }
        | M::AnswerInvite { .. }
        | M::React { .. }
        | M::SetMedia { .. }
        | M::TileSizes { .. }
        | M::Sdp { .. }
        | M::Ice { .. } => Who::Admitted,
    }
}

/// Checks the table for someone of `role`, admitted or not.
pub(super) fn check(message: &ClientMessage, role: Role, admitted: bool) -> Result<(), RoomError> {
    let who = who_may_send(message);
    if who != Who::Anyone && !admitted {
        return Err(RoomError::Forbidden(
            "you are in the waiting room until a facilitator admits you".into(),
        ));
    }
    let allowed = match who {
        Who::Anyone | Who::Admitted => true,
        Who::Facilitator => role == Role::Facilitator,
        Who::Member => role == Role::Member,
        Who::Publisher => role != Role::Observer,
    };
    if allowed {
        return Ok(());
    }
    Err(RoomError::Forbidden(match who {
        Who::Facilitator => format!("only a facilitator may send `{}`", message.type_name()),
        Who::Member => format!("only a member may send `{}`", message.type_name()),
        _ => "observers do not publish".to_owned(),
    }))
}
