//! The seam to the install's agent database, 3.9.5's `var/db/global.db` (an SQLite file that
//! `wazuh-db` and `wazuh-modulesd` keep): the core reads no SQLite itself (no I/O here), so an
//! adapter opens the database and hands its `agent` table over as plain [`AgentRecord`]s; the
//! agent functions then run upstream's queries on those rows exactly as on the rows they build
//! from the install's files when there is no database (see `table`).
//!
//! ```text
//!   adapter: SELECT id, name, ip, ... FROM agent  ──► AgentRecord ──► AgentTable ──► query
//!   no database (Ok(None))                          ──► client.keys + agent-info ──► AgentTable
//! ```
//!
//! With a database, its rows are the whole truth, as for upstream: `node_name`, `dateAdd`,
//! `lastKeepAlive`, the manager's row (000) and its `status` column come from it, and the
//! master's own knowledge of where agents report is not mixed in.

use std::collections::BTreeMap;

/// Most rows of the `agent` table an adapter should hand over (a database with more is
/// refused with an error answer, not read into memory).
pub const MAX_AGENT_RECORDS: usize = 200_000;

/// Longest text value of one column an adapter should hand over (`group` is the longest
/// upstream writes: up to 64 KiB of group names).
pub const MAX_AGENT_COLUMN_BYTES: usize = 65_536;

/// One row of 3.9.5's `agent` table (`src/wazuh_db/schema_global.sql`), the columns the API
/// reads, as stored: text columns as their text (`None` for SQL `NULL`), the dates as the
/// database holds them (`YYYY-MM-DD HH:MM:SS`, the manager's local time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentRecord {
    /// `id INTEGER PRIMARY KEY`.
    pub id: i64,
    /// `name TEXT NOT NULL`.
    pub name: String,
    /// `ip`: the address the agent last connected from.
    pub ip: Option<String>,
    /// `register_ip`: the address in `client.keys`.
    pub register_ip: Option<String>,
    /// `internal_key`.
    pub internal_key: Option<String>,
    /// `os_name`.
    pub os_name: Option<String>,
    /// `os_version`.
    pub os_version: Option<String>,
    /// `os_major`.
    pub os_major: Option<String>,
    /// `os_minor`.
    pub os_minor: Option<String>,
    /// `os_codename`.
    pub os_codename: Option<String>,
    /// `os_build`.
    pub os_build: Option<String>,
    /// `os_platform`.
    pub os_platform: Option<String>,
    /// `os_uname`.
    pub os_uname: Option<String>,
    /// `os_arch`.
    pub os_arch: Option<String>,
    /// `version` (`Wazuh v3.9.5`).
    pub version: Option<String>,
    /// `config_sum`.
    pub config_sum: Option<String>,
    /// `merged_sum`.
    pub merged_sum: Option<String>,
    /// `manager_host`.
    pub manager_host: Option<String>,
    /// `node_name` (the schema's default is `unknown`).
    pub node_name: Option<String>,
    /// `date_add`.
    pub date_add: Option<String>,
    /// `last_keepalive`.
    pub last_keepalive: Option<String>,
    /// `status`: wazuh-db's sync state (`empty`, `pending`, `updated`), not the agent's status.
    pub status: Option<String>,
    /// `` `group` ``: the agent's groups joined by `,`.
    pub group: Option<String>,
}

/// Why the agent database could not be read: the text upstream's `sqlite3` error would carry
/// (answered as error 2003, `Error in wazuhdb request: <text>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AgentDatabaseError(pub String);

/// Where the agent functions get the `agent` table from.
pub trait AgentDatabase {
    /// Every row of the table, in any order; `Ok(None)` when the install has no database (the
    /// functions then build the table from the install's files).
    ///
    /// # Errors
    /// A database that exists but cannot be read (or is over [`MAX_AGENT_RECORDS`] rows or
    /// [`MAX_AGENT_COLUMN_BYTES`] in a value).
    fn agent_records(&self) -> Result<Option<Vec<AgentRecord>>, AgentDatabaseError>;
}

/// No agent database: the table always comes from the install's files (the in-memory storage of
/// tests and the simulator, and [`BuiltinExecutor::run`](crate::dapi::BuiltinExecutor::run)).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAgentDatabase;

impl AgentDatabase for NoAgentDatabase {
    fn agent_records(&self) -> Result<Option<Vec<AgentRecord>>, AgentDatabaseError> {
        Ok(None)
    }
}

/// Rows already read (a test's, or a database read once for several calls).
impl AgentDatabase for Vec<AgentRecord> {
    fn agent_records(&self) -> Result<Option<Vec<AgentRecord>>, AgentDatabaseError> {
        Ok(Some(self.clone()))
    }
}

/// What an agent function reads its table from: the database, else the install's files with the
/// master's knowledge of where each agent reports (`ApiCall::agent_nodes`).
#[derive(Clone, Copy)]
pub(in crate::dapi::builtin) struct AgentSource<'a> {
    pub(in crate::dapi::builtin) database: &'a dyn AgentDatabase,
    pub(in crate::dapi::builtin) agent_nodes: &'a BTreeMap<String, String>,
}
