//! The event loop: the one thread that owns the [`Node`] and every socket, and the run-loop
//! contract of `wazuh_cluster_sync::roles` written out on mio.
//!
//! One turn:
//!
//! 1. **drain** [`Node::poll_output`] until `None`: a transmit is queued on its connection and
//!    written at once as far as the socket takes it, each write reported with
//!    [`Node::handle_written`]; an effect goes to the effect thread, a connect to a dial thread,
//!    an API call to a thread of its own; a close ends the reading and lets the writes flush;
//!    an event goes to the log and the subscribers;
//! 2. **wait** in [`Poll::poll`] until a socket is ready, a thread posts to the mailbox (its
//!    [`Waker`](mio::Waker)), or the node's [`Node::poll_timeout`] (or a closing connection's
//!    grace) is due — zero when a connection still has bytes to read;
//! 3. **handle** what came: accepts (bounded per address and for local clients), readiness
//!    (writes flushed, reads marked possible), the mailbox (effect results, API answers, dials,
//!    inspections, stop), and [`Node::handle_timeout`] once its deadline passed;
//! 4. **read** from each connection the node wants input from ([`Node::wants_input`]), at most
//!    [`READ_BUDGET`] bytes per connection and turn, draining the node after each read. A
//!    connection the node does not want input from is simply not read: the kernel's window
//!    fills and the peer's writes block (backpressure).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener};
use mio::{Events, Interest, Poll, Token};
use wazuh_cluster_host::log::log_refusal;
use wazuh_cluster_host::log_limit::LogLimiter;
use wazuh_cluster_host::slots::{AddressCounts, ConnectionCaps};
use wazuh_cluster_host::{AdapterLimits, ApiExecutor, EventLog, RunStats};
use wazuh_cluster_sync::roles::{Node, Origin, Output, PeerId};

use crate::conn::{Conn, ReadOutcome, Stream};
use crate::events::EventHub;
use crate::offload::{self, EffectThread, Mailbox, Msg};

/// The TCP listener's token.
pub(crate) const LISTENER: Token = Token(0);
/// The local socket's token.
pub(crate) const LOCAL: Token = Token(1);
/// The mailbox's waker's token.
pub(crate) const WAKER: Token = Token(2);
/// Connections get tokens from here on, never reused while the loop runs.
const FIRST_CONN: usize = 16;

/// Bytes read from one connection per turn before the others get theirs.
pub(crate) const READ_BUDGET: usize = 1 << 20;

/// How long after a failed accept (out of descriptors) the listeners are tried again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The address a local client is reported with.
const LOCAL_ADDR: &str = "local";

/// A connection the node closed whose queued writes still flush, until `deadline`.
struct Closing {
    conn: Conn,
    deadline: Instant,
}

/// What [`crate::start`] prepares for the loop.
pub(crate) struct LoopParts {
    pub(crate) poll: Poll,
    pub(crate) node: Node,
    pub(crate) limits: AdapterLimits,
    pub(crate) listener: Option<TcpListener>,
    /// The local socket and its path (removed at stop).
    pub(crate) local: Option<(UnixListener, PathBuf)>,
    pub(crate) counts: AddressCounts,
    pub(crate) mailbox: Mailbox,
    pub(crate) inbox: Receiver<Msg>,
    pub(crate) effects: EffectThread,
    pub(crate) events: EventHub,
    pub(crate) install_root: PathBuf,
    pub(crate) api_executor: ApiExecutor,
}

/// Everything the loop owns.
pub(crate) struct EventLoop {
    poll: Poll,
    node: Node,
    log: EventLog,
    name: String,
    limits: AdapterLimits,
    listener: Option<TcpListener>,
    local: Option<UnixListener>,
    /// The local socket's path, removed at stop.
    local_path: Option<PathBuf>,
    counts: AddressCounts,
    mailbox: Mailbox,
    inbox: Receiver<Msg>,
    effects: Option<EffectThread>,
    events: EventHub,
    install_root: PathBuf,
    api_executor: ApiExecutor,
    conns: BTreeMap<PeerId, Conn>,
    tokens: BTreeMap<Token, PeerId>,
    closing: BTreeMap<Token, Closing>,
    dialing: BTreeSet<PeerId>,
    next_token: usize,
    next_incoming: u64,
    stats: RunStats,
    read_buf: Vec<u8>,
    /// Asked to stop, or the effect thread is gone (the node cannot go on).
    stop: bool,
    /// An accept failed (out of descriptors): when to try the listeners again. Their readiness
    /// is edge-triggered, so the connections waiting in the backlog would otherwise wait for
    /// the next new one.
    accept_retry: Option<Instant>,
    /// Rate limit of the refused-connection lines (a flood of connections must not flood the log).
    refusals: LogLimiter,
}

