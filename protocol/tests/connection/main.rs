//! The per-connection state machine: two cores wired in memory, the recorded upstream exchanges,
//! transfers and live session replayed through our cores, the bounds a hostile peer hits, and a
//! snapshot of every frame of a full exchange.
//!
//! One test binary with a module per former test file: each binary links the crate and its
//! dependencies, so fewer binaries make a cold `cargo test` faster.

mod support;

mod command_errors;
mod exchange_vectors;
mod hardening;
mod pair;
mod sealed_ahead;
mod snapshots;
mod transfer_vectors;
