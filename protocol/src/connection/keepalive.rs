//! Keepalive bookkeeping (PROTOCOL.md §8).
//!
//! Client side (worker): once the layer above says the link is up (after `hello`), send `echo-c`
//! `keepalive`, wait for its outcome, then wait `keep_alive` before the next one — upstream's loop
//! `send_request; sleep(keep_alive)`. A failure is a reply whose upstream value starts with `Error`
//! or a timeout; `max_failed_keepalive_attempts` failures in a row close the link, a success resets
//! the count. Server side (master): remember when the last `echo-c` arrived; the layer above decides
//! when that is too old (upstream: 120 s, checked every 60 s), as it owns the policy.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Keepalive {
    interval: Duration,
    max_failures: u32,
    /// When the next `echo-c` is due (client side, link up, none in flight).
    next_at: Option<Instant>,
    failures: u32,
    /// When the last `echo-c` was received (server side).
    last_received: Option<Instant>,
}

impl Keepalive {
    pub(crate) fn new(interval: Duration, max_failures: u32) -> Self {
        Keepalive {
            interval,
            max_failures,
            next_at: None,
            failures: 0,
            last_received: None,
        }
    }

    /// The link is up: the first keepalive goes out one interval from now.
    pub(crate) fn start(&mut self, now: Instant) {
        if self.next_at.is_none() {
            self.next_at = Some(now + self.interval);
        }
    }

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.next_at
    }

    /// True when an `echo-c` is due; the caller sends it and waits for [`Keepalive::outcome`].
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        match self.next_at {
            Some(at) if at <= now => {
                self.next_at = None;
                true
            }
            _ => false,
        }
    }

    /// The outcome of one keepalive, at `now`. Returns the count of consecutive failures when it
    /// reaches the limit (the link must close).
    pub(crate) fn outcome(&mut self, now: Instant, success: bool) -> Option<u32> {
        if success {
            self.failures = 0;
        } else {
            self.failures += 1;
            if self.failures >= self.max_failures {
                return Some(self.failures);
            }
        }
        self.next_at = Some(now + self.interval);
        None
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    pub(crate) fn received(&mut self, now: Instant) {
        self.last_received = Some(now);
    }

    pub(crate) fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    pub(crate) fn stop(&mut self) {
        self.next_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_failures_in_a_row_close_and_success_resets() {
        let t0 = super::super::test_origin();
        let minute = Duration::from_secs(60);
        let mut k = Keepalive::new(minute, 2);
        assert!(!k.take_due(t0));
        k.start(t0);
        assert!(!k.take_due(t0 + minute - Duration::from_nanos(1)));
        assert!(k.take_due(t0 + minute));
        assert_eq!(k.next_timeout(), None);
        assert_eq!(k.outcome(t0 + minute, false), None);
        assert_eq!(k.next_timeout(), Some(t0 + 2 * minute));
        assert_eq!(k.outcome(t0 + 2 * minute, true), None);
        assert_eq!(k.failures(), 0);
        assert_eq!(k.outcome(t0 + 3 * minute, false), None);
        assert_eq!(k.outcome(t0 + 4 * minute, false), Some(2));
    }
}
