//! The frame codec and Fernet on their own: against the bytes recorded from real upstream 3.9.5
//! nodes, the Fernet specification's vectors, and properties over any frames and any cut of the
//! stream.
//!
//! One test binary with a module per former test file: each binary links the crate and its
//! dependencies, so fewer binaries make a cold `cargo test` faster.

mod fernet_opener;
mod fernet_spec;
mod frame_proptest;
mod frame_vectors;
