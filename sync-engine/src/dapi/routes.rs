//! The route table of 3.9.5: every distributed API route, the request type that decides where it
//! runs, and the framework function upstream calls for it (3.9.5 `dapi/requests_list.py`
//! `functions`, PROTOCOL.md §13.1).
//!
//! The table is data compiled into the crate (118 routes: 36 `local_master`, 57
//! `distributed_master`, 25 `local_any`). It is only ever looked up by the request's `function`
//! string: nothing here calls anything, and a route that is not in it is
//! [`DapiError::UnknownFunction`], the answer 3.9.5 gives (its `KeyError`, error 1000).
//! `framework_function` names what upstream would run, for logs and for an adapter that executes
//! requests; it is text, never resolved.
//!
//! Upstream's spelling is kept, including `/PUT/active-response/:agent_id` (with a leading `/`,
//! unlike every other `PUT` route).
//!
//! ```
//! use wazuh_cluster_sync::dapi::routes::{Route, RequestType};
//!
//! let route = Route::lookup("/syscollector/:agent_id/os").unwrap();
//! assert_eq!(route.request_type, RequestType::DistributedMaster);
//! assert_eq!(route.framework_function, "syscollector.get_os_agent");
//! assert_eq!(
//!     Route::lookup("/no/such/route").unwrap_err().answer_json(),
//!     r#"{"message": "'/no/such/route'", "error": 1000}"#
//! );
//! ```

use RequestType::{DistributedMaster, LocalAny, LocalMaster};

use super::error::DapiError;

/// Where a request may run (3.9.5 `requests_list.py` `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestType {
    /// `local_any`: any node answers it itself (rules, decoders, its own manager).
    LocalAny,
    /// `local_master`: only the master answers it (agents, groups, cluster state).
    LocalMaster,
    /// `distributed_master`: the master sends it to the node(s) holding the data.
    DistributedMaster,
}

impl RequestType {
    /// Upstream's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::LocalAny => "local_any",
            RequestType::LocalMaster => "local_master",
            RequestType::DistributedMaster => "distributed_master",
        }
    }
}

/// One route of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The request's `function`, e.g. `/agents/:agent_id` or `PUT/agents/restart`.
    pub path: &'static str,
    /// Where it runs.
    pub request_type: RequestType,
    /// The framework function upstream calls (`module.function` or `Class.method`), as text.
    pub framework_function: &'static str,
    /// Upstream awaits it as a coroutine instead of running it in a thread (`is_async`).
    pub is_async: bool,
}

impl Route {
    /// The route named by a request's `function`.
    pub fn find(path: &str) -> Option<&'static Route> {
        ROUTES.iter().find(|route| route.path == path)
    }

    /// The route named by a request's `function`, or the error 3.9.5 answers for an unknown one.
    ///
    /// # Errors
    /// [`DapiError::UnknownFunction`] when `path` is not in [`ROUTES`].
    pub fn lookup(path: &str) -> Result<&'static Route, DapiError> {
        Route::find(path).ok_or_else(|| DapiError::UnknownFunction(path.to_owned()))
    }
}

const fn route(
    path: &'static str,
    request_type: RequestType,
    framework_function: &'static str,
) -> Route {
    Route {
        path,
        request_type,
        framework_function,
        is_async: false,
    }
}

const fn async_route(
    path: &'static str,
    request_type: RequestType,
    framework_function: &'static str,
) -> Route {
    Route {
        is_async: true,
        ..route(path, request_type, framework_function)
    }
}

