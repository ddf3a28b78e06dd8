//! Integrity metadata (`cluster_control.json`, PROTOCOL.md §9.1) parsing.
//!
//! Input: the JSON document. Checked: a parsed document respects the entry bound, and its upstream
//! serialisation parses back to the same document (what we send is what we would accept).

use wazuh_cluster_sync::integrity::metadata::IntegrityMetadata;

/// Entry bound of this target.
const MAX_ENTRIES: usize = 256;

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let Ok(document) = IntegrityMetadata::from_json(data, MAX_ENTRIES) else {
        return;
    };
    assert!(document.len() <= MAX_ENTRIES);
    let json = document.to_upstream_json();
    let again = IntegrityMetadata::from_json(json.as_bytes(), MAX_ENTRIES)
        .unwrap_or_else(|e| panic!("our own serialisation does not parse: {e}\n{json}"));
    assert_eq!(
        again, document,
        "serialisation round trip changed the document"
    );
}
