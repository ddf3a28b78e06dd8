//! The agent table upstream's queries run on, built from the install's files as 3.9.5's
//! `wazuh-modulesd` fills `global.db`'s `agent` table from them (`wm_database.c`
//! `wm_sync_agents`, `wm_sync_file`; `wdb_agent.c`): the manager's row as the schema inserts it,
//! one row per agent of `etc/client.keys` (read as `OS_ReadKeys` reads it), then each agent-info
//! file applied to the row it belongs to, in name order.
//!
//! Reads are bounded: `client.keys` as the node reads it for the cluster (64 MiB),
//! `agents-timestamp` 16 MiB, and at most the first line of an agent-groups file and the first
//! 1 MiB of an agent-info file (upstream reads no more of either that matters).
//!
//! ```text
//! 001 agent-one any <key>              → id 1, name agent-one, register_ip any
//! 002 agent-two 10.0.0.0/255.255.255.255 <key>  → register_ip 10.0.0.0
//! 003 !agent-three any <key>           → (removed agent: no row)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::agent_info::{self, AgentInfo, OsColumns, c_str, fgets_lines, text};
use super::database::{AgentRecord, AgentSource};
use super::sql::{SqlValue, like};
use super::{Field, MANAGER_NAME};
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::install::Install;
use crate::dapi::builtin::time::{DateTime, MAX_SECS, MIN_SECS};
use crate::integrity::agents::MAX_CLIENT_KEYS;
use crate::integrity::path::validate_file_name;
use crate::integrity::storage::{EntryKind, Storage};

/// `OS_BUFFER_SIZE`: `fgets` lines of `client.keys` and `agents-timestamp`.
const KEYS_LINE_BUFFER: usize = 2048;

/// `KEYSIZE`: each field of a `client.keys` line is cut to one byte less.
const KEYSIZE: usize = 128;

/// `OS_SIZE_65536 + 1`: the agent-groups line buffer.
const GROUP_LINE_BUFFER: usize = 65_537;

/// Largest `queue/agents-timestamp` read.
const MAX_TIMESTAMPS: u64 = 16 << 20;

/// Bytes read of an agent-info file.
const MAX_AGENT_INFO: u64 = 1 << 20;

const CLIENT_KEYS: &str = "etc/client.keys";
const AGENTS_TIMESTAMP: &str = "queue/agents-timestamp";
const AGENT_INFO_DIR: &str = "queue/agent-info";
const AGENT_GROUPS_DIR: &str = "queue/agent-groups";

/// Agent 000's addresses and last keep-alive, as the schema inserts its row.
const MANAGER_ADDRESS: &str = "127.0.0.1";

/// One row of the `agent` table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AgentRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) ip: Option<String>,
    pub(super) register_ip: Option<String>,
    pub(super) internal_key: Option<String>,
    pub(super) os: OsColumns,
    pub(super) version: Option<String>,
    pub(super) config_sum: Option<String>,
    pub(super) merged_sum: Option<String>,
    pub(super) manager_host: Option<String>,
    pub(super) node_name: Option<String>,
    pub(super) date_add: Option<String>,
    /// As the column holds it: `YYYY-MM-DD HH:MM:SS`, local time (UTC here).
    pub(super) last_keepalive: Option<String>,
    /// wazuh-db's sync state (`NULL` when built from the files, which do not say it).
    pub(super) status: Option<String>,
    pub(super) group: Option<String>,
}

impl AgentRow {
    /// The value of `field`'s column (`status`: wazuh-db's own sync state).
    pub(super) fn column(&self, field: Field) -> SqlValue {
        let text = |value: &Option<String>| value.clone().map_or(SqlValue::Null, SqlValue::Text);
        match field {
            Field::Id => SqlValue::Int(self.id),
            Field::Name => SqlValue::Text(self.name.clone()),
            Field::Ip => text(&self.ip.clone().or_else(|| self.register_ip.clone())),
            Field::Status => text(&self.status),
            Field::OsName => text(&self.os.name),
            Field::OsVersion => text(&self.os.version),
            Field::OsPlatform => text(&self.os.platform),
            Field::Version => text(&self.version),
            Field::Manager => text(&self.manager_host),
            Field::DateAdd => text(&self.date_add),
            Field::Group => text(&self.group),
            Field::MergedSum => text(&self.merged_sum),
            Field::ConfigSum => text(&self.config_sum),
            Field::OsCodename => text(&self.os.codename),
            Field::OsMajor => text(&self.os.major),
            Field::OsMinor => text(&self.os.minor),
            Field::OsUname => text(&self.os.uname),
            Field::OsArch => text(&self.os.arch),
            Field::OsBuild => text(&self.os.build),
            Field::NodeName => text(&self.node_name),
            Field::LastKeepAlive => text(&self.last_keepalive),
            Field::InternalKey => text(&self.internal_key),
            Field::RegisterIp => text(&self.register_ip),
        }
    }

