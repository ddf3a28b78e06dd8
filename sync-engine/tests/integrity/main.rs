//! Integration tests of the engine's `integrity/` room: metadata, comparison, ZIP packages,
//! merged files, validated apply and the in-memory `Storage`, checked against the upstream
//! recordings and hostile input.
//!
//! One test binary with a module per theme rather than one binary per file: each binary links the
//! whole crate and its dependencies, so a cold `cargo test` spends its time linking; here the
//! crate is linked once.

mod agents_support;
mod recorded_zip;
mod trees;

mod agent_removal;
mod apply_roundtrip;
mod compare_vectors;
mod crash_safety;
mod hostile_packages;
mod memory_storage;
mod merged_bombs;
mod merged_vectors;
mod metadata_vectors;
mod package_vectors;
mod staged_package;
mod storage_contract;
mod streamed_members;
