//! `contrib/wazuh-api-exec.py`, the `--api-exec` program for a 3.9.5 install, run with python3
//! against a fake `wazuh` framework written to a temporary install root: the answer it prints
//! for each kind of outcome, byte for byte as 3.9.5's `print_json` writes it.
//!
//! python3 is required, not optional: without it these tests fail saying so instead of being
//! skipped, because a skipped test would let a broken script through unseen, and the project's
//! CI machines have python3.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The program under test.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/wazuh-api-exec.py")
}

/// The fake framework: the modules and names the program uses, with 3.9.5's shapes
/// (`WazuhException(code, extra_message)` with `.code` and `.message`, `requests_list.functions`
/// entries with `function`, `type`, `is_async`; `manager.status()` as a daemon → state dict,
/// here read from `daemons.json` in the install root so a test can set it).
const FAKE_FRAMEWORK: &[(&str, &str)] = &[
    (
        "wazuh/__init__.py",
        r#"
from wazuh import common

class Wazuh:
    def __init__(self, ossec_path='/var/ossec', get_init=False):
        common.ossec_path = ossec_path
        common.get_init = get_init
"#,
    ),
    ("wazuh/common.py", "ossec_path = None\nget_init = None\n"),
    (
        "wazuh/exception.py",
        r#"
class WazuhException(Exception):
    ERRORS = {1017: 'Wazuh is restarting', 1018: 'Wazuh is stopped', 1019: 'Wazuh failed',
              1701: 'Agent does not exist'}

    def __init__(self, code, extra_message=None):
        self.code = code
        self.message = self.ERRORS[code] if extra_message is None \
            else '{}: {}'.format(self.ERRORS[code], extra_message)
"#,
    ),
    (
        "wazuh/manager.py",
        r#"
import json, os
from wazuh import common

def status():
    with open(os.path.join(common.ossec_path, 'daemons.json')) as f:
        return json.load(f)
"#,
    ),
    ("wazuh/cluster/__init__.py", ""),
    ("wazuh/cluster/dapi/__init__.py", ""),
    (
        "wazuh/cluster/dapi/requests_list.py",
        r#"
import os
from wazuh import common, manager
from wazuh.exception import WazuhException

class Item:
    def to_dict(self):
        return {'name': 'item'}

def agents(**kwargs):
    return {'kwargs': kwargs, 'ossec_path': common.ossec_path, 'get_init': common.get_init}

def agent(agent_id):
    raise WazuhException(1701, agent_id)

def boom():
    raise RuntimeError('boom')

def objects():
    return [Item(), object()]

async def nodes():
    return {'items': ['master01']}

def noisy():
    print('framework chatter')
    os.system('echo child chatter')
    return 'quiet answer'

def entry(function, is_async=False):
    return {'function': function, 'type': 'local_master', 'is_async': is_async}

functions = {
    '/agents': entry(agents),
    '/agents/:agent_id': entry(agent),
    '/manager/status': entry(manager.status),
    '/boom': entry(boom),
    '/objects': entry(objects),
    '/cluster/nodes': entry(nodes, is_async=True),
    '/noisy': entry(noisy),
}
"#,
    ),
];

/// Every daemon running.
const RUNNING: &str = r#"{"wazuh-modulesd": "running", "ossec-remoted": "running", "ossec-analysisd": "running", "ossec-execd": "running", "wazuh-db": "running", "ossec-authd": "stopped"}"#;