    /// The row of a database record.
    fn from_record(record: AgentRecord) -> AgentRow {
        AgentRow {
            id: record.id,
            name: record.name,
            ip: record.ip,
            register_ip: record.register_ip,
            internal_key: record.internal_key,
            os: OsColumns {
                name: record.os_name,
                version: record.os_version,
                major: record.os_major,
                minor: record.os_minor,
                codename: record.os_codename,
                build: record.os_build,
                platform: record.os_platform,
                uname: record.os_uname,
                arch: record.os_arch,
            },
            version: record.version,
            config_sum: record.config_sum,
            merged_sum: record.merged_sum,
            manager_host: record.manager_host,
            node_name: record.node_name,
            date_add: record.date_add,
            last_keepalive: record.last_keepalive,
            status: record.status,
            group: record.group,
        }
    }

    fn apply(&mut self, info: AgentInfo, mtime: i64) {
        self.os = info.os;
        self.version = info.version;
        self.config_sum = info.config_sum;
        self.merged_sum = info.merged_sum;
        self.manager_host = Some(info.manager_host);
        if let Some(node_name) = info.node_name {
            self.node_name = Some(node_name);
        }
        if let Some(ip) = info.agent_ip {
            self.ip = Some(ip);
        }
        // `datetime(mtime, 'unixepoch', 'localtime')` is NULL outside years 0000..9999.
        self.last_keepalive = Some(mtime)
            .filter(|secs| (MIN_SECS..=MAX_SECS).contains(secs))
            .map(|secs| DateTime::from_unix(secs).to_string());
    }
}

/// The table, rows by id.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AgentTable {
    pub(super) rows: Vec<AgentRow>,
}

impl AgentTable {
    /// The table of `install`: the agent database's when there is one, else the one built
    /// from the install's files.
    ///
    /// # Errors
    /// A database or a file that exists but cannot be read.
    pub(super) fn load<S: Storage + ?Sized>(
        install: &Install<'_, S>,
        source: AgentSource<'_>,
    ) -> FunctionResult<AgentTable> {
        match source.database.agent_records() {
            Ok(Some(records)) => Ok(AgentTable::from_records(records)),
            Ok(None) => AgentTable::from_files(install, source.agent_nodes),
            Err(e) => Err(FunctionError::database(&e.0)),
        }
    }

    /// The table of a database's records.
    pub(super) fn from_records(records: Vec<AgentRecord>) -> AgentTable {
        let mut rows: Vec<AgentRow> = records.into_iter().map(AgentRow::from_record).collect();
        // The rowid order a table scan gives.
        rows.sort_by_key(|row| row.id);
        AgentTable { rows }
    }

    /// The table built from `install`'s files; `agent_nodes` is what the master knows of where
    /// each agent reports (by `client.keys` id), used where the agent-info file does not say.
    fn from_files<S: Storage + ?Sized>(
        install: &Install<'_, S>,
        agent_nodes: &BTreeMap<String, String>,
    ) -> FunctionResult<AgentTable> {
        let node_of = |key_id: &str| {
            agent_nodes
                .get(key_id)
                .cloned()
                .unwrap_or_else(|| "unknown".to_owned())
        };
        let manager_version = install
            .ossec_init()
            .ok()
            .flatten()
            .and_then(|init| Some(format!("{} {}", init.name?, init.version?)));
        let mut rows = vec![AgentRow {
            id: 0,
            name: MANAGER_NAME.to_owned(),
            ip: Some(MANAGER_ADDRESS.to_owned()),
            register_ip: Some(MANAGER_ADDRESS.to_owned()),
            internal_key: None,
            os: OsColumns::default(),
            version: manager_version,
            config_sum: None,
            merged_sum: None,
            manager_host: None,
            node_name: Some(node_of("000")),
            date_add: None,
            last_keepalive: Some(DateTime::from_unix(MAX_SECS).to_string()),
            status: None,
            group: None,
        }];
        let keys = install
            .read_prefix(CLIENT_KEYS, MAX_CLIENT_KEYS)
            .map_err(|e| install.os_error(CLIENT_KEYS, &e))?
            .unwrap_or_default();
        let timestamps = install
            .read_prefix(AGENTS_TIMESTAMP, MAX_TIMESTAMPS)
            .map_err(|e| install.os_error(AGENTS_TIMESTAMP, &e))?
            .unwrap_or_default();
        let dates_added = dates_added(&timestamps);
        let mut ids = BTreeSet::new();
        for key in read_keys(&keys) {
            // `wdb_insert_agent` fails on an id already there: the first line of an id wins.
            if key.id == 0 || !ids.insert(key.id) {
                continue;
            }
            rows.push(AgentRow {
                id: key.id,
                node_name: Some(node_of(&key.key_id)),
                group: read_group(install, &key.key_id)?,
                date_add: dates_added.get(&key.id).cloned().flatten(),
                name: key.name,
                ip: None,
                register_ip: Some(key.register_ip),
                internal_key: Some(key.key),
                os: OsColumns::default(),
                version: None,
                config_sum: None,
                merged_sum: None,
                manager_host: None,
                last_keepalive: None,
                status: None,
            });
        }
        rows.sort_by_key(|row| row.id);
        let mut table = AgentTable { rows };
        table.apply_agent_info(install)?;
        Ok(table)
    }

