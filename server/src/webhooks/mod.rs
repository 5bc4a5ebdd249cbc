//! Webhooks: which room events the clinic's systems are told (operations.md), the JSON they get,
//! its signature, and the sender that delivers them in order per room ([`deliver`]).
//!
//! Events carry ids and roles only: no display names, notes or content.

pub mod deliver;
pub mod queue;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::events::{FinishReason, LeftReason, RoomEvent, Stamped};
use crate::store::rfc3339;

/// Webhook settings: where to POST and the key that signs.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
}

/// One event's JSON body (`operations.md`, "Webhooks").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    pub id: String,
    pub event: &'static str,
    pub created_at: String,
    pub room: String,
    pub session: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<WebhookParticipant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookParticipant {
    pub id: String,
    pub role: &'static str,
}

pub fn role_name(role: circle_protocol::Role) -> &'static str {
    match role {
        circle_protocol::Role::Facilitator => "facilitator",
        circle_protocol::Role::Member => "member",
        circle_protocol::Role::Observer => "observer",
    }
}

pub fn left_reason(reason: LeftReason) -> &'static str {
    match reason {
        LeftReason::Left => "left",
        LeftReason::Removed => "removed",
        LeftReason::Timeout => "timeout",
        LeftReason::Ended => "ended",
    }
}

pub fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Empty => "empty",
        FinishReason::EndedByFacilitator => "ended_by_facilitator",
        FinishReason::EndedByAdmin => "ended_by_admin",
        FinishReason::ServerShutdown => "server_shutdown",
    }
}

/// The webhook event a room event becomes, if any. `attendance_ready` is not among them: it
/// follows the session's records once they are written (see `records`).
pub fn event_for(stamped: &Stamped) -> Option<WebhookEvent> {
    let participant = |id: &circle_protocol::ParticipantId, role| {
        Some(WebhookParticipant {
            id: id.as_str().to_owned(),
            role: role_name(role),
        })
    };
    let (event, participant, reason) = match &stamped.event {
        RoomEvent::Started => ("room_started", None, None),
        RoomEvent::Finished { reason } => ("room_finished", None, Some(finish_reason(*reason))),
        RoomEvent::Waiting {
            participant: p,
            role,
        } => ("participant_waiting", participant(p, *role), None),
        RoomEvent::Admitted {
            participant: p,
            role,
        } => ("participant_joined", participant(p, *role), None),
        RoomEvent::Left {
            participant: p,
            role,
            reason,
        } => (
            "participant_left",
            participant(p, *role),
            Some(left_reason(*reason)),
        ),
        _ => return None,
    };
    Some(WebhookEvent {
        id: new_id(),
        event,
        created_at: rfc3339(stamped.at),
        room: stamped.room.as_str().to_owned(),
        session: stamped.session.as_str().to_owned(),
        participant,
        reason,
    })
}

/// `attendance_ready`: the session's record is complete and may be fetched.
pub fn attendance_ready(room: &str, session: &str, at: u64) -> WebhookEvent {
    session_event("attendance_ready", None, room, session, at)
}

/// An event about a whole session (no participant), made outside a room's own events: at
/// start-up for a session a crash left open, or once its records are written.
pub fn session_event(
    event: &'static str,
    reason: Option<&'static str>,
    room: &str,
    session: &str,
    at: u64,
) -> WebhookEvent {
    WebhookEvent {
        id: new_id(),
        event,
        created_at: rfc3339(at),
        room: room.to_owned(),
        session: session.to_owned(),
        participant: None,
        reason,
    }
}

/// A unique event id receivers dedupe by: 128 random bits.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// `circle-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
pub fn signature(secret: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::SessionId;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_time_a_dot_and_the_raw_body() {
        // Checked against `printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret`.
        assert_eq!(
            signature(b"secret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn participant_events_carry_an_id_and_a_role_and_never_a_name() {
        let stamped = Stamped {
            room: "tuesday".into(),
            session: SessionId::from_stored("s1".into()),
            at: 0,
            event: RoomEvent::Left {
                participant: "patient-1".into(),
                role: circle_protocol::Role::Member,
                reason: LeftReason::Timeout,
            },
        };
        let event = event_for(&stamped).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "participant_left");
        assert_eq!(json["participant"]["id"], "patient-1");
        assert_eq!(json["participant"]["role"], "member");
        assert_eq!(json["reason"], "timeout");
        assert_eq!(json["session"], "s1");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00Z");
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "created_at",
                "event",
                "id",
                "participant",
                "reason",
                "room",
                "session"
            ]
        );
        let started = Stamped {
            event: RoomEvent::Started,
            ..stamped
        };
        let json = serde_json::to_value(event_for(&started).unwrap()).unwrap();
        assert!(json.get("participant").is_none() && json.get("reason").is_none());
    }
}