/// Every route of 3.9.5, in upstream's order.
pub const ROUTES: &[Route] = &[
    route("/agents/:agent_id", LocalMaster, "Agent.get_agent"),
    route(
        "/agents/name/:agent_name",
        LocalMaster,
        "Agent.get_agent_by_name",
    ),
    route("/agents/:agent_id/key", LocalMaster, "Agent.get_agent_key"),
    route("/agents", LocalMaster, "Agent.get_agents_overview"),
    route("/agents/summary", LocalMaster, "Agent.get_agents_summary"),
    route("/agents/summary/os", LocalMaster, "Agent.get_os_summary"),
    route("/agents/outdated", LocalMaster, "Agent.get_outdated_agents"),
    route(
        "/agents/stats/distinct",
        LocalMaster,
        "Agent.get_distinct_agents",
    ),
    route(
        "/agents/:agent_id/upgrade_result",
        DistributedMaster,
        "Agent.get_upgrade_result",
    ),
    route(
        "/agents/:agent_id/group/is_sync",
        LocalMaster,
        "Agent.get_sync_group",
    ),
    route(
        "/agents/:agent_id/config/:component/:configuration",
        DistributedMaster,
        "Agent.get_config",
    ),
    route(
        "PUT/agents/:agent_id/upgrade",
        DistributedMaster,
        "Agent.upgrade_agent",
    ),
    route(
        "PUT/agents/:agent_id/upgrade_custom",
        DistributedMaster,
        "Agent.upgrade_agent_custom",
    ),
    route(
        "PUT/agents/:agent_id/restart",
        DistributedMaster,
        "Agent.restart_agents",
    ),
    route(
        "PUT/agents/restart",
        DistributedMaster,
        "Agent.restart_agents",
    ),
    route("PUT/agents/:agent_name", LocalMaster, "Agent.add_agent"),
    route(
        "POST/agents/restart",
        DistributedMaster,
        "Agent.restart_agents",
    ),
    route("POST/agents", LocalMaster, "Agent.add_agent"),
    route("POST/agents/insert", LocalMaster, "Agent.insert_agent"),
    route("DELETE/agents/:agent_id", LocalMaster, "Agent.remove_agent"),
    route("DELETE/agents/", LocalMaster, "Agent.remove_agents"),
    route("/agents/groups", LocalMaster, "Agent.get_all_groups"),
    route(
        "/agents/no_group",
        LocalMaster,
        "Agent.get_agents_without_group",
    ),
    route(
        "/agents/groups/:group_id",
        LocalMaster,
        "Agent.get_agent_group",
    ),
    route(
        "/agents/groups/:group_id/configuration",
        LocalMaster,
        "Agent.get_agent_conf",
    ),
    route(
        "/agents/groups/:group_id/files",
        LocalMaster,
        "Agent.get_group_files",
    ),
    route(
        "/agents/groups/:group_id/files/:filename",
        LocalMaster,
        "Agent.get_file_conf",
    ),
    route(
        "PUT/agents/:agent_id/group/:group_id",
        LocalMaster,
        "Agent.set_group",
    ),
    route(
        "POST/agents/group/:group_id",
        LocalMaster,
        "Agent.set_group_list",
    ),
    route(
        "PUT/agents/groups/:group_id",
        LocalMaster,
        "Agent.create_group",
    ),
    route(
        "POST/agents/groups/:group_id/configuration",
        LocalMaster,
        "Agent.upload_group_file",
    ),
    route(
        "POST/agents/groups/:group_id/files/:file_name",
        LocalMaster,
        "Agent.upload_group_file",
    ),
    route(
        "DELETE/agents/groups/:group_id",
        LocalMaster,
        "Agent.remove_group",
    ),
    route(
        "DELETE/agents/:agent_id/group",
        LocalMaster,
        "Agent.unset_group",
    ),
    route(
        "DELETE/agents/group/:group_id",
        LocalMaster,
        "Agent.unset_group_list",
    ),
    route(
        "DELETE/agents/:agent_id/group/:group_id",
        LocalMaster,
        "Agent.unset_group",
    ),
    route("DELETE/agents/groups", LocalMaster, "Agent.remove_group"),
    route("/decoders", LocalAny, "Decoder.get_decoders"),
    route("/decoders/files", LocalAny, "Decoder.get_decoders_files"),
    route("/manager/info", LocalAny, "manager.get_info"),
    route("/manager/status", LocalAny, "manager.status"),
    route(
        "/manager/config/:component/:configuration",
        LocalAny,
        "manager.get_config",
    ),
    route(
        "/manager/configuration",
        LocalAny,
        "configuration.get_ossec_conf",
    ),
    route(
        "/manager/configuration/validation",
        LocalAny,
        "manager.validation",
    ),
    route("/manager/stats", LocalAny, "stats.totals"),
    route("/manager/stats/hourly", LocalAny, "stats.hourly"),
    route("/manager/stats/weekly", LocalAny, "stats.weekly"),
    route("/manager/stats/analysisd", LocalAny, "stats.analysisd"),
    route("/manager/stats/remoted", LocalAny, "stats.remoted"),
    route(
        "/manager/logs/summary",
        LocalAny,
        "manager.ossec_log_summary",
    ),
    route("/manager/logs", LocalAny, "manager.ossec_log"),
    route("/manager/files", LocalAny, "manager.get_file"),
    route("POST/manager/files", LocalAny, "manager.upload_file"),
    route("DELETE/manager/files", LocalAny, "manager.delete_file"),
    route("PUT/manager/restart", LocalAny, "manager.restart"),
    route("/cluster/status", LocalMaster, "cluster.get_status_json"),
    route("/cluster/config", LocalAny, "cluster.read_config"),
    route("/cluster/node", LocalAny, "cluster.get_node"),
    async_route("/cluster/nodes", LocalMaster, "cluster_control.get_nodes"),
    async_route(
        "/cluster/nodes/:node_name",
        LocalMaster,
        "cluster_control.get_node",
    ),
    async_route(
        "/cluster/healthcheck",
        LocalMaster,
        "cluster_control.get_health",
    ),
    route(
        "/cluster/:node_id/info",
        DistributedMaster,
        "manager.get_info",
    ),
    route(
        "/cluster/:node_id/status",
        DistributedMaster,
        "manager.status",
    ),
    route(
        "/cluster/:node_id/config/:component/:configuration",
        DistributedMaster,
        "manager.get_config",
    ),
    route(
        "/cluster/:node_id/configuration",
        DistributedMaster,
        "configuration.get_ossec_conf",
    ),
    route(
        "/cluster/configuration/validation",
        DistributedMaster,
        "manager.validation",
    ),
    route(
        "/cluster/:node_id/configuration/validation",
        DistributedMaster,
        "manager.validation",
    ),
    route("/cluster/:node_id/stats", DistributedMaster, "stats.totals"),
    route(
        "/cluster/:node_id/stats/hourly",
        DistributedMaster,
        "stats.hourly",
    ),
    route(
        "/cluster/:node_id/stats/weekly",
        DistributedMaster,
        "stats.weekly",
    ),
    route(
        "/cluster/:node_id/stats/analysisd",
        DistributedMaster,
        "stats.analysisd",
    ),
    route(
        "/cluster/:node_id/stats/remoted",
        DistributedMaster,
        "stats.remoted",
    ),
    route(
        "/cluster/:node_id/logs/summary",
        DistributedMaster,
        "manager.ossec_log_summary",
    ),
    route(
        "/cluster/:node_id/logs",
        DistributedMaster,
        "manager.ossec_log",
    ),
    route(
        "PUT/cluster/restart",
        DistributedMaster,
        "cluster.restart_all_nodes",
    ),
    route(
        "PUT/cluster/:node_id/restart",
        DistributedMaster,
        "manager.restart",
    ),
    route(
        "/cluster/:node_id/files",
        DistributedMaster,
        "manager.get_file",
    ),
    route(
        "POST/cluster/:node_id/files",
        DistributedMaster,
        "manager.upload_file",
    ),
    route(
        "DELETE/cluster/:node_id/files",
        DistributedMaster,
        "manager.delete_file",
    ),
    route(
        "/rootcheck/:agent_id",
        DistributedMaster,
        "rootcheck.print_db",
    ),
    route(
        "/rootcheck/:agent_id/pci",
        DistributedMaster,
        "rootcheck.get_pci",
    ),
    route(
        "/rootcheck/:agent_id/cis",
        DistributedMaster,
        "rootcheck.get_cis",
    ),
    route(
        "/rootcheck/:agent_id/last_scan",
        DistributedMaster,
        "rootcheck.last_scan",
    ),
    route("PUT/rootcheck", DistributedMaster, "rootcheck.run"),
    route("DELETE/rootcheck", DistributedMaster, "rootcheck.clear"),
    route("/sca/:agent_id", DistributedMaster, "sca.get_sca_list"),
    route(
        "/sca/:agent_id/checks/:policy_id",
        DistributedMaster,
        "sca.get_sca_checks",
    ),
    route("/rules", LocalAny, "Rule.get_rules"),
    route("/rules/groups", LocalAny, "Rule.get_groups"),
    route("/rules/pci", LocalAny, "Rule.get_pci"),
    route("/rules/gdpr", LocalAny, "Rule.get_gdpr"),
    route("/rules/files", LocalAny, "Rule.get_rules_files"),
    route("/syscheck/:agent_id", DistributedMaster, "syscheck.files"),
    route(
        "/syscheck/:agent_id/last_scan",
        DistributedMaster,
        "syscheck.last_scan",
    ),
    route("PUT/syscheck", DistributedMaster, "syscheck.run"),
    route(
        "DELETE/syscheck/:agent_id",
        DistributedMaster,
        "syscheck.clear",
    ),
    route(
        "/syscollector/:agent_id/os",
        DistributedMaster,
        "syscollector.get_os_agent",
    ),
    route(
        "/syscollector/:agent_id/hardware",
        DistributedMaster,
        "syscollector.get_hardware_agent",
    ),
    route(
        "/syscollector/:agent_id/packages",
        DistributedMaster,
        "syscollector.get_packages_agent",
    ),
    route(
        "/syscollector/:agent_id/processes",
        DistributedMaster,
        "syscollector.get_processes_agent",
    ),
    route(
        "/syscollector/:agent_id/ports",
        DistributedMaster,
        "syscollector.get_ports_agent",
    ),
    route(
        "/syscollector/:agent_id/netaddr",
        DistributedMaster,
        "syscollector.get_netaddr_agent",
    ),
    route(
        "/syscollector/:agent_id/netproto",
        DistributedMaster,
        "syscollector.get_netproto_agent",
    ),
    route(
        "/syscollector/:agent_id/netiface",
        DistributedMaster,
        "syscollector.get_netiface_agent",
    ),
    route(
        "/ciscat/:agent_id/results",
        DistributedMaster,
        "ciscat.get_results_agent",
    ),
    route(
        "/PUT/active-response/:agent_id",
        DistributedMaster,
        "active_response.run_command",
    ),
    route(
        "/experimental/syscollector/os",
        DistributedMaster,
        "syscollector.get_os",
    ),
    route(
        "/experimental/syscollector/hardware",
        DistributedMaster,
        "syscollector.get_hardware",
    ),
    route(
        "/experimental/syscollector/packages",
        DistributedMaster,
        "syscollector.get_packages",
    ),
    route(
        "/experimental/syscollector/processes",
        DistributedMaster,
        "syscollector.get_processes",
    ),
    route(
        "/experimental/syscollector/ports",
        DistributedMaster,
        "syscollector.get_ports",
    ),
    route(
        "/experimental/syscollector/netaddr",
        DistributedMaster,
        "syscollector.get_netaddr",
    ),
    route(
        "/experimental/syscollector/netproto",
        DistributedMaster,
        "syscollector.get_netproto",
    ),
    route(
        "/experimental/syscollector/netiface",
        DistributedMaster,
        "syscollector.get_netiface",
    ),
    route(
        "/experimental/ciscat/results",
        DistributedMaster,
        "ciscat.get_ciscat_results",
    ),
    route(
        "DELETE/experimental/syscheck",
        DistributedMaster,
        "syscheck.clear",
    ),
    route("/lists", LocalMaster, "cdb_list.get_lists"),
    route("/lists/files", LocalMaster, "cdb_list.get_path_lists"),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn table_has_upstreams_counts() {
        let count = |t: RequestType| ROUTES.iter().filter(|r| r.request_type == t).count();
        assert_eq!(ROUTES.len(), 118);
        assert_eq!(count(LocalMaster), 36);
        assert_eq!(count(DistributedMaster), 57);
        assert_eq!(count(LocalAny), 25);
        let asynchronous: Vec<&str> = ROUTES
            .iter()
            .filter(|r| r.is_async)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            asynchronous,
            [
                "/cluster/nodes",
                "/cluster/nodes/:node_name",
                "/cluster/healthcheck"
            ]
        );
        let unique: BTreeSet<&str> = ROUTES.iter().map(|r| r.path).collect();
        assert_eq!(unique.len(), ROUTES.len(), "a route is listed twice");
    }

    #[test]
    fn lookup_is_exact() {
        for route in ROUTES {
            assert_eq!(Route::lookup(route.path), Ok(route));
        }
        for unknown in [
            "",
            "/agents/",
            "/AGENTS",
            "/agents ",
            "PUT/active-response/:agent_id",
        ] {
            assert_eq!(
                Route::lookup(unknown),
                Err(DapiError::UnknownFunction(unknown.to_owned()))
            );
        }
    }
}
