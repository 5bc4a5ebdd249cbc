//! Simulcast, pure: which of a camera's layers each subscriber receives (the size of its tile,
//! and how much its connection carries, judged from its receiver reports), and the rewriting
//! that keeps that subscriber's sequence numbers and timestamps continuous when it moves from
//! one layer to another (only ever at a keyframe of the layer it moves to). A track sent
//! without simulcast is the one-layer case of the same rules.

use std::time::{Duration, Instant};

/// VP8's RTP clock (RFC 7741 §4.1).
const VIDEO_CLOCK_HZ: u128 = 90_000;

/// A layer's picture size, read from its latest keyframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSize {
    pub width: u16,
    pub height: u16,
}

/// RFC 7741 §4.2: the length of a VP8 payload descriptor, or `None` if it is cut short.
pub(crate) fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        // X: an extension byte, then the optional picture id (I, one or two bytes),
        // TL0PICIDX (L), and TID/KEYIDX (T or K).
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let picture_id = *payload.get(at)?;
            at += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    (at <= payload.len()).then_some(at)
}

/// The picture size a VP8 keyframe's first packet carries (RFC 6386 §9.1: after the 3-byte
/// frame tag, the start code 9d 01 2a, then width and height, 14 bits each, little-endian, under
/// two bits of scaling).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<LayerSize> {
    let at = vp8_descriptor_len(payload)?;
    let header = payload.get(at..at + 10)?;
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some(LayerSize { width, height })
}

/// The most layers of one track [`choose_layer`] ranks.
const MAX_RANKED: usize = 8;

/// The layer a subscriber should receive, as an index into `sizes` (one per layer, `None`
/// until that layer's first keyframe): the smallest at least half as high as `wanted` (the
/// tile's height in device pixels; a picture shown at up to twice its size still reads well,
/// and a quarter of the pixels costs about a quarter of the bytes), or the largest when none is; the largest when the subscriber
/// named no size; never above what `downlink` allows. `None`: send nothing, because the tile is
/// hidden (`wanted` of 0), the downlink has paused video, or no layer's size is known yet. A
/// track of one layer needs no size.
pub fn choose_layer(
    sizes: &[Option<LayerSize>],
    wanted: Option<u32>,
    downlink: Downlink,
) -> Option<usize> {
    if wanted == Some(0) || downlink == Downlink::Paused {
        return None;
    }
    if sizes.len() == 1 {
        return Some(0);
    }
    // On the stack: this runs for every copy of a layered packet. Browsers send at most three
    // layers; past `MAX_RANKED` the rest are not considered.
    let mut ranked = [(0u16, 0usize); MAX_RANKED];
    let mut known = 0;
    for (i, size) in sizes.iter().enumerate() {
        if let (Some(size), true) = (size, known < MAX_RANKED) {
            ranked[known] = (size.height, i);
            known += 1;
        }
    }
    let ranked = &mut ranked[..known];
    ranked.sort_unstable();
    let allowed = match downlink {
        Downlink::Full => &ranked[..],
        // One below the largest, unless there is only one.
        Downlink::BelowTop => &ranked[..known.saturating_sub(1).max(known.min(1))],
        Downlink::Lowest | Downlink::Paused => &ranked[..known.min(1)],
    };
    let covering = wanted.and_then(|h| {
        allowed
            .iter()
            .find(|(height, _)| 2 * u32::from(*height) >= h)
    });
    covering.or(allowed.last()).map(|&(_, i)| i)
}

/// `target` ([`choose_layer`]'s answer), unless it is a move up from `current` onto a layer
/// that has not been sending steadily (`steady`, per layer): a browser whose bandwidth estimate
/// is rising starts its upper layer, and often stops it again within a second or two, and each
/// move back down leaves the subscriber without a picture until the lower layer's next
/// keyframe. A move down, a first layer, or a move away from a layer gone quiet (its size
/// `None`) is never held.
pub fn settle(
    target: Option<usize>,
    current: Option<usize>,
    sizes: &[Option<LayerSize>],
    steady: &[bool],
) -> Option<usize> {
    let (Some(to), Some(from)) = (target, current) else {
        return target;
    };
    let (Some(Some(up)), Some(Some(now))) = (sizes.get(to), sizes.get(from)) else {
        return target;
    };
    if up.height > now.height && !steady.get(to).copied().unwrap_or(false) {
        current
    } else {
        target
    }
}

