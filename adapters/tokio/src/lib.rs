//! Runs Wazuh cluster [`Node`]s on tokio: real TCP sockets, a real disk, the real clock and the
//! OS's randomness around the sans-IO cores.
//!
//! ```text
//!              ┌──────────────────────── node task (one per node) ────────────────────────┐
//!  TCP accept ─┤ Accepted ─► handle_connected          poll_output ─► Transmit ─► writer task ├─► socket
//!  reader task ┤ Data ─────► handle_input  ┌──────┐    (drained          Effect ───► effect thread
//!  dialer task ┤ Dialed ───► handle_connected│ Node │     until None)     Connect ──► dialer task
//!  effect thr. ┤ EffectDone► handle_effect_done└──────┘                  Close ────► reader/writer
//!  timer ──────┤ poll_timeout ► handle_timeout                            Event ────► tracing + subscribers
//!              └────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The adapter is thin on purpose: it holds no protocol logic. Everything a node decides — when
//! to dial, what to send, when to give up on a peer, which file to write — comes out of
//! [`Node::poll_output`]; this crate only moves bytes, runs the disk [`Effect`]s one after the
//! other on a blocking thread with an [`EffectExecutor`](wazuh_cluster_sync::roles::EffectExecutor) over the confined [`FsStorage`](wazuh_cluster_fs::FsStorage), and keeps
//! the socket-level bounds that only an adapter can keep:
//!
//! * **backpressure**: a peer's reader stops reading while [`Node::wants_input`] is false for it
//!   (bytes already read are parked and fed back, in order, when the node wants them); its writer
//!   reports what it flushed ([`Node::handle_written`]), so a peer that does not read what we
//!   send is paused once the node's `max_queued_output` is unwritten;
//! * **connections per source address and in all**: at most
//!   [`AdapterLimits::max_connections_per_ip`] open at once from one address and
//!   [`AdapterLimits::max_connections`] from all; the next one is closed as soon as it is
//!   accepted, and the refusal logged with its address (rate-limited per address);
//! * **write backlog**: a last resort, never reached by protocol traffic (the node's bound is
//!   lower): a peer is closed once [`AdapterLimits::max_write_backlog`] bytes wait for it;
//! * **graceful shutdown**: [`RunningNode::shutdown`] stops accepting and reading, lets the effect
//!   in flight finish (applies are atomic per file in the storage), skips the effects still
//!   queued, and flushes what each peer was already sent.
//!
//! The payload deadline (a declared frame that never arrives), the `hello` deadline, keepalives
//! and reconnection after `connection_retry` are the protocol core's and the node's: the adapter
//! honours the `Close` and `Connect` they produce.
//!
//! Local clients (`<wazuh-path>/queue/cluster/c-internal.sock`, mode 0660, the same framing in
//! plaintext, no `hello`) are handed to the node as `Origin::Local`: a master answers their
//! `get_nodes` / `get_health` (what `wazuh-cluster control` asks); a worker forwards them to its
//! master and hands the answer back as a `control_res` request. [`RunningNode::inspect`] gives
//! in-process access to the node's getters besides.

mod effects;
mod io;
mod messages;
mod run;
mod signals;
mod slots;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wazuh_cluster_sync::roles::{Effect, Node, NodeEvent};

pub use signals::{ShutdownSignals, shutdown_signal};
// What is not runtime code is shared with the other adapters (`wazuh-cluster-host`); it is
// re-exported here so that a tokio user needs one crate.
pub use wazuh_cluster_host::{
    AdapterLimits, ApiExecutor, DescriptorLimit, EventLine, LOCAL_SOCKET, MAX_PROGRAM_TIME,
    NodeSpec, RESERVED_DESCRIPTORS, RunStats, StartError, StopError, descriptor_limit, event_line,
    os_seed, raise_descriptor_limit, trees, unix_time_at, wall_clock_now,
};

use crate::io::{listen_local, listen_tcp};
use crate::messages::{Inspection, Msg};
use crate::run::Runner;
use crate::slots::{AddressCounts, ConnectionCaps};

/// A node running on the current tokio runtime. Dropping it asks the node to stop, as
/// [`RunningNode::shutdown`] does, without waiting; [`RunningNode::stop`] also waits.
#[derive(Debug)]
pub struct RunningNode {
    name: String,
    local_addr: Option<SocketAddr>,
    ctl: mpsc::UnboundedSender<Msg>,
    events: broadcast::Sender<NodeEvent>,
    first_events: Option<broadcast::Receiver<NodeEvent>>,
    shutdown: watch::Sender<bool>,
    done: watch::Receiver<bool>,
    counts: AddressCounts,
    task: JoinHandle<RunStats>,
}

/// Events kept for a subscriber that reads late; older ones are dropped (`Lagged`).
const EVENT_BUFFER: usize = 4096;

