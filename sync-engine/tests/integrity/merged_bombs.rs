//! Merged members are bounded by the merged-file limit before a byte of them is inflated
//! (issue 12 point 3: a 1 GiB agent-info member compressed to about 1 MB used to be inflated
//! whole, then refused). Each case counts the compressed bytes the apply pulls from the package
//! after opening it: a refused bomb costs none of its own.

use std::cell::Cell;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::hostile_packages::{RawMember, raw_zip, set_declared_size};
use crate::trees::load as tree_storage;
use wazuh_cluster_sync::integrity::apply::{
    ApplyError, ApplyLimits, KnownAgents, apply_master_package, apply_worker_package,
};
use wazuh_cluster_sync::integrity::items::ClusterItems;
use wazuh_cluster_sync::integrity::merged::{MergedError, MergedLimits};
use wazuh_cluster_sync::integrity::package::{PackageError, PackageLimits, PackageReader};
use wazuh_cluster_testkit::install_path as p;

/// A reader that counts the bytes read through it.
struct Counting {
    inner: Cursor<Vec<u8>>,
    read: Rc<Cell<u64>>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl Seek for Counting {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Opens `zip` through a [`Counting`] reader; the counter is reset once it is open.
fn open_counted(zip: Vec<u8>) -> (PackageReader<Counting>, Rc<Cell<u64>>) {
    let read = Rc::new(Cell::new(0));
    let counting = Counting {
        inner: Cursor::new(zip),
        read: Rc::clone(&read),
    };
    let reader = PackageReader::open(counting, PackageLimits::default()).unwrap();
    read.set(0);
    (reader, read)
}

/// 64 MiB of zeros: about 64 KiB deflated.
fn zeros() -> Vec<u8> {
    vec![0u8; 64 << 20]
}

/// A worker1 agent-info package whose merged member is `data` deflated, declared `declared`
/// bytes long when given.
fn agent_info_bomb(data: &[u8], declared: Option<u32>) -> (Vec<u8>, usize) {
    let key = "queue/cluster/worker1/agent-info.merged";
    let control = format!(
        r#"{{"/{key}": {{"merged": true, "merge_type": "agent-info", "merge_name": "/{key}", "cluster_item_key": "/queue/agent-info/"}}}}"#
    );
    let members = [RawMember {
        name: key,
        data,
        deflate: true,
    }];
    let mut zip = raw_zip(&members, control.as_bytes());
    if let Some(size) = declared {
        set_declared_size(&mut zip, key, size);
    }
    let len = zip.len();
    (zip, len)
}

fn on_master(zip: Vec<u8>, limits: &ApplyLimits) -> (ApplyError, u64) {
    let mut storage = tree_storage("master_tree");
    let before = storage.snapshot();
    let (mut reader, read) = open_counted(zip);
    let error = apply_worker_package(
        &mut reader,
        &mut storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &KnownAgents::from_client_keys(b"001 agent-one 10.0.0.1 k\n"),
        limits,
    )
    .expect_err("merged bomb accepted");
    assert_eq!(storage.snapshot(), before, "storage changed by a bomb");
    (error, read.get())
}

fn too_large(key: &str, size: u64, limit: u64) -> ApplyError {
    ApplyError::Merged {
        path: key.into(),
        error: MergedError::TooLarge { size, limit },
    }
}

/// The issue's case: an agent-info member declared 1 GiB (within the package's per-member limit)
/// against the default 256 MiB merged limit.
#[test]
fn agent_info_member_declared_over_the_merged_limit_is_never_inflated() {
    let (zip, compressed) = agent_info_bomb(&zeros(), Some(1 << 30));
    assert!(
        compressed < 1 << 20,
        "the bomb is small: {compressed} bytes"
    );
    let (error, read) = on_master(zip, &ApplyLimits::default());
    assert_eq!(
        error,
        too_large(
            "/queue/cluster/worker1/agent-info.merged",
            1 << 30,
            256 << 20
        )
    );
    assert_eq!(read, 0, "compressed bytes pulled from the bomb");
}

/// A genuine bomb (the declared size is the real one): 64 MiB of zeros against a 1 MiB merged
/// limit.
#[test]
fn honest_agent_info_bomb_is_refused_by_its_declared_size() {
    let limits = ApplyLimits {
        merged: MergedLimits {
            max_total: 1 << 20,
            ..MergedLimits::default()
        },
        ..ApplyLimits::default()
    };
    let (zip, _) = agent_info_bomb(&zeros(), None);
    let (error, read) = on_master(zip, &limits);
    assert_eq!(
        error,
        too_large(
            "/queue/cluster/worker1/agent-info.merged",
            64 << 20,
            1 << 20
        )
    );
    assert_eq!(read, 0);
}

/// The other direction: the master's shared agent-groups merged member on a worker.
#[test]
fn shared_agent_groups_bomb_is_refused_on_the_worker_before_inflating() {
    let key = "queue/cluster/worker1/agent-groups-shared.merged";
    let control = format!(
        r#"{{"missing": {{}}, "extra": {{}}, "shared": {{"/{key}": {{"cluster_item_key": "/queue/agent-groups/", "merged": true, "merge-type": "agent-groups"}}}}, "extra_valid": {{}}}}"#
    );
    let data = zeros();
    let members = [RawMember {
        name: key,
        data: &data,
        deflate: true,
    }];
    let mut zip = raw_zip(&members, control.as_bytes());
    set_declared_size(&mut zip, key, 1 << 30);
    let mut storage = tree_storage("worker_tree");
    let before = storage.snapshot();
    let (mut reader, read) = open_counted(zip);
    let error = apply_master_package(
        &mut reader,
        &mut storage,
        &ClusterItems::defaults_3_9(),
        "worker1",
        &ApplyLimits::default(),
    )
    .expect_err("merged bomb accepted");
    assert_eq!(error, too_large(&format!("/{key}"), 1 << 30, 256 << 20));
    assert_eq!(read.get(), 0);
    assert_eq!(storage.snapshot(), before);
}

/// `read_member` takes the caller's bound and refuses by the declared size, reading nothing.
#[test]
fn read_member_refuses_over_the_callers_bound_before_reading() {
    let (zip, _) = agent_info_bomb(&zeros(), None);
    let (mut reader, read) = open_counted(zip);
    let key = p("/queue/cluster/worker1/agent-info.merged");
    assert_eq!(reader.member_size(&key), Some(64 << 20));
    assert_eq!(
        reader.read_member(&key, 4096),
        Err(PackageError::MemberTooLarge {
            name: "queue/cluster/worker1/agent-info.merged".into(),
            limit: 4096
        })
    );
    assert_eq!(read.get(), 0);
    // Within the bound, it is read whole.
    assert_eq!(reader.read_member(&key, 64 << 20).unwrap().len(), 64 << 20);
}
