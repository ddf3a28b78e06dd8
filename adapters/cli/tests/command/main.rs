//! Programs run as processes: the `wazuh-cluster` command's `node` daemons converging, restarting
//! and stopping, `wazuh-clusterd` as upstream's tools run it, its `integrity` and `wire decode` on the upstream recordings, and the
//! `--api-exec` program of `contrib/`. (The commands that talk to a node's local socket have their
//! own binary, `local_socket`, around its fake node.)
//!
//! One test binary with a module per former test file: each binary is linked on its own, so fewer
//! binaries make a cold `cargo test` faster.

mod api_exec_script;
mod clusterd;
mod daemon;
mod integrity_cli;
mod wire_decode;