/// How much of its cameras' video a subscriber's connection is sent, below what its tiles want.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Downlink {
    /// The layers the tiles want.
    #[default]
    Full,
    /// At most the layer below each camera's largest.
    BelowTop,
    /// Each camera's smallest layer.
    Lowest,
    /// No camera at all: what is left of the connection is for the voices.
    Paused,
}

impl Downlink {
    fn down(self) -> Self {
        match self {
            Downlink::Full => Downlink::BelowTop,
            Downlink::BelowTop => Downlink::Lowest,
            Downlink::Lowest | Downlink::Paused => Downlink::Paused,
        }
    }

    fn up(self) -> Self {
        match self {
            Downlink::Full | Downlink::BelowTop => Downlink::Full,
            Downlink::Lowest => Downlink::BelowTop,
            Downlink::Paused => Downlink::Lowest,
        }
    }
}

/// A receiver report's fraction lost (RFC 3550 §6.4.1, in 256ths) at or above which the
/// subscriber's video steps down: about 10 %, where video freezes and the voices it shares the
/// connection with start to break up.
const LOSSY: u8 = 26;
/// At or below this (about 2 %) a report counts as clean.
const CLEAN: u8 = 5;
/// After a step down, further reports wait this long to take effect: the lower layer starts
/// only at its next keyframe, and the next report must cover time spent on it.
const SETTLE: Duration = Duration::from_secs(2);
/// Clean reports for this long step the video back up one level...
const RECOVER: Duration = Duration::from_secs(5);
/// ...or for up to this long, doubling each time a step up is soon followed by loss, so that a
/// connection that carries one level and not the next does not swing between them.
const RECOVER_MAX: Duration = Duration::from_secs(60);
/// A step down this soon after a step up means the step up was too much.
const PROBE_FAILED: Duration = Duration::from_secs(10);

/// What a subscriber's receiver reports say its connection carries: steps its video down at
/// once on heavy loss and back up one level after a stretch of clean reports.
#[derive(Debug, Clone)]
pub struct DownlinkControl {
    level: Downlink,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    clean_since: Option<Instant>,
    recover: Duration,
}

impl Default for DownlinkControl {
    fn default() -> Self {
        DownlinkControl {
            level: Downlink::Full,
            last_down: None,
            last_up: None,
            clean_since: None,
            recover: RECOVER,
        }
    }
}

impl DownlinkControl {
    pub fn level(&self) -> Downlink {
        self.level
    }

    /// A receiver report arrived at `now`, whose worst block says `fraction_lost` (256ths).
    /// True when the level changed.
    pub fn report(&mut self, now: Instant, fraction_lost: u8) -> bool {
        let since = |at: Option<Instant>| at.map(|at| now.saturating_duration_since(at));
        if fraction_lost >= LOSSY {
            self.clean_since = None;
            let settled = since(self.last_down).is_none_or(|d| d >= SETTLE);
            if !settled || self.level == Downlink::Paused {
                return false;
            }
            self.recover = match since(self.last_up) {
                Some(d) if d < PROBE_FAILED => (self.recover * 2).min(RECOVER_MAX),
                _ => RECOVER,
            };
            self.level = self.level.down();
            self.last_down = Some(now);
            return true;
        }
        if fraction_lost > CLEAN {
            self.clean_since = None;
            return false;
        }
        let clean_since = *self.clean_since.get_or_insert(now);
        if self.level == Downlink::Full || now.saturating_duration_since(clean_since) < self.recover
        {
            return false;
        }
        self.level = self.level.up();
        self.last_up = Some(now);
        self.clean_since = Some(now);
        true
    }
}

/// One subscriber's copy of one forwarded track: the layer it is on, and the offsets that make
/// each layer's packets continue the sequence and the clock the subscriber has seen so far.
#[derive(Debug, Default)]
pub struct LayerCursor {
    current: Option<usize>,
    seq_offset: u16,
    ts_offset: u32,
    /// The last sequence number and timestamp sent, and when.
    last: Option<(u16, u32, Instant)>,
}

/// What [`LayerCursor::admit`] decided for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it, with this sequence number and timestamp.
    Send { seq: u16, timestamp: u32 },
    /// Not for this subscriber.
    Skip,
    /// Not for this subscriber, which waits for a keyframe of the layer it should move to:
    /// the publisher should be asked for one.
    SkipUntilKeyframe,
}

