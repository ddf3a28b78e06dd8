//! Deterministic simulator of a Wazuh cluster: real `Node`s (master and workers) on virtual time,
//! over an in-memory byte network, with in-memory disks.
//!
//! ```text
//!   scenario (tests)                     Sim::run_until(predicate, deadline)
//!        │                                         │
//!        ▼                                         ▼
//!   ┌────────────── event queue, ordered by (virtual time, sequence) ──────────────┐
//!   │ Deliver bytes · Closed · Connected · Timer(node) · EffectDone                │
//!   └───────┬───────────────────────────────────────────────────────────┬──────────┘
//!           ▼                                                           ▼
//!   Network (links: latency, bandwidth, pieces,           SimNode = Node + EffectExecutor
//!   stall / partition / reset)  ◄── Transmit / Connect ──   <MemoryStorage>, its own seed
//!           │                                                           │
//!           └──────────── Tap (decodes frames) · Trace (FNV-1a hash) ◄──┘
//! ```
//!
//! Why: the sans-IO `Node` takes time, bytes and effect results as inputs, so one thread can run a
//! whole cluster with the clock jumping from one wakeup to the next. A run is a pure function of
//! its seed and scenario: the same seed gives the same trace hash, which is what the determinism
//! check, and later the seed sweeps, stand on.
//!
//! Where to start: [`cluster::ClusterBuilder`] builds one master and N workers from install trees
//! ([`tree::TreeFile`], [`fixtures`]); [`sim::Sim::run_until`] / [`sim::Sim::run_for`] move virtual
//! time; [`sim::Sim::storage`], [`sim::Sim::events`] (node events with their virtual time),
//! [`sim::Sim::frames`] (every frame decoded by the tap) and [`sim::Sim::trace_hash`] are what
//! tests look at; [`sim::Sim::stall`], [`sim::Sim::partition`], [`sim::Sim::reset`] inject faults.
//!
//! Finding bugs by itself: [`swarm::SwarmOptions`] draws every setting of a run from its seed,
//! [`vopr`] runs it with scheduled faults (network, [`sim::Sim::crash`] / [`sim::Sim::restart`],
//! [`sim::Sim::set_disk_faults`]) and the [`checkers`] after every event, then a liveness phase
//! after healing; the `vopr` binary runs one seed or a sweep and prints the replay command.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod checkers;
pub mod clock;
pub mod cluster;
pub mod fixtures;
pub mod fuzz_bodies;
pub mod local;
pub mod net;
pub mod recording;
pub mod scale;
pub mod scenario;
pub mod shrink;
pub mod sim;
pub mod swarm;
pub mod tap;
pub mod trace;
pub mod tree;
pub mod vopr;
