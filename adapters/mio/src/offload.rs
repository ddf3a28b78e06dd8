//! Work that would block the event loop, done on threads of its own and answered through the
//! loop's [`Waker`]: the disk effects (one thread per node, effects one at a time in the node's
//! order, on the node's one executor), distributed API calls (one short thread per call; the
//! node bounds how many run at once) and dials (one short thread per dial: name resolution
//! blocks; the node dials a worker's master once per `connection_retry`).
//!
//! ```text
//!   effect thread ─ EffectDone ─┐
//!   API call threads ─ ApiDone ─┼─► mpsc + Waker ─► event loop
//!   dial threads ─ Dialed ──────┤
//!   RunningNode ─ Inspect/Stop ─┘
//! ```

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use wazuh_cluster_fs::Owner;
use wazuh_cluster_host::api_exec::{self, ApiExecutor};
use wazuh_cluster_host::effects::{EffectWorker, node_span};
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_sync::dapi::merge::error_answer;
use wazuh_cluster_sync::dapi::{ApiCall, JsonLimits};
use wazuh_cluster_sync::integrity::storage::StorageError;
use wazuh_cluster_sync::roles::{
    ApiCallId, Effect, EffectId, EffectResult, Node, NodeConfig, PeerId,
};

/// A closure run on the loop with the node and the current time.
pub(crate) type Inspection = Box<dyn FnOnce(&Node, Instant) + Send>;

/// Everything that reaches the loop from another thread.
pub(crate) enum Msg {
    /// The effect thread ran an effect.
    EffectDone(EffectId, EffectResult),
    /// A distributed API call ran; its answer.
    ApiDone(ApiCallId, String),
    /// A dial the node asked for: the connected stream, or why not.
    Dialed(PeerId, Result<std::net::TcpStream, String>),
    /// Run this on the node (getters).
    Inspect(Inspection),
    /// Stop the node gracefully.
    Stop,
}

/// The sending side of the loop's mailbox: a message, then a wake-up.
#[derive(Clone)]
pub(crate) struct Mailbox {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

impl Mailbox {
    pub(crate) fn new(waker: Arc<Waker>) -> (Mailbox, Receiver<Msg>) {
        let (tx, rx) = mpsc::channel();
        (Mailbox { tx, waker }, rx)
    }

    /// Posts `msg`; `false` when the loop is gone.
    pub(crate) fn post(&self, msg: Msg) -> bool {
        if self.tx.send(msg).is_err() {
            return false;
        }
        // A wake that fails leaves the message for the next turn of the loop (its timer).
        let _ = self.waker.wake();
        true
    }
}

/// The node's effect thread: its queue, the flag that makes it skip what is queued at stop,
/// and the signal that it ended.
pub(crate) struct EffectThread {
    tx: Option<Sender<(EffectId, Effect)>>,
    stopping: Arc<AtomicBool>,
    ended: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl EffectThread {
    /// Starts it: it opens the storage (with `owner`) and removes the staged files an earlier
    /// run left before this returns, so an error opening the install root is the caller's.
    ///
    /// # Errors
    /// The storage cannot be opened, or the thread cannot be started (its text).
    pub(crate) fn start(
        install_root: PathBuf,
        owner: Option<Owner>,
        config: &NodeConfig,
        mailbox: Mailbox,
    ) -> Result<EffectThread, String> {
        let (tx, rx) = mpsc::channel::<(EffectId, Effect)>();
        let (opened_tx, opened) = mpsc::sync_channel::<Result<(), StorageError>>(1);
        let (ended_tx, ended) = mpsc::sync_channel(1);
        let stopping = Arc::new(AtomicBool::new(false));
        let skip = stopping.clone();
        let config = config.clone();
        let thread = std::thread::Builder::new()
            .name(format!("effects {}", config.node_name))
            .spawn(move || {
                let mut worker = match EffectWorker::open(&install_root, owner, &config) {
                    Ok(worker) => worker,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let _ = opened_tx.send(Ok(()));
                let _span = node_span(&config).entered();
                while let Ok((id, effect)) = rx.recv() {
                    if skip.load(Ordering::Acquire) {
                        continue;
                    }
                    let result = worker.execute(&effect);
                    // The loop is gone only when stopping; the result then has no taker.
                    mailbox.post(Msg::EffectDone(id, result));
                }
                let _ = ended_tx.send(());
            })
            .map_err(|e| e.to_string())?;
        match opened.recv() {
            Ok(Ok(())) => Ok(EffectThread {
                tx: Some(tx),
                stopping,
                ended,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the effect thread ended".to_owned()),
        }
    }

    /// Queues an effect; `false` when the thread is gone (an effect panicked: a bug).
    pub(crate) fn send(&self, id: EffectId, effect: Effect) -> bool {
        self.tx
            .as_ref()
            .is_some_and(|tx| tx.send((id, effect)).is_ok())
    }

    /// Stops it: the effect in flight finishes (applies are atomic per file in the storage),
    /// the queued ones are skipped. Waits at most `grace` for it.
    pub(crate) fn stop(mut self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        self.tx = None;
        match self.ended.recv_timeout(grace) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("effect still running after {grace:?}; leaving it");
            }
        }
    }
}

/// Runs `call` on a thread of its own; the answer comes back as `Msg::ApiDone`. When no thread
/// can be started, the call is answered with an error at once.
pub(crate) fn api_call(
    id: ApiCallId,
    call: ApiCall,
    executor: ApiExecutor,
    install_root: PathBuf,
    clock: WallClock,
    limits: JsonLimits,
    mailbox: Mailbox,
) -> Result<(), String> {
    let function = call.function.clone();
    std::thread::Builder::new()
        .name("api call".to_owned())
        .spawn(move || {
            let answer = api_exec::run(&executor, &install_root, &clock, &call, &limits);
            mailbox.post(Msg::ApiDone(id, answer));
        })
        .map(drop)
        .map_err(|e| {
            error_answer(
                &format!("the API call {function} could not start: {e}"),
                1000,
            )
        })
}

/// Dials `addr` for the node's outgoing `peer` on a thread of its own, trying each address the
/// name resolves to within `timeout` each; the outcome comes back as `Msg::Dialed`.
pub(crate) fn dial(peer: PeerId, addr: String, timeout: Duration, mailbox: Mailbox) {
    // Without a thread the dial fails at once; the node tries again after its retry interval.
    let on_failure = mailbox.clone();
    let spawned = std::thread::Builder::new()
        .name("dial".to_owned())
        .spawn(move || {
            let result = connect(&addr, timeout);
            mailbox.post(Msg::Dialed(peer, result));
        });
    if let Err(e) = spawned {
        on_failure.post(Msg::Dialed(peer, Err(format!("cannot start a dial: {e}"))));
    }
}

/// Resolves `addr` and connects to the first address that answers.
fn connect(addr: &str, timeout: Duration) -> Result<std::net::TcpStream, String> {
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let mut last = format!("connecting to {addr}: no address");
    for socket_addr in addrs {
        match std::net::TcpStream::connect_timeout(&socket_addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!("connecting to {addr}: no answer in {timeout:?}");
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}
