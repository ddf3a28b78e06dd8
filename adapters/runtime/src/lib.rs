//! Both runtime adapters behind one face, so that every test of this binary is written once and
//! runs on each: `Rt::Tokio` (`wazuh-cluster-tokio`, async tasks) and `Rt::Mio`
//! (`wazuh-cluster-mio`, one event-loop thread, a blocking handle). The tests run on tokio; a
//! mio node's blocking calls run in `block_in_place`, in short slices so a test's timeouts
//! still fire.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use wazuh_cluster_sync::roles::{Node, NodeEvent};
use wazuh_cluster_tokio::{NodeSpec, RunStats, StartError, StopError};

/// A runtime adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Tokio,
    Mio,
}

/// A node running on either adapter.
#[derive(Debug)]
pub enum Running {
    Tokio(wazuh_cluster_tokio::RunningNode),
    Mio(wazuh_cluster_mio::RunningNode),
}

/// A node's events on either adapter.
#[derive(Debug)]
pub enum Events {
    Tokio(broadcast::Receiver<NodeEvent>),
    Mio(wazuh_cluster_mio::EventReceiver),
}

/// What one read of [`Events`] gave besides an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Missed {
    /// Events were dropped: the reader was late.
    Lagged,
    /// The node stopped.
    Closed,
}

/// How long one blocking slice of a mio call may take.
const SLICE: Duration = Duration::from_millis(20);

impl Rt {
    /// Starts `spec` on this runtime.
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
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Running::Tokio(n) => n.local_addr(),
            Running::Mio(n) => n.local_addr(),
        }
    }

    pub fn events(&mut self) -> Events {
        match self {
            Running::Tokio(n) => Events::Tokio(n.events()),
            Running::Mio(n) => Events::Mio(n.events()),
        }
    }

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

    pub fn connections_from(&self, ip: IpAddr) -> usize {
        match self {
            Running::Tokio(n) => n.connections_from(ip),
            Running::Mio(n) => n.connections_from(ip),
        }
    }

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
                    tokio::time::sleep(SLICE).await;
                }
            }
        }
    }

    pub async fn wait(self) -> Result<RunStats, StopError> {
        match self {
            Running::Tokio(n) => n.wait().await,
            Running::Mio(n) => tokio::task::block_in_place(|| n.wait()),
        }
    }

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
            Events::Mio(rx) => loop {
                match tokio::task::block_in_place(|| rx.recv_timeout(SLICE)) {
                    Ok(event) => return Ok(event),
                    Err(wazuh_cluster_mio::RecvError::Lagged(_)) => return Err(Missed::Lagged),
                    Err(wazuh_cluster_mio::RecvError::Closed) => return Err(Missed::Closed),
                    // Gives the test's own timeout its chance.
                    Err(wazuh_cluster_mio::RecvError::Timeout) => tokio::task::yield_now().await,
                }
            },
        }
    }

    /// An event already there, if any.
    pub fn try_recv(&mut self) -> Option<NodeEvent> {
        match self {
            Events::Tokio(rx) => rx.try_recv().ok(),
            Events::Mio(rx) => rx.try_recv().ok(),
        }
    }
}

/// Instantiates each named `async fn NAME(rt: Rt)` of the enclosing module as two tests,
/// `on_tokio::NAME` and `on_mio::NAME`.
macro_rules! on_both_runtimes {
    ($($name:ident),* $(,)?) => {
        mod on_tokio {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::runtimes::Rt::Tokio).await
                }
            )*
        }
        mod on_mio {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::runtimes::Rt::Mio).await
                }
            )*
        }
    };
}
pub(crate) use on_both_runtimes;
