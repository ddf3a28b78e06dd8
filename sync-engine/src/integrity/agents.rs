//! Agents removed from `client.keys`, and the files they leave behind on a worker (3.9.5
//! `WorkerHandler._check_removed_agents` and `remove_bulk_agents`, PROTOCOL.md §9.5).
//!
//! When a 3.9.5 worker receives a new `etc/client.keys`, it compares it with the one installed
//! and, *before* moving the new one into place, removes the files of every agent the old one
//! lists and the new one does not: `queue/agent-info/{name}-{ip}`,
//! `queue/rootcheck/({name}) {ip}->rootcheck`, `queue/diff/{name}` (a directory),
//! `queue/agent-groups/{id}`, `queue/rids/{id}` and `var/db/agents/{name}-{id}.db`. Without it a
//! removed agent's status, groups and databases stay on every worker.
//!
//! Both files are read as 3.9.5 reads them: a line is an agent when it matches
//! `\d+ \S+ \S+ \S+` at its start (ASCII digits, single spaces; lines end at `\n`, `\r\n` or `\r`,
//! Python's universal newlines), agents whose name starts with `!` (disabled by
//! `manage_agents -r`) are not agents, and agents are keyed by id (the last line of an id wins).
//! A matching line that does not split into exactly four fields on spaces makes upstream's parser
//! raise; here it removes nothing and says so ([`AgentWarning::Malformed`]). Removed agents are
//! the ids of the old file absent from the new one.
//!
//! What differs from upstream, and why:
//! * Names and addresses come from the old `client.keys`, not from `global.db` (no SQLite here).
//!   Since `client.keys` often says `any` where agent-info files carry the address the agent
//!   connected from, agent-info files are also found by name: every file of `queue/agent-info/`
//!   whose agent-name part (before the last `-`, the rule of
//!   [`KnownAgents`](super::apply::KnownAgents)) is the agent's name, unless an agent of the new
//!   `client.keys` has that name (its file, then).
//! * Every id, name and address is checked as one path component (a hostile master's `../`, `/`,
//!   NUL, empty, `.`): the files named with one that is not are left, with a warning
//!   ([`AgentWarning::BadComponent`]). Nothing outside those six directories is ever touched.
//! * A removal that fails is reported (`SkipReason::RemoveFailed`) and the new `client.keys` is
//!   written anyway: 3.9.5 raises, keeps the old `client.keys` and retries at the next round, but a
//!   stale `client.keys` locks new agents out, which is worse than a stale file.
//! * Not done: 3.9.5 also deletes the agents' rows of `global.db`'s `belongs` table and asks
//!   wazuh-db to delete their databases (`wdb_conn.delete_agents_db`). There is no SQLite and no
//!   wazuh-db socket client here; on a real install the master's own clean-up and the agents'
//!   absence from `client.keys` leave those rows unused.
//!
//! Crash safety: the removal plan is made during the apply's validation (sans-IO, through the
//! [`Storage`]); the removals run before any write of the package, so before the new
//! `client.keys` is committed. A crash in between leaves the old `client.keys`, and the next
//! apply of the same package finds the same agents removed and their remaining files (removing
//! what is already gone is a no-op); once the new `client.keys` is in place, there is nothing left
//! to remove.

use std::collections::{BTreeMap, BTreeSet};

use super::path::{InstallPath, validate_file_name};
use super::storage::{EntryKind, Storage, StorageError, StorageErrorKind};

/// Largest `client.keys` read for the comparison, installed or received (a larger received one is
/// still written, but not compared: [`AgentWarning::KeysTooLarge`]). A million agents make about
/// 90 to 100 MB (id, name, address and a 64-hex key a line): at 64 MiB a 1,000,000-agent master
/// failed every agent-info apply (it reads the known agents from here) and never converged.
pub const MAX_CLIENT_KEYS: u64 = 256 << 20;

