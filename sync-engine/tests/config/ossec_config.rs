//! The `<cluster>` block of ossec.conf: the recorded install trees' files parse to the values the
//! real 3.9.5 nodes ran with, stock and hand-edited layouts are read as they are, and every
//! refusal is the exact error naming its setting.

use proptest::prelude::*;

use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::key::KeyError;
use wazuh_cluster_sync::config::{
    ClusterConfig, ClusterSection, ConfigWarning, Disabled, KeyPolicy, NodeType, OssecConfError,
    parse_ossec_conf,
};
use wazuh_cluster_testkit::origin;
use wazuh_cluster_vectors::{CLUSTER_KEY, INTEGRITY_TREES, SESSION_TREES, recorded_file};

/// The `etc/ossec.conf` of `tree` in a recorded trees file.
fn recorded_ossec_conf(file: &str, tree: &str) -> Vec<u8> {
    recorded_file(file, tree, "etc/ossec.conf")
}

/// The configuration an ossec.conf (`what`, for the failure message) enables, key required.
fn parse_enabled(bytes: &[u8], what: &str) -> ClusterConfig {
    match parse_ossec_conf(bytes, KeyPolicy::Required) {
        Ok(ClusterSection::Enabled(config)) => config,
        other => panic!("{what}: expected an enabled configuration, got {other:?}"),
    }
}

fn enabled(text: &str) -> ClusterConfig {
    parse_enabled(text.as_bytes(), text)
}

fn error(text: &str) -> OssecConfError {
    match parse_ossec_conf(text.as_bytes(), KeyPolicy::Required) {
        Err(error) => error,
        Ok(other) => panic!("expected an error, got {other:?}"),
    }
}

/// A `<cluster>` block with the given inner XML inside one `<ossec_config>`.
fn cluster(inner: &str) -> String {
    format!("<ossec_config>\n  <cluster>\n{inner}\n  </cluster>\n</ossec_config>\n")
}

/// A valid worker block with one line replaced/added by the caller.
fn worker_with(extra: &str) -> String {
    cluster(&format!(
        "<node_name>worker-1</node_name><node_type>worker</node_type><key>{CLUSTER_KEY}</key>\
         <nodes><node>10.0.0.1</node></nodes>{extra}"
    ))
}

/// The recorded hello of the real worker, decrypted with the key read from its ossec.conf: the
/// key parsed is the one the real nodes used, and name/node_name/node_type are what it sent.
fn assert_recorded_hello_matches(config: &ClusterConfig) {
    let frames = wazuh_cluster_vectors::json("v3.9/frames.json");
    let hello = &frames["fernet_frames"][0];
    assert_eq!(hello["command_sent"], "hello");
    let fernet = Fernet::new(config.key.as_ref().expect("key"));
    let plaintext = fernet
        .decrypt(hello["token_ascii"].as_str().expect("token").as_bytes())
        .expect("the ossec.conf key decrypts the recorded frame");
    assert_eq!(plaintext, b"worker1 wazuh worker 3.9.5");
}

