//! Runs a Wazuh cluster [`Node`] on one mio event-loop thread: the second runtime adapter, and
//! the worked example of the run-loop contract for adapter authors (`ADAPTERS.md`).
//!
//! ```text
//!   wazuh-cluster (cli) ──► wazuh-cluster-mio ──► wazuh-cluster-host ──► wazuh-cluster-fs
//!                           (this crate)     └──► mio                └─► wazuh-cluster-sync
//!
//!                 ┌───────────── event-loop thread (one per node) ─────────────┐
//!   TCP listener ─┤ accept ──► handle_connected       poll_output ─► Transmit ─┤─► socket (write,
//!   Unix socket ──┤ readable ► handle_input ┌──────┐  (drained      Effect ──► │   handle_written)
//!   sockets ──────┤ writable ► flush        │ Node │   until None)  Connect ─► dial thread
//!   Waker ────────┤ mailbox ─► handle_effect_done, └──────┘         ApiCall ─► API call thread
//!                 │            handle_api_done, dialed             Close ───► flush, shutdown
//!   poll timeout ─┤ poll_timeout ► handle_timeout                   Event ───► log + subscribers
//!                 └─────────────────────────────────────────────────────────────┘
//!   effect thread (one per node, effects in order) ── results ──► mailbox + Waker
//! ```
//!
//! The loop holds no protocol logic; every decision is the node's. It keeps the socket-level
//! bounds only an adapter can keep, the same as the tokio adapter's, from the same
//! [`AdapterLimits`]:
//!
//! * **backpressure**: a connection is read only while [`Node::wants_input`] holds for it (the
//!   kernel's window fills and the peer's writes block); every write the kernel takes is
//!   reported with [`Node::handle_written`], so a peer that does not read is paused once the
//!   node's `max_queued_output` is unwritten;
//! * **connections per source address**: at most [`AdapterLimits::max_connections_per_ip`];
//!   the next one is closed as soon as it is accepted; local clients at most
//!   [`AdapterLimits::max_local_clients`];
//! * **write backlog**: a last resort: a peer is closed once
//!   [`AdapterLimits::max_write_backlog`] bytes wait for it;
//! * **graceful stop** ([`RunningNode::stop`], or SIGINT/SIGTERM through [`ShutdownSignals`]):
//!   stop accepting and reading, remove the local socket, let the effect in flight finish (the
//!   queued ones are skipped), flush what each peer was already sent, within
//!   [`AdapterLimits::shutdown_grace`].
//!
//! The payload deadline (a declared frame that never arrives: 30 s), the `hello` deadline,
//! keepalives and reconnection after `connection_retry` are the node's: the loop honours the
//! `Close` and `Connect` they produce. Before the first effect the effect thread removes the
//! staged files an interrupted run left (`wazuh_cluster_host::effects`).
//!
//! ```no_run
//! use wazuh_cluster_mio::{NodeSpec, ShutdownSignals, start, wall_clock_now};
//! use wazuh_cluster_sync::roles::{NodeConfig, NodeType};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let signals = ShutdownSignals::install()?;
//! let config = NodeConfig::new(NodeType::Master, "master01", None, wall_clock_now());
//! let mut spec = NodeSpec::new(config, "/var/ossec");
//! spec.listen = Some("127.0.0.1:1516".to_owned());
//! let node = start(spec)?;
//! println!("listening on {:?}", node.local_addr());
//! let watch = signals.stop_on_signal(node.stop_handle())?;
//! let stats = node.wait()?;
//! println!("stopped by {:?}: {stats:?}", watch.received());
//! # Ok(())
//! # }
//! ```

mod conn;
mod event_loop;
mod events;
mod offload;
mod signals;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use mio::{Poll, Waker};
use wazuh_cluster_host::effects::node_span;
use wazuh_cluster_host::slots::AddressCounts;
use wazuh_cluster_sync::roles::Node;

pub use events::{EVENT_BUFFER, EventReceiver, RecvError};
pub use signals::{ShutdownSignals, SignalWatch};
pub use wazuh_cluster_host::{
    AdapterLimits, ApiExecutor, NodeSpec, RunStats, StartError, StopError, unix_time_at,
    wall_clock_now,
};

use crate::event_loop::{EventLoop, LoopParts, WAKER};
use crate::events::EventHub;
use crate::offload::{EffectThread, Mailbox, Msg};

