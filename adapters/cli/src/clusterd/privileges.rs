//! Leaving root for the install's user, as upstream's daemon does without `-r`.
//!
//! Upstream calls `os.setgid(ossec_gid)` and `os.setuid(ossec_uid)` before it serves. We do it
//! once the port and the local socket are open (both are made by root: the socket is then given to
//! the user) and before the pid file is written, so the daemon's files are the user's. The node
//! already runs threads by then; `setuid(2)` alone changes one thread on Linux, so the change goes
//! through the C library's `setgroups`/`setgid`/`setuid` (via `nix`), which apply it to every
//! thread of the process, and is then checked.

use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getuid, setgid, setgroups, setuid};
use wazuh_cluster_fs::owner::Owner;

/// What to do about privileges at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivilegePlan {
    /// Become `Owner` (root, no `-r`).
    DropTo(Owner),
    /// Stay as we are: `-r`, or not root (the reason for the log).
    Stay(&'static str),
}

/// The plan for a process with effective uid `euid`; `run_as_root` is `-r`, `user` the install's
/// user (`ossec`) when it exists.
pub fn plan(euid: u32, run_as_root: bool, user: Option<Owner>) -> Result<PrivilegePlan, String> {
    if euid != 0 {
        return Ok(PrivilegePlan::Stay("not started as root"));
    }
    if run_as_root {
        return Ok(PrivilegePlan::Stay("-r: running as root"));
    }
    match user {
        Some(owner) => Ok(PrivilegePlan::DropTo(owner)),
        None => Err(
            "cannot drop privileges: user ossec does not exist (create it, name another with \
             --owner, or run with -r to stay root)"
                .to_owned(),
        ),
    }
}

/// Becomes `owner` for good: supplementary groups, group, then user; checked afterwards.
pub fn drop_to(owner: Owner) -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(owner.uid), Gid::from_raw(owner.gid));
    let failed = |step: &str, e: nix::Error| format!("cannot drop privileges ({step}): {e}");
    setgroups(&[gid]).map_err(|e| failed("setgroups", e))?;
    setgid(gid).map_err(|e| failed("setgid", e))?;
    setuid(uid).map_err(|e| failed("setuid", e))?;
    if getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid {
        return Err(format!(
            "cannot drop privileges: still uid {}/{} gid {}/{} after becoming {owner}",
            getuid(),
            geteuid(),
            getgid(),
            getegid()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OSSEC: Owner = Owner {
        uid: 1001,
        gid: 1002,
    };

    #[test]
    fn root_drops_to_the_install_user_unless_r() {
        assert_eq!(
            plan(0, false, Some(OSSEC)),
            Ok(PrivilegePlan::DropTo(OSSEC))
        );
        assert_eq!(
            plan(0, true, Some(OSSEC)),
            Ok(PrivilegePlan::Stay("-r: running as root"))
        );
        assert_eq!(
            plan(0, true, None),
            Ok(PrivilegePlan::Stay("-r: running as root"))
        );
        assert_eq!(
            plan(1000, false, Some(OSSEC)),
            Ok(PrivilegePlan::Stay("not started as root"))
        );
        assert_eq!(
            plan(0, false, None),
            Err(
                "cannot drop privileges: user ossec does not exist (create it, name another \
                 with --owner, or run with -r to stay root)"
                    .to_owned()
            )
        );
    }
}