impl LayerCursor {
    /// The layer being sent now, if any.
    pub fn current(&self) -> Option<usize> {
        self.current
    }

    /// Decides for one packet of `layer` (sequence number `seq`, timestamp `timestamp`) while
    /// the subscriber should receive `target`. A move to another layer waits for that layer's
    /// keyframe (`keyframe_start`: the packet begins one) and sends the old layer meanwhile,
    /// unless `anywhere`: a one-layer track starts at any packet. Pausing (`target` of `None`)
    /// is at once.
    pub fn admit(
        &mut self,
        layer: usize,
        target: Option<usize>,
        (seq, timestamp): (u16, u32),
        keyframe_start: bool,
        anywhere: bool,
        now: Instant,
    ) -> Admit {
        if target != self.current {
            match target {
                None => self.current = None,
                Some(t) if t == layer && (keyframe_start || anywhere) => {
                    if let Some((last_seq, last_ts, at)) = self.last {
                        // The new layer continues the old: the next sequence number, and the
                        // clock advanced by the time that passed (at least one tick).
                        let ticks = now.saturating_duration_since(at).as_micros() * VIDEO_CLOCK_HZ
                            / 1_000_000;
                        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX).max(1);
                        self.seq_offset = last_seq.wrapping_add(1).wrapping_sub(seq);
                        self.ts_offset = last_ts.wrapping_add(ticks).wrapping_sub(timestamp);
                    }
                    self.current = target;
                }
                Some(t) if t == layer => return Admit::SkipUntilKeyframe,
                Some(_) => {}
            }
        }
        if self.current != Some(layer) {
            return Admit::Skip;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = timestamp.wrapping_add(self.ts_offset);
        let newer = self
            .last
            .is_none_or(|(last, _, _)| out_seq.wrapping_sub(last) < 0x8000);
        if newer {
            self.last = Some((out_seq, out_ts, now));
        }
        Admit::Send {
            seq: out_seq,
            timestamp: out_ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SMALL: LayerSize = LayerSize {
        width: 160,
        height: 90,
    };
    const MEDIUM: LayerSize = LayerSize {
        width: 320,
        height: 180,
    };
    const LARGE: LayerSize = LayerSize {
        width: 640,
        height: 360,
    };
    const FULL: Downlink = Downlink::Full;

    #[test]
    fn the_smallest_layer_at_least_half_the_tiles_height_is_chosen() {
        // Layers listed out of size order, as a publisher may open them.
        let sizes = [Some(LARGE), Some(SMALL), Some(MEDIUM)];
        assert_eq!(choose_layer(&sizes, Some(80), FULL), Some(1));
        assert_eq!(choose_layer(&sizes, Some(180), FULL), Some(1));
        assert_eq!(choose_layer(&sizes, Some(181), FULL), Some(2));
        assert_eq!(choose_layer(&sizes, Some(360), FULL), Some(2));
        assert_eq!(choose_layer(&sizes, Some(361), FULL), Some(0));
    }

    #[test]
    fn a_camera_in_the_spotlights_strip_gets_the_small_layer() {
        // A laptop's strip beside the spotlight is at most 300 pixels wide: 169 high.
        let sizes = [Some(SMALL), Some(LARGE)];
        assert_eq!(choose_layer(&sizes, Some(169), FULL), Some(0));
        // A grid of eight on a 1920×1080 screen: 360 high.
        assert_eq!(choose_layer(&sizes, Some(360), FULL), Some(1));
    }

    #[test]
    fn a_tile_larger_than_every_layer_or_of_no_stated_size_gets_the_largest() {
        let sizes = [Some(SMALL), Some(LARGE)];
        assert_eq!(choose_layer(&sizes, Some(2000), FULL), Some(1));
        assert_eq!(choose_layer(&sizes, None, FULL), Some(1));
    }

    #[test]
    fn a_hidden_tile_gets_nothing_at_all() {
        assert_eq!(
            choose_layer(&[Some(SMALL), Some(LARGE)], Some(0), FULL),
            None
        );
        assert_eq!(choose_layer(&[None], Some(0), FULL), None);
    }

    #[test]
    fn the_downlink_keeps_a_subscriber_below_the_layer_its_tile_wants() {
        let sizes = [Some(SMALL), Some(MEDIUM), Some(LARGE)];
        assert_eq!(choose_layer(&sizes, Some(720), Downlink::BelowTop), Some(1));
        assert_eq!(choose_layer(&sizes, None, Downlink::Lowest), Some(0));
        assert_eq!(choose_layer(&sizes, Some(90), Downlink::BelowTop), Some(0));
        let two = [Some(SMALL), Some(LARGE)];
        assert_eq!(choose_layer(&two, None, Downlink::BelowTop), Some(0));
        assert_eq!(
            choose_layer(&[Some(SMALL)], None, Downlink::BelowTop),
            Some(0)
        );
    }

    #[test]
    fn a_paused_downlink_gets_no_camera_even_of_one_layer() {
        assert_eq!(
            choose_layer(&[Some(SMALL), Some(LARGE)], None, Downlink::Paused),
            None
        );
        assert_eq!(choose_layer(&[None], None, Downlink::Paused), None);
    }

    #[test]
    fn a_move_up_waits_until_the_larger_layer_sends_steadily() {
        let sizes = [Some(SMALL), Some(LARGE)];
        assert_eq!(settle(Some(1), Some(0), &sizes, &[true, false]), Some(0));
        assert_eq!(settle(Some(1), Some(0), &sizes, &[true, true]), Some(1));
    }

    #[test]
    fn a_move_down_a_first_layer_or_leaving_a_quiet_layer_is_never_held() {
        let sizes = [Some(SMALL), Some(LARGE)];
        assert_eq!(settle(Some(0), Some(1), &sizes, &[false, false]), Some(0));
        assert_eq!(settle(Some(1), None, &sizes, &[false, false]), Some(1));
        assert_eq!(settle(None, Some(0), &sizes, &[true, true]), None);
        // The small layer went quiet: its size is no longer known.
        assert_eq!(
            settle(Some(1), Some(0), &[None, Some(LARGE)], &[false, false]),
            Some(1)
        );
    }

    const LOSS_20: u8 = 51;
    const LOSS_5: u8 = 13;

    #[test]
    fn heavy_loss_steps_the_video_down_once_per_settling_time_down_to_a_pause() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = DownlinkControl::default();
        assert!(!d.report(at(0), 0));
        assert!(d.report(at(1000), LOSS_20));
        assert_eq!(d.level(), Downlink::BelowTop);
        assert!(
            !d.report(at(2000), LOSS_20),
            "the lower layer has not had its chance yet"
        );
        assert!(d.report(at(3000), LOSS_20));
        assert_eq!(d.level(), Downlink::Lowest);
        assert!(d.report(at(5000), LOSS_20));
        assert_eq!(d.level(), Downlink::Paused);
        assert!(!d.report(at(8000), 255));
        assert_eq!(d.level(), Downlink::Paused);
    }

    #[test]
    fn some_loss_holds_the_level_and_clean_reports_step_it_back_up_one_at_a_time() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = DownlinkControl::default();
        d.report(at(0), LOSS_20);
        d.report(at(2000), LOSS_20);
        assert_eq!(d.level(), Downlink::Lowest);
        assert!(!d.report(at(3000), 0));
        assert!(
            !d.report(at(6000), LOSS_5),
            "moderate loss restarts the clean stretch"
        );
        assert!(!d.report(at(7000), 0));
        assert!(!d.report(at(11_000), 0));
        assert!(d.report(at(12_000), 0), "five clean seconds");
        assert_eq!(d.level(), Downlink::BelowTop);
        assert!(!d.report(at(16_000), 0));
        assert!(d.report(at(17_000), 0));
        assert_eq!(d.level(), Downlink::Full);
        assert!(!d.report(at(60_000), 0), "no higher than full");
    }

