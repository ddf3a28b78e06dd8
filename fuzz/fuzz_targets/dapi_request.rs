//! Fuzz target `dapi_request`: a thin wrapper; the body and its checks are
//! `wazuh_cluster_sim::fuzz_bodies` (replayed on stable by `simulator/tests/fuzz_corpus.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wazuh_cluster_sim::fuzz_bodies::dapi::run(data);
});
