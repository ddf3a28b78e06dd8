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
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
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
/// index. Threads are started as files come, one per file up to [`SYNC_THREADS`]: a batch of one
/// file (a worker's agent-info on a master, about a hundred a second with 1,000 workers) starts
/// one thread, not 64.
#[derive(Debug)]
pub(crate) struct SyncPool {
    jobs: Option<SyncSender<(usize, File)>>,
    queue: Arc<Mutex<Receiver<(usize, File)>>>,
    /// The threads' result sender, kept to start more; dropped by `finish` so that the results
    /// end when the last thread does.
    done: Option<Sender<(usize, io::Result<()>)>>,
    results: Receiver<(usize, io::Result<()>)>,
    threads: Vec<JoinHandle<()>>,
}

impl SyncPool {
    /// A pool for a new batch; its threads start with its files ([`SyncPool::submit`]).
    pub(crate) fn start() -> SyncPool {
        let (jobs, queue) = sync_channel::<(usize, File)>(QUEUED);
        let (done, results) = channel();
        SyncPool {
            jobs: Some(jobs),
            queue: Arc::new(Mutex::new(queue)),
            done: Some(done),
            results,
            threads: Vec::with_capacity(SYNC_THREADS),
        }
    }

    /// Starts one more thread; false when the system gives none (fewer threads than wanted still
    /// sync everything).
    fn add_thread(&mut self) -> bool {
        let (queue, Some(done)) = (Arc::clone(&self.queue), self.done.clone()) else {
            return false;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("fsync-{}", self.threads.len()))
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
        spawned.map(|thread| self.threads.push(thread)).is_ok()
    }

    /// Queues the `fsync` of the batch's file `index` (starting a thread for it while there are
    /// fewer than [`SYNC_THREADS`]); gives `file` back when no thread takes jobs (the system gave
    /// none, or they ended): the caller syncs it by name at the end.
    pub(crate) fn submit(&mut self, index: usize, file: File) -> Result<(), File> {
        if self.threads.len() < SYNC_THREADS && !self.add_thread() && self.threads.is_empty() {
            return Err(file);
        }
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
        self.done = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_starts_a_thread_per_file_up_to_the_cap_and_gets_every_result_by_index() {
        let dir = wazuh_cluster_testkit::ScratchDir::new("sync-pool");
        let file = |n: usize| File::create(dir.path().join(n.to_string())).unwrap();
        let mut one = SyncPool::start();
        assert!(one.submit(0, file(0)).is_ok());
        assert_eq!(one.threads.len(), 1, "one file, one thread");
        let results = one.finish();
        assert_eq!(results.len(), 1);
        assert!(results[0].1.is_ok());

        let mut many = SyncPool::start();
        let files = SYNC_THREADS + 10;
        for n in 0..files {
            assert!(many.submit(n, file(n)).is_ok());
        }
        assert_eq!(many.threads.len(), SYNC_THREADS);
        let mut indexes: Vec<usize> = many
            .finish()
            .into_iter()
            .map(|(i, r)| {
                r.unwrap();
                i
            })
            .collect();
        indexes.sort_unstable();
        assert_eq!(indexes, (0..files).collect::<Vec<_>>());
    }
}
