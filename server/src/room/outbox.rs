//! One participant's outgoing sequence: numbers every message with `seq` and keeps the recent
//! ones, so a resumed session can be given exactly what it missed.

use std::collections::VecDeque;
use std::sync::Arc;

use circle_protocol::{ServerFrame, ServerMessage};

/// How much of the past a resume can replay; beyond it the client gets a fresh `welcome`.
#[derive(Debug, Clone, Copy)]
pub struct ReplayLimit {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for ReplayLimit {
    fn default() -> Self {
        Self {
            messages: 2048,
            bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug)]
pub struct Outbox {
    next_seq: u64,
    replay: VecDeque<(u64, Arc<str>)>,
    replay_bytes: usize,
    limit: ReplayLimit,
}

impl Outbox {
    pub fn new(limit: ReplayLimit) -> Self {
        Self {
            next_seq: 1,
            replay: VecDeque::new(),
            replay_bytes: 0,
            limit,
        }
    }

    /// Numbers and encodes a message, and keeps it for replay.
    pub fn push(&mut self, message: &ServerMessage) -> Arc<str> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let text: Arc<str> = ServerFrame {
            seq,
            message: message.clone(),
        }
        .to_json()
        .into();
        self.replay_bytes += text.len();
        self.replay.push_back((seq, text.clone()));
        while self.replay.len() > self.limit.messages || self.replay_bytes > self.limit.bytes {
            let Some((_, old)) = self.replay.pop_front() else {
                break;
            };
            self.replay_bytes -= old.len();
        }
        text
    }

    /// The last sequence number handed out (0 before the first message).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Everything after `last_seq`, in order; `None` when some of it is no longer kept, or the
    /// client claims to have seen more than was sent.
    pub fn replay_after(&self, last_seq: u64) -> Option<Vec<Arc<str>>> {
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
                .filter(|(seq, _)| *seq > last_seq)
                .map(|(_, text)| text.clone())
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
        let mut out = Outbox::new(ReplayLimit::default());
        assert_eq!(seq_of(&out.push(&ServerMessage::Pong)), 1);
        assert_eq!(seq_of(&out.push(&ServerMessage::Pong)), 2);
        assert_eq!(out.last_seq(), 2);
    }

    #[test]
    fn replay_gives_exactly_what_came_after_last_seq() {
        let mut out = Outbox::new(ReplayLimit::default());
        for _ in 0..5 {
            out.push(&ServerMessage::Pong);
        }
        let seqs: Vec<u64> = out
            .replay_after(2)
            .unwrap()
            .iter()
            .map(|t| seq_of(t))
            .collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(out.replay_after(5).unwrap().len(), 0);
    }

    #[test]
    fn replay_refuses_when_the_past_was_dropped_or_claimed_from_the_future() {
        let mut out = Outbox::new(ReplayLimit {
            messages: 3,
            bytes: 1 << 20,
        });
        for _ in 0..6 {
            out.push(&ServerMessage::Pong);
        }
        assert!(out.replay_after(1).is_none());
        assert_eq!(out.replay_after(3).unwrap().len(), 3);
        assert!(out.replay_after(7).is_none());
    }
}
