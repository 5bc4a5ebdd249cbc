//! The room's anonymous acts: reactions counted over a window, and check-ins whose answers are
//! held only while open. Pure types that never let a count name its sender; the room checks who
//! may act and tells the room the results.

use std::collections::{BTreeMap, HashMap, VecDeque};

use circle_protocol::{
    CheckIn, CheckInId, ParticipantId, ReactionKind, MAX_CHECK_IN_OPTION_CHARS,
    MAX_CHECK_IN_QUESTION_CHARS,
};

use super::time::Millis;
use super::RoomError;

/// The fewest people, the sender included, among whom a reaction is counted. With two, each
/// knows that any reaction they did not send came from the other.
pub const ANONYMITY_FLOOR: u32 = 3;

/// Reactions of the current window, and each sender's recent times for the rate limit (never
/// which kind they sent).
#[derive(Debug)]
pub(super) struct Reactions {
    counts: [u32; ReactionKind::ALL.len()],
    flush_at: Option<Millis>,
    recent: HashMap<ParticipantId, VecDeque<Millis>>,
    /// Fewest people shown connected for a reaction to count (never below the floor).
    needed: u32,
    per_second: usize,
    window_ms: u64,
}

impl Reactions {
    pub(super) fn new(threshold: u32, per_second: usize, window_ms: u64) -> Self {
        Self {
            counts: [0; ReactionKind::ALL.len()],
            flush_at: None,
            recent: HashMap::new(),
            needed: threshold.max(ANONYMITY_FLOOR),
            per_second,
            window_ms,
        }
    }

    /// A new threshold from the admin API; never below the floor.
    pub(super) fn set_threshold(&mut self, threshold: u32) {
        self.needed = threshold.max(ANONYMITY_FLOOR);
    }

    /// Counts one reaction from `from`, who is one of `present` people shown connected. The
    /// window opens with the first reaction after a quiet spell.
    pub(super) fn react(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        kind: ReactionKind,
        present: usize,
    ) -> Result<(), RoomError> {
        let (needed, per_second) = (self.needed, self.per_second);
        if present < needed as usize {
            return Err(RoomError::Conflict(format!(
                "reactions stay anonymous only with at least {needed} people in the room"
            )));
        }
        let window_start = now.saturating_sub(1000);
        let recent = self.recent.entry(from.clone()).or_default();
        while recent.front().is_some_and(|t| *t <= window_start) {
            recent.pop_front();
        }
        if recent.len() >= per_second {
            return Err(RoomError::RateLimited(format!(
                "at most {per_second} reactions a second"
            )));
        }
        recent.push_back(now);
        self.counts[kind.index()] += 1;
        self.flush_at.get_or_insert(now + self.window_ms);
        Ok(())
    }

    /// When the window closes.
    pub(super) fn poll_timeout(&self) -> Option<Millis> {
        self.flush_at
    }

    /// The window's counts once it has closed at `now` (kinds nobody sent are left out).
    pub(super) fn handle_timeout(&mut self, now: Millis) -> Option<BTreeMap<ReactionKind, u32>> {
        if self.flush_at.is_none_or(|t| t > now) {
            return None;
        }
        self.flush_at = None;
        let counts = ReactionKind::ALL
            .iter()
            .filter(|k| self.counts[k.index()] > 0)
            .map(|k| (*k, self.counts[k.index()]))
            .collect();
        self.counts = [0; ReactionKind::ALL.len()];
        Some(counts)
    }

    /// Forgets a leaver's rate-limit times.
    pub(super) fn forget(&mut self, id: &ParticipantId) {
        self.recent.remove(id);
    }

    /// Drops the window unsent (the session ended).
    pub(super) fn clear(&mut self) {
        self.counts = [0; ReactionKind::ALL.len()];
        self.flush_at = None;
        self.recent.clear();
    }
}

#[derive(Debug)]
struct OpenCheckIn {
    check_in: CheckIn,
    /// Each answerer's current choice, held only while open so that answering again replaces
    /// it; dropped unread when the check-in closes. Only the counts leave this struct.
    choices: HashMap<ParticipantId, usize>,
}

/// The open check-in, if any, and the numbering of the room's check-ins.
#[derive(Debug)]
pub(super) struct CheckIns {
    open: Option<OpenCheckIn>,
    next: u64,
}

/// A closed check-in's result as the room is told it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CheckInResult {
    pub(super) counts: Option<Vec<u32>>,
    pub(super) responses: u32,
}

/// The check-ins as another node restores them: the open one's question and options and the
/// numbering, never anyone's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckInsRecord {
    open: Option<CheckIn>,
    next: u64,
}