#[test]
fn recorded_trees_parse_to_the_values_the_real_nodes_ran_with() {
    for file in [SESSION_TREES, INTEGRITY_TREES] {
        let master = parse_enabled(
            &recorded_ossec_conf(file, "master_tree"),
            &format!("{file} master_tree"),
        );
        assert_eq!(master.name, "wazuh");
        assert_eq!(master.node_name, "master01");
        assert_eq!(master.node_type, NodeType::Master);
        assert_eq!(master.port, 15395);
        assert_eq!(master.bind_addr, "127.0.0.1");
        assert_eq!(master.nodes, vec!["127.0.0.1".to_owned()]);
        assert!(!master.hidden);
        assert_eq!(master.warnings, vec![]);
        assert_recorded_hello_matches(&master);

        let worker = parse_enabled(
            &recorded_ossec_conf(file, "worker_tree"),
            &format!("{file} worker_tree"),
        );
        assert_eq!(worker.name, "wazuh");
        assert_eq!(worker.node_name, "worker1");
        assert_eq!(worker.node_type, NodeType::Worker);
        assert_eq!(worker.port, 15395);
        assert_eq!(worker.master_address(), Some("127.0.0.1"));
        assert!(!worker.hidden);
        assert_eq!(worker.warnings, vec![]);
        assert_recorded_hello_matches(&worker);

        // What the Node is started with: the same identity, the master's address and port.
        let node = worker.node_config(wall_clock());
        assert_eq!(node.node_name, "worker1");
        assert_eq!(node.node_type, NodeType::Worker);
        assert_eq!(node.cluster_name, "wazuh");
        assert_eq!(node.version, "3.9.5");
        assert_eq!(node.master_addr, "127.0.0.1:15395");
        assert!(node.connection.key.is_some());
        let node = master.node_config(wall_clock());
        assert_eq!(node.node_type, NodeType::Master);
        assert_eq!(node.node_name, "master01");
        assert_eq!(node.address, "127.0.0.1");
        assert_eq!(master.listen_address(), "127.0.0.1:15395");
    }
}

/// The layout of a stock install: comments (one with `--` inside, which strict XML refuses), an
/// XML declaration, several `<ossec_config>` roots, other sections, attributes, a stray `&`,
/// entities, CDATA, CRLF line ends and values with surrounding whitespace.
const HAND_EDITED: &str = "<?xml version=\"1.0\"?>\r\n\
<!--\r\n  Wazuh - Manager - Default configuration for ubuntu 18.04\r\n  More info at: https://documentation.wazuh.com\r\n  Mailing list: https://groups.google.com/forum/#!forum/wazuh\r\n-->\r\n\
<ossec_config>\r\n\
  <global>\r\n    <jsonout_output>yes</jsonout_output>\r\n    <email_notification>no</email_notification>\r\n  </global>\r\n\
  <command>\r\n    <name>restart-ossec</name>\r\n    <executable>restart-ossec.sh</executable>\r\n    <expect>srcip && user</expect>\r\n  </command>\r\n\
  <!-- Cluster -- set up by hand -->\r\n\
  <cluster>\r\n\
    <name>wazuh</name>\r\n\
    <node_name>node01</node_name>\r\n\
    <node_type>master</node_type>\r\n\
    <key></key>\r\n\
    <port>1516</port>\r\n\
    <bind_addr>0.0.0.0</bind_addr>\r\n\
    <nodes>\r\n        <node>NODE_IP</node>\r\n    </nodes>\r\n\
    <hidden>no</hidden>\r\n\
    <disabled>yes</disabled>\r\n\
  </cluster>\r\n\
</ossec_config>\r\n\
\r\n\
<ossec_config>\r\n\
  <localfile>\r\n    <log_format>syslog</log_format>\r\n    <location>/var/ossec/logs/active-responses.log</location>\r\n  </localfile>\r\n\
  <!-- the real cluster settings, in a second root: they override the stock block -->\r\n\
  <Cluster>\r\n\
    <Node_Name>\r\n      worker-2.dc1\r\n    </Node_Name>\r\n\
    <node_type> client </node_type>\r\n\
    <key><![CDATA[abcdefghijklmnopqrstuvwxyz012345]]></key>\r\n\
    <port>01516</port>\r\n\
    <nodes>\r\n      <node>master.example&#46;com</node>\r\n      <node>10.0.0.2</node>\r\n    </nodes>\r\n\
    <hidden>yes</hidden>\r\n\
    <disabled>no</disabled>\r\n\
    <unknown_option attr=\"x\"><nested>ignored</nested></unknown_option>\r\n\
  </Cluster>\r\n\
</ossec_config>\r\n";

