//! The node task: the one owner of a [`Node`], and its run loop.
//!
//! It selects over socket input (from the per-peer reader tasks), everything else that happens to
//! the node (accepted and dialled connections, effect completions, inspections), the timer the
//! node asked for, and the shutdown request. After every input it drains
//! [`Node::poll_output`] until `None`: transmits go to the peer's writer, effects to the effect
//! thread, connects to a dialer task, closes to the peer's tasks, events to `tracing` and the
//! subscribers. The writers report what they flushed (`Msg::Written`), which the node counts
//! against its bound of unwritten output per peer; each reader reads only while
//! [`Node::wants_input`] holds for its peer. That is the whole job; every decision is the node's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use wazuh_cluster_sync::roles::{Effect, EffectId, Node, NodeEvent, Origin, Output, PeerId};

use wazuh_cluster_host::{AdapterLimits, ApiExecutor, EventLog, RunStats, api_exec};

use crate::io::{PeerIo, dial};
use crate::messages::Msg;
use crate::slots::Slot;

/// The address a local client is reported with.
const LOCAL_ADDR: &str = "local";

pub(crate) struct Runner {
    pub(crate) node: Node,
    /// The node's log, refusals rate-limited.
    pub(crate) log: EventLog,
    pub(crate) name: String,
    pub(crate) limits: AdapterLimits,
    pub(crate) peers: BTreeMap<PeerId, PeerIo>,
    /// Outgoing connections being dialled; a `Close` for one of them cancels it.
    pub(crate) dialing: BTreeSet<PeerId>,
    pub(crate) next_incoming: u64,
    pub(crate) data_tx: mpsc::Sender<Msg>,
    pub(crate) ctl_tx: mpsc::UnboundedSender<Msg>,
    pub(crate) effect_tx: mpsc::UnboundedSender<(EffectId, Effect)>,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) stats: RunStats,
    /// Writers still flushing after their connection was closed.
    pub(crate) closing: Vec<JoinHandle<()>>,
    /// The effect thread is gone: the node cannot go on.
    pub(crate) broken: bool,
    /// The install root, which distributed API calls read.
    pub(crate) install_root: std::path::PathBuf,
    /// Where distributed API calls run.
    pub(crate) api_executor: ApiExecutor,
}