/// Starts a node on a thread of its own: opens its install root (removing the staged files an
/// interrupted run left), binds its listener and local socket — errors are returned here,
/// before anything runs — and starts its event loop and its effect thread.
///
/// # Errors
/// [`StartError`].
pub fn start(mut spec: NodeSpec) -> Result<RunningNode, StartError> {
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

    let runtime = |e: std::io::Error| StartError::Runtime(e.to_string());
    let poll = Poll::new().map_err(runtime)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(runtime)?);
    let (mailbox, inbox) = Mailbox::new(waker);

    let listener = match &listen {
        Some(addr) => Some(wazuh_cluster_host::bind_tcp(addr)?),
        None => None,
    };
    let local_addr = match &listener {
        Some(l) => Some(l.local_addr().map_err(|e| StartError::Listen {
            addr: listen.clone().unwrap_or_default(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let local = match &local_socket {
        Some(path) => Some((
            mio::net::UnixListener::from_std(wazuh_cluster_host::bind_local_socket(path, owner)?),
            path.clone(),
        )),
        None => None,
    };
    let effects = EffectThread::start(install_root.clone(), owner, &config, mailbox.clone())
        .map_err(|message| {
            if let Some((_, path)) = &local {
                let _ = std::fs::remove_file(path);
            }
            StartError::InstallRoot {
                path: install_root.display().to_string(),
                message,
            }
        })?;

    let name = config.node_name.clone();
    let span = node_span(&config);
    let node = Node::new(config, seed, Instant::now());
    let events = EventHub::default();
    let first_events = events.subscribe();
    let counts = AddressCounts::default();
    let mut event_loop = EventLoop::new(LoopParts {
        poll,
        node,
        limits,
        listener: listener.map(mio::net::TcpListener::from_std),
        local,
        counts: counts.clone(),
        mailbox: mailbox.clone(),
        inbox,
        effects,
        events: events.clone(),
        install_root,
        api_executor,
    });
    event_loop.register_listeners().map_err(runtime)?;
    let closing = events.clone();
    let thread = std::thread::Builder::new()
        .name(format!("node {name}"))
        .spawn(move || {
            // Subscribers learn that the node ended even when its loop panicked (a bug).
            let _closed_at_the_end = events::CloseOnDrop(closing);
            span.in_scope(|| event_loop.run())
        })
        .map_err(runtime)?;
    Ok(RunningNode {
        name,
        local_addr,
        mailbox,
        events,
        first_events: Some(first_events),
        counts,
        thread: Some(thread),
    })
}

/// Asks a running node to stop, from any thread (see [`RunningNode::stop_handle`]).
#[derive(Debug, Clone)]
pub struct StopHandle(Mailbox);

impl StopHandle {
    /// Asks the node to stop gracefully (nothing happens if it already stopped).
    pub fn stop(&self) {
        self.0.post(Msg::Stop);
    }
}

/// A node running on its event-loop thread. Dropping it asks the node to stop, as
/// [`RunningNode::shutdown`] does, without waiting; [`RunningNode::stop`] also waits.
#[derive(Debug)]
pub struct RunningNode {
    name: String,
    local_addr: Option<SocketAddr>,
    mailbox: Mailbox,
    events: EventHub,
    first_events: Option<EventReceiver>,
    counts: AddressCounts,
    thread: Option<JoinHandle<RunStats>>,
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
    pub fn events(&mut self) -> EventReceiver {
        self.first_events
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Runs `f` on the event loop with the node and the current time (getters: `workers`,
    /// `health`, `wants_input`, ...), waiting for its answer. `None` when the node has stopped.
    pub fn inspect<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Node, Instant) -> T + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: offload::Inspection = Box::new(move |node, now| {
            let _ = tx.send(f(node, now));
        });
        if !self.mailbox.post(Msg::Inspect(job)) {
            return None;
        }
        rx.recv().ok()
    }

    /// Open TCP connections accepted from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        self.counts.count(ip)
    }

    /// Open TCP connections accepted from all addresses.
    pub fn connections(&self) -> usize {
        self.counts.total()
    }

    /// A handle that stops the node from another thread (a signal watcher).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.mailbox.clone())
    }

    /// Asks the node to stop (see the crate docs for what a graceful stop does).
    pub fn shutdown(&self) {
        self.mailbox.post(Msg::Stop);
    }

    /// Whether the node's loop has ended (asked to, or on its own: its effect thread died).
    pub fn is_stopped(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the node to stop.
    ///
    /// # Errors
    /// [`StopError::Crashed`] when its loop panicked.
    pub fn wait(mut self) -> Result<RunStats, StopError> {
        let Some(thread) = self.thread.take() else {
            return Ok(RunStats::default());
        };
        thread.join().map_err(|panic| StopError::Crashed {
            name: self.name.clone(),
            message: panic_text(panic.as_ref()),
        })
    }

    /// [`shutdown`](Self::shutdown) then [`wait`](Self::wait).
    ///
    /// # Errors
    /// See [`RunningNode::wait`].
    pub fn stop(self) -> Result<RunStats, StopError> {
        self.shutdown();
        self.wait()
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// The text of a panic's payload.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}