    /// `wm_scan_directory(queue/agent-info)`: each file applied to its agent's row.
    fn apply_agent_info<S: Storage + ?Sized>(
        &mut self,
        install: &Install<'_, S>,
    ) -> FunctionResult<()> {
        let entries = install
            .list(AGENT_INFO_DIR)
            .map_err(|e| install.os_error(AGENT_INFO_DIR, &e))?;
        let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, row) in self.rows.iter().enumerate() {
            by_name.entry(row.name.clone()).or_default().push(index);
        }
        for entry in entries {
            // Hidden files and syscheck-style names are not agent-info files to upstream.
            if entry.kind != EntryKind::File || entry.name.starts_with(['.', '(']) {
                continue;
            }
            let Some((name, address)) = entry.name.rsplit_once('-') else {
                continue;
            };
            // `wdb_find_agent`: `name = ? AND (register_ip = ? OR register_ip LIKE ? || '/_%')`,
            // the lowest id first.
            let network = format!("{address}/_%");
            let Some(&index) = by_name.get(name).and_then(|indexes| {
                indexes.iter().find(|&&i| {
                    self.rows[i]
                        .register_ip
                        .as_deref()
                        .is_some_and(|registered| {
                            registered == address || like(&network, registered) == Some(true)
                        })
                })
            }) else {
                continue;
            };
            let row = &mut self.rows[index];
            let path = format!("{AGENT_INFO_DIR}/{}", entry.name);
            let Some(stat) = install
                .stat(&path)
                .map_err(|e| install.os_error(&path, &e))?
            else {
                continue;
            };
            let Some(bytes) = install
                .read_prefix(&path, MAX_AGENT_INFO)
                .map_err(|e| install.os_error(&path, &e))?
            else {
                continue;
            };
            if let Some(info) = agent_info::parse(&bytes) {
                row.apply(info, stat.mtime.secs);
            }
        }
        Ok(())
    }
}

/// One agent line of `client.keys`.
struct KeyLine {
    /// `atoi` of the id.
    id: i64,
    /// The id as written.
    key_id: String,
    name: String,
    /// The address as `wm_sync_agents` stores it.
    register_ip: String,
    key: String,
}

/// `OS_ReadKeys`: lines not starting with `#` or a blank, of at least four space-separated
/// fields (the last one running to the line's end), whose name does not start with `#` or `!`.
fn read_keys(bytes: &[u8]) -> Vec<KeyLine> {
    let field = |bytes: &[u8]| text(&bytes[..bytes.len().min(KEYSIZE - 1)]);
    fgets_lines(bytes, KEYS_LINE_BUFFER)
        .filter_map(|line| {
            let line = c_str(line);
            if matches!(line.first(), Some(b'#' | b' ')) {
                return None;
            }
            let mut parts = line.splitn(2, |b| *b == b' ');
            let id = parts.next()?;
            let rest = parts.next()?;
            if matches!(rest.first(), Some(b'#' | b'!')) {
                return None;
            }
            let mut parts = rest.splitn(3, |b| *b == b' ');
            let (name, ip, key) = (parts.next()?, parts.next()?, parts.next()?);
            let key = key.strip_suffix(b"\n").unwrap_or(key);
            Some(KeyLine {
                id: atoi(id),
                key_id: field(id),
                name: field(name),
                register_ip: register_ip(&field(ip)),
                key: field(key),
            })
        })
        .collect()
}

