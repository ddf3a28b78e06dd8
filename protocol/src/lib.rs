//! Sans-IO core of the Wazuh cluster wire protocol (profile 3.9 first, 4.x through the same seams).
//!
//! ```text
//!  adapters (tokio, mio, simulator)        bytes in / bytes out, `now`, seeds
//!            │                                        ▲
//!            ▼                                        │
//!  ┌──────────────── wazuh-cluster-sync (Node, roles, integrity) ─────────────┐
//!  │  ┌──────────── wazuh-cluster-protocol (this crate) ────────────────────┐ │
//!  │  │ Connection: counters, pending requests, keepalive, file + string    │ │
//!  │  │ transfer  ──►  Fernet  ──►  FrameDecoder / encode_frame  (Profile)   │ │
//!  │  └──────────────────────────────────────────────────────────────────────┘ │
//!  └──────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Nothing here reads a clock, draws OS randomness or touches a socket or a disk: time comes in as
//! a `now` argument, randomness from a seed, and bytes through `handle_input` / `poll_transmit`.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod connection;
pub mod fernet;
pub mod frame;
pub mod key;
pub mod message;
pub mod profile;
pub mod rng;
