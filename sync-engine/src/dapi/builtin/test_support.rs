//! What the built-in functions' tests share: a fixed `now`, install trees in memory, and calls
//! as the node hands them to its executor.

use std::collections::BTreeMap;

use crate::dapi::call::ApiCall;
use crate::integrity::memory::MemoryStorage;
use crate::integrity::path::InstallPath;
use crate::integrity::storage::Timestamp;

/// 2019-07-15 10:00:00.123456 UTC.
pub(crate) const NOW: Timestamp = Timestamp {
    secs: 1_563_184_800,
    nanos: 123_456_000,
};

/// Adds file `path` holding `content`, modified `seconds_before_now` before [`NOW`].
pub(crate) fn add(
    storage: &mut MemoryStorage,
    path: &str,
    content: impl Into<Vec<u8>>,
    seconds_before_now: i64,
) {
    storage
        .add_file(
            &InstallPath::new(path).unwrap(),
            content.into(),
            Timestamp::from_secs(NOW.secs - seconds_before_now),
            0o660,
        )
        .unwrap();
}

/// The daemons' pid files, so that `check_wazuh_status` lets every function run.
pub(crate) fn running_daemons(storage: &mut MemoryStorage) {
    for daemon in super::manager_status::DAEMONS {
        add(storage, &format!("/var/run/{daemon}-1.pid"), "1\n", 0);
    }
}

/// The call of `framework_function` for `route` with `arguments`.
pub(crate) fn call(
    route: &str,
    framework_function: &'static str,
    arguments: &str,
    agent_nodes: BTreeMap<String, String>,
) -> ApiCall {
    ApiCall {
        function: route.to_owned(),
        framework_function,
        arguments: arguments.to_owned(),
        request: String::new(),
        timeout: None,
        agent_nodes,
    }
}
