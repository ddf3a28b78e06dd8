//! The apply's write pattern on the real disk, timed: N files of S bytes staged, committed
//! deferred and made durable as one batch through `FsStorage`, the way
//! `integrity::apply` writes a package (begin_write, append, commit_write_deferred per file, one
//! sync_deferred). Prints the time of the whole batch, of the staging part and of the sync, and
//! how the staged-file creation (`begin_write`) evolves along the batch (median per slice of
//! 100 files), which is what the issue's `strace -T` figures were about.
//!
//! Run: `cargo run --release -p wazuh-cluster-fs --example apply_batch -- [FILES] [SIZE] [DIR]`
//! (defaults: 1000 files of 4096 bytes under the system temporary directory); under strace:
//! `strace -f -c target/release/examples/apply_batch 1000 4096`.

use std::time::{Duration, Instant};

use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{FileAttrs, Storage, Timestamp};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let files: usize = args.get(1).map_or(Ok(1000), |s| s.parse())?;
    let size: usize = args.get(2).map_or(Ok(4096), |s| s.parse())?;
    let base = args
        .get(3)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let root = base.join(format!("wazuh-apply-batch-{}", std::process::id()));
    std::fs::create_dir_all(root.join("etc/rules"))?;

    let mut storage = FsStorage::new(&root)?;
    let attrs = FileAttrs {
        mode: 0o660,
        mtime: Some(Timestamp::from_secs(1_700_000_000)),
    };
    let mut begins = Vec::with_capacity(files);
    let start = Instant::now();
    for i in 0..files {
        let path = InstallPath::new(&format!("/etc/rules/r{i:06}.xml"))?;
        let mut data = vec![b'x'; size];
        data[..8.min(size)].copy_from_slice(&(i as u64).to_le_bytes()[..8.min(size)]);
        let t = Instant::now();
        let id = storage.begin_write(&path)?;
        begins.push(t.elapsed());
        storage.append(id, &data)?;
        storage.commit_write_deferred(id, &attrs)?;
    }
    let staged = start.elapsed();
    storage.sync_deferred()?;
    let total = start.elapsed();
    println!(
        "{files} files x {size} B: batch {:.1} ms (staging {:.1} ms, final sync {:.1} ms)",
        total.as_secs_f64() * 1e3,
        staged.as_secs_f64() * 1e3,
        (total - staged).as_secs_f64() * 1e3
    );
    let slice = 100.min(files.max(1));
    let medians: Vec<String> = begins
        .chunks(slice)
        .map(|c| format!("{:.0}", median(c.to_vec()).as_secs_f64() * 1e6))
        .collect();
    println!(
        "begin_write median µs per {slice} files: {}",
        medians.join(" ")
    );
    drop(storage);
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
