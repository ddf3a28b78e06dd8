//! `manager.get_info` (`/manager/info`, `/cluster/:node_id/info`): what the install is, as 3.9.5
//! answers it, in its key order: `Wazuh().to_dict()` (`path`, `version`, `compilation_date`,
//! `type`, `max_agents`, `openssl_support`, `ruleset_version`, `tz_offset`, `tz_name`), then the
//! manager's `name` and `cluster` (`enabled`, `running`, `name`, `node_name`, `node_type`).
//!
//! Sources, as upstream reads them: `etc/ossec-init.conf` (`DIRECTORY`, `VERSION`, `DATE`,
//! `TYPE`, `server` reading `manager`; missing: 1005), `ruleset/VERSION` (the last
//! `KEY="value"` line; missing: 1005), the `<cluster>` block of `etc/ossec.conf` as
//! `read_cluster_config` reads it (defaults for what it omits; no block: disabled; errors 3004
//! and 3006), and `wazuh-clusterd`'s state from `var/run` (see `manager_status`).
//!
//! What cannot be read here, and what it is instead:
//! * `max_agents`, `openssl_support`: upstream reads them from `global.db`'s `info` table, an
//!   SQLite file this node does not read; they are `N/A`, what upstream answers when it cannot
//!   read that table.
//! * `name`: agent 000's name in `global.db`, which `wazuh-modulesd` sets to the host name; the
//!   node knows neither, and answers the name the database schema gives it, `localhost`.
//! * `tz_offset`, `tz_name`: `+0000` and `UTC` (see `time`).
//! * `path`: the `DIRECTORY` of `etc/ossec-init.conf` (see `install`).
//! * an ossec.conf upstream's XML reader refuses names the failure in our reader's words.
//!
//! ```text
//! {"path": "/var/ossec", "version": "v3.9.5", "compilation_date": "Wed Aug  7 11:26:46 UTC 2019",
//!  "type": "manager", "max_agents": "N/A", "openssl_support": "N/A", "ruleset_version": "3956",
//!  "tz_offset": "+0000", "tz_name": "UTC", "name": "localhost",
//!  "cluster": {"enabled": "yes", "running": "yes", "name": "wazuh", "node_name": "master01",
//!              "node_type": "master"}}
//! ```

use super::agents::MANAGER_NAME;
use super::failure::{FunctionError, FunctionResult};
use super::install::{Install, python_lines, quoted_assignment};
use super::manager_status::{DaemonState, manager_status};
use super::python::bind;
use crate::config::xml::read_cluster;
use crate::dapi::json::{JsonObject, JsonValue};
use crate::integrity::storage::Storage;

/// The configuration file.
const OSSEC_CONF: &str = "etc/ossec.conf";

/// Largest `ossec.conf` read.
const MAX_OSSEC_CONF: u64 = 8 << 20;

/// The ruleset's version file.
const RULESET_VERSION: &str = "ruleset/VERSION";

/// Largest `ruleset/VERSION` read.
const MAX_RULESET_VERSION: u64 = 64 << 10;

/// Upstream's text for the `/etc/ossec-init.conf` it could not read.
const OSSEC_INIT_AS_UPSTREAM_NAMES_IT: &str = "/etc/ossec-init.conf";

/// What `read_cluster_config` gives `get_info`.
struct ClusterInfo {
    disabled: bool,
    name: String,
    node_name: String,
    node_type: String,
}

