//! Integration tests of the engine's `config/` room: the `<cluster>` block of ossec.conf and the
//! cluster.json model (upstream's defaults, overrides and errors that name their setting).
//!
//! One test binary with a module per former test file: each binary links the whole crate and its
//! dependencies, so fewer binaries make a cold `cargo test` faster.

mod items;
mod ossec_config;