impl EventLoop {
    /// A loop over the parts [`crate::start`] made.
    pub(crate) fn new(parts: LoopParts) -> EventLoop {
        let LoopParts {
            poll,
            node,
            limits,
            listener,
            local,
            counts,
            mailbox,
            inbox,
            effects,
            events,
            install_root,
            api_executor,
        } = parts;
        let (local, local_path) = match local {
            Some((listener, path)) => (Some(listener), Some(path)),
            None => (None, None),
        };
        EventLoop {
            log: EventLog::new(node.node_type()),
            name: node.config().node_name.clone(),
            read_buf: vec![0; limits.read_buffer.max(1)],
            poll,
            node,
            limits,
            listener,
            local,
            local_path,
            counts,
            mailbox,
            inbox,
            effects: Some(effects),
            events,
            install_root,
            api_executor,
            conns: BTreeMap::new(),
            tokens: BTreeMap::new(),
            closing: BTreeMap::new(),
            dialing: BTreeSet::new(),
            next_token: FIRST_CONN,
            next_incoming: 1,
            stats: RunStats::default(),
            stop: false,
            accept_retry: None,
            refusals: LogLimiter::default(),
        }
    }

    /// Runs until asked to stop, then stops gracefully (see the crate docs); the counters.
    pub(crate) fn run(mut self) -> RunStats {
        let mut events = Events::with_capacity(256);
        self.drain();
        while !self.stop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!("[{}] polling failed: {e}; stopping the node", self.name);
                break;
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept_tcp(),
                    LOCAL => self.accept_local(),
                    WAKER => self.read_mailbox(),
                    token => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.ready(token, readable);
                    }
                }
            }
            // A post may land after the waker's event was taken; one `try_recv` a turn is cheap.
            self.read_mailbox();
            let now = Instant::now();
            if self.node.poll_timeout().is_some_and(|at| at <= now) {
                self.node.handle_timeout(now);
                self.drain();
            }
            if self.accept_retry.is_some_and(|at| at <= now) {
                self.accept_retry = None;
                self.accept_tcp();
                self.accept_local();
            }
            self.read_ready_conns();
            self.expire_closing(now);
        }
        self.shut_down()
    }

    /// How long the next poll may wait.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self
            .conns
            .iter()
            .any(|(peer, c)| c.readable && self.node.wants_input(*peer))
        {
            return Some(Duration::ZERO);
        }
        let at = [
            self.node.poll_timeout(),
            self.closing.values().map(|c| c.deadline).min(),
            self.accept_retry,
        ]
        .into_iter()
        .flatten()
        .min();
        // Rounded up to the next millisecond: epoll's resolution; a wake before the deadline
        // would spin.
        at.map(|at| {
            let left = at.saturating_duration_since(now);
            let ms = left.as_nanos().div_ceil(1_000_000);
            Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
        })
    }

    /// Drains the node's outputs.
    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            self.output(out);
        }
    }

    fn output(&mut self, out: Output) {
        match out {
            Output::Transmit { peer, bytes } => {
                let Some(conn) = self.conns.get_mut(&peer) else {
                    return;
                };
                if self.stats.write_backlog_overflows(
                    &self.limits,
                    &self.name,
                    peer,
                    &conn.addr,
                    conn.queued(),
                    bytes.len(),
                ) {
                    self.close_conn(peer, true);
                    return;
                }
                self.stats.bytes_out += bytes.len() as u64;
                conn.queue(bytes);
                self.flush(peer);
            }
            Output::Effect { id, effect } => {
                // The effect thread only ends after the loop, unless an effect panicked (a bug):
                // then no effect would ever complete, so the node stops instead of hanging.
                if !self.effects.as_ref().is_some_and(|t| t.send(id, effect)) {
                    tracing::error!("the effect thread is gone: stopping the node");
                    self.stop = true;
                }
            }
            Output::Connect { peer, addr } => {
                self.dialing.insert(peer);
                offload::dial(peer, addr, self.limits.dial_timeout, self.mailbox.clone());
            }
            Output::Close { peer } => {
                self.dialing.remove(&peer);
                self.close_conn(peer, false);
            }
            Output::ApiCall { id, call } => {
                let config = self.node.config();
                let started = offload::api_call(
                    id,
                    call,
                    self.api_executor.clone(),
                    self.install_root.clone(),
                    config.connection.wall_clock,
                    config.limits.api.json.answer,
                    self.mailbox.clone(),
                );
                if let Err(answer) = started {
                    self.node.handle_api_done(Instant::now(), id, answer);
                }
            }
            Output::Event(event) => {
                self.log.log(&event, Instant::now());
                self.events.publish(&event);
            }
        }
    }

    /// Writes what `peer` has queued as far as its socket takes it, and reports it.
    fn flush(&mut self, peer: PeerId) {
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        match conn.flush() {
            Ok(0) => {}
            Ok(written) => self.node.handle_written(Instant::now(), peer, written),
            Err(_) => self.close_conn(peer, true),
        }
    }

    /// Ends a connection; `tell_node` when the node does not know yet (the socket side ended
    /// it). What is queued for it still flushes, within the shutdown grace.
    fn close_conn(&mut self, peer: PeerId, tell_node: bool) {
        let Some(mut conn) = self.conns.remove(&peer) else {
            return;
        };
        self.tokens.remove(&conn.token);
        if tell_node {
            // The socket failed or the peer does not read: nothing more would get through.
            conn.deregister(self.poll.registry());
            self.node.handle_closed(Instant::now(), peer);
        } else if conn.queued() == 0 {
            conn.finish(self.poll.registry());
        } else {
            let deadline = Instant::now() + self.limits.shutdown_grace;
            self.closing.insert(conn.token, Closing { conn, deadline });
        }
    }

    /// Readiness on a connection's token.
    fn ready(&mut self, token: Token, readable: bool) {
        if let Some(closing) = self.closing.get_mut(&token) {
            match closing.conn.flush() {
                Ok(_) if closing.conn.queued() > 0 => {}
                Ok(_) => {
                    closing.conn.finish(self.poll.registry());
                    self.closing.remove(&token);
                }
                Err(_) => {
                    closing.conn.deregister(self.poll.registry());
                    self.closing.remove(&token);
                }
            }
            return;
        }
        let Some(&peer) = self.tokens.get(&token) else {
            return;
        };
        if readable && let Some(conn) = self.conns.get_mut(&peer) {
            conn.readable = true;
        }
        self.flush(peer);
        self.drain();
    }

    /// Reads from every connection that may have bytes and whose input the node wants.
    fn read_ready_conns(&mut self) {
        let ready: Vec<PeerId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.readable)
            .map(|(p, _)| *p)
            .collect();
        for peer in ready {
            let mut budget = READ_BUDGET;
            while budget > 0 && self.node.wants_input(peer) {
                let Some(conn) = self.conns.get_mut(&peer) else {
                    break;
                };
                match conn.read(&mut self.read_buf) {
                    ReadOutcome::Data(n) => {
                        budget = budget.saturating_sub(n);
                        self.stats.bytes_in += n as u64;
                        self.node
                            .handle_input(Instant::now(), peer, &self.read_buf[..n]);
                        self.drain();
                    }
                    ReadOutcome::WouldBlock => break,
                    ReadOutcome::Closed => {
                        self.close_conn(peer, true);
                        self.drain();
                        break;
                    }
                }
            }
        }
    }

    /// Cuts the closing connections whose grace ended.
    fn expire_closing(&mut self, now: Instant) {
        let expired: Vec<Token> = self
            .closing
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            if let Some(mut closing) = self.closing.remove(&token) {
                closing.conn.deregister(self.poll.registry());
            }
        }
    }

    fn next_token(&mut self) -> Token {
        let token = Token(self.next_token);
        self.next_token += 1;
        token
    }

    fn next_incoming_peer(&mut self) -> PeerId {
        let peer = PeerId(self.next_incoming);
        self.next_incoming += 1;
        peer
    }

    /// Registers a connected stream and tells the node, which sees the peer at `addr`.
    fn connected(
        &mut self,
        peer: PeerId,
        stream: Stream,
        addr: String,
        slot: Option<wazuh_cluster_host::slots::AddressSlot>,
        origin: Origin,
    ) {
        let token = self.next_token();
        match Conn::open(self.poll.registry(), token, stream, addr.clone(), slot) {
            Ok(conn) => {
                self.conns.insert(peer, conn);
                self.tokens.insert(token, peer);
                self.node
                    .handle_connected(Instant::now(), peer, &addr, origin);
            }
            Err(e) => {
                tracing::warn!(
                    "[{}] cannot watch the connection from {addr}: {e}",
                    self.name
                );
                if origin == Origin::Outgoing {
                    self.node.handle_closed(Instant::now(), peer);
                }
            }
        }
        self.drain();
    }

    /// Accepts TCP connections until none is waiting, refusing (closing at once) those from an
    /// address that already has `max_connections_per_ip` open.
    fn accept_tcp(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (stream, remote) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the connection stays in the backlog; try again a
                    // little later instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            };
            let caps = ConnectionCaps {
                per_ip: self.limits.max_connections_per_ip,
                total: self.limits.max_connections,
            };
            let ip: IpAddr = remote.ip();
            let slot = match self.counts.acquire(ip, caps) {
                Ok(slot) => slot,
                Err(refused) => {
                    drop(stream);
                    let peer = ip.to_string();
                    log_refusal(
                        &mut self.refusals,
                        &peer,
                        "connection refused",
                        Instant::now(),
                        || tracing::warn!("refused connection from {remote}: {refused}"),
                    );
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let peer = self.next_incoming_peer();
            self.stats.connections += 1;
            tracing::debug!("[{}] accepted {peer} from {remote}", self.name);
            self.connected(
                peer,
                Stream::Tcp(stream),
                remote.to_string(),
                Some(slot),
                Origin::Incoming,
            );
        }
    }

    /// Accepts local clients until none is waiting, at most `max_local_clients` at once (the
    /// next one is closed at once).
    fn accept_local(&mut self) {
        loop {
            let Some(local) = &self.local else {
                return;
            };
            let stream = match local.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("accepting a local client: {e}");
                    self.accept_retry = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            };
            let limit = self.limits.max_local_clients;
            let open = self.conns.values().filter(|c| c.local).count();
            if open >= limit {
                tracing::warn!("refused a local client: {limit} already connected");
                continue;
            }
            let peer = self.next_incoming_peer();
            tracing::debug!("[{}] local client {peer}", self.name);
            self.connected(
                peer,
                Stream::Unix(stream),
                LOCAL_ADDR.to_owned(),
                None,
                Origin::Local,
            );
        }
    }

    /// Handles what the other threads posted.
    fn read_mailbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            let now = Instant::now();
            match msg {
                Msg::EffectDone(id, result) => {
                    self.stats.effects += 1;
                    self.node.handle_effect_done(now, id, result);
                }
                Msg::ApiDone(id, answer) => self.node.handle_api_done(now, id, answer),
                Msg::Dialed(peer, result) => self.dialed(peer, result),
                Msg::Inspect(f) => f(&self.node, now),
                Msg::Stop => self.stop = true,
            }
            self.drain();
        }
    }

    /// A dial the node asked for ended.
    fn dialed(&mut self, peer: PeerId, result: Result<std::net::TcpStream, String>) {
        if !self.dialing.remove(&peer) {
            // The node gave up on this connection meanwhile.
            return;
        }
        let adopted = result.and_then(|stream| {
            let remote = stream
                .peer_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string());
            stream
                .set_nonblocking(true)
                .map_err(|e| format!("connecting to {remote}: {e}"))?;
            let _ = stream.set_nodelay(true);
            Ok((TcpStream::from_std(stream), remote))
        });
        match adopted {
            Ok((stream, remote)) => {
                self.stats.connections += 1;
                self.connected(peer, Stream::Tcp(stream), remote, None, Origin::Outgoing);
            }
            Err(reason) => {
                tracing::info!("[{}] {reason}", self.name);
                self.node.handle_closed(Instant::now(), peer);
            }
        }
    }

    /// The graceful stop: stop accepting and reading, remove the local socket, let the effect in
    /// flight finish (the queued ones are skipped), flush what each peer was already sent
    /// (within the shutdown grace).
    fn shut_down(mut self) -> RunStats {
        let registry = self.poll.registry();
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
        }
        if let Some(mut local) = self.local.take() {
            let _ = registry.deregister(&mut local);
        }
        if let Some(path) = &self.local_path {
            let _ = std::fs::remove_file(path);
        }
        if let Some(effects) = self.effects.take() {
            effects.stop(self.limits.shutdown_grace);
        }
        let peers: Vec<PeerId> = self.conns.keys().copied().collect();
        for peer in peers {
            self.close_conn(peer, false);
        }
        let mut events = Events::with_capacity(64);
        while !self.closing.is_empty() {
            let now = Instant::now();
            self.expire_closing(now);
            let Some(deadline) = self.closing.values().map(|c| c.deadline).min() else {
                break;
            };
            let wait = deadline.saturating_duration_since(now);
            if self.poll.poll(&mut events, Some(wait)).is_err() {
                break;
            }
            for event in &events {
                if self.closing.contains_key(&event.token()) {
                    self.ready(event.token(), false);
                }
            }
        }
        self.stats
    }

    /// Registers the listeners (at start, before the first turn).
    pub(crate) fn register_listeners(&mut self) -> io::Result<()> {
        let registry = self.poll.registry();
        if let Some(listener) = &mut self.listener {
            registry.register(listener, LISTENER, Interest::READABLE)?;
        }
        if let Some(local) = &mut self.local {
            registry.register(local, LOCAL, Interest::READABLE)?;
        }
        Ok(())
    }
}