/// `manager.get_info()`. See the [module documentation](self).
///
/// # Errors
/// Upstream's answers: 3006 / 3004 for the cluster configuration, 1005 for `ossec-init.conf`
/// or `ruleset/VERSION`, or the failures of reading `var/run`.
pub(super) fn get_info<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    arguments: &JsonObject,
) -> FunctionResult<JsonValue> {
    bind::<0>("get_info", &[], arguments)?;
    let cluster = read_cluster_config(install)?;
    let running = manager_status(install)?
        .iter()
        .any(|(daemon, state)| *daemon == "wazuh-clusterd" && *state == DaemonState::Running);

    let init = install
        .ossec_init()
        .ok()
        .flatten()
        .ok_or_else(|| FunctionError::wazuh(1005, Some(OSSEC_INIT_AS_UPSTREAM_NAMES_IT)))?;
    let ruleset_version = ruleset_version(install)?;
    let optional = |value: Option<String>| value.map_or(JsonValue::Null, JsonValue::from);
    let install_type = init.install_type.map(|t| {
        if t == "server" {
            "manager".to_owned()
        } else {
            t
        }
    });

    let mut cluster_info = JsonObject::new();
    let yes_no = |yes: bool| JsonValue::from(if yes { "yes" } else { "no" });
    cluster_info.insert("enabled", yes_no(!cluster.disabled));
    cluster_info.insert("running", yes_no(running));
    cluster_info.insert("name", JsonValue::from(cluster.name));
    cluster_info.insert("node_name", JsonValue::from(cluster.node_name));
    cluster_info.insert("node_type", JsonValue::from(cluster.node_type));

    let mut info = JsonObject::new();
    info.insert("path", JsonValue::from(install.directory()));
    info.insert("version", optional(init.version));
    info.insert("compilation_date", optional(init.date));
    info.insert("type", optional(install_type));
    info.insert("max_agents", JsonValue::from("N/A"));
    info.insert("openssl_support", JsonValue::from("N/A"));
    info.insert("ruleset_version", optional(ruleset_version));
    info.insert("tz_offset", JsonValue::from("+0000"));
    info.insert("tz_name", JsonValue::from("UTC"));
    info.insert("name", JsonValue::from(MANAGER_NAME));
    info.insert("cluster", JsonValue::Object(cluster_info));
    Ok(JsonValue::Object(info))
}

/// `read_cluster_config()`: the `<cluster>` options `get_info` shows, upstream's defaults for
/// the missing ones.
fn read_cluster_config<S: Storage + ?Sized>(
    install: &Install<'_, S>,
) -> FunctionResult<ClusterInfo> {
    // `get_ossec_conf` turns any failure into 1101, which `read_cluster_config` reports as 3006.
    let reading_failed = |detail: String| {
        let inner = FunctionError::wazuh(1101, Some(&detail));
        FunctionError::wazuh(3006, Some(&inner.message))
    };
    let bytes = match install.read_prefix(OSSEC_CONF, MAX_OSSEC_CONF) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(reading_failed(install.not_found(OSSEC_CONF).message)),
        Err(e) => return Err(reading_failed(install.os_error(OSSEC_CONF, &e).message)),
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| reading_failed(e.to_string()))?;
    let raw = read_cluster(text).map_err(|e| reading_failed(e.to_string()))?;
    let option = |name: &str, default: &str| {
        raw.options
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    };
    if !raw.present {
        return Ok(ClusterInfo {
            disabled: true,
            name: crate::config::DEFAULT_NAME.to_owned(),
            node_name: crate::config::DEFAULT_NODE_NAME.to_owned(),
            node_type: "master".to_owned(),
        });
    }
    if let Some(port) = raw.options.get("port")
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(FunctionError::wazuh(
            3004,
            Some("Cluster port must be an integer."),
        ));
    }
    let disabled = match raw.options.get("disabled").map(String::as_str) {
        None | Some("no") => false,
        Some("yes") => true,
        Some(other) => {
            return Err(FunctionError::wazuh(
                3004,
                Some(&format!(
                    "Allowed values for 'disabled' field are 'yes' and 'no'. Found: '{other}'"
                )),
            ));
        }
    };
    let node_type = match option("node_type", "master").as_str() {
        "client" => "worker".to_owned(),
        other => other.to_owned(),
    };
    Ok(ClusterInfo {
        disabled,
        name: option("name", crate::config::DEFAULT_NAME),
        node_name: option("node_name", crate::config::DEFAULT_NODE_NAME),
        node_type,
    })
}

