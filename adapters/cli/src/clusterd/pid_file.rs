//! `var/run/wazuh-clusterd-<pid>.pid`: how upstream's tools know the daemon runs.
//!
//! `ossec-control status`/`stop` read `var/run/wazuh-clusterd*.pid` (the pid inside, `kill -0`,
//! `kill`), and `cluster_control` and the API's status checks glob `wazuh-clusterd-*.pid` and look
//! for `/proc/<pid>` (`framework/wazuh/cluster/utils.py` `get_manager_status`). Upstream writes
//! `"<pid>\n"` with mode 0640 once it has dropped its privileges, and never removes it itself
//! (`ossec-control stop` does); we remove ours on every exit we control, since a file naming a
//! dead process reads as "failed" to the API.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The run directory under the install root (upstream's `common.os_pidfile`).
pub const RUN_DIR: &str = "var/run";
/// The name the files start with.
const PREFIX: &str = "wazuh-clusterd-";
/// Upstream's mode.
const MODE: u32 = 0o640;

/// The pid file of this process, removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes `var/run/wazuh-clusterd-<pid>.pid` under `root` holding `"<pid>\n"`.
    pub fn create(root: &Path, pid: u32) -> Result<PidFile, String> {
        let path = pid_path(root, pid);
        let failed =
            |e: std::io::Error| format!("cannot write the pid file {}: {e}", path.display());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(MODE)
            .open(&path)
            .map_err(failed)?;
        // The umask may have narrowed the mode; upstream chmods too.
        file.set_permissions(std::fs::Permissions::from_mode(MODE))
            .map_err(failed)?;
        let written = file.write_all(format!("{pid}\n").as_bytes());
        let guard = PidFile { path };
        written.map_err(|e| format!("cannot write the pid file {}: {e}", guard.path.display()))?;
        Ok(guard)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!("cannot remove the pid file {}: {e}", self.path.display());
        }
    }
}

/// The pid file of process `pid` under `root`.
pub fn pid_path(root: &Path, pid: u32) -> PathBuf {
    root.join(RUN_DIR).join(format!("{PREFIX}{pid}.pid"))
}

/// What [`clean_stale`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cleaned {
    /// Pid files of processes that no longer run, removed.
    pub removed: Vec<PathBuf>,
}

/// Removes the pid files left by runs that were killed (their process is gone, or the pid now
/// belongs to a process that is not a cluster daemon), and refuses to start beside a live one.
/// `alive(pid)` says whether the pid is a running cluster daemon (see [`is_clusterd_process`]).
pub fn clean_stale(
    root: &Path,
    own_pid: u32,
    alive: impl Fn(u32) -> bool,
) -> Result<Cleaned, String> {
    let dir = root.join(RUN_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Cleaned::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    let mut cleaned = Cleaned::default();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(PREFIX))
            .and_then(|rest| rest.strip_suffix(".pid"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != own_pid && alive(pid) {
            return Err(format!(
                "wazuh-clusterd is already running (pid {pid}, {}); stop it first",
                entry.path().display()
            ));
        }
        let path = entry.path();
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove the stale pid file {}: {e}", path.display()))?;
        cleaned.removed.push(path);
    }
    cleaned.removed.sort();
    Ok(cleaned)
}

/// Whether `pid` is a running cluster daemon (see [`cmdline_is_clusterd`]). A pid reused by
/// another program after a crash or reboot is not one.
pub fn is_clusterd_process(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline_is_clusterd(&cmdline))
}

/// Whether a `/proc/<pid>/cmdline` (NUL-separated arguments) is a cluster daemon's: its program
/// is `wazuh-clusterd` (ours by its name), or its first argument names `clusterd` (`wazuh-cluster
/// clusterd`, upstream's `python3 .../wazuh-clusterd.py`). Later arguments are not looked at.
pub fn cmdline_is_clusterd(cmdline: &[u8]) -> bool {
    let names = |arg: &[u8]| arg.windows(8).any(|w| w == b"clusterd");
    let mut args = cmdline.split(|&b| b == 0);
    let program = args.next().unwrap_or_default();
    let program_name = program.rsplit(|&b| b == b'/').next().unwrap_or_default();
    names(program_name)
        || args
            .next()
            .is_some_and(|first| names(first.rsplit(|&b| b == b'/').next().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn written_with_the_pid_and_mode_and_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(RUN_DIR)).unwrap();
        let pid_file = PidFile::create(dir.path(), 4242).unwrap();
        let path = dir.path().join("var/run/wazuh-clusterd-4242.pid");
        assert_eq!(pid_file.path(), path);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "4242\n");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
        drop(pid_file);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_run_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = PidFile::create(dir.path(), 7).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "cannot write the pid file {}/var/run/wazuh-clusterd-7.pid: ",
                dir.path().display()
            )),
            "{error}"
        );
    }

    #[test]
    fn stale_files_are_removed_and_a_live_daemon_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join(RUN_DIR);
        std::fs::create_dir_all(&run).unwrap();
        for name in [
            "wazuh-clusterd-100.pid",
            "wazuh-clusterd-200.pid",
            "ossec-remoted-100.pid",
            "wazuh-clusterd-x.pid",
        ] {
            std::fs::write(run.join(name), "1\n").unwrap();
        }
        assert_eq!(
            clean_stale(dir.path(), 200, |_| false).unwrap(),
            Cleaned {
                removed: vec![
                    run.join("wazuh-clusterd-100.pid"),
                    run.join("wazuh-clusterd-200.pid")
                ]
            }
        );
        // Other daemons' files and names that are not ours are left alone.
        assert!(run.join("ossec-remoted-100.pid").exists());
        assert!(run.join("wazuh-clusterd-x.pid").exists());

        std::fs::write(run.join("wazuh-clusterd-300.pid"), "300\n").unwrap();
        let refused = clean_stale(dir.path(), 1, |pid| pid == 300).unwrap_err();
        assert_eq!(
            refused,
            format!(
                "wazuh-clusterd is already running (pid 300, {}); stop it first",
                run.join("wazuh-clusterd-300.pid").display()
            )
        );
        assert!(run.join("wazuh-clusterd-300.pid").exists());
        // No var/run at all: nothing to clean.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            clean_stale(empty.path(), 1, |_| true).unwrap(),
            Cleaned::default()
        );
    }

    #[test]
    fn cluster_daemons_are_told_by_their_program_or_first_argument() {
        assert!(cmdline_is_clusterd(b"/var/ossec/bin/wazuh-clusterd\0-f\0"));
        assert!(cmdline_is_clusterd(b"wazuh-cluster\0clusterd\0-f\0"));
        assert!(cmdline_is_clusterd(
            b"/var/ossec/framework/python/bin/python3\0/var/ossec/framework/scripts/wazuh-clusterd.py\0"
        ));
        assert!(!cmdline_is_clusterd(b"/usr/bin/sleep\x001000\x00"));
        assert!(!cmdline_is_clusterd(b"/tmp/clusterd-tests/bin/sshd\0-D\0"));
        // A later argument (a test filter, a path) does not make a daemon.
        assert!(!cmdline_is_clusterd(
            b"/target/debug/deps/command\0--exact\0clusterd\0"
        ));
        assert!(!cmdline_is_clusterd(b""));
        assert!(!is_clusterd_process(u32::MAX));
    }
}
