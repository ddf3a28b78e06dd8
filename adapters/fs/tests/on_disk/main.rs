//! `FsStorage` on real temporary directories: the shared `Storage` contract suite, symlink
//! escapes, permissions, owners and times as the kernel reports them, clean-up of staged files,
//! the recorded upstream package applied through it, and the agent database `var/db/global.db`.
//!
//! One test binary with a module per former test file: each binary links the engine and its
//! dependencies, so fewer binaries make a cold `cargo test` faster.

mod apply_on_disk;
mod fs_storage;
mod global_db;