/// An install root holding the fake framework and `daemons` as the daemons' states.
fn install(daemons: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    for (path, text) in FAKE_FRAMEWORK {
        let path = root.path().join("framework").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    std::fs::write(root.path().join("daemons.json"), daemons).unwrap();
    root
}

/// Runs the program with python3 on `root`, `request` on its stdin; its exit status, stdout
/// and stderr.
fn run(root: &Path, request: &str) -> (Option<i32>, String, String) {
    let spawned = Command::new("python3")
        .arg(script())
        .env("WAZUH_PATH", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.unwrap_or_else(|e| {
        panic!(
            "python3 is needed to test contrib/wazuh-api-exec.py (the project's CI machines have \
             it; install it): {e}"
        )
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The answer to `request` on an install whose daemons all run; the program must exit 0.
fn answer(request: &str) -> String {
    let root = install(RUNNING);
    let (code, stdout, stderr) = run(root.path(), request);
    assert_eq!(code, Some(0), "{stderr}");
    stdout
}

#[test]
fn the_program_is_executable_as_the_node_requires() {
    let mode = std::fs::metadata(script()).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "{mode:o}");
    let text = std::fs::read_to_string(script()).unwrap();
    assert!(text.starts_with("#!/var/ossec/framework/python/bin/python3\n"));
}

#[test]
fn a_result_is_data_with_error_0_and_the_function_gets_the_arguments_but_wait_for_complete() {
    let root = install(RUNNING);
    let request = r#"{"function": "/agents", "arguments": {"limit": 2, "wait_for_complete": false, "select": {"fields": ["id", "name"]}}, "from_cluster": true, "ossec_path": "/elsewhere"}"#;
    let (code, stdout, stderr) = run(root.path(), request);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    // The install is WAZUH_PATH's, initialised as wazuh-clusterd did (get_init), whatever the
    // request's ossec_path says.
    assert_eq!(
        stdout,
        format!(
            "{{\"data\": {{\"kwargs\": {{\"limit\": 2, \"select\": {{\"fields\": [\"id\", \
             \"name\"]}}}}, \"ossec_path\": \"{}\", \"get_init\": true}}, \"error\": 0}}\n",
            root.path().display()
        )
    );
}

#[test]
fn a_wazuh_exception_is_its_message_and_code() {
    assert_eq!(
        answer(
            r#"{"function": "/agents/:agent_id", "arguments": {"agent_id": "999"}, "from_cluster": false}"#
        ),
        "{\"message\": \"Agent does not exist: 999\", \"error\": 1701}\n"
    );
}

#[test]
fn any_other_failure_is_its_text_and_1000() {
    assert_eq!(
        answer(r#"{"function": "/boom", "arguments": {}, "from_cluster": false}"#),
        "{\"message\": \"boom\", \"error\": 1000}\n"
    );
    // An unknown route: str() of the KeyError, as 3.9.5 answers it.
    assert_eq!(
        answer(r#"{"function": "/nope", "arguments": {}, "from_cluster": false}"#),
        "{\"message\": \"'/nope'\", \"error\": 1000}\n"
    );
    assert_eq!(
        answer(r#"{"arguments": {}}"#),
        "{\"message\": \"'function'\", \"error\": 1000}\n"
    );
    assert_eq!(
        answer("not json"),
        "{\"message\": \"Expecting value: line 1 column 1 (char 0)\", \"error\": 1000}\n"
    );
    assert_eq!(
        answer("[1]"),
        "{\"message\": \"the request is a JSON list, not an object\", \"error\": 1000}\n"
    );
    // No framework under WAZUH_PATH.
    let empty = tempfile::tempdir().unwrap();
    let (code, stdout, _) = run(empty.path(), r#"{"function": "/agents", "arguments": {}}"#);
    assert_eq!(
        (code, stdout.as_str()),
        (
            Some(0),
            "{\"message\": \"No module named 'wazuh'\", \"error\": 1000}\n"
        )
    );
}

#[test]
fn a_needed_daemon_not_running_stops_every_route_but_the_status_ones() {
    let stopped = RUNNING.replace(r#""wazuh-db": "running""#, r#""wazuh-db": "stopped""#);
    let root = install(&stopped);
    let (_, stdout, _) = run(
        root.path(),
        r#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#,
    );
    assert_eq!(
        stdout,
        "{\"message\": \"Wazuh is stopped: ('running', 'running', 'running', 'running', \
         'stopped')\", \"error\": 1018}\n"
    );
    let (_, stdout, _) = run(
        root.path(),
        r#"{"function": "/manager/status", "arguments": {}, "from_cluster": false}"#,
    );
    assert!(
        stdout.starts_with("{\"data\": {\"wazuh-modulesd\": \"running\""),
        "{stdout}"
    );
    // Failed is looked for first, as 3.9.5 does.
    let both = RUNNING
        .replace(
            r#""ossec-remoted": "running""#,
            r#""ossec-remoted": "restarting""#,
        )
        .replace(r#""ossec-execd": "running""#, r#""ossec-execd": "failed""#);
    let root = install(&both);
    let (_, stdout, _) = run(
        root.path(),
        r#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#,
    );
    assert!(stdout.ends_with("\"error\": 1019}\n"), "{stdout}");
}

#[test]
fn objects_are_written_with_to_dict_and_async_functions_are_awaited() {
    assert_eq!(
        answer(r#"{"function": "/objects", "arguments": {}, "from_cluster": false}"#),
        "{\"data\": [{\"name\": \"item\"}, null], \"error\": 0}\n"
    );
    assert_eq!(
        answer(
            r#"{"function": "/cluster/nodes", "arguments": {"wait_for_complete": true}, "from_cluster": false}"#
        ),
        "{\"data\": {\"items\": [\"master01\"]}, \"error\": 0}\n"
    );
}

#[test]
fn only_the_answer_reaches_standard_output() {
    let root = install(RUNNING);
    let (code, stdout, stderr) = run(
        root.path(),
        r#"{"function": "/noisy", "arguments": {}, "from_cluster": false}"#,
    );
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "{\"data\": \"quiet answer\", \"error\": 0}\n");
    assert_eq!(stderr, "framework chatter\nchild chatter\n");
}
