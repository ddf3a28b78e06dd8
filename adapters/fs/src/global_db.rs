//! The install's agent database, 3.9.5's `var/db/global.db` (SQLite, kept by `wazuh-db` and
//! `wazuh-modulesd`), read for the built-in distributed API functions: its `agent` table handed
//! to `dapi::BuiltinExecutor::run_with_agents` as plain rows ([`AgentDatabase`]), so that the
//! sans-IO core needs no SQLite.
//!
//! ```text
//!   BuiltinExecutor ──agent_records()──► InstallAgentDatabase ──stat (confined)──► var/db/global.db
//!                   ◄── Ok(None): no database, the files are read instead
//!                   ◄── Ok(Some(rows)) / Err(text): error 2003 as upstream
//! ```
//!
//! How it is opened, and why:
//! * **Read-only** (`SQLITE_OPEN_READ_ONLY`): the node never changes the database `wazuh-db`
//!   owns. A WAL database (3.9.5's schema sets `journal_mode=WAL`) is read with its `-wal`
//!   file, so rows not yet checkpointed are seen, as upstream's `sqlite3.connect` sees them.
//! * **Confined**: the path is first looked up through the storage's confined root (no
//!   component may be a symlink, and it must be a regular file), then opened with
//!   `SQLITE_OPEN_NOFOLLOW`; a database elsewhere is refused, not read.
//! * **Bounded**: at most [`MAX_AGENT_RECORDS`] rows (one more is an error, not a cut answer)
//!   and [`MAX_AGENT_COLUMN_BYTES`] per value (SQLite's own `SQLITE_LIMIT_LENGTH` on the
//!   connection, so a larger value fails before it is copied out).
//! * **Busy**: a write in progress is waited for up to [`BUSY_TIMEOUT`] (upstream tries 50
//!   times, 0.1 s apart), then the call fails with SQLite's `database is locked`.
//!
//! * **Read once per change**: the rows read are kept with the connection that read them, and
//!   reused while SQLite's `PRAGMA data_version` on that connection stays the same, i.e. until
//!   another connection (`wazuh-db`) commits; and while the path still names the same file
//!   (device and inode: a database replaced by another is opened anew). Per call that is one
//!   `stat` and one pragma instead of the whole table (10,000 agents: 51 ms → see the bench
//!   `global_db`). Why not the request's filters in SQL: upstream's filters, search, sort and
//!   status run over its own query builder, which the core reproduces byte for byte over rows
//!   (the 67 upstream-checked cases); a second translation into SQL would be a second place to
//!   keep exact, and `/agents` without filters (what the API and `cluster_control -a` ask) would
//!   still read every row. At most [`CACHED_DATABASES`] databases are kept (one per install
//!   root the process serves).
//!
//! Values are taken as upstream's `sqlite3` gives them to the framework: text decoded as UTF-8
//! dropping invalid bytes (its `text_factory`), `NULL` as absent. Upstream would fail on a blob
//! or a number in a text column (its JSON encoder cannot write bytes; a number would be printed
//! unquoted); here they are read as their text.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use wazuh_cluster_sync::dapi::builtin::{
    AgentDatabase, AgentDatabaseError, AgentRecord, MAX_AGENT_COLUMN_BYTES, MAX_AGENT_RECORDS,
};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::{EntryKind, Storage};

use crate::FsStorage;

/// Where 3.9.5 keeps it (`common.database_path_global`).
pub const GLOBAL_DB: &str = "/var/db/global.db";

/// 3.9.5's `agent` table as `wazuh-db` creates it (`src/wazuh_db/schema_global.sql`: columns,
/// types, defaults, WAL), which decide what [`InstallAgentDatabase`] sees: for the tools, tests
/// and benchmarks that make a database.
pub const AGENT_TABLE_3_9_5: &str = "CREATE TABLE agent (id INTEGER PRIMARY KEY, \
     name TEXT NOT NULL, ip TEXT, register_ip TEXT, internal_key TEXT, os_name TEXT, \
     os_version TEXT, os_major TEXT, os_minor TEXT, os_codename TEXT, os_build TEXT, \
     os_platform TEXT, os_uname TEXT, os_arch TEXT, version TEXT, config_sum TEXT, \
     merged_sum TEXT, manager_host TEXT, node_name TEXT DEFAULT 'unknown', \
     date_add TEXT NOT NULL, last_keepalive TEXT, \
     status TEXT NOT NULL CHECK (status IN ('empty', 'pending', 'updated')) DEFAULT 'empty', \
     fim_offset INTEGER NOT NULL DEFAULT 0, reg_offset INTEGER NOT NULL DEFAULT 0, \
     `group` TEXT DEFAULT 'default'); PRAGMA journal_mode=WAL;";

/// How long a read waits for a writer holding the database.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The `agent` columns read, in [`AgentRecord`]'s order.
const SELECT_AGENTS: &str = "SELECT id, name, ip, register_ip, internal_key, os_name, os_version, \
     os_major, os_minor, os_codename, os_build, os_platform, os_uname, os_arch, version, \
     config_sum, merged_sum, manager_host, node_name, date_add, last_keepalive, status, `group` \
     FROM agent LIMIT ?1";

/// Databases whose rows are kept between calls (see the module docs).
pub const CACHED_DATABASES: usize = 4;

/// The rows last read from one database, and the connection that tells whether they changed.
struct Cached {
    path: PathBuf,
    /// Device and inode of the file read.
    file: (u64, u64),
    connection: Connection,
    data_version: i64,
    records: Vec<AgentRecord>,
}

/// The databases read, most recent last.
static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());

