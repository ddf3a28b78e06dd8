//! `manager.status` (`/manager/status`, `/cluster/:node_id/status`): the state of each daemon
//! of the install, as 3.9.5 `cluster.utils.get_manager_status` reads it from `var/run`; and
//! `DistributedAPI.check_wazuh_status`, the check upstream makes before running any other
//! function locally.
//!
//! For each daemon, in upstream's order: `var/run/<daemon>.failed` → `failed`, else
//! `var/run/.restart` → `restarting`, else `var/run/<daemon>.start` → `starting`, else a
//! `var/run/<daemon>-<pid>.pid` → `running`, else `stopped`.
//!
//! What differs: upstream calls a daemon with a pid file `failed` when `/proc/<pid>` is gone (it
//! crashed and left its pid file). A node reads only its install tree, never `/proc`, so a pid
//! file means `running` here. With several pid files upstream takes the first the directory
//! lists (in no fixed order); here the first by name. An entry counts whatever its kind
//! (upstream's `exists` follows symlinks and a dangling one does not count).
//!
//! ```text
//! var/run/ossec-execd-811.pid, var/run/wazuh-db.failed
//! → {"ossec-agentlessd": "stopped", ..., "ossec-execd": "running", ..., "wazuh-db": "failed"}
//! ```

use super::failure::{FunctionError, FunctionResult};
use super::install::Install;
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::Storage;

/// The daemons upstream reports, in its order.
pub(super) const DAEMONS: [&str; 16] = [
    "ossec-agentlessd",
    "ossec-analysisd",
    "ossec-authd",
    "ossec-csyslogd",
    "ossec-dbd",
    "ossec-monitord",
    "ossec-execd",
    "ossec-integratord",
    "ossec-logcollector",
    "ossec-maild",
    "ossec-remoted",
    "ossec-reportd",
    "ossec-syscheckd",
    "wazuh-clusterd",
    "wazuh-modulesd",
    "wazuh-db",
];

/// The daemons without which upstream refuses to run an API function, in the order its error
/// lists their states (`check_wazuh_status`'s `basic_services`).
pub const BASIC_SERVICES: [&str; 5] = [
    "wazuh-modulesd",
    "ossec-remoted",
    "ossec-analysisd",
    "ossec-execd",
    "wazuh-db",
];

/// Where the daemons leave their state.
const RUN_DIR: &str = "var/run";

/// The routes `check_wazuh_status` lets through whatever the daemons' state.
const UNCHECKED_ROUTES: [&str; 2] = ["/manager/status", "/cluster/:node_id/status"];

/// A daemon's state, as upstream names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DaemonState {
    /// `<daemon>.failed` is there.
    Failed,
    /// `.restart` is there.
    Restarting,
    /// `<daemon>.start` is there.
    Starting,
    /// A pid file is there.
    Running,
    /// Nothing is there.
    Stopped,
}

impl DaemonState {
    /// Upstream's word for it.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            DaemonState::Failed => "failed",
            DaemonState::Restarting => "restarting",
            DaemonState::Starting => "starting",
            DaemonState::Running => "running",
            DaemonState::Stopped => "stopped",
        }
    }
}

/// `get_manager_status()`: every daemon of [`DAEMONS`] with its state.
///
/// # Errors
/// A pid file whose name does not end in `-<digits>.pid` (upstream's regex finds no pid and
/// Python raises), or a storage failure listing `var/run`.
pub(super) fn manager_status<S: Storage + ?Sized>(
    install: &Install<'_, S>,
) -> FunctionResult<Vec<(&'static str, DaemonState)>> {
    let entries = install
        .list(RUN_DIR)
        .map_err(|e| install.os_error(RUN_DIR, &e))?;
    let exists = |name: &str| entries.iter().any(|entry| entry.name == name);
    DAEMONS
        .iter()
        .map(|&daemon| {
            let pid_prefix = format!("{daemon}-");
            let pid_file = entries.iter().find(|entry| {
                entry
                    .name
                    .strip_prefix(&pid_prefix)
                    .is_some_and(|rest| rest.ends_with(".pid"))
            });
            let state = if exists(&format!("{daemon}.failed")) {
                DaemonState::Failed
            } else if exists(".restart") {
                DaemonState::Restarting
            } else if exists(&format!("{daemon}.start")) {
                DaemonState::Starting
            } else if let Some(pid_file) = pid_file {
                if !has_pid(&pid_file.name) {
                    return Err(FunctionError::python(
                        "'NoneType' object has no attribute 'group'",
                    ));
                }
                DaemonState::Running
            } else {
                DaemonState::Stopped
            };
            Ok((daemon, state))
        })
        .collect()
}

