//! Where the install is and what its `internal_options.conf` says about our debug level.
//!
//! Upstream's daemon is `/var/ossec/framework/scripts/wazuh-clusterd.py` behind the wrapper
//! `/var/ossec/bin/wazuh-clusterd`, and its paths come from `/etc/ossec-init.conf`. Our binary is
//! placed as `<root>/bin/wazuh-clusterd` itself, so the root is read from where it is: the folder
//! above `bin/` when that folder holds an `etc/`, else `/var/ossec`. `--wazuh-path` overrides.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The install root when the binary is not in an install's `bin/` (upstream's default).
pub const DEFAULT_ROOT: &str = "/var/ossec";
/// The internal options files, the local one first (upstream reads it before the shared one).
const INTERNAL_OPTIONS: [&str; 2] = [
    "etc/local_internal_options.conf",
    "etc/internal_options.conf",
];
/// The option giving the daemon's debug level (0, 1 or 2).
const DEBUG_OPTION: &str = "wazuh_clusterd.debug";
/// Highest debug level (upstream's `get_internal_options_value(..., 2, 0)`).
pub const MAX_DEBUG: u8 = 2;

/// The install root for a binary run as `program` (its `argv[0]`, made absolute against `cwd`
/// when it is a relative path with a `/`; a bare name found on `PATH` is `current_exe`). The
/// `argv[0]` spelling is used rather than `/proc/self/exe` so that a symbolic link
/// `<root>/bin/wazuh-clusterd` to our binary elsewhere still names `<root>`.
pub fn root_of_program(program: &Path, cwd: &Path, current_exe: Option<&Path>) -> PathBuf {
    let spelled_with_dir = program.as_os_str().to_string_lossy().contains('/');
    let path = if spelled_with_dir {
        cwd.join(program)
    } else {
        match current_exe {
            Some(exe) => exe.to_path_buf(),
            None => return PathBuf::from(DEFAULT_ROOT),
        }
    };
    let in_install_bin = |dir: &Path| {
        dir.file_name() == Some(OsStr::new("bin"))
            && dir.parent().is_some_and(|root| root.join("etc").is_dir())
    };
    match path.parent() {
        Some(bin) if in_install_bin(bin) => bin.parent().map_or_else(
            || PathBuf::from(DEFAULT_ROOT),
            |root| clean(root).unwrap_or_else(|| root.to_path_buf()),
        ),
        _ => PathBuf::from(DEFAULT_ROOT),
    }
}

/// `root` without `.` and `..` components (resolved on the disk), so the paths we log and write
/// in the pid file's neighbourhood read as an operator expects.
fn clean(root: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(root).ok()
}

/// What `internal_options.conf` says about the debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebugOption {
    /// `wazuh_clusterd.debug=N` with N in 0..=2.
    Level(u8),
    /// Neither file sets it (or neither exists).
    Unset,
    /// It is set to something else (the reason, upstream's wording).
    Invalid(String),
}

/// The `wazuh_clusterd.debug` value of the install under `root`: the local file wins, as upstream.
pub fn debug_option(root: &Path) -> DebugOption {
    for file in INTERNAL_OPTIONS {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        if let Some(value) = option_value(&text, DEBUG_OPTION) {
            return parse_debug(value);
        }
    }
    DebugOption::Unset
}

/// The value of `name` in an options file (`name=value` or `name: value` lines, `#` and `;`
/// comments, as Python's `RawConfigParser` reads them); the last setting wins, as there.
fn option_value<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .filter_map(|line| line.split_once(['=', ':']))
        .filter(|(key, _)| key.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.trim())
        .next_back()
}

fn parse_debug(value: &str) -> DebugOption {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return DebugOption::Invalid(format!("Option: {DEBUG_OPTION}. Value: {value}"));
    }
    match value.parse::<u8>() {
        Ok(level) if level <= MAX_DEBUG => DebugOption::Level(level),
        _ => DebugOption::Invalid(format!(
            "Max value: {MAX_DEBUG}. Min value: 0. Found: {value}."
        )),
    }
}