#[test]
fn several_roots_comments_and_overrides_are_read_as_upstream_merges_them() {
    let config = enabled(HAND_EDITED);
    assert_eq!(config.name, "wazuh");
    assert_eq!(config.node_name, "worker-2.dc1");
    assert_eq!(config.node_type, NodeType::Worker);
    assert!(config.key.is_some());
    assert_eq!(config.port, 1516);
    assert_eq!(config.bind_addr, "0.0.0.0");
    assert_eq!(
        config.nodes,
        vec!["master.example.com".to_owned(), "10.0.0.2".to_owned()]
    );
    assert_eq!(config.master_address(), Some("master.example.com"));
    assert!(config.hidden);
    assert_eq!(
        config.warnings,
        vec![
            ConfigWarning::LegacyClientNodeType,
            ConfigWarning::SeveralNodes {
                using: "master.example.com".to_owned()
            }
        ]
    );
    assert_eq!(
        config.warnings[0].to_string(),
        "Deprecated node type 'client'. Using 'worker' instead."
    );
    assert_eq!(
        config.warnings[1].to_string(),
        "Found more than one node in configuration. Only master node should be specified. \
         Using master.example.com as master."
    );
}

#[test]
fn a_byte_order_mark_and_a_doctype_are_accepted() {
    let mut bytes = "\u{feff}<!DOCTYPE ossec_config>\n".as_bytes().to_vec();
    bytes.extend(recorded_ossec_conf(SESSION_TREES, "worker_tree"));
    let config = parse_enabled(&bytes, "BOM-prefixed file");
    assert_eq!(config.node_name, "worker1");
}

#[test]
fn the_stock_block_is_a_disabled_cluster_and_no_block_is_too() {
    // The stock block alone (first root of HAND_EDITED): disabled, nothing else validated (its
    // key is empty and its node the NODE_IP placeholder).
    let stock = &HAND_EDITED[..HAND_EDITED.find("\r\n\r\n<ossec_config>").unwrap()];
    assert!(matches!(
        parse_ossec_conf(stock.as_bytes(), KeyPolicy::Required),
        Ok(ClusterSection::Disabled(Disabled::BySetting))
    ));
    let none = "<ossec_config><global><jsonout_output>yes</jsonout_output></global></ossec_config>\
                <ossec_config><cluster-like/></ossec_config>";
    assert!(matches!(
        parse_ossec_conf(none.as_bytes(), KeyPolicy::Required),
        Ok(ClusterSection::Disabled(Disabled::NoClusterSection))
    ));
    // A <cluster> outside an <ossec_config> root does not count (upstream keeps only those roots).
    let stray = format!("<other>{}</other>", cluster("<key>x</key>"));
    assert!(matches!(
        parse_ossec_conf(stray.as_bytes(), KeyPolicy::Required),
        Ok(ClusterSection::Disabled(Disabled::NoClusterSection))
    ));
    assert_eq!(
        Disabled::BySetting.to_string(),
        "the cluster is disabled: <disabled>yes</disabled>"
    );
}

#[test]
fn missing_options_take_upstream_defaults() {
    // Only the key: master, wazuh, node01, 1516, 0.0.0.0, hidden no. The default node list is
    // upstream's [NODE_IP], which upstream's own check then refuses: so does ours.
    assert_eq!(
        error(&cluster(&format!("<key>{CLUSTER_KEY}</key>"))),
        OssecConfError::ReservedNodes {
            values: vec!["NODE_IP".to_owned()]
        }
    );
    let config = enabled(&cluster(&format!(
        "<key>{CLUSTER_KEY}</key><nodes><node>192.168.0.1</node></nodes>"
    )));
    assert_eq!(config.name, "wazuh");
    assert_eq!(config.node_name, "node01");
    assert_eq!(config.node_type, NodeType::Master);
    assert_eq!(config.port, 1516);
    assert_eq!(config.bind_addr, "0.0.0.0");
    assert!(!config.hidden);
    assert_eq!(config.warnings, vec![]);
}

#[test]
fn legacy_client_node_type_is_a_worker() {
    let config = enabled(&cluster(&format!(
        "<node_name>w1</node_name><node_type>client</node_type><key>{CLUSTER_KEY}</key>\
         <nodes><node>10.0.0.1</node></nodes>"
    )));
    assert_eq!(config.node_type, NodeType::Worker);
    assert_eq!(config.warnings, vec![ConfigWarning::LegacyClientNodeType]);
}