/// `re.match(r'.+\-(\d+)\.pid$', path)` finds a pid: the name ends in `-<digits>.pid` with
/// something before the `-` (the directory part of upstream's path always is).
fn has_pid(name: &str) -> bool {
    name.strip_suffix(".pid")
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// `manager.status()`: `{daemon: state}` in upstream's order.
///
/// # Errors
/// As [`manager_status`].
pub(super) fn status<S: Storage + ?Sized>(install: &Install<'_, S>) -> FunctionResult<JsonValue> {
    let mut object = JsonObject::new();
    for (daemon, state) in manager_status(install)? {
        object.insert(daemon, JsonValue::from(state.as_str()));
    }
    Ok(JsonValue::Object(object))
}

/// `check_wazuh_status()` before running the function of `route`: a basic service `failed`
/// (1019), else `restarting` (1017), else `stopped` (1018) refuses it, the error listing the
/// basic services' states as the Python tuple upstream prints.
///
/// # Errors
/// Those refusals, or the failures of [`manager_status`].
pub(super) fn check_wazuh_status<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    route: &str,
) -> FunctionResult<()> {
    if UNCHECKED_ROUTES.contains(&route) {
        return Ok(());
    }
    let states = manager_status(install)?;
    let basic: Vec<DaemonState> = BASIC_SERVICES
        .iter()
        .filter_map(|service| {
            states
                .iter()
                .find(|(daemon, _)| daemon == service)
                .map(|(_, state)| *state)
        })
        .collect();
    let tuple = format!(
        "({})",
        basic
            .iter()
            .map(|state| format!("'{}'", state.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (refused, code) in [
        (DaemonState::Failed, 1019),
        (DaemonState::Restarting, 1017),
        (DaemonState::Stopped, 1018),
    ] {
        if basic.contains(&refused) {
            return Err(FunctionError::wazuh(code, Some(&tuple)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dapi::builtin::test_support::add;
    use crate::integrity::memory::MemoryStorage;

    fn tree(run_files: &[&str]) -> MemoryStorage {
        let mut storage = MemoryStorage::new();
        for name in run_files {
            add(&mut storage, &format!("/var/run/{name}"), "", 0);
        }
        storage
    }

    /// Expected answers from upstream's `get_manager_status` run (python3) on the same
    /// `var/run` with `/proc/<pid>` present for every pid file, written by `print_json`.
    #[test]
    fn states_follow_upstreams_precedence_and_order() {
        let storage = tree(&[
            "ossec-analysisd-12.pid",
            "ossec-authd.start",
            "ossec-execd-1.pid",
            "ossec-execd.failed",
            "wazuh-db-7.pid",
            "wazuh-modulesd-3.pid",
            "wazuh-modulesd.start",
            "ossec-remoted.pid",
        ]);
        let install = Install::new(&storage);
        assert_eq!(
            crate::dapi::merge::data_answer(&status(&install).unwrap()),
            concat!(
                r#"{"data": {"ossec-agentlessd": "stopped", "ossec-analysisd": "running", "#,
                r#""ossec-authd": "starting", "ossec-csyslogd": "stopped", "ossec-dbd": "stopped", "#,
                r#""ossec-monitord": "stopped", "ossec-execd": "failed", "ossec-integratord": "stopped", "#,
                r#""ossec-logcollector": "stopped", "ossec-maild": "stopped", "ossec-remoted": "stopped", "#,
                r#""ossec-reportd": "stopped", "ossec-syscheckd": "stopped", "wazuh-clusterd": "stopped", "#,
                r#""wazuh-modulesd": "starting", "wazuh-db": "running"}, "error": 0}"#
            )
        );
        assert_eq!(
            check_wazuh_status(&install, "/agents")
                .unwrap_err()
                .answer(),
            concat!(
                r#"{"message": "There is a failed process. Review that before using the API.: "#,
                r#"('starting', 'stopped', 'running', 'failed', 'running')", "error": 1019}"#
            )
        );
        assert_eq!(check_wazuh_status(&install, "/manager/status"), Ok(()));
    }

    #[test]
    fn restart_marker_and_stopped_daemons_refuse_functions() {
        let restarting = tree(&[".restart", "wazuh-db.failed"]);
        let install = Install::new(&restarting);
        let states = manager_status(&install).unwrap();
        assert!(states.iter().all(|(daemon, state)| *state
            == if *daemon == "wazuh-db" {
                DaemonState::Failed
            } else {
                DaemonState::Restarting
            }));
        assert_eq!(
            check_wazuh_status(&Install::new(&tree(&[".restart"])), "/agents")
                .unwrap_err()
                .code,
            1017
        );
        let nothing = MemoryStorage::new();
        assert_eq!(
            check_wazuh_status(&Install::new(&nothing), "/manager/info")
                .unwrap_err()
                .message,
            "Wazuh is stopped. Start Wazuh before using the API.: \
             ('stopped', 'stopped', 'stopped', 'stopped', 'stopped')"
        );
    }

    #[test]
    fn a_pid_file_without_a_pid_fails_as_upstream() {
        let storage = tree(&["ossec-maild-x.pid"]);
        assert_eq!(
            manager_status(&Install::new(&storage))
                .unwrap_err()
                .answer(),
            r#"{"message": "'NoneType' object has no attribute 'group'", "error": 1000}"#
        );
        assert!(has_pid("wazuh-db-1-23.pid"));
        assert!(!has_pid("wazuh-db-.pid"));
    }
}
