//! Who owns the files the cluster writes, and how a user or group name becomes ids.
//!
//! Why: upstream's daemon drops its privileges to the install's user (3.9: `ossec`; 4.x:
//! `wazuh`) unless started with `-r`, and `chown`s every file it moves into place to
//! `ossec:ossec` (`common.ossec_uid` / `common.ossec_gid`), so what it writes and the directories
//! it creates belong to that user. We run as root next to the real Wazuh daemons, which run as
//! `ossec`: a root-owned `etc/client.keys` (mode 0640) would be unreadable to them. So
//! [`FsStorage`](crate::FsStorage) takes an optional [`Owner`] and gives it to every file it
//! commits and every directory it creates.
//!
//! Names are resolved by reading `/etc/passwd` and `/etc/group` (the `files` source of
//! `nsswitch.conf`), not through libc's `getpwnam`: no C binding, and the parsing is testable.
//! Users or groups that exist only in NIS, LDAP or sssd are not found; give their numeric ids
//! (`--owner 1001:1001`) instead.

use std::fmt;
use std::path::Path;

/// The owner given to written files and created directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}

/// The user of a profile's install tree (3.9: `ossec`; 4.x would be `wazuh`).
pub const OSSEC_USER: &str = "ossec";

/// Where the accounts are read from.
pub const PASSWD_PATH: &str = "/etc/passwd";
/// Where the groups are read from.
pub const GROUP_PATH: &str = "/etc/group";

/// One user of `/etc/passwd`: what ownership needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswdEntry {
    /// User id.
    pub uid: u32,
    /// Primary (login) group id.
    pub gid: u32,
}

/// Why an owner cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerError {
    /// The text is not `USER` or `USER:GROUP`.
    #[error("{0:?} is not USER or USER:GROUP")]
    BadSpec(String),
    /// No such user in `/etc/passwd` (and not a number).
    #[error("user {0:?} does not exist (not in /etc/passwd, not a number)")]
    UnknownUser(String),
    /// No such group in `/etc/group` (and not a number).
    #[error("group {0:?} does not exist (not in /etc/group, not a number)")]
    UnknownGroup(String),
    /// A numeric user with no `/etc/passwd` entry and no group given: there is no login group
    /// to take.
    #[error("user id {0} has no /etc/passwd entry: give the group too (USER:GROUP)")]
    NoGroup(u32),
}

/// A numeric id as `chown` accepts it: decimal digits, and not `-1` (`u32::MAX`), which the
/// system calls read as "leave unchanged".
fn numeric_id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u32>().ok().filter(|id| *id != u32::MAX)
}

/// The `:`-separated fields of the meaningful lines of an `/etc/passwd`-style file: blank lines,
/// comments (`#`, after leading blanks, as glibc's `files` source skips them) and NIS compat lines
/// (`+`, `+name`, `+@netgroup`, `-name`: they name entries of another source, which we do not
/// query) are left out.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_start)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '+', '-']))
        .map(|line| line.split(':').collect())
}

/// The first entry of user `name` in `passwd` (the text of `/etc/passwd`): `name:pw:uid:gid:...`.
/// Lines with fewer than four fields or ids that are not numbers are skipped, as glibc skips
/// them.
pub fn find_user(passwd: &str, name: &str) -> Option<PasswdEntry> {
    records(passwd)
        .filter(|f| f.len() >= 4 && f[0] == name)
        .find_map(|f| {
            Some(PasswdEntry {
                uid: numeric_id(f[2])?,
                gid: numeric_id(f[3])?,
            })
        })
}

/// The first entry of user id `uid` in `passwd`.
pub fn find_uid(passwd: &str, uid: u32) -> Option<PasswdEntry> {
    records(passwd)
        .filter(|f| f.len() >= 4 && !f[0].is_empty())
        .find_map(|f| {
            let entry = PasswdEntry {
                uid: numeric_id(f[2])?,
                gid: numeric_id(f[3])?,
            };
            (entry.uid == uid).then_some(entry)
        })
}

