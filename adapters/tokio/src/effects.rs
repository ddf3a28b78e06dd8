//! The effect thread: one blocking-pool thread per node runs the node's disk effects, one at a
//! time and in the order the node asked for them, on the node's one [`EffectExecutor`] (it keeps
//! the scanner cache and the staged writes between effects, so it is never shared).
//!
//! Why one thread and not one blocking task per effect: the executor is `&mut`, so effects of
//! one node run one after the other anyway; a queue in front of one thread does that without
//! parking a pool thread per waiting effect. The node task never waits for it: keepalives and
//! replies go out while a large package is applied.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_sync::integrity::storage::StorageError;
use wazuh_cluster_sync::roles::{Effect, EffectExecutor, EffectId, NodeConfig};

use crate::os::unix_time_at;
use crate::run::Msg;

/// Starts the effect thread. It opens the storage itself (the file-system storage keeps
/// per-thread state and is not `Send`) and reports through `opened` whether that worked.
/// It ends when `effects` is closed; once `stopping` is set it skips the effects still queued
/// (the node is shutting down: nothing would take their results), but the one running always
/// completes.
pub(crate) fn spawn(
    install_root: PathBuf,
    config: NodeConfig,
    opened: oneshot::Sender<Result<(), StorageError>>,
    mut effects: mpsc::UnboundedReceiver<(EffectId, Effect)>,
    done: mpsc::UnboundedSender<Msg>,
    stopping: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let storage = match FsStorage::new(&install_root) {
            Ok(storage) => storage,
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let _ = opened.send(Ok(()));
        let clock = config.connection.wall_clock;
        let mut executor = EffectExecutor::new(storage, &config);
        drop(config);
        while let Some((id, effect)) = effects.blocking_recv() {
            if stopping.load(Ordering::Acquire) {
                continue;
            }
            let result = executor.execute(&effect, unix_time_at(&clock, Instant::now()));
            // The node task is gone only when stopping; the result then has no taker.
            let _ = done.send(Msg::EffectDone(id, result));
        }
    })
}
