//! The distributed API against upstream's facts and recordings: the requests, routes, names and
//! answers of the recorded 3.9.5 session (`wire`), and the built-in functions answering a
//! recorded request from the recorded install tree byte for byte (`builtin`).
//!
//! One test binary with a module per former test file: fewer binaries link faster on a cold
//! `cargo test`.

mod builtin;
mod wire;
