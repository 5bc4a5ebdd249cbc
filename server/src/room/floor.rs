//! The floor: the talking stick, the running turn and its limit, the queue of raised hands, the
//! one outstanding invitation, and the mode. A pure type that owns its invariants; the room
//! decides who may ask and tells people what changed.

use std::collections::VecDeque;

use circle_protocol::{FloorMode, FloorState, ParticipantId, QueueEntry};

use super::time::Millis;
use super::RoomError;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Turn {
    ends_at: Option<Millis>,
    warn_at: Option<Millis>,
}

/// The whole floor as another node restores it: the same fields, kept in the cluster's Redis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FloorRecord {
    mode: FloorMode,
    holder: Option<ParticipantId>,
    turn: Option<Turn>,
    turn_limit: Option<u32>,
    queue: Vec<QueueEntry>,
    invited: Option<ParticipantId>,
}

/// What a turn's timer did when it came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TurnTimer {
    /// The limit ran out: this holder lost the stick.
    Ended(ParticipantId),
    /// The limit is near: warn the holder (and facilitators).
    Warn {
        holder: ParticipantId,
        seconds_left: u32,
    },
}

#[derive(Debug)]
pub(super) struct Floor {
    mode: FloorMode,
    holder: Option<ParticipantId>,
    turn: Option<Turn>,
    turn_limit: Option<u32>,
    queue: VecDeque<QueueEntry>,
    invited: Option<ParticipantId>,
}

impl Floor {
    /// Everything the floor holds, for another node to carry on from.
    pub(super) fn record(&self) -> FloorRecord {
        FloorRecord {
            mode: self.mode,
            holder: self.holder.clone(),
            turn: self.turn.clone(),
            turn_limit: self.turn_limit,
            queue: self.queue.iter().cloned().collect(),
            invited: self.invited.clone(),
        }
    }

    /// The floor as `record` left it, keeping only the people in `present`: the stick, the turn
    /// and its timers, the queue with its notes, the invitation and the mode.
    pub(super) fn restore(record: FloorRecord, present: impl Fn(&ParticipantId) -> bool) -> Self {
        let holder = record.holder.filter(|h| present(h));
        Self {
            mode: record.mode,
            turn: holder.as_ref().and(record.turn),
            holder,
            turn_limit: record.turn_limit,
            queue: record
                .queue
                .into_iter()
                .filter(|e| present(&e.participant))
                .collect(),
            invited: record.invited.filter(|i| present(i)),
        }
    }

    pub(super) fn new() -> Self {
        Self {
            mode: FloorMode::Open,
            holder: None,
            turn: None,
            turn_limit: None,
            queue: VecDeque::new(),
            invited: None,
        }
    }

    pub(super) fn mode(&self) -> FloorMode {
        self.mode
    }

    pub(super) fn holder(&self) -> Option<&ParticipantId> {
        self.holder.as_ref()
    }

    pub(super) fn holds(&self, id: &ParticipantId) -> bool {
        self.holder.as_ref() == Some(id)
    }

    pub(super) fn turn_limit(&self) -> Option<u32> {
        self.turn_limit
    }

    pub(super) fn is_queued(&self, id: &ParticipantId) -> bool {
        self.queue.iter().any(|e| &e.participant == id)
    }

    pub(super) fn head_of_queue(&self) -> Option<&ParticipantId> {
        self.queue.front().map(|e| &e.participant)
    }

    pub(super) fn is_invited(&self, id: &ParticipantId) -> bool {
        self.invited.as_ref() == Some(id)
    }

    /// True when the mode changed.
    pub(super) fn set_mode(&mut self, mode: FloorMode) -> bool {
        let changed = mode != self.mode;
        self.mode = mode;
        changed
    }

    /// Gives the stick to `to` (out of the queue, their invitation settled) for a new turn;
    /// the previous holder, if any, loses it.
    pub(super) fn give(&mut self, now: Millis, to: &ParticipantId) -> Option<ParticipantId> {
        let previous = self.holder.take();
        self.queue.retain(|e| &e.participant != to);
        if self.invited.as_ref() == Some(to) {
            self.invited = None;
        }
        self.holder = Some(to.clone());
        self.turn = Some(self.new_turn(now));
        previous
    }

    /// Takes the stick back; who had it.
    pub(super) fn revoke(&mut self) -> Result<ParticipantId, RoomError> {
        let holder = self
            .holder
            .take()
            .ok_or_else(|| RoomError::Conflict("nobody holds the stick".into()))?;
        self.turn = None;
        Ok(holder)
    }

