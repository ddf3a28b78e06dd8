//! Shared by the scan and compare benches: time a routine by the thread's CPU time.

use std::time::Duration;

/// Runs `routine` `iters` times and returns the CPU time the benchmark thread spent (for
/// `Bencher::iter_custom`): other builds on the shared machine do not inflate it.
pub fn cpu_time<O>(iters: u64, mut routine: impl FnMut() -> O) -> Duration {
    let start = cpu_time::ThreadTime::now();
    for _ in 0..iters {
        std::hint::black_box(routine());
    }
    start.elapsed()
}
