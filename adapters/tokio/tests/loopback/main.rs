//! Real nodes on loopback: TCP and the Unix socket, real install trees, real time. Convergence,
//! refusals and restarts; output backpressure; socket-level bounds; and the recorded upstream
//! session replayed against our nodes over real sockets.
//!
//! Every node test runs on both runtime adapters (`wazuh-cluster-runtime` picks the adapter;
//! `support::on_both_runtimes!` makes `on_tokio::NAME` and `on_mio::NAME`), and nodes of the two
//! runtimes join each other (`mixed.rs`).
//!
//! One test binary with a module per former test file: each binary links tokio, the engine and
//! the simulator's fixtures, so fewer binaries make a cold `cargo test` faster.

mod support;

mod backpressure;
mod cluster;
mod dapi_files;
mod lifecycle;
mod limits;
mod mixed;
mod session;