/// Where `client.keys` lives.
pub const CLIENT_KEYS: &str = "/etc/client.keys";

/// Where agent-info files live.
const AGENT_INFO_DIR: &str = "/queue/agent-info";

/// One agent of a `client.keys`, as 3.9.5's worker reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeysAgent {
    /// Agent id (`001`).
    pub id: String,
    /// Agent name.
    pub name: String,
    /// Registered address (`any`, `10.0.0.1`, `10.0.0.0/24`).
    pub ip: String,
}

/// Which `client.keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFile {
    /// The one installed (`etc/client.keys` before the apply).
    Installed,
    /// The one the master sent.
    Received,
}

/// Why the comparison removed nothing, or left some files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentWarning {
    /// The installed `client.keys` cannot be read (it exists): nothing removed (3.9.5: "Could
    /// not parse client.keys file").
    #[error("could not read the installed client.keys ({0}): no agent files removed")]
    InstalledUnreadable(String),
    /// A `client.keys` is larger than [`MAX_CLIENT_KEYS`]: not compared, nothing removed.
    #[error("{file:?} client.keys of {size} bytes is over the limit: no agent files removed")]
    KeysTooLarge {
        /// Which one.
        file: KeysFile,
        /// Its size.
        size: u64,
    },
    /// A line looks like an agent but does not hold four space-separated fields, or is not
    /// UTF-8 (upstream's parser raises on it): nothing removed.
    #[error("{file:?} client.keys line {line} cannot be parsed: no agent files removed")]
    Malformed {
        /// Which file.
        file: KeysFile,
        /// 1-based line number.
        line: usize,
    },
    /// A removed agent's id, name or address, or a file name made of them, cannot be one path
    /// component: the files it would name are left.
    #[error("agent {id}: {component:?} is not a valid file name: its files are left")]
    BadComponent {
        /// The agent's id (as the file says it, possibly the bad component itself).
        id: String,
        /// The refused field or file name.
        component: String,
    },
}

/// What the comparison found, made during validation: the agents and what to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRemovalPlan {
    /// The removed agents, by id.
    pub agents: Vec<KeysAgent>,
    /// Files and directories to remove (those present when the plan is carried out), sorted.
    pub targets: Vec<InstallPath>,
    /// What was refused or could not be compared.
    pub warnings: Vec<AgentWarning>,
}

/// What the removal did, in the apply's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCleanup {
    /// Agents of the installed `client.keys` absent from the received one (3.9.5 logs
    /// "Removing files from N agents" with their number), by id.
    pub agents: Vec<KeysAgent>,
    /// Their files and directories removed, sorted.
    pub removed: Vec<InstallPath>,
    /// What was refused or could not be compared.
    pub warnings: Vec<AgentWarning>,
}

/// The agent-name part of agent-info file `part` (`agent-one-10.0.0.1` → `agent-one`): as 3.9.5
/// (`re.match(r'(^.+)-(.+)$', part)`), everything before the last `-`, or the whole name when
/// there is no `-` with something on both sides.
pub fn agent_info_name(part: &str) -> &str {
    match part.rsplit_once('-') {
        Some((name, ip)) if !name.is_empty() && !ip.is_empty() => name,
        _ => part,
    }
}

/// True when `line` starts with `\d+ \S+ \S+ \S+` (Python's `re.match`: anchored at the start
/// only). Greedy matching is exact here: each run is followed by a character it cannot hold.
fn looks_like_agent(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let mut rest = &line[digits..];
    for _ in 0..3 {
        let Some(field) = rest.strip_prefix(' ') else {
            return false;
        };
        let len: usize = field
            .chars()
            .take_while(|c| !c.is_whitespace())
            .map(char::len_utf8)
            .sum();
        if len == 0 {
            return false;
        }
        rest = &field[len..];
    }
    true
}