/// The debug level the daemon runs at: the option when it is set above 0, else the number of
/// `-d` (capped at 2), as upstream's `internal option or args.debug_level`. (Upstream falls back
/// to 0, ignoring `-d`, when the option is missing or invalid; we keep `-d` and say why.)
pub fn debug_level(option: &DebugOption, flags: u8) -> u8 {
    match option {
        DebugOption::Level(level) if *level > 0 => *level,
        _ => flags.min(MAX_DEBUG),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_above_an_install_bin_else_var_ossec() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ossec");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let real_root = std::fs::canonicalize(&root).unwrap();
        let cwd = Path::new("/nowhere");
        assert_eq!(
            root_of_program(&root.join("bin/wazuh-clusterd"), cwd, None),
            real_root
        );
        // Relative spellings are taken from the working directory.
        assert_eq!(
            root_of_program(Path::new("bin/wazuh-clusterd"), &root, None),
            real_root
        );
        assert_eq!(
            root_of_program(Path::new("./bin/../bin/wazuh-clusterd"), &root, None),
            real_root
        );
        // A bare name: where the executable is.
        assert_eq!(
            root_of_program(
                Path::new("wazuh-clusterd"),
                cwd,
                Some(&root.join("bin/wazuh-clusterd"))
            ),
            real_root
        );
        // A bin/ without etc/ beside it (/usr/local/bin) is not an install.
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        assert_eq!(
            root_of_program(&dir.path().join("usr/bin/wazuh-clusterd"), cwd, None),
            PathBuf::from(DEFAULT_ROOT)
        );
        assert_eq!(
            root_of_program(&dir.path().join("target/debug/wazuh-cluster"), cwd, None),
            PathBuf::from(DEFAULT_ROOT)
        );
        assert_eq!(
            root_of_program(Path::new("wazuh-clusterd"), cwd, None),
            PathBuf::from(DEFAULT_ROOT)
        );
    }

    #[test]
    fn internal_options_give_the_level_the_local_file_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        assert_eq!(debug_option(dir.path()), DebugOption::Unset);
        std::fs::write(
            dir.path().join("etc/internal_options.conf"),
            "# Cluster\n# wazuh_clusterd.debug=2\nanalysisd.debug=1\nwazuh_clusterd.debug=1\n",
        )
        .unwrap();
        assert_eq!(debug_option(dir.path()), DebugOption::Level(1));
        std::fs::write(
            dir.path().join("etc/local_internal_options.conf"),
            "wazuh_clusterd.debug = 2\n",
        )
        .unwrap();
        assert_eq!(debug_option(dir.path()), DebugOption::Level(2));
        std::fs::write(
            dir.path().join("etc/local_internal_options.conf"),
            "wazuh_clusterd.debug=3\n",
        )
        .unwrap();
        assert_eq!(
            debug_option(dir.path()),
            DebugOption::Invalid("Max value: 2. Min value: 0. Found: 3.".to_owned())
        );
        std::fs::write(
            dir.path().join("etc/local_internal_options.conf"),
            "wazuh_clusterd.debug=yes\n",
        )
        .unwrap();
        assert_eq!(
            debug_option(dir.path()),
            DebugOption::Invalid("Option: wazuh_clusterd.debug. Value: yes".to_owned())
        );
    }

    #[test]
    fn a_set_option_wins_over_the_flags() {
        assert_eq!(debug_level(&DebugOption::Level(2), 0), 2);
        assert_eq!(debug_level(&DebugOption::Level(1), 2), 1);
        // 0 is upstream's "not set": the flags decide.
        assert_eq!(debug_level(&DebugOption::Level(0), 1), 1);
        assert_eq!(debug_level(&DebugOption::Unset, 5), 2);
        assert_eq!(debug_level(&DebugOption::Invalid(String::new()), 1), 1);
    }
}
