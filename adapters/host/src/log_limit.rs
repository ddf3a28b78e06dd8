//! Bounded logs: a hostile peer must not turn the node's log into its own disk-filling channel
//! (issue 12: 64 MB/s of warnings from one key holder, 1.7 MB/s from a keyless one).
//!
//! Two bounds. Every string a peer chose (names, paths, refusal texts) is escaped (no control
//! characters, so no forged log lines) and cut to [`MAX_PEER_TEXT`] characters; the whole message
//! to [`MAX_MESSAGE`]. And refusals are rate-limited per peer and per kind: at most
//! [`LogLimiter::BURST`] lines per [`LogLimiter::WINDOW`]; the rest are counted and reported once
//! the window ends (`… 1204 more suppressed in the last 10 s`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Longest peer string kept in a log line, in characters.
pub const MAX_PEER_TEXT: usize = 128;
/// Longest log message, in characters.
pub const MAX_MESSAGE: usize = 1024;
/// Most keys (peer, kind) remembered at once: beyond it the oldest windows are reported and
/// forgotten, so the limiter's own memory is bounded too.
const MAX_KEYS: usize = 4096;

/// `text` escaped (control and other non-printing characters as `\u{..}`, `\n`, ...) and cut to
/// `max` characters, with what was cut said.
pub fn escaped(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    for c in chars.by_ref() {
        if out.chars().count() >= max {
            let rest = 1 + chars.count();
            out.push_str(&format!("… [{rest} more characters]"));
            return out;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One (peer, kind) window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// Whether a line may be written, per (peer, kind). See the [module documentation](self).
#[derive(Debug, Default)]
pub struct LogLimiter {
    windows: BTreeMap<(String, &'static str), Window>,
}

/// What to write for one refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The line itself may be written.
    pub write: bool,
    /// The report of the previous window of the same key, to write first: how many lines were
    /// suppressed in it.
    pub suppressed_before: Option<u64>,
}

impl LogLimiter {
    /// Lines written per key and window.
    pub const BURST: u32 = 5;
    /// The window.
    pub const WINDOW: Duration = Duration::from_secs(10);

    /// A refusal of `kind` from `peer` at `now`.
    pub fn admit(&mut self, peer: &str, kind: &'static str, now: Instant) -> Admitted {
        let key = (escaped(peer, MAX_PEER_TEXT), kind);
        let mut suppressed_before = None;
        if let Some(w) = self.windows.get(&key)
            && now.saturating_duration_since(w.started) >= Self::WINDOW
        {
            suppressed_before = (w.suppressed > 0).then_some(w.suppressed);
            self.windows.remove(&key);
        }
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_KEYS {
            self.windows.retain(|_, w| w.suppressed > 0);
            if self.windows.len() >= MAX_KEYS {
                // Every key is busy: forget the oldest (its count is lost, not its bound).
                if let Some(oldest) = self.windows.iter().min_by_key(|(_, w)| w.started) {
                    let oldest = oldest.0.clone();
                    self.windows.remove(&oldest);
                }
            }
        }
        let w = self.windows.entry(key).or_insert(Window {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        let write = w.logged < Self::BURST;
        if write {
            w.logged += 1;
        } else {
            w.suppressed += 1;
        }
        Admitted {
            write,
            suppressed_before,
        }
    }

    /// Windows ended by `now` with lines suppressed: (peer, kind, count), each reported once.
    pub fn ended(&mut self, now: Instant) -> Vec<(String, &'static str, u64)> {
        let mut out = Vec::new();
        self.windows.retain(|(peer, kind), w| {
            if now.saturating_duration_since(w.started) < Self::WINDOW {
                return true;
            }
            if w.suppressed > 0 {
                out.push((peer.clone(), *kind, w.suppressed));
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn peer_strings_are_escaped_and_cut() {
        assert_eq!(
            escaped("w1\n[Master] forged\u{1b}[2J", 100),
            "w1\\n[Master] forged\\u{1b}[2J"
        );
        let long = "x".repeat(1000);
        assert_eq!(
            escaped(&long, 8),
            "xxxxxxxx… [992 more characters]".to_owned()
        );
        assert_eq!(escaped("ok", 2), "ok");
    }

    #[test]
    fn a_flood_writes_a_burst_per_window_and_counts_the_rest() {
        let t0 = t0();
        let mut limiter = LogLimiter::default();
        let writes = (0..1209)
            .filter(|_| limiter.admit("10.0.0.9", "hello refused", t0).write)
            .count();
        assert_eq!(writes, 5);
        // Another peer and another kind have their own windows.
        assert!(limiter.admit("10.0.0.8", "hello refused", t0).write);
        assert!(limiter.admit("10.0.0.9", "handshake failed", t0).write);
        assert_eq!(
            limiter.ended(t0 + Duration::from_secs(9)),
            Vec::<(String, &str, u64)>::new()
        );
        assert_eq!(
            limiter.ended(t0 + LogLimiter::WINDOW),
            vec![("10.0.0.9".to_owned(), "hello refused", 1204)]
        );
        // The next window starts fresh.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(
            limiter.admit("10.0.0.9", "hello refused", later),
            Admitted {
                write: true,
                suppressed_before: None
            }
        );
    }

    #[test]
    fn the_count_of_a_window_is_reported_by_the_next_refusal_when_no_sweep_ran() {
        let t0 = t0();
        let mut limiter = LogLimiter::default();
        for _ in 0..7 {
            limiter.admit("p", "k", t0);
        }
        assert_eq!(
            limiter.admit("p", "k", t0 + LogLimiter::WINDOW),
            Admitted {
                write: true,
                suppressed_before: Some(2)
            }
        );
    }

    #[test]
    fn the_limiter_forgets_keys_beyond_its_bound() {
        let t0 = t0();
        let mut limiter = LogLimiter::default();
        for i in 0..(MAX_KEYS + 100) {
            assert!(limiter.admit(&format!("10.0.{i}"), "k", t0).write);
        }
        assert!(limiter.windows.len() <= MAX_KEYS);
    }
}