/// The agents of `text` by id, as 3.9.5's worker parses a `client.keys` (see the module docs).
pub fn parse_client_keys(
    text: &[u8],
    file: KeysFile,
) -> Result<BTreeMap<String, KeysAgent>, AgentWarning> {
    let mut agents = BTreeMap::new();
    // Universal newlines: `\r\n` yields an empty line between, which is no agent.
    for (index, line) in text.split(|b| *b == b'\n' || *b == b'\r').enumerate() {
        let malformed = AgentWarning::Malformed {
            file,
            line: index + 1,
        };
        let Ok(line) = std::str::from_utf8(line) else {
            return Err(malformed);
        };
        if !looks_like_agent(line) {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let [id, name, ip, _key] = fields[..] else {
            return Err(malformed);
        };
        if name.starts_with('!') {
            continue;
        }
        agents.insert(
            id.to_owned(),
            KeysAgent {
                id: id.to_owned(),
                name: name.to_owned(),
                ip: ip.to_owned(),
            },
        );
    }
    Ok(agents)
}

/// The agents of `old` whose id `new` does not list, by id.
pub fn removed_agents(
    old: &BTreeMap<String, KeysAgent>,
    new: &BTreeMap<String, KeysAgent>,
) -> Vec<KeysAgent> {
    old.values()
        .filter(|agent| !new.contains_key(&agent.id))
        .cloned()
        .collect()
}

fn path(text: &str) -> Result<InstallPath, StorageError> {
    InstallPath::new(text).map_err(|e| StorageError::new(StorageErrorKind::Io, text, e.to_string()))
}

/// [`CLIENT_KEYS`] as an install path.
pub fn client_keys_path() -> Result<InstallPath, StorageError> {
    path(CLIENT_KEYS)
}

/// The installed `client.keys`; `None` when there is none (nothing to remove) or it cannot be
/// read (the warning says why). A crash is an error.
fn read_installed<S: Storage + ?Sized>(
    storage: &S,
    warnings: &mut Vec<AgentWarning>,
) -> Result<Option<Vec<u8>>, StorageError> {
    match storage.read(&client_keys_path()?, MAX_CLIENT_KEYS) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind == StorageErrorKind::NotFound => Ok(None),
        Err(e) if e.kind == StorageErrorKind::Crashed => Err(e),
        Err(e) if e.kind == StorageErrorKind::TooLarge => {
            warnings.push(AgentWarning::KeysTooLarge {
                file: KeysFile::Installed,
                size: storage
                    .stat(&client_keys_path()?)?
                    .map_or(MAX_CLIENT_KEYS, |s| s.size),
            });
            Ok(None)
        }
        Err(e) => {
            warnings.push(AgentWarning::InstalledUnreadable(e.to_string()));
            Ok(None)
        }
    }
}

/// `dir` joined with the file name `name`, or a warning for agent `id`.
fn agent_path(
    dir: &str,
    name: String,
    id: &str,
    warnings: &mut Vec<AgentWarning>,
) -> Result<Option<InstallPath>, StorageError> {
    match path(dir)?.join(&name) {
        Ok(joined) => Ok(Some(joined)),
        Err(_) => {
            warnings.push(AgentWarning::BadComponent {
                id: id.to_owned(),
                component: name,
            });
            Ok(None)
        }
    }
}

