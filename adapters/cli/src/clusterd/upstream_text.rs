//! The texts upstream's `wazuh-clusterd.py` prints, where scripts and operators read them: the
//! `-V` banner and the `Error <code> - <description>: <detail>` form of a refused configuration
//! (`WazuhException` 3004 "Error in cluster configuration", 3006 "Error reading cluster
//! configuration").

use wazuh_cluster_protocol::key::KeyError;
use wazuh_cluster_sync::config::OssecConfError;

use crate::node::ConfigReadError;

/// `-V`: upstream's `print_version()` (`__ossec_name__ __version__ - __author__`, then the
/// licence), byte for byte, trailing spaces included.
pub const VERSION_TEXT: &str = "\nWazuh 3.9.5 - Wazuh Inc\n\n\
This program is free software; you can redistribute it and/or modify\n\
it under the terms of the GNU General Public License (version 2) as \n\
published by the Free Software Foundation. For more details, go to \n\
https://www.gnu.org/licenses/gpl.html\n\n";

/// Upstream's code 3004.
const INVALID: (u16, &str) = (3004, "Error in cluster configuration");
/// Upstream's code 3006.
const UNREADABLE: (u16, &str) = (3006, "Error reading cluster configuration");

/// The message upstream logs for a configuration it refuses (`Error 3004 - Error in cluster
/// configuration: Unspecified key`), upstream's detail where upstream has the check, ours (naming
/// the setting and the file) where only we check.
pub fn config_error(error: &ConfigReadError) -> String {
    let ((code, description), detail) = match error {
        ConfigReadError::Read { .. } => (UNREADABLE, error.to_string()),
        ConfigReadError::Invalid { error: invalid, .. } => match invalid {
            OssecConfError::NotUtf8 { .. } | OssecConfError::NotWellFormed { .. } => {
                (UNREADABLE, error.to_string())
            }
            OssecConfError::Key(KeyError::Empty) => (INVALID, "Unspecified key".to_owned()),
            OssecConfError::Key(_) => (
                INVALID,
                "Key must be 32 characters long and only have alphanumeric characters".to_owned(),
            ),
            OssecConfError::NodeType { value } => (
                INVALID,
                format!("Invalid node type {value}. Correct values are master and worker"),
            ),
            OssecConfError::PortNotInteger { .. } => {
                (INVALID, "Cluster port must be an integer.".to_owned())
            }
            OssecConfError::PortOutOfRange { .. } => (
                INVALID,
                "Port must be higher than 1024 and lower than 65535.".to_owned(),
            ),
            OssecConfError::ReservedNodes { values } => (
                INVALID,
                format!("Invalid elements in node fields: {}.", values.join(", ")),
            ),
            _ => (INVALID, error.to_string()),
        },
    };
    format!("Error {code} - {description}: {detail}")
}

#[cfg(test)]
mod tests {
    use wazuh_cluster_sync::config::{KeyPolicy, parse_ossec_conf};

    use super::*;

    fn refused(cluster: &str) -> String {
        let conf = format!("<ossec_config><cluster>{cluster}</cluster></ossec_config>");
        let error = parse_ossec_conf(conf.as_bytes(), KeyPolicy::Required).unwrap_err();
        config_error(&ConfigReadError::Invalid {
            path: "/var/ossec/etc/ossec.conf".to_owned(),
            error,
        })
    }

    const GOOD: &str = "<node_name>m</node_name><key>0123456789abcdef0123456789abcdef</key>\
                        <nodes><node>10.0.0.1</node></nodes>";

    #[test]
    fn upstreams_checks_give_upstreams_messages() {
        assert_eq!(
            refused("<key></key><nodes><node>10.0.0.1</node></nodes>"),
            "Error 3004 - Error in cluster configuration: Unspecified key"
        );
        assert_eq!(
            refused("<key>short</key><nodes><node>10.0.0.1</node></nodes>"),
            "Error 3004 - Error in cluster configuration: Key must be 32 characters long and \
             only have alphanumeric characters"
        );
        assert_eq!(
            refused(&format!("{GOOD}<node_type>boss</node_type>")),
            "Error 3004 - Error in cluster configuration: Invalid node type boss. Correct values \
             are master and worker"
        );
        assert_eq!(
            refused(&format!("{GOOD}<port>80</port>")),
            "Error 3004 - Error in cluster configuration: Port must be higher than 1024 and lower \
             than 65535."
        );
        assert_eq!(
            refused(&format!("{GOOD}<port>x</port>")),
            "Error 3004 - Error in cluster configuration: Cluster port must be an integer."
        );
        assert_eq!(
            refused(
                "<key>0123456789abcdef0123456789abcdef</key><nodes><node>NODE_IP</node></nodes>"
            ),
            "Error 3004 - Error in cluster configuration: Invalid elements in node fields: NODE_IP."
        );
    }

    #[test]
    fn our_own_checks_name_the_file_and_setting() {
        assert_eq!(
            refused(&format!("{GOOD}<node_name>a b</node_name>")),
            "Error 3004 - Error in cluster configuration: /var/ossec/etc/ossec.conf: cluster \
             setting 'node_name': 'a b' must be 1 to 64 characters of [A-Za-z0-9_.-], not \
             starting with '.'"
        );
        let unreadable = ConfigReadError::Read {
            path: "/x/etc/ossec.conf".to_owned(),
            error: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            config_error(&unreadable),
            "Error 3006 - Error reading cluster configuration: reading /x/etc/ossec.conf: entity \
             not found"
        );
    }
}
