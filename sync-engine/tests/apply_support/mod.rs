//! Shared set-up for the package / apply tests: the recorded install trees loaded into a
//! `MemoryStorage`, by the same loader as the metadata and compare tests.

#[path = "../trees/mod.rs"]
mod trees;

/// `tree` ("master_tree" / "worker_tree") of `v3.9/integrity_trees.json` as a storage; files
/// get mode 0o660 and their recorded mtime.
pub use trees::load as tree_storage;