#[test]
fn key_errors_are_upstreams() {
    let empty = error(&worker_with("").replace(CLUSTER_KEY, ""));
    assert_eq!(empty, OssecConfError::Key(KeyError::Empty));
    assert_eq!(empty.to_string(), "cluster setting 'key': Unspecified key");

    let short = error(&worker_with("").replace(CLUSTER_KEY, "abc"));
    assert_eq!(
        short,
        OssecConfError::Key(KeyError::Invalid {
            chars: 3,
            bad_position: None
        })
    );
    assert_eq!(
        short.to_string(),
        "cluster setting 'key': Key must be 32 characters long and only have alphanumeric \
         characters (got 3 characters)"
    );
    let dash = error(&worker_with("").replace(CLUSTER_KEY, "wazuh395interopkey0123456789abc-"));
    assert_eq!(
        dash,
        OssecConfError::Key(KeyError::Invalid {
            chars: 32,
            bad_position: Some(31)
        })
    );
    // The key itself never appears in a message.
    assert!(!dash.to_string().contains("interop"));
}

#[test]
fn an_empty_key_is_plaintext_only_when_allowed() {
    let text = worker_with("").replace(CLUSTER_KEY, "");
    let Ok(ClusterSection::Enabled(config)) =
        parse_ossec_conf(text.as_bytes(), KeyPolicy::AllowMissing)
    else {
        panic!("empty key allowed");
    };
    assert!(config.key.is_none());
    // A wrong non-empty key is still refused.
    let text = worker_with("").replace(CLUSTER_KEY, "short");
    assert_eq!(
        parse_ossec_conf(text.as_bytes(), KeyPolicy::AllowMissing).unwrap_err(),
        OssecConfError::Key(KeyError::Invalid {
            chars: 5,
            bad_position: None
        })
    );
}

#[test]
fn node_type_errors() {
    let bad = error(&worker_with("").replace(">worker<", ">slave<"));
    assert_eq!(
        bad,
        OssecConfError::NodeType {
            value: "slave".to_owned()
        }
    );
    assert_eq!(
        bad.to_string(),
        "cluster setting 'node_type': Invalid node type 'slave'. Correct values are master and worker"
    );
    // Case matters to upstream: "Worker" is not a node type.
    assert_eq!(
        error(&worker_with("").replace(">worker<", ">Worker<")),
        OssecConfError::NodeType {
            value: "Worker".to_owned()
        }
    );
}

#[test]
fn port_errors() {
    for (port, expected) in [
        (
            "15a",
            OssecConfError::PortNotInteger {
                value: "15a".to_owned(),
            },
        ),
        (
            "-1516",
            OssecConfError::PortNotInteger {
                value: "-1516".to_owned(),
            },
        ),
        (
            "",
            OssecConfError::PortNotInteger {
                value: String::new(),
            },
        ),
        (
            "1024",
            OssecConfError::PortOutOfRange {
                value: "1024".to_owned(),
            },
        ),
        (
            "65535",
            OssecConfError::PortOutOfRange {
                value: "65535".to_owned(),
            },
        ),
        (
            "0",
            OssecConfError::PortOutOfRange {
                value: "0".to_owned(),
            },
        ),
        (
            "99999999999999999999999",
            OssecConfError::PortOutOfRange {
                value: "99999999999999999999999".to_owned(),
            },
        ),
    ] {
        assert_eq!(
            error(&worker_with(&format!("<port>{port}</port>"))),
            expected,
            "{port}"
        );
    }
    assert_eq!(
        error(&worker_with("<port>1024</port>")).to_string(),
        "cluster setting 'port': Port must be higher than 1024 and lower than 65535 (found 1024)"
    );
    assert_eq!(
        error(&worker_with("<port>x</port>")).to_string(),
        "cluster setting 'port': Cluster port must be an integer (found 'x')"
    );
    // The bounds themselves are excluded, their neighbours accepted.
    assert_eq!(enabled(&worker_with("<port>1025</port>")).port, 1025);
    assert_eq!(enabled(&worker_with("<port>65534</port>")).port, 65534);
}

