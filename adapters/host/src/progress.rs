//! Progress lines of long transfers, the same on every runtime: a connection that has moved
//! another 64 MiB says so, so a long synchronisation shows it is alive (the node's events only
//! tell when it ends).

/// Bytes between two progress lines of a long transfer.
const PROGRESS_STEP: u64 = 64 << 20;

/// Logs how much a connection has moved each time another [`PROGRESS_STEP`] went through, so a
/// long transfer shows it is alive (the node's events only tell when a synchronisation ends).
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: u64,
    next: u64,
}

impl Progress {
    /// A counter of the bytes `what` (sent, received) on one connection.
    pub fn new(what: &'static str) -> Progress {
        Progress {
            what,
            total: 0,
            next: PROGRESS_STEP,
        }
    }

    /// Counts `n` more bytes; logs a line each time a step is passed.
    pub fn add(&mut self, n: usize) {
        self.total += n as u64;
        if self.total >= self.next {
            self.next = self.total - self.total % PROGRESS_STEP + PROGRESS_STEP;
            tracing::info!(task = "Main", "{}", progress_line(self.what, self.total));
        }
    }
}

/// The progress line: what the connection moved, whatever it was (files, long strings,
/// requests), not a file transfer's count (a peer's long strings were reported as one).
fn progress_line(what: &str, total: u64) -> String {
    format!(
        "{} MiB {what} on this connection so far (files, strings and requests)",
        total >> 20
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_steps_once_per_64_mib_whatever_the_read_sizes() {
        let mut p = Progress::new("sent");
        p.add((64 << 20) - 1);
        assert_eq!((p.total, p.next), ((64 << 20) - 1, 64 << 20));
        p.add(1);
        assert_eq!(p.next, 128 << 20);
        // One big write past several steps logs once and lands on the next step above it.
        p.add(200 << 20);
        assert_eq!((p.total, p.next), (264 << 20, 320 << 20));
        assert_eq!(
            progress_line(p.what, p.total),
            "264 MiB sent on this connection so far (files, strings and requests)"
        );
    }
}
