//! Both runtime adapters behind one async face, for code whose user picks the runtime when it
//! runs: `wazuh-cluster node|demo|clusterd --runtime tokio|mio`, the loopback behaviour suite
//! (every test on each runtime) and the measurements.
//!
//! ```text
//!   wazuh-cluster (cli), loopback suite ──► wazuh-cluster-runtime ──┬─► wazuh-cluster-tokio
//!                                           (this crate)            └─► wazuh-cluster-mio
//! ```
//!
//! [`Rt::Tokio`] runs the node as tasks of the caller's tokio runtime; [`Rt::Mio`] on its own
//! event-loop thread, whose handle blocks: its short calls (start, inspect, wait) run in
//! `block_in_place` (so the caller's runtime must be multi-threaded), and its events reach an
//! async channel through a forwarding thread.
//!
//! ```no_run
//! use wazuh_cluster_runtime::{NodeSpec, Rt, wall_clock_now};
//! use wazuh_cluster_sync::roles::{NodeConfig, NodeType};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = NodeConfig::new(NodeType::Master, "master01", None, wall_clock_now());
//! let mut spec = NodeSpec::new(config, "/var/ossec");
//! spec.listen = Some("127.0.0.1:0".to_owned());
//! let rt: Rt = "mio".parse()?;
//! let mut node = rt.start(spec).await?;
//! let mut events = node.events();
//! let first = events.recv().await;
//! println!("{first:?}; workers: {:?}", node.inspect(|n, _| n.workers()).await);
//! node.stop().await?;
//! # Ok(())
//! # }
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
pub use wazuh_cluster_host::{NodeSpec, RunStats, StartError, StopError, wall_clock_now};
use wazuh_cluster_sync::roles::{Node, NodeEvent};

/// A runtime adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rt {
    /// `wazuh-cluster-tokio`: tasks on the caller's tokio runtime (the default).
    #[default]
    Tokio,
    /// `wazuh-cluster-mio`: one event-loop thread per node.
    Mio,
}

impl Rt {
    /// Both, in the order `--runtime` lists them.
    pub const ALL: [Rt; 2] = [Rt::Tokio, Rt::Mio];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Rt::Tokio => "tokio",
            Rt::Mio => "mio",
        }
    }
}

impl std::fmt::Display for Rt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A runtime name that is neither `tokio` nor `mio`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime {0:?} (tokio or mio)")]
pub struct UnknownRuntime(pub String);

impl std::str::FromStr for Rt {
    type Err = UnknownRuntime;

    fn from_str(s: &str) -> Result<Rt, UnknownRuntime> {
        Rt::ALL
            .into_iter()
            .find(|rt| rt.name() == s)
            .ok_or_else(|| UnknownRuntime(s.to_owned()))
    }
}

/// A node running on either adapter.
#[derive(Debug)]
pub enum Running {
    /// On tokio.
    Tokio(wazuh_cluster_tokio::RunningNode),
    /// On its mio event loop.
    Mio(wazuh_cluster_mio::RunningNode),
}

/// A node's events on either adapter.
#[derive(Debug)]
pub enum Events {
    /// From a tokio node.
    Tokio(broadcast::Receiver<NodeEvent>),
    /// From a mio node, forwarded by a thread of its own (see [`forward`]).
    Mio(mpsc::Receiver<Result<NodeEvent, Missed>>),
}

/// What one read of [`Events`] gave besides an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Missed {
    /// Events were dropped: the reader was late.
    Lagged,
    /// The node stopped.
    Closed,
}

/// How often a stopped mio node is looked for.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How long a forwarding thread waits for an event before it checks its reader is still there.
const FORWARD_CHECK: Duration = Duration::from_secs(1);

/// Forwards a mio node's events to an async channel from a thread of its own, so an async
/// reader waits without polling (and without a thread parked per read). The thread ends when
/// the node has stopped or the reader is gone.
fn forward(rx: wazuh_cluster_mio::EventReceiver) -> mpsc::Receiver<Result<NodeEvent, Missed>> {
    let (tx, out) = mpsc::channel(wazuh_cluster_mio::EVENT_BUFFER);
    let spawned = std::thread::Builder::new()
        .name("node events".to_owned())
        .spawn(move || {
            loop {
                let item = match rx.recv_timeout(FORWARD_CHECK) {
                    Ok(event) => Ok(event),
                    Err(wazuh_cluster_mio::RecvError::Lagged(_)) => Err(Missed::Lagged),
                    Err(wazuh_cluster_mio::RecvError::Closed) => return,
                    Err(wazuh_cluster_mio::RecvError::Timeout) if tx.is_closed() => return,
                    Err(wazuh_cluster_mio::RecvError::Timeout) => continue,
                };
                if tx.blocking_send(item).is_err() {
                    return;
                }
            }
        });
    // Without the thread the channel closes at once: the reader sees `Missed::Closed`.
    drop(spawned);
    out
}