#[test]
fn nodes_errors() {
    let placeholder = error(&worker_with("").replace("10.0.0.1", "NODE_IP"));
    assert_eq!(
        placeholder,
        OssecConfError::ReservedNodes {
            values: vec!["NODE_IP".to_owned()]
        }
    );
    assert_eq!(
        placeholder.to_string(),
        "cluster setting 'nodes': Invalid elements in node fields: NODE_IP."
    );
    let several = error(&worker_with("").replace(
        "<node>10.0.0.1</node>",
        "<node>localhost</node><node>10.0.0.1</node><node>0.0.0.0</node>",
    ));
    assert_eq!(
        several.to_string(),
        "cluster setting 'nodes': Invalid elements in node fields: 0.0.0.0, localhost."
    );
    let none = error(&worker_with("").replace("<nodes><node>10.0.0.1</node></nodes>", "<nodes/>"));
    assert_eq!(none, OssecConfError::NoMasterNode);
    assert_eq!(
        none.to_string(),
        "cluster setting 'nodes': a worker needs the master's address in <nodes><node>"
    );
    let empty = error(&worker_with("").replace("10.0.0.1", " "));
    assert_eq!(empty, OssecConfError::EmptyNode);
    // A master may leave its list empty: it dials nobody.
    let master = enabled(&cluster(&format!(
        "<key>{CLUSTER_KEY}</key><nodes></nodes>"
    )));
    assert_eq!(master.master_address(), None);
}

#[test]
fn node_name_errors() {
    for bad in [
        "",
        ".hidden",
        "..",
        "two words",
        "name/with/slash",
        "ñandú",
        "$HOSTNAME",
    ] {
        let text = worker_with("").replace("worker-1", bad);
        assert_eq!(
            error(&text),
            OssecConfError::NodeName {
                value: bad.to_owned()
            },
            "{bad:?}"
        );
    }
    let long = "n".repeat(65);
    assert_eq!(
        error(&worker_with("").replace("worker-1", &long)),
        OssecConfError::NodeName { value: long }
    );
    assert_eq!(
        error(&worker_with("").replace("worker-1", "a b")).to_string(),
        "cluster setting 'node_name': 'a b' must be 1 to 64 characters of [A-Za-z0-9_.-], not \
         starting with '.'"
    );
    let longest = "n".repeat(64);
    assert_eq!(
        enabled(&worker_with("").replace("worker-1", &longest)).node_name,
        longest
    );
    assert_eq!(
        enabled(&worker_with("").replace("worker-1", "w_1.dc-2")).node_name,
        "w_1.dc-2"
    );
}

#[test]
fn cluster_name_errors() {
    for bad in ["", "my cluster", "tab\there"] {
        assert_eq!(
            error(&worker_with(&format!("<name>{bad}</name>"))),
            OssecConfError::ClusterName {
                value: bad.trim().to_owned()
            },
            "{bad:?}"
        );
    }
    assert_eq!(
        error(&worker_with("<name>a b</name>")).to_string(),
        "cluster setting 'name': 'a b' must be 1 to 256 characters without whitespace or control \
         characters"
    );
}

#[test]
fn yes_no_errors() {
    let disabled = error(&worker_with("<disabled>maybe</disabled>"));
    assert_eq!(
        disabled,
        OssecConfError::YesNo {
            setting: "disabled",
            value: "maybe".to_owned()
        }
    );
    assert_eq!(
        disabled.to_string(),
        "cluster setting 'disabled': Allowed values for 'disabled' field are 'yes' and 'no'. \
         Found: 'maybe'"
    );
    assert_eq!(
        error(&worker_with("<hidden>true</hidden>")),
        OssecConfError::YesNo {
            setting: "hidden",
            value: "true".to_owned()
        }
    );
}

