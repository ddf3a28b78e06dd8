//! Where a node's distributed API calls run: the executor built into the node, over its own
//! storage of the install (`dapi::BuiltinExecutor`), or an external program — typically a
//! small script that calls the install's own Wazuh framework — run once per call with the
//! request on standard input and the answer taken from standard output.
//!
//! ```text
//!   node ── Output::ApiCall ──► run(call) ──┬─ built-in: FsStorage + var/db/global.db + BuiltinExecutor
//!                                           └─ program: stdin ← request JSON, stdout → answer JSON
//!        ◄── handle_api_done ──────────────┘   (time-limited, stderr logged, bounded output)
//! ```
//!
//! The master's agent census (`dapi::builtin::AGENT_CENSUS`: each agent's node, to place
//! requests, and the active agents per node, for `get_health`) is no framework function: it always runs built in.
//!
//! The node bounds how many calls run at once (`ApiLimits::max_calls`) and answers 3021 when a
//! call outlives its `timeout`; the program is killed then (and at the latest after
//! [`MAX_PROGRAM_TIME`] for a `wait_for_complete` call).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wazuh_cluster_fs::FsStorage;
use wazuh_cluster_fs::global_db::InstallAgentDatabase;
use wazuh_cluster_protocol::connection::WallClock;
use wazuh_cluster_sync::dapi::builtin::AGENT_CENSUS;
use wazuh_cluster_sync::dapi::merge::error_answer;
use wazuh_cluster_sync::dapi::{ApiCall, BuiltinExecutor, JsonLimits, JsonValue};

use crate::os::unix_time_at;

/// The longest a program may run, even for a `wait_for_complete` call.
pub const MAX_PROGRAM_TIME: Duration = Duration::from_secs(600);

/// Most bytes of a program's standard error kept for the log.
const MAX_STDERR_LOGGED: usize = 4096;

/// How a node runs its distributed API calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ApiExecutor {
    /// The node's built-in functions over the install root and its agent database
    /// `var/db/global.db` when there is one (the others answer an error that names the route).
    #[default]
    Builtin,
    /// This program, run once per call (`node --api-exec PROGRAM`).
    Program(PathBuf),
}

/// Runs `call` with `executor` for a node over `install_root`; the answer for
/// `Node::handle_api_done`. `limits` bound a program's answer. Blocking (a program may run for
/// minutes): an adapter calls it off its event loop.
pub fn run(
    executor: &ApiExecutor,
    install_root: &Path,
    clock: &WallClock,
    call: &ApiCall,
    limits: &JsonLimits,
) -> String {
    // The master's census of active agents is no framework function: always built in.
    let executor = if call.framework_function == AGENT_CENSUS {
        &ApiExecutor::Builtin
    } else {
        executor
    };
    match executor {
        ApiExecutor::Builtin => match FsStorage::new(install_root) {
            Ok(storage) => BuiltinExecutor.run_with_agents(
                &storage,
                &InstallAgentDatabase::new(&storage),
                call,
                unix_time_at(clock, Instant::now()),
            ),
            Err(e) => error_answer(&format!("cannot open the install root: {e}"), 1000),
        },
        ApiExecutor::Program(program) => run_program(program, call, limits),
    }
}

/// How many times a start refused with "text file busy" is tried again.
const BUSY_RETRIES: u32 = 5;

/// Starts `program` with piped standard streams. `ETXTBSY` is tried again after a short pause:
/// while the program file is being written (a deploy replacing it, or any other thread of this
/// process forking while it holds the file open for writing) the kernel refuses to run it, and
/// the refusal ends as soon as the writer closes it.
fn spawn_program(program: &Path) -> std::io::Result<Child> {
    let mut tries = 0;
    loop {
        let started = Command::new(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match started {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < BUSY_RETRIES =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20 << tries));
            }
            started => return started,
        }
    }
}