    /// The holder gives the stick back.
    pub(super) fn release(&mut self, from: &ParticipantId) -> Result<(), RoomError> {
        if !self.holds(from) {
            return Err(RoomError::Conflict("you do not hold the stick".into()));
        }
        self.holder = None;
        self.turn = None;
        Ok(())
    }

    /// Checks that the holder `from` may pass the stick to `to`: someone queued.
    pub(super) fn check_pass(
        &self,
        from: &ParticipantId,
        to: &ParticipantId,
    ) -> Result<(), RoomError> {
        if !self.holds(from) {
            return Err(RoomError::Conflict("you do not hold the stick".into()));
        }
        if !self.is_queued(to) {
            return Err(RoomError::Conflict(
                "the stick passes only to someone in the queue".into(),
            ));
        }
        Ok(())
    }

    /// Sets the per-turn limit; true when it changed. A running turn restarts its clock from
    /// now: a limit set mid-turn must not end a turn that has already run longer without warning.
    pub(super) fn set_turn_limit(
        &mut self,
        now: Millis,
        seconds: Option<u32>,
    ) -> Result<bool, RoomError> {
        if seconds.is_some_and(|s| !(1..=3600).contains(&s)) {
            return Err(RoomError::BadRequest(
                "`seconds` must be between 1 and 3600, or null".into(),
            ));
        }
        if seconds == self.turn_limit {
            return Ok(false);
        }
        self.turn_limit = seconds;
        if self.holder.is_some() {
            self.turn = Some(self.new_turn(now));
        }
        Ok(true)
    }

    /// Offers `to` the stick; one invitation is outstanding at a time.
    pub(super) fn invite(&mut self, to: &ParticipantId) -> Result<(), RoomError> {
        if self.holds(to) {
            return Err(RoomError::Conflict(
                "that member already holds the stick".into(),
            ));
        }
        self.invited = Some(to.clone());
        Ok(())
    }

    /// Settles `from`'s invitation (they accept or pass).
    pub(super) fn answer_invite(&mut self, from: &ParticipantId) -> Result<(), RoomError> {
        if !self.is_invited(from) {
            return Err(RoomError::Conflict("there is no invitation for you".into()));
        }
        self.invited = None;
        Ok(())
    }

    /// Queues `from` with an optional note; their place, 1 being next.
    pub(super) fn raise(
        &mut self,
        from: &ParticipantId,
        note: Option<String>,
    ) -> Result<u32, RoomError> {
        if self.holds(from) {
            return Err(RoomError::Conflict("you hold the stick".into()));
        }
        if self.is_queued(from) {
            return Err(RoomError::Conflict("your hand is already raised".into()));
        }
        self.queue.push_back(QueueEntry {
            participant: from.clone(),
            note,
        });
        Ok(self.queue.len() as u32)
    }

    /// Takes `target` out of the queue.
    pub(super) fn lower(&mut self, target: &ParticipantId) -> Result<(), RoomError> {
        let at = self
            .queue
            .iter()
            .position(|e| &e.participant == target)
            .ok_or_else(|| RoomError::Conflict("that hand is not raised".into()))?;
        self.queue.remove(at);
        Ok(())
    }

    /// Clears a departed participant from the stick, the queue and the invitation; true when
    /// the floor as others see it changed.
    pub(super) fn forget(&mut self, id: &ParticipantId) -> bool {
        let mut changed = false;
        if self.holds(id) {
            self.holder = None;
            self.turn = None;
            changed = true;
        }
        let before = self.queue.len();
        self.queue.retain(|e| &e.participant != id);
        changed |= self.queue.len() != before;
        if self.invited.as_ref() == Some(id) {
            self.invited = None;
        }
        changed
    }

    /// Empties the floor (the session ended).
    pub(super) fn clear(&mut self) {
        self.queue.clear();
        self.holder = None;
        self.turn = None;
        self.invited = None;
    }

    /// When the running turn's timer next needs a look.
    pub(super) fn poll_timeout(&self) -> Option<Millis> {
        let turn = self.turn.as_ref()?;
        [turn.warn_at, turn.ends_at].into_iter().flatten().min()
    }

    /// Runs the turn's timer at `now`.
    pub(super) fn handle_timeout(&mut self, now: Millis) -> Option<TurnTimer> {
        let holder = self.holder.clone()?;
        let turn = self.turn.as_mut()?;
        if turn.ends_at.is_some_and(|t| t <= now) {
            self.holder = None;
            self.turn = None;
            return Some(TurnTimer::Ended(holder));
        }
        let (Some(warn_at), Some(ends_at)) = (turn.warn_at, turn.ends_at) else {
            return None;
        };
        if warn_at > now {
            return None;
        }
        turn.warn_at = None;
        let seconds_left =
            u32::try_from(ends_at.saturating_sub(now).div_ceil(1000)).unwrap_or(u32::MAX);
        Some(TurnTimer::Warn {
            holder,
            seconds_left,
        })
    }

