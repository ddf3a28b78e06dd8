//! Running in the background without `-f`, as upstream's daemon, with a truthful exit status.
//!
//! Upstream double-forks, `setsid`s, points its standard streams at `/dev/null` and `chdir`s to
//! `/`; its starting command returns 0 at the first fork, before the daemon has opened anything,
//! so `ossec-control start` says "Started wazuh-clusterd" even when it dies a moment later.
//!
//! Forking needs `unsafe` (this workspace forbids it) and is unsound once threads exist, so the
//! starting command instead runs this same program again with [`CHILD_FLAG`], before any runtime
//! or thread exists in either process. The child becomes a session leader (`setsid`, no
//! controlling terminal), moves to `/`, and starts the node; its standard output and error are a
//! pipe to the starting command, which relays whatever the child says there (why it cannot start)
//! and exits 0 as soon as the child prints [`READY_LINE`] (port, socket and pid file in place), or
//! non-zero when the pipe closes without it. Once ready, the child points its standard streams at
//! `/dev/null`, which closes the pipe.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

/// The hidden flag the starting command gives the daemon it runs.
pub const CHILD_FLAG: &str = "--detached-child";
/// What the daemon prints on the pipe once it is up.
pub const READY_LINE: &str = "wazuh-clusterd: up";

/// The starting command: runs `program` (this executable) as `argv0` with `args` and
/// [`CHILD_FLAG`], relays what it says, and returns 0 once it is up, 1 when it is not.
pub fn start_daemon(program: &Path, argv0: &OsStr, args: &[OsString]) -> ExitCode {
    match run_and_wait_until_up(program, argv0, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wazuh-clusterd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_and_wait_until_up(program: &Path, argv0: &OsStr, args: &[OsString]) -> Result<(), String> {
    let (reader, writer) =
        std::io::pipe().map_err(|e| format!("cannot make the start-up pipe: {e}"))?;
    let mut child = {
        let writer_for_stderr = writer
            .try_clone()
            .map_err(|e| format!("cannot make the start-up pipe: {e}"))?;
        // The command (and its copies of the pipe's writing end) is dropped at the end of this
        // block, so the pipe closes when the daemon closes its end.
        Command::new(program)
            .arg0(argv0)
            .args(args)
            .arg(CHILD_FLAG)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer_for_stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?
    };
    let mut stderr = std::io::stderr();
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        if line == READY_LINE {
            // The daemon lives on, adopted by init when we exit.
            return Ok(());
        }
        let _ = writeln!(stderr, "{line}");
    }
    let status = child
        .wait()
        .map_err(|e| format!("the daemon did not start (cannot wait for it: {e})"))?;
    Err(format!("the daemon did not start ({status})"))
}

/// In the daemon, first thing: a session of its own, out of the starting directory.
pub fn leave_terminal() -> Result<(), String> {
    rustix::process::setsid().map_err(|e| format!("cannot start a session (setsid): {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("cannot change directory to /: {e}"))
}

/// In the daemon, once up: tells the starting command, then points the standard streams at
/// `/dev/null` (closing the pipe).
pub fn report_up() -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    // The starting command may have been killed: the daemon runs on regardless.
    let _ = writeln!(stdout, "{READY_LINE}");
    let _ = stdout.flush();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("cannot open /dev/null: {e}"))?;
    let failed = |e: rustix::io::Errno| format!("cannot redirect the standard streams: {e}");
    rustix::stdio::dup2_stdin(&null).map_err(failed)?;
    rustix::stdio::dup2_stdout(&null).map_err(failed)?;
    rustix::stdio::dup2_stderr(&null).map_err(failed)
}