/// The address `wm_sync_agents` stores for a `client.keys` address: a network `a.b.c.d/n` as
/// such (without `/32`), a full netmask as the bare address (upstream's netmask reading makes
/// one that `OS_CIDRtoStr` cannot print), anything else as written.
fn register_ip(ip: &str) -> String {
    match ip.split_once('/') {
        Some((address, bits)) if bits.len() <= 2 => match bits.parse::<u8>() {
            Ok(32) => address.to_owned(),
            Ok(bits) if bits < 32 => format!("{address}/{bits}"),
            _ => address.to_owned(),
        },
        Some((address, _)) => address.to_owned(),
        None => ip.to_owned(),
    }
}

/// C's `atoi`: leading blanks, a sign, digits (what does not fit saturates).
fn atoi(bytes: &[u8]) -> i64 {
    let text = bytes.trim_ascii_start();
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let value = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |v, d| {
            v.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        });
    if negative { -value } else { value }
}

/// `get_agent_group(id)`: the first line of `queue/agent-groups/<id>`, `None` when missing or
/// empty.
fn read_group<S: Storage + ?Sized>(
    install: &Install<'_, S>,
    key_id: &str,
) -> FunctionResult<Option<String>> {
    // An id that cannot name a file names no group file.
    if validate_file_name(key_id).is_err() {
        return Ok(None);
    }
    let path = format!("{AGENT_GROUPS_DIR}/{key_id}");
    let bytes = match install.read_prefix(&path, GROUP_LINE_BUFFER as u64) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e) => return Err(install.os_error(&path, &e)),
    };
    let line = fgets_lines(&bytes, GROUP_LINE_BUFFER).next().map(c_str);
    let group = line.map(|line| line.strip_suffix(b"\n").unwrap_or(line));
    Ok(group.filter(|group| !group.is_empty()).map(text))
}

/// `get_agent_date_added(id)` for every id: fields 4 and 5 of the first `agents-timestamp`
/// line of the id (`<id> <name> <ip> <date> <time>`), `None` for a line with fewer fields.
fn dates_added(timestamps: &[u8]) -> BTreeMap<i64, Option<String>> {
    let mut dates = BTreeMap::new();
    for line in fgets_lines(timestamps, KEYS_LINE_BUFFER) {
        let line = c_str(line);
        let Some(space) = line.iter().position(|b| *b == b' ') else {
            continue;
        };
        let id = atoi(&line[..space]);
        if dates.contains_key(&id) {
            continue;
        }
        let parts: Vec<&[u8]> = line.splitn(5, |b| *b == b' ').collect();
        let date = match parts.as_slice() {
            [_, _, _, day, time] => Some([*day, b" ", *time].concat()),
            [_, _, _, day] => Some(day.to_vec()),
            _ => None,
        };
        let date = date.map(|date| {
            let date = date.split(|b| *b == b'\n').next().unwrap_or_default();
            text(date)
        });
        dates.insert(id, date);
    }
    dates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_are_read_as_os_read_keys_reads_them() {
        let keys = read_keys(
            b"001 agent-one any k1\n# comment\n 002 indented any k2\n003 !removed any k3\n\
004 net 10.0.0.0/24 k4 with spaces\n005 short any\n006 host 10.1.1.1/32 k6\n",
        );
        let seen: Vec<(i64, &str, &str, &str)> = keys
            .iter()
            .map(|k| {
                (
                    k.id,
                    k.name.as_str(),
                    k.register_ip.as_str(),
                    k.key.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (1, "agent-one", "any", "k1"),
                (4, "net", "10.0.0.0/24", "k4 with spaces"),
                (6, "host", "10.1.1.1", "k6"),
            ]
        );
        assert_eq!(register_ip("10.0.0.5/255.255.255.0"), "10.0.0.5");
        assert_eq!(atoi(b"  -12x"), -12);
    }

    #[test]
    fn dates_added_come_from_the_first_line_of_the_id() {
        let dates = dates_added(
            b"1 a any 2019-07-01 10:00:00\n001 a any 2020-01-01 00:00:00\n002 b any 2019-07-02\n3 c\n",
        );
        assert_eq!(dates.get(&1), Some(&Some("2019-07-01 10:00:00".into())));
        assert_eq!(dates.get(&2), Some(&Some("2019-07-02".into())));
        assert_eq!(dates.get(&3), Some(&None));
        assert_eq!(dates.get(&4), None);
    }
}