    fn new_turn(&self, now: Millis) -> Turn {
        let Some(limit) = self.turn_limit else {
            return Turn {
                ends_at: None,
                warn_at: None,
            };
        };
        let ends_at = now + u64::from(limit) * 1000;
        // Ten seconds' notice, or half of a short turn; a one-second turn gets none.
        let lead = if limit >= 20 { 10 } else { limit / 2 };
        Turn {
            ends_at: Some(ends_at),
            warn_at: (lead > 0).then(|| ends_at - u64::from(lead) * 1000),
        }
    }

    /// The floor as `to` sees it: their own place, the queue with notes for facilitators, and
    /// whom the stick may pass to for its holder.
    pub(super) fn view_for(&self, to: &ParticipantId, facilitator: bool) -> FloorState {
        let position = self
            .queue
            .iter()
            .position(|e| &e.participant == to)
            .map(|i| i as u32 + 1);
        FloorState {
            mode: self.mode,
            holder: self.holder.clone(),
            queue_length: self.queue.len() as u32,
            position,
            queue: facilitator.then(|| self.queue.iter().cloned().collect()),
            turn_ends_at: self.turn.as_ref().and_then(|t| t.ends_at),
            pass_to: self
                .holds(to)
                .then(|| self.queue.iter().map(|e| e.participant.clone()).collect()),
        }
    }

    /// The floor's own invariants, given who may hold or queue for the stick (an admitted
    /// member).
    pub(super) fn check_invariants(
        &self,
        may_speak: impl Fn(&ParticipantId) -> bool,
    ) -> Result<(), String> {
        if let Some(h) = &self.holder {
            if !may_speak(h) {
                return Err(format!("the holder {h} is not an admitted member"));
            }
            if self.is_queued(h) {
                return Err("the holder is in the queue".into());
            }
        } else if self.turn.is_some() {
            return Err("a turn runs with no holder".into());
        }
        let mut queued = std::collections::HashSet::new();
        for e in &self.queue {
            if !queued.insert(&e.participant) {
                return Err(format!("{} is queued twice", e.participant));
            }
            if !may_speak(&e.participant) {
                return Err(format!(
                    "{} is queued but not an admitted member",
                    e.participant
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::from(s)
    }

    #[test]
    fn giving_the_stick_takes_its_new_holder_out_of_the_queue_and_settles_their_invitation() {
        let mut f = Floor::new();
        f.raise(&pid("a"), None).unwrap();
        f.raise(&pid("b"), None).unwrap();
        f.invite(&pid("b")).unwrap();
        assert_eq!(f.give(0, &pid("b")), None);
        assert!(f.holds(&pid("b")) && !f.is_queued(&pid("b")) && !f.is_invited(&pid("b")));
        assert_eq!(f.give(0, &pid("a")), Some(pid("b")));
        f.check_invariants(|_| true).unwrap();
    }

    #[test]
    fn a_turn_limit_warns_ten_seconds_before_the_end_then_takes_the_stick_back() {
        let mut f = Floor::new();
        f.set_turn_limit(0, Some(60)).unwrap();
        f.give(1_000, &pid("a"));
        assert_eq!(f.poll_timeout(), Some(51_000));
        assert_eq!(
            f.handle_timeout(51_000),
            Some(TurnTimer::Warn {
                holder: pid("a"),
                seconds_left: 10
            })
        );
        assert_eq!(f.poll_timeout(), Some(61_000));
        assert_eq!(f.handle_timeout(61_000), Some(TurnTimer::Ended(pid("a"))));
        assert_eq!(f.holder(), None);
        assert_eq!(f.poll_timeout(), None);
    }

    #[test]
    fn a_limit_set_mid_turn_restarts_the_turns_clock() {
        let mut f = Floor::new();
        f.give(0, &pid("a"));
        assert_eq!(f.set_turn_limit(100_000, Some(30)), Ok(true));
        assert_eq!(f.view_for(&pid("a"), false).turn_ends_at, Some(130_000));
        assert_eq!(f.set_turn_limit(100_000, Some(30)), Ok(false));
        assert!(f.set_turn_limit(0, Some(0)).is_err());
    }
}
