//! Reads one member of a package recorded from real 3.9.5 nodes (shared by the metadata and
//! compare tests, which check our documents against what upstream put in its packages).

use std::io::Read as _;

/// Member `name` of the recorded ZIP `vector` (a path below the vectors directory), as text.
pub fn zip_member(vector: &str, name: &str) -> String {
    let bytes = wazuh_cluster_vectors::read(vector);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}