/// `ruleset/VERSION`'s value: that of the last `KEY="value"` line.
fn ruleset_version<S: Storage + ?Sized>(
    install: &Install<'_, S>,
) -> FunctionResult<Option<String>> {
    let unreadable = || FunctionError::wazuh(1005, Some(&install.absolute(RULESET_VERSION)));
    let bytes = install
        .read_prefix(RULESET_VERSION, MAX_RULESET_VERSION)
        .ok()
        .flatten()
        .ok_or_else(unreadable)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| unreadable())?;
    Ok(python_lines(text)
        .filter_map(quoted_assignment)
        .last()
        .map(|(_, value)| value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dapi::builtin::test_support::add;
    use crate::integrity::memory::MemoryStorage;

    fn tree(files: &[(&str, &str)]) -> MemoryStorage {
        let mut storage = MemoryStorage::new();
        for (path, content) in files {
            add(&mut storage, &format!("/{path}"), *content, 0);
        }
        storage
    }

    const INIT: &str = "DIRECTORY=\"/var/ossec\"\nNAME=\"Wazuh\"\nVERSION=\"v3.9.5\"\n\
                        REVISION=\"3956\"\nDATE=\"Wed Aug  7 11:26:46 UTC 2019\"\nTYPE=\"server\"\n";

    fn info(storage: &MemoryStorage) -> String {
        match get_info(&Install::new(storage), &JsonObject::new()) {
            Ok(data) => crate::dapi::merge::data_answer(&data),
            Err(e) => e.answer(),
        }
    }

    /// Expected answer from upstream's `get_info` (python3, on the same files, with the
    /// database-only values and the time zone as documented above).
    #[test]
    fn info_in_upstreams_shape() {
        let storage = tree(&[
            ("etc/ossec-init.conf", INIT),
            ("ruleset/VERSION", "VERSION=\"3.9.5\"\nREVISION=\"3956\"\n"),
            (
                "etc/ossec.conf",
                "<ossec_config><cluster><name>wazuh</name><node_name>master01</node_name>\
                 <node_type>master</node_type><key>k</key><port>1516</port>\
                 <disabled>no</disabled></cluster></ossec_config>",
            ),
            ("var/run/wazuh-clusterd-1.pid", ""),
        ]);
        assert_eq!(
            info(&storage),
            concat!(
                r#"{"data": {"path": "/var/ossec", "version": "v3.9.5", "#,
                r#""compilation_date": "Wed Aug  7 11:26:46 UTC 2019", "type": "manager", "#,
                r#""max_agents": "N/A", "openssl_support": "N/A", "ruleset_version": "3956", "#,
                r#""tz_offset": "+0000", "tz_name": "UTC", "name": "localhost", "#,
                r#""cluster": {"enabled": "yes", "running": "yes", "name": "wazuh", "#,
                r#""node_name": "master01", "node_type": "master"}}, "error": 0}"#
            )
        );
    }

    #[test]
    fn cluster_defaults_and_errors_are_upstreams() {
        let no_cluster = tree(&[
            ("etc/ossec-init.conf", INIT),
            ("ruleset/VERSION", "nothing here\n"),
            ("etc/ossec.conf", "<ossec_config><global/></ossec_config>"),
        ]);
        assert!(info(&no_cluster).ends_with(
            r#""ruleset_version": null, "tz_offset": "+0000", "tz_name": "UTC", "name": "localhost", "cluster": {"enabled": "no", "running": "no", "name": "wazuh", "node_name": "node01", "node_type": "master"}}, "error": 0}"#
        ));
        let client = tree(&[
            ("etc/ossec-init.conf", INIT),
            ("ruleset/VERSION", ""),
            (
                "etc/ossec.conf",
                "<ossec_config><cluster><node_type>client</node_type></cluster></ossec_config>",
            ),
        ]);
        assert!(info(&client).contains(r#""node_type": "worker"}"#));
        for (conf, answer) in [
            (
                "<ossec_config><cluster><port>15x</port></cluster></ossec_config>",
                r#"{"message": "Error in cluster configuration: Cluster port must be an integer.", "error": 3004}"#,
            ),
            (
                "<ossec_config><cluster><disabled>maybe</disabled></cluster></ossec_config>",
                r#"{"message": "Error in cluster configuration: Allowed values for 'disabled' field are 'yes' and 'no'. Found: 'maybe'", "error": 3004}"#,
            ),
        ] {
            let storage = tree(&[("etc/ossec-init.conf", INIT), ("etc/ossec.conf", conf)]);
            assert_eq!(info(&storage), answer);
        }
        assert_eq!(
            info(&tree(&[("etc/ossec-init.conf", INIT)])),
            concat!(
                r#"{"message": "Error reading cluster configuration: Requested component does not exist: "#,
                r#"[Errno 2] No such file or directory: '/var/ossec/etc/ossec.conf'", "error": 3006}"#
            )
        );
    }

    #[test]
    fn missing_install_descriptions_are_1005() {
        let conf = ("etc/ossec.conf", "<ossec_config/>");
        assert_eq!(
            info(&tree(&[conf])),
            r#"{"message": "Error reading file: /etc/ossec-init.conf", "error": 1005}"#
        );
        assert_eq!(
            info(&tree(&[conf, ("etc/ossec-init.conf", INIT)])),
            r#"{"message": "Error reading file: /var/ossec/ruleset/VERSION", "error": 1005}"#
        );
    }
}
