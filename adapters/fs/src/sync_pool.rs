//! The `fsync`s of a deferred batch, issued while the batch is still being staged.
//!
//! Why: staging a file (create, write, attributes) costs CPU on the effect thread, making it
//! durable costs waiting on the device, and the two were one after the other: for 1,000 files
//! of 4 KiB, ~100 ms of staging, then ~100-300 ms of `fsync`s (one device flush each, shared
//! when they run side by side). Handed to [`SYNC_THREADS`] threads as each file is committed,
//! the waits overlap the staging of the next files, and [`Storage::sync_deferred`] only waits
//! for the last ones.
//!
//! Bounds: at most [`QUEUED`] committed files wait for a thread (each holds its descriptor until
//! its `fsync` is done); a commit beyond waits for room. One pool per batch: its threads end when
//! the batch is synced.
//!
//! [`Storage::sync_deferred`]: wazuh_cluster_sync::integrity::storage::Storage::sync_deferred

use std::fs::File;
use std::io;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Threads that issue the `fsync`s of a deferred batch side by side: enough for the device to
/// merge their flushes; they wait on the disk, not on a core. 64 rather than 16: on this VM's
/// disk each `fsync` of a new small file is several round trips (data, inode, the parent
/// directory on ext4 without a journal, a flush), so more of them in flight keeps its queue
/// fuller; 10,000 files of 4 KiB went from 3.7 s to 2.9 s request to last file (`sync_figures`,
/// medians of 3 alternating runs on a loaded machine), 1,000 from 320 to 288 ms (noise-level).
/// With [`QUEUED`], at most 320 descriptors are held by a batch.
pub const SYNC_THREADS: usize = 64;

/// Most committed files waiting for a sync thread (descriptors held).
pub const QUEUED: usize = 256;

/// One batch's sync threads: files go in with their index in the batch, results come out by
/// index.
#[derive(Debug)]
pub(crate) struct SyncPool {
    jobs: Option<SyncSender<(usize, File)>>,
    results: Receiver<(usize, io::Result<()>)>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncPool {
    /// Starts the threads; `None` when the system gives none (the batch is then synced by name
    /// at the end, as before).
    pub(crate) fn start() -> Option<SyncPool> {
        let (jobs, queue) = sync_channel::<(usize, File)>(QUEUED);
        let queue = Arc::new(Mutex::new(queue));
        let (done, results) = channel();
        let mut threads = Vec::with_capacity(SYNC_THREADS);
        for n in 0..SYNC_THREADS {
            let queue = Arc::clone(&queue);
            let done = done.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("fsync-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take one job, never during an fsync.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok((index, file)) = job else { return };
                        let synced = file.sync_all();
                        drop(file);
                        if done.send((index, synced)).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                // Fewer threads than wanted still sync everything.
                Err(_) if !threads.is_empty() => break,
                Err(_) => return None,
            }
        }
        Some(SyncPool {
            jobs: Some(jobs),
            results,
            threads,
        })
    }

    /// Queues the `fsync` of the batch's file `index`; gives `file` back when no thread takes
    /// jobs any more (the caller syncs it by name at the end).
    pub(crate) fn submit(&mut self, index: usize, file: File) -> Result<(), File> {
        match &self.jobs {
            Some(jobs) => jobs.send((index, file)).map_err(|e| e.0.1),
            None => Err(file),
        }
    }

    /// Waits for every queued `fsync`; the result of each, by batch index (files whose thread
    /// failed have none).
    pub(crate) fn finish(mut self) -> Vec<(usize, io::Result<()>)> {
        // No more jobs: each thread ends once the queue is empty, dropping its result sender.
        self.jobs = None;
        let mut out = Vec::new();
        while let Ok(result) = self.results.recv() {
            out.push(result);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        out
    }
}