/// The files of `agent` to remove (see the module docs); fields that cannot be one path
/// component are reported, and the files they name left.
fn agent_targets(
    agent: &KeysAgent,
    warnings: &mut Vec<AgentWarning>,
) -> Result<Vec<InstallPath>, StorageError> {
    let KeysAgent { id, name, ip } = agent;
    let mut valid = |field: &str| {
        let ok = validate_file_name(field).is_ok();
        if !ok {
            warnings.push(AgentWarning::BadComponent {
                id: id.clone(),
                component: field.to_owned(),
            });
        }
        ok
    };
    let (id_ok, name_ok, ip_ok) = (valid(id), valid(name), valid(ip));
    let mut names: Vec<(&str, String)> = Vec::new();
    if name_ok && ip_ok {
        names.push((AGENT_INFO_DIR, format!("{name}-{ip}")));
        names.push(("/queue/rootcheck", format!("({name}) {ip}->rootcheck")));
    }
    if name_ok {
        names.push(("/queue/diff", name.clone()));
    }
    if id_ok {
        names.push(("/queue/agent-groups", id.clone()));
        names.push(("/queue/rids", id.clone()));
    }
    if name_ok && id_ok {
        names.push(("/var/db/agents", format!("{name}-{id}.db")));
    }
    let mut out = Vec::with_capacity(names.len());
    for (dir, file) in names {
        out.extend(agent_path(dir, file, id, warnings)?);
    }
    Ok(out)
}

/// Compares the installed `client.keys` with `received` and plans the removal of the files of
/// the agents it drops (see the module docs). Reads through `storage`, writes nothing. Errors:
/// storage failures other than an unreadable `client.keys` (which is a warning).
pub fn plan_agent_removal<S: Storage + ?Sized>(
    storage: &S,
    received: &[u8],
) -> Result<AgentRemovalPlan, StorageError> {
    let mut plan = AgentRemovalPlan::default();
    let Some(installed) = read_installed(storage, &mut plan.warnings)? else {
        return Ok(plan);
    };
    let parsed = parse_client_keys(&installed, KeysFile::Installed)
        .and_then(|old| Ok((old, parse_client_keys(received, KeysFile::Received)?)));
    let (old, new) = match parsed {
        Ok(both) => both,
        Err(warning) => {
            plan.warnings.push(warning);
            return Ok(plan);
        }
    };
    plan.agents = removed_agents(&old, &new);
    let mut targets = BTreeSet::new();
    for agent in &plan.agents {
        targets.extend(agent_targets(agent, &mut plan.warnings)?);
    }
    // Agent-info files by name, for the agents whose name no remaining agent has.
    let remaining: BTreeSet<&str> = new.values().map(|a| a.name.as_str()).collect();
    let by_name: BTreeSet<&str> = plan
        .agents
        .iter()
        .map(|a| a.name.as_str())
        .filter(|name| !remaining.contains(name) && validate_file_name(name).is_ok())
        .collect();
    if !by_name.is_empty() {
        let dir = path(AGENT_INFO_DIR)?;
        let entries = match storage.list_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind == StorageErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for entry in entries {
            if entry.kind != EntryKind::Dir && by_name.contains(agent_info_name(&entry.name)) {
                targets.extend(dir.join(&entry.name).ok());
            }
        }
    }
    plan.targets = targets.into_iter().collect();
    Ok(plan)
}