/// The id of group `name` in `group` (the text of `/etc/group`): `name:pw:gid:members`.
pub fn find_group(group: &str, name: &str) -> Option<u32> {
    records(group)
        .filter(|f| f.len() >= 3 && f[0] == name)
        .find_map(|f| numeric_id(f[2]))
}

/// Resolves `spec`, as `chown` reads it: `USER` (the user's login group), `USER:` (the same) or
/// `USER:GROUP`; each a name of `passwd` / `group`, or else a number.
pub fn parse_owner(spec: &str, passwd: &str, group: &str) -> Result<Owner, OwnerError> {
    let (user, group_name) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    if user.is_empty() || group_name.is_some_and(|g| g.contains(':')) {
        return Err(OwnerError::BadSpec(spec.to_owned()));
    }
    let entry = find_user(passwd, user);
    let uid = match (entry, numeric_id(user)) {
        (Some(entry), _) => entry.uid,
        (None, Some(uid)) => uid,
        (None, None) => return Err(OwnerError::UnknownUser(user.to_owned())),
    };
    let gid = match group_name {
        Some(name) => find_group(group, name)
            .or_else(|| numeric_id(name))
            .ok_or_else(|| OwnerError::UnknownGroup(name.to_owned()))?,
        None => entry
            .or_else(|| find_uid(passwd, uid))
            .map(|e| e.gid)
            .ok_or(OwnerError::NoGroup(uid))?,
    };
    Ok(Owner { uid, gid })
}

/// The owner a daemon running as `euid` gives its files by default: when root, user `user`
/// with group `user` (upstream's `getpwnam("ossec")` / `getgrnam("ossec")`), or the user's
/// login group when there is no such group; `None` when not root (files keep this process's
/// owner, the only one it may give) or when the user does not exist.
pub fn default_owner(euid: u32, user: &str, passwd: &str, group: &str) -> Option<Owner> {
    if euid != 0 {
        return None;
    }
    let entry = find_user(passwd, user)?;
    Some(Owner {
        uid: entry.uid,
        gid: find_group(group, user).unwrap_or(entry.gid),
    })
}

