//! The webhook sender's bookkeeping, without I/O: pending events lane by lane (receiver and
//! room), which lane heads may be sent now, how many requests each receiver has open, and what
//! the store has yet to be told. Time is an input, so every rule is a plain test.
//!
//! Every lane that holds events and has no request open is scheduled exactly once: in its
//! receiver's `ready` queue when its head is due, in `later` when the head waits for a retry.
//! So taking the due heads and settling an outcome cost the same with ten lanes or ten thousand.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

/// Attempts before an event is given up on (operations.md asks for at least 5). With a 1 s
/// base that is about 17 minutes of trying.
pub const MAX_ATTEMPTS: u32 = 12;
/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One event waiting for one receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    pub url: String,
    pub room: String,
    pub seq: u64,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_at: u64,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Network error, timeout, 5xx or 429: try again later.
    Retry,
    /// Any other answer: the receiver does not want it.
    Refused,
}

impl Outcome {
    pub(super) fn of_status(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Delivered,
            429 | 500..=599 => Outcome::Retry,
            _ => Outcome::Refused,
        }
    }
}

/// The pause before the attempt after `attempts` failed ones: `base`, doubled each time, at
/// most five minutes.
pub fn backoff(base: Duration, attempts: u32) -> u64 {
    let factor = 1u32 << attempts.saturating_sub(1).min(16);
    (base * factor).min(MAX_BACKOFF).as_millis() as u64
}

/// One event's outcome for the store: (id, url, `Some((attempts, next attempt))` to reschedule,
/// `None` to delete).
pub type Settled = (String, String, Option<(u32, u64)>);

#[derive(Debug, Default)]
struct Lane {
    events: VecDeque<Pending>,
    /// Its head is being sent.
    busy: bool,
}

/// One receiver's lanes, by room.
#[derive(Debug, Default)]
struct Receiver {
    lanes: HashMap<String, Lane>,
    /// Rooms whose head is due, oldest first.
    ready: VecDeque<String>,
    /// Rooms whose head waits for a retry, by when.
    later: BinaryHeap<Reverse<(u64, String)>>,
    /// Requests open to this receiver.
    in_flight: usize,
}

impl Receiver {
    /// Puts a lane that is not busy and holds events where it belongs.
    fn schedule(&mut self, room: String, head_at: u64, now: u64) {
        if head_at <= now {
            self.ready.push_back(room);
        } else {
            self.later.push(Reverse((head_at, room)));
        }
    }
}

/// What the lanes hold, and what the store has yet to be told.
#[derive(Debug, Default)]
pub struct Queue {
    receivers: HashMap<String, Receiver>,
    len: usize,
    /// Events the store holds that did not fit in memory: read back once the lanes drain.
    pub overflowed: bool,
    /// Outcomes to write to the store in the next batch.
    pub settled: Vec<Settled>,
}

impl Queue {
    /// Events held in memory.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Puts an event at the end of its lane. A lane that was idle is scheduled for its head's
    /// time (`next_attempt_at`, which is `now` or earlier for a new event).
    pub fn enqueue(&mut self, event: Pending, now: u64) {
        self.len += 1;
        let receiver = self.receivers.entry(event.url.clone()).or_default();
        let lane = receiver.lanes.entry(event.room.clone()).or_default();
        let idle = lane.events.is_empty() && !lane.busy;
        let (room, at) = (event.room.clone(), event.next_attempt_at);
        lane.events.push_back(event);
        if idle {
            receiver.schedule(room, at, now);
        }
    }

    /// The heads that may be sent now, at most `cap` requests open per receiver; each lane
    /// taken is busy until its outcome is settled.
    pub fn take_due(&mut self, now: u64, cap: usize) -> Vec<Pending> {
        let mut due = Vec::new();
        for receiver in self.receivers.values_mut() {
            while let Some(Reverse((at, _))) = receiver.later.peek() {
                if *at > now {
                    break;
                }
                let Some(Reverse((_, room))) = receiver.later.pop() else {
                    break;
                };
                receiver.ready.push_back(room);
            }
            while receiver.in_flight < cap {
                let Some(room) = receiver.ready.pop_front() else {
                    break;
                };
                let Some(lane) = receiver.lanes.get_mut(&room) else {
                    continue;
                };
                let Some(head) = lane.events.front() else {
                    continue;
                };
                lane.busy = true;
                receiver.in_flight += 1;
                due.push(head.clone());
            }
        }
        due
    }

