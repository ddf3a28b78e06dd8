//! The shared `Storage` contract suite on the in-memory storage (the fs adapter runs the same
//! suite on real directories).

use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::storage::contract::{
    deferred_failure_suite, storage_contract_suite, symlink_contract_suite,
};

#[test]
fn memory_storage_keeps_the_storage_contract() {
    storage_contract_suite(MemoryStorage::new);
}

#[test]
fn memory_storage_fails_a_deferred_commit_that_cannot_land() {
    deferred_failure_suite(MemoryStorage::new);
}

#[test]
fn memory_storage_never_follows_symlinks() {
    symlink_contract_suite(
        MemoryStorage::new,
        |s, path, target| s.add_symlink(path, target).unwrap(),
        "/tmp/elsewhere",
    );
}
