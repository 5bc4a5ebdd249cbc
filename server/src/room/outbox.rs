//! One participant's outgoing sequence: numbers every message with `seq` and keeps the recent
//! ones, so a resumed connection can be given exactly what it missed, and nothing older: a resume
//! token in the wrong hands must not read back the session's history.

use std::collections::VecDeque;
use std::sync::Arc;

use circle_protocol::{ServerFrame, ServerMessage};

use super::time::Millis;
pub use crate::config::ReplayLimit;

#[derive(Debug)]
pub struct Outbox {
    next_seq: u64,
    /// Each kept message with its sequence number and when it was sent.
    replay: VecDeque<(u64, Millis, Arc<str>)>,
    replay_bytes: usize,
    limit: ReplayLimit,
    /// Messages older than this are never replayed. A client can only have missed what was
    /// sent since its socket died: at most the server's dead-socket detection plus the resume
    /// grace. Anything older it received, or it gets a fresh `welcome` instead.
    max_age_ms: Millis,
}

impl Outbox {
    pub fn new(limit: ReplayLimit, max_age_ms: Millis) -> Self {
        Self {
            next_seq: 1,
            replay: VecDeque::new(),
            replay_bytes: 0,
            limit,
            max_age_ms,
        }
    }

    /// Numbers on from `last_seq`, the last message the client saw from the room's previous host:
    /// a room carried on by another node never numbers anyone's messages from 1 again.
    pub fn continuing_after(mut self, last_seq: u64) -> Self {
        self.next_seq = last_seq.saturating_add(1);
        self
    }

    /// Numbers and encodes a message sent at `now`, and keeps it for replay.
    pub fn push(&mut self, now: Millis, message: &ServerMessage) -> Arc<str> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let text: Arc<str> = ServerFrame {
            seq,
            message: message.clone(),
        }
        .to_json()
        .into();
        self.replay_bytes += text.len();
        self.replay.push_back((seq, now, text.clone()));
        while self.replay.len() > self.limit.messages || self.replay_bytes > self.limit.bytes {
            self.pop_oldest();
        }
        self.forget_before(now);
        text
    }

    fn pop_oldest(&mut self) {
        if let Some((_, _, old)) = self.replay.pop_front() {
            self.replay_bytes -= old.len();
        }
    }

    /// Drops what is too old to be replayed at `now`.
    fn forget_before(&mut self, now: Millis) {
        let oldest = now.saturating_sub(self.max_age_ms);
        while self.replay.front().is_some_and(|(_, at, _)| *at < oldest) {
            self.pop_oldest();
        }
    }

    /// The last sequence number handed out (0 before the first message).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Everything after `last_seq`, in order; `None` when some of it is no longer kept, or the
    /// client claims to have seen more than was sent.
    pub fn replay_after(&mut self, now: Millis, last_seq: u64) -> Option<Vec<Arc<str>>> {
        self.forget_before(now);
        if last_seq > self.last_seq() {
            return None;
        }
        if last_seq == self.last_seq() {
            return Some(Vec::new());
        }
        let first_kept = self.replay.front()?.0;
        if first_kept > last_seq + 1 {
            return None;
        }
        Some(
            self.replay
                .iter()
                .filter(|(seq, _, _)| *seq > last_seq)
                .map(|(_, _, text)| text.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq_of(text: &str) -> u64 {
        ServerFrame::from_json(text).unwrap().seq
    }

    #[test]
    fn sequence_numbers_start_at_one_and_grow() {
        let mut out = Outbox::new(ReplayLimit::default(), 60_000);
        assert_eq!(seq_of(&out.push(0, &ServerMessage::Pong)), 1);
        assert_eq!(seq_of(&out.push(0, &ServerMessage::Pong)), 2);
        assert_eq!(out.last_seq(), 2);
    }

    #[test]
    fn replay_gives_exactly_what_came_after_last_seq() {
        let mut out = Outbox::new(ReplayLimit::default(), 60_000);
        for _ in 0..5 {
            out.push(0, &ServerMessage::Pong);
        }
        let seqs: Vec<u64> = out
            .replay_after(0, 2)
            .unwrap()
            .iter()
            .map(|t| seq_of(t))
            .collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(out.replay_after(0, 5).unwrap().len(), 0);
    }

    #[test]
    fn replay_refuses_when_the_past_was_dropped_or_claimed_from_the_future() {
        let mut out = Outbox::new(
            ReplayLimit {
                messages: 3,
                bytes: 1 << 20,
            },
            60_000,
        );
        for _ in 0..6 {
            out.push(0, &ServerMessage::Pong);
        }
        assert!(out.replay_after(0, 1).is_none());
        assert_eq!(out.replay_after(0, 3).unwrap().len(), 3);
        assert!(out.replay_after(0, 7).is_none());
    }

    #[test]
    fn messages_older_than_the_age_limit_are_never_replayed() {
        let mut out = Outbox::new(ReplayLimit::default(), 60_000);
        out.push(0, &ServerMessage::Pong);
        out.push(30_000, &ServerMessage::Pong);
        out.push(70_000, &ServerMessage::Pong);
        // The first is older than a minute: a resume from the start gets a fresh welcome.
        assert!(out.replay_after(70_000, 0).is_none());
        assert_eq!(out.replay_after(70_000, 1).unwrap().len(), 2);
        // Time passes without new messages: the limit still applies at the resume.
        assert!(out.replay_after(95_000, 1).is_none());
        assert_eq!(out.replay_after(95_000, 2).unwrap().len(), 1);
    }
}