#[test]
fn malformed_files_are_refused_with_the_line() {
    let mismatched = "<ossec_config>\n<cluster>\n<name>wazuh</nam>\n</cluster>\n</ossec_config>";
    let OssecConfError::NotWellFormed { line, .. } = error(mismatched) else {
        panic!("mismatched end tag");
    };
    assert_eq!(line, 3);
    let unclosed = "<ossec_config>\n<cluster>\n<name>wazuh</name>\n";
    assert_eq!(
        error(unclosed),
        OssecConfError::NotWellFormed {
            line: 4,
            message: "2 element(s) not closed".to_owned()
        }
    );
    assert_eq!(
        parse_ossec_conf(b"<ossec_config>\xff</ossec_config>", KeyPolicy::Required).unwrap_err(),
        OssecConfError::NotUtf8 { valid_up_to: 14 }
    );
}

fn wall_clock() -> WallClock {
    WallClock::new(origin(), 1_795_687_200)
}

#[test]
fn addresses_are_host_port_with_ipv6_bracketed() {
    let worker =
        ClusterConfig::new("w", NodeType::Worker, None, vec!["fd00::1".to_owned()]).unwrap();
    assert_eq!(
        worker.node_config(wall_clock()).master_addr,
        "[fd00::1]:1516"
    );
    assert_eq!(worker.listen_address(), "0.0.0.0:1516");
    let master = ClusterConfig::new("m", NodeType::Master, None, vec![]).unwrap();
    let node = master.node_config(wall_clock());
    assert_eq!(node.address, "0.0.0.0");
    assert!(node.connection.key.is_none());
    let mut master = master;
    master.bind_addr = "::".to_owned();
    master.port = 15395;
    assert_eq!(master.listen_address(), "[::]:15395");
}

#[test]
fn configurations_built_in_code_follow_the_same_rules() {
    let worker = ClusterConfig::new(
        "worker-1",
        NodeType::Worker,
        None,
        vec!["127.0.0.1".to_owned()],
    )
    .unwrap();
    assert_eq!(worker.name, "wazuh");
    assert_eq!(worker.port, 1516);
    assert_eq!(worker.bind_addr, "0.0.0.0");
    assert_eq!(worker.master_address(), Some("127.0.0.1"));
    assert!(!worker.hidden);
    assert_eq!(
        ClusterConfig::new("w", NodeType::Worker, None, vec![]).unwrap_err(),
        OssecConfError::NoMasterNode
    );
    assert_eq!(
        ClusterConfig::new("two words", NodeType::Master, None, vec![]).unwrap_err(),
        OssecConfError::NodeName {
            value: "two words".to_owned()
        }
    );
    assert_eq!(
        ClusterConfig::new("m", NodeType::Master, None, vec!["NODE_IP".to_owned()]).unwrap_err(),
        OssecConfError::ReservedNodes {
            values: vec!["NODE_IP".to_owned()]
        }
    );
}

proptest! {
    /// Any text, and any cut or corruption of a real file, gives a result, never a panic.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_ossec_conf(&bytes, KeyPolicy::Required);
    }

    #[test]
    fn every_prefix_of_a_real_file_is_handled(cut in 0..HAND_EDITED.len(), flip in any::<u8>()) {
        let mut bytes = HAND_EDITED.as_bytes()[..cut].to_vec();
        let _ = parse_ossec_conf(&bytes, KeyPolicy::AllowMissing);
        if let Some(last) = bytes.last_mut() {
            *last ^= flip;
        }
        let _ = parse_ossec_conf(&bytes, KeyPolicy::AllowMissing);
    }

    /// A valid port written with any leading zeros reads back as itself; every other number is
    /// refused with the range error.
    #[test]
    fn ports_round_trip(port in 0u32..100_000, zeros in 0usize..4) {
        let text = worker_with(&format!("<port>{}{port}</port>", "0".repeat(zeros)));
        match parse_ossec_conf(text.as_bytes(), KeyPolicy::Required) {
            Ok(ClusterSection::Enabled(config)) => {
                prop_assert!(port > 1024 && port < 65535);
                prop_assert_eq!(u32::from(config.port), port);
            }
            Err(OssecConfError::PortOutOfRange { .. }) => prop_assert!(port <= 1024 || port >= 65535),
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
