//! What `control` asks a node: the exact payloads 3.9.5's `control.py` builds for
//! `cluster_control` (recorded in the DAPI vectors), byte for byte.

/// Upstream 3.9.5 `control.get_nodes()` request payload (kwargs of `get_connected_nodes`),
/// byte for byte as recorded in `dapi_via_master.json` / `dapi_via_worker.json`.
pub const GET_NODES_PAYLOAD: &[u8] = br#"{"filter_node": null, "offset": 0, "limit": 500, "sort": null, "search": null, "select": null, "filter_type": "all"}"#;
/// Upstream 3.9.5 `control.get_health()` request payload (no node filter).
pub const GET_HEALTH_PAYLOAD: &[u8] = b"null";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_payloads_are_the_recorded_ones() {
        for file in ["v3.9/dapi_via_master.json", "v3.9/dapi_via_worker.json"] {
            let doc = wazuh_cluster_vectors::json(file);
            let first_frame = |title: &str| {
                let call = doc["calls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|call| call["title"] == title)
                    .unwrap();
                let frame = &call["local_frames"][0];
                (
                    frame["cmd"].as_str().unwrap().to_owned(),
                    frame["payload"].as_str().unwrap().to_owned(),
                )
            };
            let (command, payload) = first_frame("control.get_nodes()");
            assert_eq!(command, "get_nodes");
            assert_eq!(payload.as_bytes(), GET_NODES_PAYLOAD);
            let (command, payload) = first_frame("control.get_health()");
            assert_eq!(command, "get_health");
            assert_eq!(payload.as_bytes(), GET_HEALTH_PAYLOAD);
        }
    }
}
