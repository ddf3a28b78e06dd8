//! Sans-IO engine of the Wazuh cluster: integrity metadata, comparison, packages, apply plans, and
//! the master and worker roles composed into one time-driven [`roles::Node`] (its run loop is in
//! the [`roles`] docs).
//!
//! ```text
//!   adapters (tokio / mio / simulator)   run effects on a Storage, move bytes, read clocks
//!            │ ▲
//!            ▼ │
//!   wazuh-cluster-sync (this crate)
//!     integrity/  items (cluster.json) → metadata (scan) → compare (SyncPlan) → package (ZIP)
//!                 → merged (agent-info / agent-groups) → apply (plans executed on a Storage)
//!     roles/      Node = Shell (connections, transfers, disk queues, outputs) + a role:
//!                 master (hello, locks, compare, get_health) / worker (rounds, apply);
//!                 effects (disk jobs as values) run by EffectExecutor on a Storage
//!     dapi/       distributed API requests: typed and bounded, routed, merged
//!     config/     ossec.conf <cluster> block, cluster.json
//!            │
//!            ▼
//!   wazuh-cluster-protocol (frames, Fernet, connection core)
//! ```
//!
//! Nothing here touches a socket, a clock or the disk directly: disk work goes through the
//! [`integrity::storage::Storage`] trait, implemented in memory here (with crash semantics) and on
//! the real file system by `wazuh-cluster-fs`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod calendar;
pub mod config;
pub mod dapi;
pub mod integrity;
mod pyjson;
pub mod roles;
