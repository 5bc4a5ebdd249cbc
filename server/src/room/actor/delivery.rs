//! How the room's task reaches its participants: every message numbered into the
//! participant's sequence and kept for a resume, handed to the connection with `try_send` only
//! (a connection that cannot keep up loses what may be dropped, then its connection; it may
//! resume), and the one-use resume tokens that find a seat again.

use circle_protocol::{ParticipantId, ServerMessage};
use rand::RngCore;

use super::RoomActor;
use crate::room::handle::Outbound;
use crate::room::outbox::Outbox;
use crate::room::stored::token_hash;

impl RoomActor {
    pub(super) fn send_welcome(&mut self, to: &ParticipantId) {
        let Some((you, room)) = self.room.snapshot(to) else {
            return;
        };
        let resume_token = self.resume_token_for(to);
        let welcome = ServerMessage::Welcome {
            protocol: circle_protocol::PROTOCOL_VERSION,
            you,
            room: Box::new(room),
            resume_token,
            ice_servers: self.context.ice_servers(),
        };
        self.deliver(to, &welcome);
    }

    /// The participant's current resume token, issued now if they have none: the room's id and
    /// 24 random bytes.
    pub(super) fn resume_token_for(&mut self, to: &ParticipantId) -> String {
        if let Some(token) = self.resume_tokens.get(to) {
            return token.clone();
        }
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("{}.{secret}", self.room.id());
        self.resume_tokens.insert(to.clone(), token.clone());
        token
    }

    /// Whose seat a resume token holds. A room has at most a few dozen seats.
    pub(super) fn holder_of(&self, token: &str) -> Option<ParticipantId> {
        if let Some((p, _)) = self.resume_tokens.iter().find(|(_, t)| t.as_str() == token) {
            return Some(p.clone());
        }
        if self.restored_tokens.is_empty() {
            return None;
        }
        let hash = token_hash(token);
        self.restored_tokens
            .iter()
            .find(|(_, h)| **h == hash)
            .map(|(p, _)| p.clone())
    }

    /// An outbox that keeps what a resume may need: what was sent since a socket could have
    /// died unnoticed (two ping intervals) and through the grace, with a margin.
    pub(super) fn new_outbox(&self) -> Outbox {
        let settings = self.context.settings();
        let max_age =
            settings.room.resume_grace_ms + 2 * settings.ping_interval.as_millis() as u64 + 10_000;
        Outbox::new(settings.replay, max_age)
    }

    /// Numbers a message into the participant's sequence and hands it to their connection.
    pub(super) fn deliver(&mut self, to: &ParticipantId, message: &ServerMessage) {
        let now = self.clock.now();
        let Some(outbox) = self.outboxes.get_mut(to) else {
            return;
        };
        if let ServerMessage::Error { code, .. } = message {
            self.context.metrics().error_sent(*code);
        }
        let Some(link) = self.links.get(to) else {
            // Reconnecting: keep it for the replay, but not what the next one supersedes.
            if !message.is_droppable() {
                outbox.push(now, message);
            }
            return;
        };
        if message.is_droppable() && link.tx.capacity() < link.tx.max_capacity() / 2 {
            return;
        }
        let text = outbox.push(now, message);
        self.push_raw(to, Outbound::Text(text));
    }

    pub(super) fn push_raw(&mut self, to: &ParticipantId, out: Outbound) {
        let Some(link) = self.links.get(to) else {
            return;
        };
        if link.tx.try_send(out).is_err() {
            // Too slow (or already gone): drop the connection, never wait for it. What it
            // missed stays in the outbox for its resume.
            tracing::info!(room = %self.room.id(), "dropping a connection that cannot keep up");
            link.kill.cancel();
            self.links.remove(to);
            self.dropped.push(to.clone());
        }
    }
}
