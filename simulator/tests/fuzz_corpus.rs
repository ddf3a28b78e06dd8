//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same bodies the
//! cargo-fuzz targets run (`wazuh_cluster_sim::fuzz_bodies`), on stable Rust: CI guards the seeds
//! and every crash input committed as a regression without nightly or libFuzzer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use wazuh_cluster_sim::fuzz_bodies::TARGETS;

/// `fuzz/corpus/` of this repository.
fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// Runs `body` on every file of `dir` (sorted); returns how many ran and the names of those that
/// panicked.
fn replay(dir: &Path, body: fn(&[u8])) -> (usize, Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).expect("corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    (files.len(), failed)
}

#[test]
fn every_corpus_file_replays_without_panic() {
    let mut total = 0;
    let mut failed = Vec::new();
    for (target, body) in TARGETS {
        let (count, bad) = replay(&corpus_root().join(target), *body);
        assert!(count >= 2, "corpus of {target} has {count} files");
        total += count;
        failed.extend(bad);
    }
    assert!(failed.is_empty(), "corpus files that panic: {failed:#?}");
    assert!(total >= 20, "only {total} corpus files");
}

#[test]
fn every_target_has_a_fuzz_target_file_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (target, _) in TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{target}.rs"))
                .is_file(),
            "fuzz/fuzz_targets/{target}.rs missing"
        );
        assert!(
            corpus_root().join(target).is_dir(),
            "corpus of {target} missing"
        );
    }
}

/// The replay reports a panicking input by name (so a crash committed to a corpus fails CI).
#[test]
fn a_panicking_input_is_reported() {
    let dir = std::env::temp_dir().join(format!("fuzz-corpus-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fine"), b"ok").unwrap();
    std::fs::write(dir.join("crash"), b"boom").unwrap();
    fn body(data: &[u8]) {
        assert_ne!(data, b"boom", "planted crash");
    }
    let (count, failed) = replay(&dir, body);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(count, 2);
    assert_eq!(failed, vec![dir.join("crash").display().to_string()]);
}