impl CheckIns {
    /// What another node needs to carry on: the answers given so far stay here, so a check-in
    /// that moves starts counting again (server/README.md, "More than one node").
    pub(super) fn record(&self) -> CheckInsRecord {
        CheckInsRecord {
            open: self.open.as_ref().map(|o| o.check_in.clone()),
            next: self.next,
        }
    }

    pub(super) fn restore(record: CheckInsRecord) -> Self {
        Self {
            open: record.open.map(|check_in| OpenCheckIn {
                check_in,
                choices: HashMap::new(),
            }),
            next: record.next,
        }
    }

    pub(super) fn new() -> Self {
        Self {
            open: None,
            next: 1,
        }
    }

    pub(super) fn open(&self) -> Option<&CheckIn> {
        self.open.as_ref().map(|c| &c.check_in)
    }

    /// Opens a check-in; one at a time.
    pub(super) fn start(
        &mut self,
        question: &str,
        options: &[String],
    ) -> Result<CheckIn, RoomError> {
        if self.open.is_some() {
            return Err(RoomError::Conflict("close the open check-in first".into()));
        }
        let question = question.trim().to_owned();
        if question.is_empty() || question.chars().count() > MAX_CHECK_IN_QUESTION_CHARS {
            return Err(RoomError::BadRequest(format!(
                "`question` must be 1 to {MAX_CHECK_IN_QUESTION_CHARS} characters"
            )));
        }
        if !(2..=10).contains(&options.len()) {
            return Err(RoomError::BadRequest(
                "`options` must hold 2 to 10 choices".into(),
            ));
        }
        let options: Vec<String> = options.iter().map(|o| o.trim().to_owned()).collect();
        if options
            .iter()
            .any(|o| o.is_empty() || o.chars().count() > MAX_CHECK_IN_OPTION_CHARS)
        {
            return Err(RoomError::BadRequest(format!(
                "each option must be 1 to {MAX_CHECK_IN_OPTION_CHARS} characters"
            )));
        }
        let check_in = CheckIn {
            check_in: CheckInId(format!("c{}", self.next)),
            question,
            options,
        };
        self.next += 1;
        self.open = Some(OpenCheckIn {
            check_in: check_in.clone(),
            choices: HashMap::new(),
        });
        Ok(check_in)
    }

    /// Records (or replaces) `from`'s answer.
    pub(super) fn answer(
        &mut self,
        from: &ParticipantId,
        id: &CheckInId,
        option: u32,
    ) -> Result<(), RoomError> {
        let open = self
            .open
            .as_mut()
            .filter(|c| &c.check_in.check_in == id)
            .ok_or_else(|| RoomError::NotFound("no such open check-in".into()))?;
        let option = usize::try_from(option)
            .ok()
            .filter(|o| *o < open.check_in.options.len())
            .ok_or_else(|| RoomError::BadRequest("no such option".into()))?;
        open.choices.insert(from.clone(), option);
        Ok(())
    }

    /// Closes the open check-in: its counts, withheld when they would reveal an answer.
    pub(super) fn close(
        &mut self,
        id: &CheckInId,
        threshold: u32,
    ) -> Result<CheckInResult, RoomError> {
        if self.open.as_ref().map(|c| &c.check_in.check_in) != Some(id) {
            return Err(RoomError::NotFound("no such open check-in".into()));
        }
        let open = self.open.take().expect("checked above");
        let mut counts = vec![0u32; open.check_in.options.len()];
        for choice in open.choices.values() {
            counts[*choice] += 1;
        }
        let responses = u32::try_from(open.choices.len()).unwrap_or(u32::MAX);
        let counts = counts_reveal_nobody(&counts, threshold).then_some(counts);
        Ok(CheckInResult { counts, responses })
    }

    /// Drops the open check-in and its answers unread (the session ended).
    pub(super) fn clear(&mut self) {
        self.open = None;
    }
}

/// Whether a check-in's counts may be published without revealing anyone's answer to anyone in
/// the room, assuming the worst: that everyone knows who answered.
///
/// - Fewer answers than the room's threshold: withheld, as `protocol.md` says.
/// - An option everyone chose (`[0, 3]`): each answerer's choice is known to all. Withheld.
/// - An option all but one chose (`[1, 3]` of 4): the one who chose otherwise learns that every
///   other answerer chose it. Withheld.
///
/// So every option's count must stay at most `responses - 2`: then whatever one answerer knows
/// (their own choice), the others' choices still split over at least two options. Zero answers
/// reveal nothing, and with fewer than three answers no split passes this rule.
pub fn counts_reveal_nobody(counts: &[u32], threshold: u32) -> bool {
    let responses: u32 = counts.iter().sum();
    responses >= threshold.max(1) && counts.iter().all(|c| c + 2 <= responses)
}