impl Rt {
    /// Starts `spec` on this runtime.
    ///
    /// # Errors
    /// [`StartError`].
    pub async fn start(self, spec: NodeSpec) -> Result<Running, StartError> {
        match self {
            Rt::Tokio => wazuh_cluster_tokio::start(spec).await.map(Running::Tokio),
            Rt::Mio => {
                tokio::task::block_in_place(|| wazuh_cluster_mio::start(spec)).map(Running::Mio)
            }
        }
    }
}

impl Running {
    /// Master: the address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Running::Tokio(n) => n.local_addr(),
            Running::Mio(n) => n.local_addr(),
        }
    }

    /// The node's events from now on; the first call gets every event since the start.
    pub fn events(&mut self) -> Events {
        match self {
            Running::Tokio(n) => Events::Tokio(n.events()),
            Running::Mio(n) => Events::Mio(forward(n.events())),
        }
    }

    /// Runs `f` on the node with the current time (getters); `None` when it has stopped.
    pub async fn inspect<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&Node, Instant) -> T + Send + 'static,
    {
        match self {
            Running::Tokio(n) => n.inspect(f).await,
            Running::Mio(n) => tokio::task::block_in_place(|| n.inspect(f)),
        }
    }

    /// Open TCP connections accepted from `ip`.
    pub fn connections_from(&self, ip: IpAddr) -> usize {
        match self {
            Running::Tokio(n) => n.connections_from(ip),
            Running::Mio(n) => n.connections_from(ip),
        }
    }

    /// Open TCP connections accepted from all addresses.
    pub fn connections(&self) -> usize {
        match self {
            Running::Tokio(n) => n.connections(),
            Running::Mio(n) => n.connections(),
        }
    }

    /// Asks the node to stop gracefully.
    pub fn shutdown(&self) {
        match self {
            Running::Tokio(n) => n.shutdown(),
            Running::Mio(n) => n.shutdown(),
        }
    }

    /// Resolves when the node has stopped.
    pub async fn stopped(&mut self) {
        match self {
            Running::Tokio(n) => n.stopped().await,
            Running::Mio(n) => {
                while !n.is_stopped() {
                    tokio::time::sleep(STOP_POLL).await;
                }
            }
        }
    }

    /// Waits for the node to stop.
    ///
    /// # Errors
    /// [`StopError`]: the node crashed.
    pub async fn wait(self) -> Result<RunStats, StopError> {
        match self {
            Running::Tokio(n) => n.wait().await,
            Running::Mio(n) => tokio::task::block_in_place(|| n.wait()),
        }
    }

    /// [`shutdown`](Self::shutdown) then [`wait`](Self::wait).
    ///
    /// # Errors
    /// See [`Running::wait`].
    pub async fn stop(self) -> Result<RunStats, StopError> {
        self.shutdown();
        self.wait().await
    }
}

impl Events {
    /// The next event, or what was missed.
    pub async fn recv(&mut self) -> Result<NodeEvent, Missed> {
        match self {
            Events::Tokio(rx) => rx.recv().await.map_err(|e| match e {
                broadcast::error::RecvError::Lagged(_) => Missed::Lagged,
                broadcast::error::RecvError::Closed => Missed::Closed,
            }),
            Events::Mio(rx) => rx.recv().await.unwrap_or(Err(Missed::Closed)),
        }
    }

    /// An event already there, if any.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        match self {
            Events::Tokio(rx) => rx.try_recv().ok(),
            Events::Mio(rx) => rx.try_recv().ok().and_then(Result::ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_parse_by_name_and_others_are_refused_with_the_choices() {
        for rt in Rt::ALL {
            assert_eq!(rt.name().parse::<Rt>(), Ok(rt));
        }
        assert_eq!(Rt::default(), Rt::Tokio);
        let refused = "async-std".parse::<Rt>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            "unknown runtime \"async-std\" (tokio or mio)"
        );
    }
}
