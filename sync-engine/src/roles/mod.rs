//! Master and worker roles composed into one time-driven [`Node`] (profile 3.9).
//!
//! ```text
//!   adapter (tokio / mio / simulator)
//!     socket bytes ──handle_input──────►┌─────────────────── Node ───────────────────┐──poll_output──► Transmit / Connect / Close
//!     timer ────────handle_timeout─────►│ Shell: peers {Connection, DiskQueue,        │                Effect ──► EffectExecutor<S>
//!     effect done ─handle_effect_done──►│        Transfers}, effects in flight,       │                Event (operator)
//!     accept/close ─handle_connected───►│        outputs, rng, limits                 │──poll_timeout──► one timer
//!                   handle_closed       │   │ one Input at a time                     │
//!     bytes written ─handle_written────►│   ▼ Role::handle (the one dispatch point)   │──wants_input──► read or pause
//!                                       │ master: sessions, hello, locks, compare     │
//!                                       │ worker: link, rounds, receive, local        │
//!                                       └─────────────────────────────────────────────┘
//! ```
//!
//! The node touches no socket, clock or disk. It runs every periodic task of the design
//! document's workflow on the `now` it is given, and asks for disk work as [`Effect`]s, which the
//! adapter runs with an [`EffectExecutor`] over its [`Storage`](crate::integrity::storage::Storage)
//! and answers with [`Node::handle_effect_done`]. Keepalives never wait for disk work.
//!
//! # Where to start
//!
//! * [`Node`] (`node.rs`): the public face — inputs, outputs, getters — and `Role::handle`, the
//!   single place where an input reaches the role that decides about it.
//! * `shell/`: what every role needs and none owns. `mod.rs` holds the connections and offers
//!   the roles their narrow interface (`request`, `reply`, `send_file`, `queue_job`, `event`,
//!   `close_peer`, ...); `transfers.rs` is the one owner of every file a link sends or receives,
//!   by id; `disk.rs` keeps one link's effects in order.
//! * `master/`: the master's sessions (`session.rs`: a [`PeerId`] is a `RemoteWorker` or a local
//!   client), `hello.rs`, the synchronisations (`sync.rs`) and its scan and keepalive timers
//!   (`mod.rs`).
//! * `worker/`: the link to the master (`mod.rs`), its rounds (`rounds.rs`), the master's package
//!   (`receive.rs`) and the local socket (`local.rs`).
//! * The vocabulary both sides share: [`output`] (what the adapter is asked), [`events`] (what
//!   the operator is told), [`error`] (typed errors: [`SyncError`], [`NodeError`]),
//!   [`effects`] (disk jobs and their executor), `health` (`get_health` / `get_nodes` from a
//!   snapshot), [`texts`] (upstream's wire texts), [`sync_kind`], [`ids`], [`config`].
//!
//! Imports form a one-way tree: `node` → `master` | `worker` → `shell` → the shared vocabulary;
//! neither role imports the other, and no module reads another's fields. A new part of the
//! node sits beside the role: it gets its own state and the same `&mut Shell`, and `Node`
//! routes the inputs that are its own to it.
//!
//! # Run loop
//!
//! Feed inputs, then drain [`Node::poll_output`] until `None`, then sleep until
//! [`Node::poll_timeout`] (str0m's loop). Report every byte of every transmit with
//! [`Node::handle_written`] once the socket took it (per write or per flush, in any number of
//! calls; reports for a closed peer are ignored, over-reporting saturates): until then it counts
//! as queued for that peer, and while [`NodeLimits::max_queued_output`] bytes are queued
//! [`Node::wants_input`] is false and the adapter stops reading from the peer, so a peer that
//! does not read is paused rather than buffered without bound. A worker on a blocking socket,
//! effects run inline (its blocking writes report at once):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
//! use wazuh_cluster_protocol::connection::WallClock;
//! use wazuh_cluster_protocol::key::ClusterKey;
//! use wazuh_cluster_sync::integrity::memory::MemoryStorage;
//! use wazuh_cluster_sync::integrity::storage::Timestamp;
//! use wazuh_cluster_sync::roles::{
//!     EffectExecutor, Node, NodeConfig, NodeType, Origin, Output,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let start = Instant::now();
//! let unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
//! let key = ClusterKey::new("wazuh395interopkey0123456789abcd")?;
//! let mut config = NodeConfig::new(NodeType::Worker, "worker1", Some(key), WallClock::new(start, unix));
//! config.master_addr = "127.0.0.1:1516".to_owned();
//! // The real adapter uses the file-system Storage of `wazuh-cluster-fs`.
//! let mut executor = EffectExecutor::new(MemoryStorage::new(), &config);
//! let mut node = Node::new(config, unix, start);
//! let mut socket: Option<(wazuh_cluster_sync::roles::PeerId, TcpStream)> = None;
//! let mut buf = vec![0u8; 64 * 1024];
//! loop {
//!     while let Some(output) = node.poll_output() {
//!         match output {
//!             Output::Connect { peer, addr } => match TcpStream::connect(&addr) {
//!                 Ok(stream) => {
//!                     node.handle_connected(Instant::now(), peer, &stream.peer_addr()?.to_string(), Origin::Outgoing);
//!                     socket = Some((peer, stream));
//!                 }
//!                 Err(_) => node.handle_closed(Instant::now(), peer),
//!             },
//!             Output::Transmit { peer, bytes } => {
//!                 if let Some((_, stream)) = socket.as_mut() {
//!                     stream.write_all(&bytes)?;
//!                     node.handle_written(Instant::now(), peer, bytes.len());
//!                 }
//!             }
//!             Output::Effect { id, effect } => {
//!                 let now = Instant::now();
//!                 let wall = node.unix_time(now);
//!                 let result = executor.execute(&effect, wall);
//!                 node.handle_effect_done(now, id, result);
//!             }
//!             Output::ApiCall { id, call } => {
//!                 let now = Instant::now();
//!                 let answer = executor.run_api_call(&call, node.unix_time(now));
//!                 node.handle_api_done(now, id, answer);
//!             }
//!             Output::Close { .. } => socket = None,
//!             Output::Event(event) => eprintln!("{event:?}"),
//!         }
//!     }
//!     let wait = node
//!         .poll_timeout()
//!         .map_or(Duration::from_secs(1), |at| at.saturating_duration_since(Instant::now()))
//!         .max(Duration::from_millis(1));
//!     match socket.as_mut() {
//!         Some((peer, stream)) => {
//!             let peer = *peer;
//!             stream.set_read_timeout(Some(wait))?;
//!             match stream.read(&mut buf) {
//!                 Ok(0) => {
//!                     socket = None;
//!                     node.handle_closed(Instant::now(), peer);
//!                 }
//!                 Ok(n) => node.handle_input(Instant::now(), peer, &buf[..n]),
//!                 Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
//!                 Err(_) => {
//!                     socket = None;
//!                     node.handle_closed(Instant::now(), peer);
//!                 }
//!             }
//!         }
//!         None => std::thread::sleep(wait),
//!     }
//!     node.handle_timeout(Instant::now());
//! }
//! # }
//! ```
//!
//! The contract, step by step (`ADAPTERS.md` at the repository root lists the mistakes that
//! break it and the tests that catch each; `wazuh-cluster-mio`'s `event_loop.rs` is the worked
//! example on one event-loop thread):
//!
//! 1. **Inputs**, each with the current `now`: [`Node::handle_connected`] (accepted: a
//!    [`PeerId`] of the adapter's choosing from 1 up; dialled: the id of the [`Output::Connect`]),
//!    [`Node::handle_input`] (bytes read, any split), [`Node::handle_closed`] (the socket side
//!    ended it or a dial failed — not after an [`Output::Close`]), [`Node::handle_timeout`],
//!    [`Node::handle_effect_done`], [`Node::handle_api_done`], [`Node::handle_written`].
//! 2. **Drain** [`Node::poll_output`] until `None` after every input, not only on the timer.
//! 3. **Report** every byte of every [`Output::Transmit`] with [`Node::handle_written`] once the
//!    socket took it; never reuse a [`PeerId`] while reports for the old connection may come.
//! 4. **Read only while** [`Node::wants_input`] holds for the peer, and read again once it holds
//!    again (after a write report or an effect result): input read past it piles up in the node,
//!    which closes the link as overloaded.
//! 5. **One timer** at [`Node::poll_timeout`]; keepalives, the payload and `hello` deadlines and
//!    reconnects all come from it.
//! 6. **Effects** off the event loop, one at a time, in the order asked, on one
//!    [`EffectExecutor`]; each result back with [`Node::handle_effect_done`]. API calls
//!    ([`Output::ApiCall`]) off the loop too, answered with [`Node::handle_api_done`].
//! 7. **Closing**: on [`Output::Close`] stop reading and flush what is queued, then close (the
//!    last frame may be a refusal the peer must read); a node that stops lets the effect in
//!    flight finish and skips the queued ones.
//!
//! # Choices that differ from upstream
//!
//! * `Node::new(config, seed, now)` takes no storage view: every disk read is an [`Effect`], so
//!   the node never blocks and keepalives never wait behind disk work.
//! * The next timeout comes from [`Node::poll_timeout`] rather than as a last [`Output`] item.
//! * A file goes out one chunk per reply of the peer (upstream's stop-and-wait): what is queued
//!   for a slow peer stays about one chunk; input waiting for the disk is bounded by
//!   [`NodeLimits::max_pending_disk_bytes`] ([`Node::wants_input`] turns false, then the link
//!   closes). Output is bounded end to end by [`NodeLimits::max_queued_output`], counted until
//!   the adapter reports it written (upstream's asyncio transports buffer without bound).
//! * An incoming connection that closes before its `hello` is accepted is reported with its
//!   address and a typed reason ([`NodeEvent::HandshakeFailed`]), where upstream only logs
//!   `Error during handshake with incoming connection`.
//! * `hello`: registration only after every check; a link holds one name (a second `hello` on
//!   it is refused) and its close releases it; a name held by another link is taken over only
//!   once that link fails to answer an `echo-m` probe within
//!   [`NodeLimits::hello_probe_timeout`] (while it answers: `Client already present`).
//! * Locks: a second task of a kind already running is refused (`Synchronization already in
//!   progress`); every lock is freed on completion, error, connection loss or after
//!   `timeout_receiving_file` without the file.
//! * The worker starts its next integrity round only after the master answered the previous one
//!   (bounded by `timeout_receiving_file`), so rounds never overlap.
//! * `get_health` dates are UTC; `n_active_agents` is the master's last census of active agents
//!   per node, asked of the adapter's executor (the install's `var/db/global.db`, else its
//!   files) and refreshed when health is asked and the last is over 5 s old; before the first
//!   census answers, the agents whose agent-info the master took from that node.
//!
//! # Determinism
//!
//! One `u64` seed drives every random choice (connection counters, Fernet IVs, task ids, package
//! names), each from its own derived stream; every map is ordered. The same seed and the same
//! inputs give the same outputs, byte for byte — what the simulator's trace hash checks.