    #[test]
    fn a_step_up_that_brings_loss_back_waits_twice_as_long_before_the_next_try() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut d = DownlinkControl::default();
        d.report(at(0), LOSS_20);
        d.report(at(1), 0);
        assert!(d.report(at(6), 0));
        assert_eq!(d.level(), Downlink::Full);
        assert!(d.report(at(7), LOSS_20), "the step up was too much");
        d.report(at(8), 0);
        assert!(!d.report(at(13), 0), "five seconds are not enough now");
        assert!(d.report(at(18), 0), "ten are");
        assert_eq!(d.level(), Downlink::Full);
        // Holding for longer than a failed probe takes resets the wait.
        assert!(d.report(at(40), LOSS_20));
        d.report(at(41), 0);
        assert!(d.report(at(46), 0));
    }

    #[test]
    fn layers_whose_size_is_not_known_yet_are_not_chosen_but_one_layer_needs_none() {
        assert_eq!(choose_layer(&[None, Some(SMALL)], Some(360), FULL), Some(1));
        assert_eq!(choose_layer(&[None, None], None, FULL), None);
        assert_eq!(choose_layer(&[None], Some(720), FULL), Some(0));
    }

    fn send(seq: u16, timestamp: u32) -> Admit {
        Admit::Send { seq, timestamp }
    }

    #[test]
    fn a_one_layer_track_starts_at_once_and_passes_unchanged() {
        let now = Instant::now();
        let mut c = LayerCursor::default();
        assert_eq!(
            c.admit(0, Some(0), (500, 9000), false, true, now),
            send(500, 9000)
        );
        assert_eq!(
            c.admit(0, Some(0), (501, 9000), false, true, now),
            send(501, 9000)
        );
    }

    #[test]
    fn a_layered_track_starts_only_at_a_keyframe_of_the_chosen_layer() {
        let now = Instant::now();
        let mut c = LayerCursor::default();
        assert_eq!(
            c.admit(1, Some(1), (7, 100), false, false, now),
            Admit::SkipUntilKeyframe
        );
        assert_eq!(
            c.admit(0, Some(1), (70, 100), true, false, now),
            Admit::Skip
        );
        assert_eq!(
            c.admit(1, Some(1), (8, 3100), true, false, now),
            send(8, 3100)
        );
        assert_eq!(c.current(), Some(1));
    }

    #[test]
    fn a_move_to_another_layer_waits_for_its_keyframe_and_continues_the_sequence_and_clock() {
        let start = Instant::now();
        let mut c = LayerCursor::default();
        assert_eq!(
            c.admit(0, Some(0), (100, 1000), true, false, start),
            send(100, 1000)
        );
        assert_eq!(
            c.admit(0, Some(0), (101, 4000), false, false, start),
            send(101, 4000)
        );
        // Asked to move to layer 1: layer 0 goes on until layer 1's keyframe.
        assert_eq!(
            c.admit(1, Some(1), (5000, 777), false, false, start),
            Admit::SkipUntilKeyframe
        );
        assert_eq!(
            c.admit(0, Some(1), (102, 7000), false, false, start),
            send(102, 7000)
        );
        let later = start + Duration::from_millis(40);
        assert_eq!(
            c.admit(1, Some(1), (5001, 900_000), true, false, later),
            send(103, 7000 + 3600),
            "the next number, and 40 ms on the 90 kHz clock"
        );
        assert_eq!(
            c.admit(1, Some(1), (5002, 903_000), false, false, later),
            send(104, 13_600)
        );
        assert_eq!(
            c.admit(0, Some(1), (103, 10_000), false, false, later),
            Admit::Skip
        );
    }

    #[test]
    fn a_paused_track_stops_at_once_and_resumes_where_it_left_off() {
        let start = Instant::now();
        let mut c = LayerCursor::default();
        c.admit(0, Some(0), (10, 0), true, false, start);
        assert_eq!(
            c.admit(0, None, (11, 3000), false, false, start),
            Admit::Skip
        );
        let later = start + Duration::from_secs(2);
        assert_eq!(
            c.admit(0, Some(0), (70, 183_000), false, false, later),
            Admit::SkipUntilKeyframe
        );
        assert_eq!(
            c.admit(0, Some(0), (71, 186_000), true, false, later),
            send(11, 180_000),
            "no gap in the numbers, two seconds on the clock"
        );
    }

    /// A VP8 keyframe's first packet: descriptor with a 15-bit picture id, then the frame tag,
    /// start code and a 640×360 size.
    const KEYFRAME: [u8; 14] = [
        0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01,
    ];

    #[test]
    fn a_keyframe_says_its_picture_size() {
        assert_eq!(vp8_keyframe_size(&KEYFRAME), Some(LARGE));
    }

    #[test]
    fn an_interframe_or_a_cut_packet_says_no_size() {
        let mut inter = KEYFRAME;
        inter[4] |= 0x01;
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&KEYFRAME[..12]), None);
        assert_eq!(vp8_keyframe_size(&[0x90]), None);
    }
}