/// Removes what `plan` names and is still there (a directory with everything below it, anything
/// else as a file: a symlink itself, never its target). Removed paths go to `cleanup.removed`;
/// a removal that fails goes to `failed` and the others are still tried. A crash is returned.
pub fn remove_agent_files<S: Storage + ?Sized>(
    storage: &mut S,
    plan: AgentRemovalPlan,
    cleanup: &mut AgentCleanup,
    failed: &mut Vec<(InstallPath, StorageError)>,
) -> Result<(), StorageError> {
    cleanup.agents = plan.agents;
    cleanup.warnings = plan.warnings;
    for target in plan.targets {
        let removed = match storage.stat(&target) {
            Ok(None) => Ok(false),
            Ok(Some(stat)) if stat.kind == EntryKind::Dir => storage.remove_dir_all(&target),
            // Durable with the apply's write batch, before its `client.keys` lands (see
            // `Storage::sync_deferred`).
            Ok(Some(_)) => storage.remove_file_deferred(&target),
            Err(e) => Err(e),
        };
        match removed {
            Ok(true) => cleanup.removed.push(target),
            Ok(false) => {}
            Err(e) if e.kind == StorageErrorKind::Crashed => return Err(e),
            Err(e) => failed.push((target, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, name: &str, ip: &str) -> KeysAgent {
        KeysAgent {
            id: id.into(),
            name: name.into(),
            ip: ip.into(),
        }
    }

    #[test]
    fn client_keys_are_read_as_upstream_reads_them() {
        let text = b"001 web any k1\r\n\
            002 !gone 10.0.0.2 k2\n\
            # 003 comment any k3\n\
            \x20004 indented any k4\n\
            005  double any k5\n\
            006 db 10.0.0.0/24 k6\r\
            abc name any k7\n\
            007 short any\n\
            001 web-renamed 10.0.0.1 k8\n\
            008 tab\tname any k9\n\
            \n";
        let agents = parse_client_keys(text, KeysFile::Installed).unwrap();
        assert_eq!(
            agents.into_values().collect::<Vec<_>>(),
            [
                agent("001", "web-renamed", "10.0.0.1"),
                agent("006", "db", "10.0.0.0/24"),
            ]
        );
        assert!(looks_like_agent("1 a b c"));
        assert!(!looks_like_agent("1 a b "));
        assert!(!looks_like_agent("1 a b"));
        assert!(!looks_like_agent("x1 a b c"));
        assert!(
            !looks_like_agent("١ a b c"),
            "Arabic-Indic digits are not ids here"
        );
    }

    #[test]
    fn lines_upstream_cannot_split_remove_nothing() {
        for (text, line) in [
            (&b"001 a any key extra\n"[..], 1),
            (b"001 a any k\n002 b any key \n", 2),
            (b"001 a any k\n\xff\xfe\n", 2),
        ] {
            assert_eq!(
                parse_client_keys(text, KeysFile::Received),
                Err(AgentWarning::Malformed {
                    file: KeysFile::Received,
                    line
                }),
                "{text:?}"
            );
        }
    }

    #[test]
    fn removed_agents_are_the_old_ids_the_new_file_lacks() {
        let old = parse_client_keys(
            b"001 a any k\n002 b any k\n003 c any k\n004 !d any k\n",
            KeysFile::Installed,
        )
        .unwrap();
        let new = parse_client_keys(
            b"001 a any k\n002 !b any k\n003 c-renamed any k\n004 d any k\n",
            KeysFile::Received,
        )
        .unwrap();
        // 002 disabled in the new file; 003 renamed but kept (by id); 004 not an agent before.
        assert_eq!(removed_agents(&old, &new), [agent("002", "b", "any")]);
    }

    #[test]
    fn hostile_fields_name_no_file() {
        let mut warnings = Vec::new();
        let targets = agent_targets(&agent("005", "..", "10.0.0.5"), &mut warnings).unwrap();
        let texts: Vec<&str> = targets.iter().map(InstallPath::as_str).collect();
        assert_eq!(texts, ["/queue/agent-groups/005", "/queue/rids/005"]);
        assert_eq!(
            warnings,
            [AgentWarning::BadComponent {
                id: "005".into(),
                component: "..".into()
            }]
        );
        let mut warnings = Vec::new();
        // 247 bytes: alone and in `{name}-006.db` a file name, not with the address.
        let long = "n".repeat(247);
        let targets = agent_targets(&agent("006", &long, "10.0.0.6"), &mut warnings).unwrap();
        let texts: Vec<String> = targets.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                format!("/queue/diff/{long}"),
                "/queue/agent-groups/006".to_owned(),
                "/queue/rids/006".to_owned(),
                format!("/var/db/agents/{long}-006.db"),
            ]
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn agent_info_names_split_at_the_last_dash() {
        assert_eq!(agent_info_name("agent-one-10.0.0.1"), "agent-one");
        assert_eq!(agent_info_name("web-any"), "web");
        assert_eq!(agent_info_name("plain"), "plain");
        assert_eq!(agent_info_name("-lead"), "-lead");
        assert_eq!(agent_info_name("trail-"), "trail-");
    }
}