mod api;
pub mod config;
mod deadlines;
pub mod effects;
pub mod error;
pub mod events;
mod health;
pub mod ids;
mod leftovers;
mod local_clients;
mod master;
pub mod node;
pub mod output;
mod shell;
pub mod sync_kind;
pub mod texts;
mod worker;

pub use config::{
    ApiLimits, ClusterSettings, DESCRIPTORS_PER_INCOMING_FILE, MAX_FILE_SHARE, MAX_NODE_NAME_LEN,
    MIN_FILE_SHARE, NodeConfig, NodeLimits, NodeType, unix_time_at, valid_node_name,
};
pub use effects::{
    Effect, EffectError, EffectExecutor, EffectOutput, EffectResult, IncomingFileId,
    MAX_CLIENT_KEYS, PACKAGE_MODE,
};
pub use error::{NodeError, SendFailure, SyncError, SyncStep};
pub use events::{CloseReason, HandshakeFailure, LockRelease, NodeEvent, SKIPPED_EXAMPLES};
pub use ids::{ApiCallId, EffectId, PeerId};
pub use leftovers::{LeftoverSweep, remove_cluster_leftovers};
pub use node::Node;
pub use output::{Origin, Output};
pub use shell::{FileBudgetUse, MemoryBudgetUse, OutputGateUse};
pub use sync_kind::SyncKind;
pub use texts::{dapi_text, hello_text, local_text, sync_text};
