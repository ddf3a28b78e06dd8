//! Merged-file parsing (agent-info / agent-groups, PROTOCOL.md §10).
//!
//! Input: the merged file. Checked: the parts parsed respect the limits and the name rule, and
//! writing them back (`<size> <name> <mod_time>\n<content>`) parses to the same parts with no
//! error: the parser accepts exactly what it describes.

use wazuh_cluster_sync::integrity::merged::{MergedLimits, unmerge, valid_part_name};

/// The body: see the module docs.
pub fn run(data: &[u8]) {
    let limits = MergedLimits {
        max_parts: 64,
        max_part_size: 16 * 1024,
        max_total: 256 * 1024,
    };
    let parsed = unmerge(data, &limits);
    assert!(parsed.parts.len() <= limits.max_parts);
    let mut rewritten = Vec::new();
    for part in &parsed.parts {
        assert!(valid_part_name(part.name), "bad name {:?}", part.name);
        assert!(part.content.len() as u64 <= limits.max_part_size);
        rewritten.extend_from_slice(
            format!("{} {} {}\n", part.content.len(), part.name, part.mod_time).as_bytes(),
        );
        rewritten.extend_from_slice(part.content);
    }
    let again = unmerge(&rewritten, &limits);
    assert_eq!(again.error, None, "rewritten parts do not parse");
    assert_eq!(again.parts, parsed.parts);
}