impl Runner {
    /// Runs until `shutdown` turns true; returns the counters and the writers still flushing.
    pub(crate) async fn run(
        mut self,
        mut data_rx: mpsc::Receiver<Msg>,
        mut ctl_rx: mpsc::UnboundedReceiver<Msg>,
        mut shutdown: watch::Receiver<bool>,
    ) -> (RunStats, Vec<JoinHandle<()>>) {
        self.drain();
        loop {
            let deadline = self.node.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(msg) = ctl_rx.recv() => self.handle(msg),
                Some(msg) = data_rx.recv() => self.handle(msg),
                () = sleep => self.node.handle_timeout(Instant::now()),
            }
            self.drain();
            self.closing.retain(|h| !h.is_finished());
            if self.broken {
                break;
            }
        }
        // Graceful: stop reading and flush what the node already produced to every peer.
        let grace = self.limits.shutdown_grace;
        let peers = std::mem::take(&mut self.peers);
        for (_, io) in peers {
            self.closing.push(io.close(grace));
        }
        (self.stats, self.closing)
    }

    fn handle(&mut self, msg: Msg) {
        let now = Instant::now();
        match msg {
            Msg::Data(peer, bytes) => {
                self.stats.bytes_in += bytes.len() as u64;
                let wants = self.node.wants_input(peer);
                let Some(io) = self.peers.get_mut(&peer) else {
                    return;
                };
                if !io.parked.is_empty() || !wants {
                    io.parked.push_back(bytes);
                } else {
                    self.node.handle_input(now, peer, &bytes);
                }
            }
            Msg::Written(peer, bytes) => self.node.handle_written(now, peer, bytes),
            Msg::Eof(peer) | Msg::WriteFailed(peer) => self.close_peer(peer, true),
            Msg::Accepted(stream, remote, slot) => {
                let peer = self.next_incoming_peer();
                self.stats.connections += 1;
                tracing::debug!("[{}] accepted {peer} from {remote}", self.name);
                let slot = Some(Slot::Address { _slot: slot });
                self.connected(now, peer, stream, remote, slot, Origin::Incoming);
            }
            Msg::AcceptedLocal(stream, permit) => {
                let peer = self.next_incoming_peer();
                tracing::debug!("[{}] local client {peer}", self.name);
                let slot = Some(Slot::Local { _permit: permit });
                let addr = LOCAL_ADDR.to_owned();
                self.connected(now, peer, stream, addr, slot, Origin::Local);
            }
            Msg::Dialed(peer, result) => {
                if !self.dialing.remove(&peer) {
                    // The node gave up on this connection meanwhile.
                    return;
                }
                match result {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        let remote = stream
                            .peer_addr()
                            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
                        self.stats.connections += 1;
                        self.connected(now, peer, stream, remote, None, Origin::Outgoing);
                    }
                    Err(reason) => {
                        tracing::info!("[{}] {reason}", self.name);
                        self.node.handle_closed(now, peer);
                    }
                }
            }
            Msg::EffectDone(id, result) => {
                self.stats.effects += 1;
                self.node.handle_effect_done(now, id, result);
            }
            Msg::ApiDone(id, answer) => self.node.handle_api_done(now, id, answer),
            Msg::Inspect(f) => f(&self.node, now),
        }
    }

    /// The id of the next connection the node did not dial.
    fn next_incoming_peer(&mut self) -> PeerId {
        let peer = PeerId(self.next_incoming);
        self.next_incoming += 1;
        peer
    }

    /// Hands a connected stream (accepted, local or dialed) to its reader and writer tasks and
    /// tells the node, which sees the peer at `addr`.
    fn connected<S>(
        &mut self,
        now: Instant,
        peer: PeerId,
        stream: S,
        addr: String,
        slot: Option<Slot>,
        origin: Origin,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let io = PeerIo::spawn(
            stream,
            peer,
            addr.clone(),
            slot,
            self.limits.read_buffer,
            self.data_tx.clone(),
            self.ctl_tx.clone(),
        );
        self.peers.insert(peer, io);
        self.node.handle_connected(now, peer, &addr, origin);
    }

    /// Drains the node's outputs, feeds it the input it parked and wants again, and tells each
    /// reader whether to read.
    fn drain(&mut self) {
        loop {
            while let Some(out) = self.node.poll_output() {
                self.output(out);
            }
            let mut ready = None;
            for (peer, io) in &self.peers {
                if !io.parked.is_empty() && self.node.wants_input(*peer) {
                    ready = Some(*peer);
                    break;
                }
            }
            let Some(peer) = ready else { break };
            if let Some(bytes) = self
                .peers
                .get_mut(&peer)
                .and_then(|io| io.parked.pop_front())
            {
                self.node.handle_input(Instant::now(), peer, &bytes);
            }
        }
        for (peer, io) in &self.peers {
            let pause = !io.parked.is_empty() || !self.node.wants_input(*peer);
            io.pause.send_if_modified(|paused| {
                let changed = *paused != pause;
                *paused = pause;
                changed
            });
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Transmit { peer, bytes } => {
                let Some(io) = self.peers.get(&peer) else {
                    return;
                };
                if self.stats.write_backlog_overflows(
                    &self.limits,
                    &self.name,
                    peer,
                    &io.addr,
                    io.backlog(),
                    bytes.len(),
                ) {
                    self.close_peer(peer, true);
                    return;
                }
                self.stats.bytes_out += bytes.len() as u64;
                if !io.send(bytes) {
                    self.close_peer(peer, true);
                }
            }
            Output::Effect { id, effect } => {
                // The effect thread only ends after this task, unless an effect panicked (a bug):
                // then no effect would ever complete, so the node stops instead of hanging.
                if self.effect_tx.send((id, effect)).is_err() {
                    tracing::error!("the effect thread is gone: stopping the node");
                    self.broken = true;
                }
            }
            Output::Connect { peer, addr } => {
                self.dialing.insert(peer);
                dial(peer, addr, self.limits.dial_timeout, self.ctl_tx.clone());
            }
            Output::Close { peer } => {
                self.dialing.remove(&peer);
                self.close_peer(peer, false);
            }
            Output::ApiCall { id, call } => {
                // Off the node task: a slow call holds up neither the node nor its disk effects
                // (the node bounds how many run at once).
                let executor = self.api_executor.clone();
                let root = self.install_root.clone();
                let clock = self.node.config().connection.wall_clock;
                let limits = self.node.config().limits.api.json.answer;
                let done = self.ctl_tx.clone();
                tokio::task::spawn_blocking(move || {
                    let answer = api_exec::run(&executor, &root, &clock, &call, &limits);
                    let _ = done.send(Msg::ApiDone(id, answer));
                });
            }
            Output::Event(event) => {
                self.log.log(&event, Instant::now());
                // No subscriber is fine.
                let _ = self.events.send(event);
            }
        }
    }

    /// Ends a connection; `tell_node` when the node does not know yet (the socket side ended it).
    fn close_peer(&mut self, peer: PeerId, tell_node: bool) {
        let Some(io) = self.peers.remove(&peer) else {
            return;
        };
        self.closing.push(io.close(self.limits.shutdown_grace));
        if tell_node {
            self.node.handle_closed(Instant::now(), peer);
        }
    }
}
