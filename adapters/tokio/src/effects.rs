//! The effect thread: one blocking-pool thread per node runs the node's disk effects, one at a
//! time and in the order the node asked for them, on the node's one
//! [`EffectWorker`](wazuh_cluster_host::effects::EffectWorker) (which opens the storage and
//! removes the staged files an interrupted run left and empties `queue/cluster/`).
//!
//! Why one thread and not one blocking task per effect: the executor is `&mut`, so effects of
//! one node run one after the other anyway; a queue in front of one thread does that without
//! parking a pool thread per waiting effect. The node task never waits for it: keepalives and
//! replies go out while a large package is applied.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wazuh_cluster_fs::Owner;
use wazuh_cluster_host::effects::{EffectWorker, node_span};
use wazuh_cluster_sync::integrity::storage::StorageError;
use wazuh_cluster_sync::roles::{Effect, EffectId, NodeConfig};

use crate::messages::Msg;

/// Starts the effect thread. It opens the storage itself (the file-system storage keeps
/// per-thread state and is not `Send`) with `owner` for what it writes, removes the staged
/// files and `queue/cluster/` leftovers an earlier run left, and reports through `opened` whether opening worked.
/// It ends when `effects` is closed; once `stopping` is set it skips the effects still queued
/// (the node is shutting down: nothing would take their results), but the one running always
/// completes.
pub(crate) fn spawn(
    install_root: PathBuf,
    owner: Option<Owner>,
    config: NodeConfig,
    opened: oneshot::Sender<Result<(), StorageError>>,
    mut effects: mpsc::UnboundedReceiver<(EffectId, Effect)>,
    done: mpsc::UnboundedSender<Msg>,
    stopping: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let mut worker = match EffectWorker::open(&install_root, owner, &config) {
            Ok(worker) => worker,
            Err(e) => {
                let _ = opened.send(Err(e));
                return;
            }
        };
        let _ = opened.send(Ok(()));
        let _span = node_span(&config).entered();
        drop(config);
        while let Some((id, effect)) = effects.blocking_recv() {
            if stopping.load(Ordering::Acquire) {
                continue;
            }
            let result = worker.execute(&effect);
            // The node task is gone only when stopping; the result then has no taker.
            let _ = done.send(Msg::EffectDone(id, result));
        }
    })
}