    /// When the earliest retry is due, if any lane waits for one.
    pub fn next_retry(&self) -> Option<u64> {
        self.receivers
            .values()
            .filter_map(|r| r.later.peek().map(|Reverse((at, _))| *at))
            .min()
    }

    /// Records an attempt's outcome: gone when delivered, refused or out of attempts,
    /// rescheduled after a backoff of `base` doubled per attempt otherwise. Returns what became
    /// of it, as the metrics name it. `keep_for_store`: remember it for the next store batch.
    pub fn settle(
        &mut self,
        mut pending: Pending,
        outcome: Outcome,
        now: u64,
        base: Duration,
        keep_for_store: bool,
    ) -> &'static str {
        pending.attempts += 1;
        let result = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Refused => "dropped",
            Outcome::Retry if pending.attempts >= MAX_ATTEMPTS => "failed",
            Outcome::Retry => "retried",
        };
        let keep = result == "retried";
        pending.next_attempt_at = now + backoff(base, pending.attempts);
        if keep_for_store {
            let retry = keep.then_some((pending.attempts, pending.next_attempt_at));
            self.settled
                .push((pending.id.clone(), pending.url.clone(), retry));
        }
        let Some(receiver) = self.receivers.get_mut(&pending.url) else {
            return result;
        };
        let Some(lane) = receiver.lanes.get_mut(&pending.room) else {
            return result;
        };
        // Only the head is ever sent; an outcome for anything else (its lane was reloaded
        // meanwhile) changes nothing but the store.
        if !lane.busy || lane.events.front().map(|h| &h.id) != Some(&pending.id) {
            return result;
        }
        lane.busy = false;
        receiver.in_flight -= 1;
        let room = pending.room.clone();
        if keep {
            let at = pending.next_attempt_at;
            if let Some(head) = lane.events.front_mut() {
                *head = pending;
            }
            receiver.schedule(room, at, now);
        } else {
            lane.events.pop_front();
            self.len -= 1;
            match lane.events.front() {
                Some(next) => {
                    let at = next.next_attempt_at;
                    receiver.schedule(room, at, now);
                }
                None => {
                    receiver.lanes.remove(&room);
                }
            }
        }
        result
    }

    /// Requests open, over all receivers.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.receivers.values().map(|r| r.in_flight).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_trouble_5xx_and_429_are_retried_and_other_4xx_dropped() {
        assert_eq!(Outcome::of_status(200), Outcome::Delivered);
        assert_eq!(Outcome::of_status(204), Outcome::Delivered);
        assert_eq!(Outcome::of_status(429), Outcome::Retry);
        assert_eq!(Outcome::of_status(503), Outcome::Retry);
        assert_eq!(Outcome::of_status(404), Outcome::Refused);
        assert_eq!(Outcome::of_status(301), Outcome::Refused);
    }

    #[test]
    fn the_backoff_doubles_from_its_base_up_to_five_minutes() {
        let base = Duration::from_secs(1);
        assert_eq!(backoff(base, 1), 1_000);
        assert_eq!(backoff(base, 2), 2_000);
        assert_eq!(backoff(base, 5), 16_000);
        assert_eq!(backoff(base, 11), 300_000);
        const { assert!(MAX_ATTEMPTS >= 5) };
    }

    const BASE: Duration = Duration::from_secs(1);

    fn event(url: &str, room: &str, seq: u64, at: u64) -> Pending {
        Pending {
            id: format!("{url}-{room}-{seq}"),
            url: url.to_owned(),
            room: room.to_owned(),
            seq,
            body: String::new(),
            attempts: 0,
            next_attempt_at: at,
        }
    }

    fn ids(due: &[Pending]) -> Vec<String> {
        let mut ids: Vec<String> = due.iter().map(|p| p.id.clone()).collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_room_sends_one_event_at_a_time_in_order() {
        let mut q = Queue::default();
        for seq in 0..3 {
            q.enqueue(event("a", "r", seq, 0), 0);
        }
        let due = q.take_due(0, 8);
        assert_eq!(ids(&due), ["a-r-0"]);
        assert!(
            q.take_due(0, 8).is_empty(),
            "the lane is busy until settled"
        );
        q.settle(due[0].clone(), Outcome::Delivered, 0, BASE, false);
        let due = q.take_due(0, 8);
        assert_eq!(ids(&due), ["a-r-1"]);
        q.settle(due[0].clone(), Outcome::Delivered, 0, BASE, false);
        assert_eq!(ids(&q.take_due(0, 8)), ["a-r-2"]);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn rooms_are_sent_side_by_side_up_to_the_cap_per_receiver() {
        let mut q = Queue::default();
        for room in ["r1", "r2", "r3"] {
            q.enqueue(event("a", room, 0, 0), 0);
            q.enqueue(event("b", room, 0, 0), 0);
        }
        let due = q.take_due(0, 2);
        assert_eq!(due.iter().filter(|p| p.url == "a").count(), 2);
        assert_eq!(due.iter().filter(|p| p.url == "b").count(), 2);
        assert_eq!(q.in_flight(), 4);
        assert!(q.take_due(0, 2).is_empty(), "both receivers are at the cap");
        let first = due.iter().find(|p| p.url == "a").unwrap().clone();
        q.settle(first, Outcome::Delivered, 0, BASE, false);
        let more = q.take_due(0, 2);
        assert_eq!(more.len(), 1);
        assert_eq!(
            more[0].url, "a",
            "a freed slot goes to the same receiver's next room"
        );
    }

    #[test]
    fn a_retry_waits_its_backoff_and_holds_back_the_rest_of_its_room_only() {
        let mut q = Queue::default();
        q.enqueue(event("a", "r", 0, 0), 0);
        q.enqueue(event("a", "r", 1, 0), 0);
        q.enqueue(event("a", "s", 0, 0), 0);
        let due = q.take_due(0, 8);
        assert_eq!(ids(&due), ["a-r-0", "a-s-0"]);
        let r0 = due.iter().find(|p| p.room == "r").unwrap().clone();
        assert_eq!(q.settle(r0, Outcome::Retry, 0, BASE, true), "retried");
        assert_eq!(q.next_retry(), Some(1_000));
        assert!(q.take_due(999, 8).is_empty(), "r waits; s is still busy");
        let again = q.take_due(1_000, 8);
        assert_eq!(
            ids(&again),
            ["a-r-0"],
            "the same event comes back, before r's next"
        );
        assert_eq!(again[0].attempts, 1);
        assert_eq!(q.settled, [("a-r-0".into(), "a".into(), Some((1, 1_000)))]);
    }

    #[test]
    fn refused_and_exhausted_events_leave_and_their_room_moves_on() {
        let mut q = Queue::default();
        q.enqueue(event("a", "r", 0, 0), 0);
        q.enqueue(event("a", "r", 1, 0), 0);
        let head = q.take_due(0, 8).remove(0);
        assert_eq!(q.settle(head, Outcome::Refused, 0, BASE, true), "dropped");
        let mut head = q.take_due(0, 8).remove(0);
        head.attempts = MAX_ATTEMPTS - 1;
        assert_eq!(q.settle(head, Outcome::Retry, 0, BASE, true), "failed");
        assert!(q.is_empty());
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.settled.len(), 2);
        assert!(q.settled.iter().all(|(_, _, retry)| retry.is_none()));
    }

    #[test]
    fn an_event_for_a_room_waiting_on_a_retry_waits_behind_it() {
        let mut q = Queue::default();
        q.enqueue(event("a", "r", 0, 0), 0);
        let head = q.take_due(0, 8).remove(0);
        q.settle(head, Outcome::Retry, 0, BASE, false);
        q.enqueue(event("a", "r", 1, 10), 10);
        assert!(q.take_due(10, 8).is_empty());
        assert_eq!(ids(&q.take_due(1_000, 8)), ["a-r-0"]);
    }

    #[test]
    fn an_outcome_for_an_event_no_longer_at_its_lane_head_changes_only_the_store() {
        let mut q = Queue::default();
        q.enqueue(event("a", "r", 0, 0), 0);
        let stray = event("a", "r", 7, 0);
        q.settle(stray, Outcome::Delivered, 0, BASE, true);
        assert_eq!(q.len(), 1);
        assert_eq!(ids(&q.take_due(0, 8)), ["a-r-0"]);
        assert_eq!(q.settled.len(), 1);
    }
}
