//! Clusters on the simulator's virtual time: conformance with the recorded upstream session (its
//! integrity flows and its distributed API calls), convergence of the integrity, extra-valid and
//! agent-info flows, the distributed API across a master and three workers, determinism of a
//! seeded run, and faults (keepalive loss, a file that never comes, a 200 MiB package, a slow
//! disk, resets).
//!
//! One test binary with a module per former test file: each binary links the simulator, the
//! engine and their dependencies, so fewer binaries make a cold `cargo test` faster. The 25-worker
//! scale run (`scale.rs`) and the fuzz corpus replay (`fuzz_corpus.rs`) stay binaries of their
//! own: their docs name them (`--test scale`, `--test fuzz_corpus`).

mod conformance;
mod convergence;
mod dapi;
mod dapi_conformance;
mod determinism;
mod faults;
mod swarm;
