//! Who is speaking: turns counts of loud audio packets (RFC 6464 levels) per tick into the
//! room's `speaking` set. Plain data, no clock, so it is tested directly.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use circle_protocol::ParticipantId;

/// `speaking` is reported at most this often (protocol.md: at most 4 times a second).
pub(crate) const SPEAKING_TICK: Duration = Duration::from_millis(250);

/// RFC 6464 carries −dBov: 0 is the loudest, 127 silence. Speech at a normal distance from a
/// microphone sits around −20 to −40 dBov; background noise below −50.
pub(crate) const LOUD_LEVEL: u8 = 50;

/// Loud packets within one tick (250 ms, about 12 Opus packets) needed to count as speaking,
/// so a single click or cough does not light a tile.
const MIN_LOUD_PACKETS: u32 = 3;

/// Ticks a speaker stays in the set after going quiet, so pauses between words do not make
/// the set flap four times a second.
const HANGOVER_TICKS: u8 = 2;

/// Whether an audio level (−dBov) counts as loud.
pub(crate) fn is_loud(level: u8) -> bool {
    level <= LOUD_LEVEL
}

#[derive(Debug, Default)]
pub(crate) struct SpeakingDetector {
    /// Remaining hangover ticks per current speaker.
    speakers: BTreeMap<ParticipantId, u8>,
    last_reported: BTreeSet<ParticipantId>,
}

impl SpeakingDetector {
    /// Feeds one tick's loud-packet counts; returns the new set when it changed.
    pub(crate) fn tick(
        &mut self,
        loud_counts: impl IntoIterator<Item = (ParticipantId, u32)>,
    ) -> Option<Vec<ParticipantId>> {
        let mut loud_now = BTreeSet::new();
        for (participant, count) in loud_counts {
            if count >= MIN_LOUD_PACKETS {
                loud_now.insert(participant);
            }
        }
        self.speakers.retain(|p, ticks| {
            if loud_now.contains(p) {
                return true;
            }
            *ticks = ticks.saturating_sub(1);
            *ticks > 0
        });
        for p in loud_now {
            self.speakers.insert(p, HANGOVER_TICKS + 1);
        }
        let now: BTreeSet<ParticipantId> = self.speakers.keys().cloned().collect();
        if now == self.last_reported {
            return None;
        }
        self.last_reported = now.clone();
        Some(now.into_iter().collect())
    }

    /// Drops a participant who left, without waiting for the hangover.
    pub(crate) fn forget(&mut self, participant: &ParticipantId) {
        self.speakers.remove(participant);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ParticipantId {
        ParticipantId::from(s)
    }

    #[test]
    fn a_loud_participant_is_reported_once_until_the_set_changes() {
        let mut d = SpeakingDetector::default();
        assert_eq!(d.tick([(p("a"), 10)]), Some(vec![p("a")]));
        assert_eq!(d.tick([(p("a"), 10)]), None);
        assert_eq!(
            d.tick([(p("a"), 10), (p("b"), 12)]),
            Some(vec![p("a"), p("b")])
        );
    }

    #[test]
    fn a_single_loud_packet_is_not_speech() {
        let mut d = SpeakingDetector::default();
        assert_eq!(d.tick([(p("a"), 1)]), None);
    }

    #[test]
    fn a_speaker_leaves_the_set_after_the_hangover() {
        let mut d = SpeakingDetector::default();
        assert_eq!(d.tick([(p("a"), 10)]), Some(vec![p("a")]));
        assert_eq!(d.tick([(p("a"), 0)]), None);
        assert_eq!(d.tick([(p("a"), 0)]), None);
        assert_eq!(d.tick([(p("a"), 0)]), Some(vec![]));
    }

    #[test]
    fn forgetting_a_speaker_removes_them_at_the_next_tick() {
        let mut d = SpeakingDetector::default();
        d.tick([(p("a"), 10)]);
        d.forget(&p("a"));
        assert_eq!(d.tick([]), Some(vec![]));
    }

    #[test]
    fn levels_at_or_above_minus_fifty_dbov_are_loud() {
        assert!(is_loud(20));
        assert!(is_loud(50));
        assert!(!is_loud(51));
        assert!(!is_loud(127));
    }
}