/// Starts a node on the current runtime: opens its install root, binds its listener (errors are
/// returned here, before anything runs), and spawns its task and its effect thread.
///
/// # Errors
/// [`StartError`].
pub async fn start(mut spec: NodeSpec) -> Result<RunningNode, StartError> {
    let seed = spec.prepare_start()?;
    let NodeSpec {
        config,
        install_root,
        listen,
        local_socket,
        limits,
        seed: _,
        owner,
        api_executor,
    } = spec;
    let listener = match &listen {
        Some(addr) => {
            let bind_error = |e: std::io::Error| StartError::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            };
            let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            Some((listener, local))
        }
        None => None,
    };
    let local_addr = listener.as_ref().map(|(_, a)| *a);
    let local = match &local_socket {
        Some(path) => {
            let listener = wazuh_cluster_host::bind_local_socket(path, owner)?;
            let local_error = |e: std::io::Error| StartError::LocalSocket {
                path: path.display().to_string(),
                message: e.to_string(),
            };
            Some(UnixListener::from_std(listener).map_err(local_error)?)
        }
        None => None,
    };
    let name = config.node_name.clone();

    let (data_tx, data_rx) = mpsc::channel(limits.input_queue.max(1));
    let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
    let (effect_tx, effect_rx) =
        mpsc::unbounded_channel::<(wazuh_cluster_sync::roles::EffectId, Effect)>();
    let (events, first_events) = broadcast::channel(EVENT_BUFFER);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (done_tx, done) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let counts = AddressCounts::default();

    let (opened_tx, opened) = oneshot::channel();
    let effect_thread = effects::spawn(
        install_root.clone(),
        owner,
        config.clone(),
        opened_tx,
        effect_rx,
        ctl_tx.clone(),
        stopping.clone(),
    );
    let open_error = |message: String| StartError::InstallRoot {
        path: install_root.display().to_string(),
        message,
    };
    match opened.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(open_error(e.to_string())),
        Err(_) => return Err(open_error("the effect thread ended".to_owned())),
    }
    let listener_task = listener.map(|(l, _)| {
        let caps = ConnectionCaps {
            per_ip: limits.max_connections_per_ip,
            total: limits.max_connections,
        };
        listen_tcp(l, counts.clone(), caps, ctl_tx.clone())
    });
    let local_task = local.map(|l| listen_local(l, limits.max_local_clients, ctl_tx.clone()));
    let node = Node::new(config, seed, Instant::now());
    let tag = match node.node_type() {
        wazuh_cluster_sync::roles::NodeType::Master => "Master",
        wazuh_cluster_sync::roles::NodeType::Worker => "Worker",
    };

    let grace = limits.shutdown_grace;
    let log = wazuh_cluster_host::EventLog::new(node.node_type());
    let runner = Runner {
        log,
        node,
        name: name.clone(),
        limits,
        peers: Default::default(),
        dialing: Default::default(),
        next_incoming: 1,
        data_tx,
        ctl_tx: ctl_tx.clone(),
        effect_tx,
        events: events.clone(),
        stats: RunStats::default(),
        closing: Vec::new(),
        broken: false,
        install_root: install_root.clone(),
        api_executor,
    };
    let span = tracing::info_span!("node", name = %name, tag);
    let task = tokio::spawn(
        async move {
            let (stats, closing) = runner.run(data_rx, ctl_rx, shutdown_rx).await;
            // Stop accepting first, then let the effect in flight finish and skip the rest.
            for task in [listener_task, local_task].into_iter().flatten() {
                task.abort();
                // `abort` only asks: the listener closes when the runtime drops the task, which
                // the join confirms. Without it `stop` could return with the port still bound,
                // and a node restarted at the same address failed with EADDRINUSE.
                let _ = task.await;
            }
            if let Some(path) = &local_socket {
                let _ = std::fs::remove_file(path);
            }
            stopping.store(true, std::sync::atomic::Ordering::Release);
            if tokio::time::timeout(grace, effect_thread).await.is_err() {
                tracing::warn!("effect still running after {grace:?}; leaving it");
            }
            for writer in closing {
                let _ = writer.await;
            }
            let _ = done_tx.send(true);
            stats
        }
        .instrument(span),
    );
    Ok(RunningNode {
        name,
        local_addr,
        ctl: ctl_tx,
        events,
        first_events: Some(first_events),
        shutdown,
        done,
        counts,
        task,
    })
}

impl RunningNode {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Master: the address it listens on (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The node's events from now on; the first call gets every event since the start.
    pub fn events(&mut self) -> broadcast::Receiver<NodeEvent> {
        self.first_events
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Runs `f` on the node task with the node and the current time (getters: `workers`,
    /// `health`, `master_peer`, ...). `None` when the node has stopped.
    pub async fn inspect<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Node, Instant) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Inspection = Box::new(move |node, now| {
            let _ = tx.send(f(node, now));
        });
        self.ctl.send(Msg::Inspect(job)).ok()?;
        rx.await.ok()
    }

    /// Open TCP connections accepted from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.counts.count(ip)
    }

    /// Open TCP connections accepted from all addresses.
    pub fn connections(&self) -> usize {
        self.counts.total()
    }

    /// Asks the node to stop (see the crate docs for what a graceful stop does).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Resolves when the node has stopped, whether asked to or not (its effect thread died);
    /// then call [`RunningNode::wait`] for the outcome.
    pub async fn stopped(&mut self) {
        // An error means the task ended without saying so (it panicked): stopped too.
        let _ = self.done.wait_for(|done| *done).await;
    }

    /// Waits for the node to stop.
    ///
    /// # Errors
    /// [`StopError::Crashed`] when its task panicked.
    pub async fn wait(self) -> Result<RunStats, StopError> {
        let name = self.name.clone();
        self.task.await.map_err(|e| StopError::Crashed {
            name,
            message: e.to_string(),
        })
    }

    /// [`shutdown`](Self::shutdown) then [`wait`](Self::wait).
    ///
    /// # Errors
    /// See [`RunningNode::wait`].
    pub async fn stop(self) -> Result<RunStats, StopError> {
        self.shutdown();
        self.wait().await
    }
}