/// The agent database of the install `storage` serves, looked up when an agent function asks.
#[derive(Debug, Clone, Copy)]
pub struct InstallAgentDatabase<'a> {
    storage: &'a FsStorage,
}

impl<'a> InstallAgentDatabase<'a> {
    /// The database of `storage`'s install (it need not exist).
    pub fn new(storage: &'a FsStorage) -> InstallAgentDatabase<'a> {
        InstallAgentDatabase { storage }
    }

    /// The database file, `None` when the install has none.
    fn locate(&self) -> Result<Option<PathBuf>, AgentDatabaseError> {
        let path = InstallPath::new(GLOBAL_DB).expect("a valid install path");
        let found = self
            .storage
            .stat(&path)
            .map_err(|e| AgentDatabaseError(format!("{GLOBAL_DB}: {e}")))?;
        match found {
            None => Ok(None),
            Some(stat) if stat.kind == EntryKind::File => {
                Ok(Some(self.storage.root_path().join(&GLOBAL_DB[1..])))
            }
            Some(stat) => Err(AgentDatabaseError(format!(
                "{GLOBAL_DB} is not a regular file ({:?}): refused",
                stat.kind
            ))),
        }
    }
}

impl AgentDatabase for InstallAgentDatabase<'_> {
    fn agent_records(&self) -> Result<Option<Vec<AgentRecord>>, AgentDatabaseError> {
        let Some(path) = self.locate()? else {
            return Ok(None);
        };
        cached_agents(&path).map(Some).map_err(AgentDatabaseError)
    }
}

/// The rows of the database at `path`: those kept when nothing changed, else read anew.
fn cached_agents(path: &Path) -> Result<Vec<AgentRecord>, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let file = (meta.dev(), meta.ino());
    // A poisoned lock only means a reader panicked: the entries are whole or absent.
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let kept = cache.iter().position(|c| c.path == path && c.file == file);
    let mut entry = match kept {
        Some(at) => {
            let entry = cache.remove(at);
            if data_version(&entry.connection).ok() == Some(entry.data_version) {
                let records = entry.records.clone();
                cache.push(entry);
                return Ok(records);
            }
            entry
        }
        None => {
            cache.retain(|c| c.path != path);
            Cached {
                path: path.to_owned(),
                file,
                connection: open(path)?,
                data_version: 0,
                records: Vec::new(),
            }
        }
    };
    // The version first: a commit during the read makes the next call read again.
    entry.data_version = data_version(&entry.connection).map_err(|e| e.to_string())?;
    entry.records = read_agents(&entry.connection)?;
    let records = entry.records.clone();
    if cache.len() >= CACHED_DATABASES {
        cache.remove(0);
    }
    cache.push(entry);
    Ok(records)
}

/// SQLite's count of commits by other connections, as this connection sees it.
fn data_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA data_version", [], |row| row.get(0))
}

/// A read-only connection to the database at `path` (see the module docs).
fn open(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let connection = Connection::open_with_flags(path, flags).map_err(|e| e.to_string())?;
    let bound = i32::try_from(MAX_AGENT_COLUMN_BYTES).unwrap_or(i32::MAX);
    connection
        .set_limit(Limit::SQLITE_LIMIT_LENGTH, bound)
        .map_err(|e| e.to_string())?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| e.to_string())?;
    Ok(connection)
}

/// Every row of the `agent` table.
fn read_agents(connection: &Connection) -> Result<Vec<AgentRecord>, String> {
    let mut statement = connection
        .prepare(SELECT_AGENTS)
        .map_err(|e| e.to_string())?;
    let most = i64::try_from(MAX_AGENT_RECORDS).unwrap_or(i64::MAX);
    let mut rows = statement.query([most + 1]).map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        if records.len() == MAX_AGENT_RECORDS {
            return Err(format!(
                "the agent table has more than {MAX_AGENT_RECORDS} rows: not read"
            ));
        }
        records.push(record(row).map_err(|e| e.to_string())?);
    }
    Ok(records)
}

/// One row of [`SELECT_AGENTS`].
fn record(row: &Row<'_>) -> rusqlite::Result<AgentRecord> {
    let text = |index: usize| -> rusqlite::Result<Option<String>> {
        Ok(match row.get_ref(index)? {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(x) => Some(x.to_string()),
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(utf8_ignoring_errors(bytes)),
        })
    };
    Ok(AgentRecord {
        // `id INTEGER PRIMARY KEY` is the rowid: always an integer.
        id: row.get(0)?,
        name: text(1)?.unwrap_or_default(),
        ip: text(2)?,
        register_ip: text(3)?,
        internal_key: text(4)?,
        os_name: text(5)?,
        os_version: text(6)?,
        os_major: text(7)?,
        os_minor: text(8)?,
        os_codename: text(9)?,
        os_build: text(10)?,
        os_platform: text(11)?,
        os_uname: text(12)?,
        os_arch: text(13)?,
        version: text(14)?,
        config_sum: text(15)?,
        merged_sum: text(16)?,
        manager_host: text(17)?,
        node_name: text(18)?,
        date_add: text(19)?,
        last_keepalive: text(20)?,
        status: text(21)?,
        group: text(22)?,
    })
}

/// `bytes` as UTF-8, invalid sequences dropped (Python's `str(x, "utf-8", "ignore")`).
fn utf8_ignoring_errors(bytes: &[u8]) -> String {
    bytes.utf8_chunks().map(|chunk| chunk.valid()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_dropped_as_python_ignores_it() {
        assert_eq!(utf8_ignoring_errors(b"ab\xffc\xe2\x82"), "abc");
        assert_eq!(utf8_ignoring_errors("été".as_bytes()), "été");
    }
}
