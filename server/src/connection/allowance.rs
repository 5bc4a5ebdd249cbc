//! How much a connection may send: a token bucket for the rate, and strikes for refusals
//! counted over a sliding window. Pure, with time as input.

use std::time::Duration;

// tokio's, as the read loop uses: it is the std one unless a test pauses time.
use tokio::time::Instant;

/// Refused messages, counted over a sliding window: a connection refused more than `limit` times
/// within [`Strikes::WINDOW`] is closed. Allowed messages in between do not wipe the slate,
/// so a client that keeps sending at many times the rate is closed, however its messages
/// interleave with the allowance.
pub(super) struct Strikes {
    limit: usize,
    at: std::collections::VecDeque<Instant>,
}

impl Strikes {
    const WINDOW: Duration = Duration::from_secs(10);

    pub(super) fn new(limit: u32) -> Self {
        Self {
            limit: limit.max(1) as usize,
            at: std::collections::VecDeque::new(),
        }
    }

    /// Counts one refusal at `now`; true when the connection should be closed.
    pub(super) fn strike(&mut self, now: Instant) -> bool {
        while self
            .at
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Self::WINDOW)
        {
            self.at.pop_front();
        }
        self.at.push_back(now);
        self.at.len() > self.limit
    }
}

/// A connection's message allowance: `rate` a second, up to `burst` saved up.
pub(super) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: Instant::now(),
        }
    }

    pub(super) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_and_then_the_rate_refills_the_allowance() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20, 60);
        bucket.at = start;
        assert!((0..60).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        // 20 a second: one more message every 50 ms.
        assert!(bucket.take(start + Duration::from_millis(50)));
        assert!(!bucket.take(start + Duration::from_millis(50)));
    }

    #[test]
    fn more_refusals_than_the_limit_within_ten_seconds_close_the_connection() {
        let start = Instant::now();
        let mut strikes = Strikes::new(3);
        assert!(!strikes.strike(start));
        assert!(!strikes.strike(start + Duration::from_secs(1)));
        assert!(!strikes.strike(start + Duration::from_secs(2)));
        assert!(
            strikes.strike(start + Duration::from_secs(3)),
            "a fourth within 10 s"
        );
    }

    #[test]
    fn refusals_older_than_ten_seconds_no_longer_count() {
        let start = Instant::now();
        let mut strikes = Strikes::new(2);
        assert!(!strikes.strike(start));
        assert!(!strikes.strike(start + Duration::from_secs(1)));
        assert!(
            !strikes.strike(start + Duration::from_secs(11)),
            "the first has aged out"
        );
    }
}
