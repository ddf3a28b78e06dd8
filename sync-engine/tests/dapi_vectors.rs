//! The DAPI pieces against upstream's facts and recordings: the route table entry by entry
//! against `../shared/spec/v3.9/dapi_routes.json` (extracted from 3.9.5 `requests_list.py`).

use wazuh_cluster_sync::dapi::routes::ROUTES;

#[test]
fn route_table_matches_upstream_entry_by_entry() {
    let spec = wazuh_cluster_vectors::spec_json("v3.9/dapi_routes.json");
    let theirs = spec["routes"]
        .as_array()
        .expect("dapi_routes.json has a `routes` array");
    assert_eq!(ROUTES.len(), theirs.len(), "number of routes");
    for (i, (ours, theirs)) in ROUTES.iter().zip(theirs).enumerate() {
        assert_eq!(theirs["route"], ours.path, "route #{i}");
        assert_eq!(theirs["type"], ours.request_type.as_str(), "{}", ours.path);
        assert_eq!(theirs["function"], ours.framework_function, "{}", ours.path);
        assert_eq!(theirs["is_async"], ours.is_async, "{}", ours.path);
    }
}