/// How often a program that closed its standard output is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// Kills and reaps `child` (it may have exited already: both calls then do nothing harmful).
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `program` with `call.request` on its standard input; its standard output must be one
/// JSON object (the answer), within `limits`. Blocking, for at most the call's time limit.
///
/// The streams are served by short threads of their own: a program that does not read its
/// input, or writes its error stream first, must not block the others. A program killed at the
/// time limit may leave children holding the pipes; their threads end when those do, and are
/// not waited for.
pub fn run_program(program: &Path, call: &ApiCall, limits: &JsonLimits) -> String {
    let failed = |why: String| {
        tracing::warn!(
            "API executor {} for {}: {why}",
            program.display(),
            call.function
        );
        error_answer(&format!("API executor for {}: {why}", call.function), 1000)
    };
    let time = call
        .timeout
        .unwrap_or(MAX_PROGRAM_TIME)
        .min(MAX_PROGRAM_TIME);
    let deadline = Instant::now() + time;
    let mut child = match spawn_program(program) {
        Ok(child) => child,
        Err(e) => return failed(format!("cannot start it: {e}")),
    };
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        kill(&mut child);
        return failed("its standard streams are not open".to_owned());
    };
    let request = call.request.clone().into_bytes();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&request);
    });
    let limit = limits.max_bytes as u64;
    let (out_tx, out_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout.take(limit + 1).read_to_end(&mut out);
        let _ = out_tx.send(read.map(|_| out));
    });
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut err = Vec::new();
        let _ = stderr.take(MAX_STDERR_LOGGED as u64).read_to_end(&mut err);
        let _ = err_tx.send(err);
    });
    let timed_out = |child: &mut Child| {
        kill(child);
        failed(format!("no answer within {time:?} (killed)"))
    };
    let out = match out_rx.recv_timeout(time) {
        Ok(Ok(out)) if out.len() as u64 > limit => {
            kill(&mut child);
            return failed(format!("its answer exceeds {limit} bytes"));
        }
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            kill(&mut child);
            return failed(format!("reading its answer: {e}"));
        }
        Err(_) => return timed_out(&mut child),
    };
    // Its output is closed: it is exiting, or is told to at the deadline.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
            Ok(None) => return timed_out(&mut child),
            Err(e) => break Err(e),
        }
    };
    // Closed with the program's exit, unless a child of it still holds it: then not waited for.
    let err = err_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    if !err.is_empty() {
        tracing::warn!(
            "API executor {} for {}: {}",
            program.display(),
            call.function,
            String::from_utf8_lossy(&err).trim_end()
        );
    }
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => return failed(format!("it exited with {status}")),
        Err(e) => return failed(format!("waiting for it: {e}")),
    }
    match JsonValue::parse(&out, limits) {
        Ok(JsonValue::Object(_)) => String::from_utf8_lossy(&out).trim_end().to_owned(),
        Ok(_) => failed("its answer is not a JSON object".to_owned()),
        Err(e) => failed(format!("its answer is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn call(timeout: Option<Duration>) -> ApiCall {
        ApiCall {
            function: "/agents".to_owned(),
            framework_function: "Agent.get_agents_overview",
            arguments: "{}".to_owned(),
            request: r#"{"function": "/agents", "arguments": {}, "from_cluster": false}"#
                .to_owned(),
            timeout,
            agent_nodes: BTreeMap::new(),
        }
    }

    fn script(dir: &tempfile::TempDir, body: &str) -> PathBuf {
        let path = dir.path().join("exec.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_program_gets_the_request_and_its_answer_is_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        // Echoes the function it was asked for, read from its standard input.
        let program = script(
            &dir,
            r#"read request; f=$(echo "$request" | sed 's/.*"function": "\([^"]*\)".*/\1/'); echo "{\"data\": \"$f\", \"error\": 0}""#,
        );
        let answer = run_program(&program, &call(None), &JsonLimits::default());
        assert_eq!(answer, r#"{"data": "/agents", "error": 0}"#);
    }

    #[test]
    fn garbage_a_failure_or_a_hang_become_error_answers() {
        let dir = tempfile::tempdir().unwrap();
        let limits = JsonLimits::default();
        let cases = [
            ("echo 'not json'", "its answer is not JSON"),
            ("echo '[1, 2]'", "its answer is not a JSON object"),
            (
                "echo '{}'; echo oops >&2; exit 3",
                "it exited with exit status: 3",
            ),
            ("sleep 5", "no answer within 200ms (killed)"),
        ];
        for (body, why) in cases {
            let program = script(&dir, body);
            let answer = run_program(&program, &call(Some(Duration::from_millis(200))), &limits);
            assert!(
                answer.starts_with(&format!(r#"{{"message": "API executor for /agents: {why}"#)),
                "{body}: {answer}"
            );
            assert!(answer.ends_with(r#", "error": 1000}"#), "{answer}");
        }
        let missing = dir.path().join("nowhere");
        let answer = run_program(&missing, &call(None), &limits);
        assert!(answer.contains("cannot start it"), "{answer}");
    }

    #[test]
    fn an_answer_past_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let program = script(
            &dir,
            r#"printf '{"data": "'; head -c 5000 /dev/zero | tr '\0' x; printf '", "error": 0}'"#,
        );
        let limits = JsonLimits {
            max_bytes: 1000,
            ..JsonLimits::default()
        };
        let answer = run_program(&program, &call(None), &limits);
        assert!(answer.contains("its answer exceeds 1000 bytes"), "{answer}");
    }
}
