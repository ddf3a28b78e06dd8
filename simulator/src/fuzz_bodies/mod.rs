//! The bodies of the cargo-fuzz targets in `fuzz/`, kept here so that the fuzz targets (nightly,
//! libFuzzer) and the corpus replay test (`tests/fuzz_corpus.rs`, stable `cargo test`) run the very
//! same code on the same bytes.
//!
//! ```text
//!   fuzz/fuzz_targets/<target>.rs ──┐                 ┌── fuzz/corpus/<target>/*  (committed seeds)
//!      fuzz_target!(|data| body(data))│                 │
//!                                    ▼                 ▼
//!                      fuzz_bodies::<target>::run(data)   ◄── tests/fuzz_corpus.rs replays every file
//! ```
//!
//! Why here: the simulator crate already depends on both cores and is the test-support home of
//! the workspace, so one module serves every target without a feature flag, and the fuzz
//! workspace depends on this crate alone. Each body feeds arbitrary bytes to a core and checks the
//! contract of `DESIGN.md` (sans-IO item 3): no panic, every bound held, output well formed; a
//! broken invariant is a panic, which is what libFuzzer and the replay test report.
// A failed check here must panic: that is how libFuzzer and the replay test see it.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a broken invariant panics on purpose: that is the fuzz signal"
)]

pub mod connection;
pub mod dapi;
pub mod frame;
pub mod merged;
pub mod metadata;
pub mod node;
pub mod package;

/// A target body: panics when a check fails, returns otherwise.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/` and the `fuzz_targets/` file stem)
/// and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("frame_decode", frame::run),
    ("connection", connection::run),
    ("package_apply", package::run),
    ("merged_parse", merged::run),
    ("metadata_parse", metadata::run),
    ("node_session", node::run),
    ("dapi_request", dapi::run),
];

/// Reads bytes off the front of a fuzz input; past the end every read gives zeros / empty, so a
/// body never has to handle a short input specially.
#[derive(Debug)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps a fuzz input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        taken
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}