/// This process's effective user id.
pub fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Reads an accounts file (`/etc/passwd`, `/etc/group`) as text; a file that is missing reads
/// as empty (no such names), other failures are reported with the path.
pub fn read_accounts(path: &Path) -> Result<String, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("reading {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# /etc/passwd with the odd lines real ones have
root:x:0:0:root:/root:/bin/bash

   # an indented comment
short:x:7
+
+nisuser::::::
+@netgroup
-blocked
badid:x:abc:5:bad:/:/bin/false
minus:x:-1:5::/:/bin/false
max:x:4294967295:5::/:/bin/false
ossec:x:1001:1002::/var/ossec:/sbin/nologin
ossec:x:2001:2002::/second:/sbin/nologin
  spaced:x:3001:3002::/:/bin/sh
crlf:x:4001:4002::/:/bin/sh\r
nogroup:x:5001:5002
";

    const GROUP: &str = "\
# groups
root:x:0:
+
+nisgroup::
-ossec
ossec:x:1003:
short:x
badgid:x:zz:
wazuh:x:1005:ossec
ossec:x:9999:
";

    #[test]
    fn passwd_lookup_skips_comments_short_and_nis_lines() {
        assert_eq!(
            find_user(PASSWD, "root"),
            Some(PasswdEntry { uid: 0, gid: 0 })
        );
        // The first of two entries wins, as getpwnam's `files` source.
        assert_eq!(
            find_user(PASSWD, "ossec"),
            Some(PasswdEntry {
                uid: 1001,
                gid: 1002
            })
        );
        assert_eq!(
            find_user(PASSWD, "spaced"),
            Some(PasswdEntry {
                uid: 3001,
                gid: 3002
            })
        );
        assert_eq!(
            find_user(PASSWD, "crlf"),
            Some(PasswdEntry {
                uid: 4001,
                gid: 4002
            })
        );
        // Exactly four fields is enough (name, password, uid, gid).
        assert_eq!(
            find_user(PASSWD, "nogroup"),
            Some(PasswdEntry {
                uid: 5001,
                gid: 5002
            })
        );
        for absent in [
            "short", "nisuser", "+nisuser", "+", "netgroup", "blocked", "-blocked", "badid",
            "minus", "max", "", "#", "x",
        ] {
            assert_eq!(find_user(PASSWD, absent), None, "{absent:?}");
        }
        assert_eq!(
            find_uid(PASSWD, 2001),
            Some(PasswdEntry {
                uid: 2001,
                gid: 2002
            })
        );
        assert_eq!(find_uid(PASSWD, 4294967295), None);
        assert_eq!(
            find_uid(PASSWD, 1001),
            Some(PasswdEntry {
                uid: 1001,
                gid: 1002
            })
        );
        assert_eq!(find_user("", "root"), None);
    }

    #[test]
    fn group_lookup_skips_comments_short_and_nis_lines() {
        assert_eq!(find_group(GROUP, "root"), Some(0));
        assert_eq!(find_group(GROUP, "ossec"), Some(1003));
        assert_eq!(find_group(GROUP, "wazuh"), Some(1005));
        for absent in ["nisgroup", "+nisgroup", "short", "badgid", "-ossec", ""] {
            assert_eq!(find_group(GROUP, absent), None, "{absent:?}");
        }
    }

    #[test]
    fn owner_specs_resolve_like_chown() {
        let owner = |uid, gid| Ok(Owner { uid, gid });
        assert_eq!(parse_owner("ossec", PASSWD, GROUP), owner(1001, 1002));
        assert_eq!(parse_owner("ossec:", PASSWD, GROUP), owner(1001, 1002));
        assert_eq!(parse_owner("ossec:ossec", PASSWD, GROUP), owner(1001, 1003));
        assert_eq!(parse_owner("ossec:wazuh", PASSWD, GROUP), owner(1001, 1005));
        assert_eq!(
            parse_owner("54321:54322", PASSWD, GROUP),
            owner(54321, 54322)
        );
        assert_eq!(
            parse_owner("ossec:54322", PASSWD, GROUP),
            owner(1001, 54322)
        );
        assert_eq!(parse_owner("1001", PASSWD, GROUP), owner(1001, 1002));
        assert_eq!(
            parse_owner("54321", PASSWD, GROUP),
            Err(OwnerError::NoGroup(54321))
        );
        assert_eq!(
            parse_owner("nobody-here", PASSWD, GROUP),
            Err(OwnerError::UnknownUser("nobody-here".into()))
        );
        assert_eq!(
            parse_owner("ossec:nogrp", PASSWD, GROUP),
            Err(OwnerError::UnknownGroup("nogrp".into()))
        );
        assert_eq!(
            parse_owner("4294967295:0", PASSWD, GROUP),
            Err(OwnerError::UnknownUser("4294967295".into()))
        );
        for bad in ["", ":ossec", ":", "a:b:c"] {
            assert_eq!(
                parse_owner(bad, PASSWD, GROUP),
                Err(OwnerError::BadSpec(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            OwnerError::UnknownUser("ossec".into()).to_string(),
            "user \"ossec\" does not exist (not in /etc/passwd, not a number)"
        );
    }

    #[test]
    fn default_owner_is_the_profile_user_when_root() {
        assert_eq!(
            default_owner(0, OSSEC_USER, PASSWD, GROUP),
            Some(Owner {
                uid: 1001,
                gid: 1003
            })
        );
        // No group of that name: the user's login group.
        assert_eq!(
            default_owner(0, OSSEC_USER, PASSWD, "root:x:0:\n"),
            Some(Owner {
                uid: 1001,
                gid: 1002
            })
        );
        assert_eq!(default_owner(1000, OSSEC_USER, PASSWD, GROUP), None);
        assert_eq!(default_owner(0, "wazuh", PASSWD, GROUP), None);
        assert_eq!(Owner { uid: 1, gid: 2 }.to_string(), "1:2");
    }
}
