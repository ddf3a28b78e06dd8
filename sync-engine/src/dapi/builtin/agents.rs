//! The agent functions of 3.9.5's `Agent` class — `get_agents_overview` (`/agents`),
//! `get_agent` (`/agents/:agent_id`), `get_agent_by_name` (`/agents/name/:agent_name`),
//! `get_agents_summary` (`/agents/summary`).
//!
//! Upstream answers them from `var/db/global.db`, an SQLite database that its `wazuh-modulesd`
//! fills from the install's files. The node takes that table's rows from the adapter when the
//! install has the database (`database`: the core reads no SQLite); without one it builds the
//! same table from those files, as `wazuh-modulesd` (3.9.5 `wm_database.c`) would fill it
//! (`table`). Either way it then runs upstream's queries on it (`query`, over the SQL
//! semantics of `sql`).
//!
//! Without a database, the fields come from these files:
//!
//! | field | where it comes from |
//! |---|---|
//! | `id`, `name` | `etc/client.keys` (agent 000: the manager, named `localhost`) |
//! | `registerIP` | `etc/client.keys`'s address (`any`, `10.0.0.0/24`); 000: `127.0.0.1` |
//! | `ip` | the agent-info's `#"_agent_ip":` line, else `registerIP` |
//! | `os` (`name`, `version`, `major`, `minor`, `codename`, `build`, `platform`, `uname`, `arch`), `version`, `configSum` | the agent-info file's first line, split as `wm_sync_agentinfo` splits it |
//! | `mergedSum` | the agent-info line `<sum> merged.mg` |
//! | `manager` | the agent-info's `#"_manager_hostname":` line (`""` without one) |
//! | `node_name` | the agent-info's `#"_node_name":` line, else the master's knowledge (`ApiCall::agent_nodes`), else `unknown` |
//! | `lastKeepAlive` | the agent-info file's modification time; 000: `9999-12-31 23:59:59` |
//! | `status` | from `lastKeepAlive` and `version`, as `Agent.calculate_status` (30 min) |
//! | `group` | the first line of `queue/agent-groups/<id>`, split on `,` |
//! | `dateAdd` | the agent's line of `queue/agents-timestamp` |
//!
//! An agent-info file `<name>-<address>` belongs to the agent of that name whose registered
//! address is `<address>` (or the network `<address>/<bits>`), as `wdb_find_agent` matches it; a
//! file whose first line lacks ` - ` or a newline is left out, as upstream leaves it.
//!
//! What the database holds and the files do not, left out of the answers (a field upstream
//! shows only when it is set):
//! * `dateAdd` of an agent without an `agents-timestamp` line, and of agent 000 (the time
//!   `wazuh-db` inserted the row);
//! * agent 000's `os`, `manager` (from the manager's `uname` and host name, which
//!   `wazuh-modulesd` reads from the system); its `name` is the schema's `localhost`, its
//!   `node_name` the master's knowledge or `unknown` (a live `wazuh-modulesd` writes the host
//!   name and the cluster node name there), its `version` that of `etc/ossec-init.conf`
//!   (`NAME VERSION`, what `wazuh-modulesd` writes);
//! * the database's own history: an agent removed from `client.keys` but not yet from the
//!   database, the fields of an agent-info file since deleted, the `status` column (wazuh-db's
//!   sync state, which a `search` would match against: not searched here).
//!
//! Output order: upstream builds each item from Python sets, so its key order changes from one
//! process to the next (the recordings show two orders for one query). The order here is fixed:
//! `os` first (upstream's nesting always puts it first), its keys sorted, then the fields in
//! the order of upstream's `Agent.fields`. Where upstream sorts by several fields at once (a
//! set, again), the fields count in the order given.
//!
//! ```text
//! etc/client.keys:                      001 agent-one any <key>
//! queue/agent-info/agent-one-any:       Linux |agent-one |4.15.0 |#58 |x86_64 [Ubuntu|ubuntu: 18.04.2 LTS (Bionic Beaver)] - Wazuh v3.9.5 / ab73...
//! → {"os": {"arch": "x86_64", "codename": "Bionic Beaver", "major": "18", "minor": "04",
//!           "name": "Ubuntu", "platform": "ubuntu", "uname": "Linux |agent-one |4.15.0 |#58 |x86_64",
//!           "version": "18.04.2 LTS"},
//!    "id": "001", "name": "agent-one", "ip": "any", "status": "Active", "version": "Wazuh v3.9.5",
//!    "manager": "", "configSum": "ab73...", "node_name": "unknown",
//!    "lastKeepAlive": "2019-07-01 16:53:20", "registerIP": "any"}
//! ```

mod agent_info;
pub(super) mod census;
mod clause;
pub(super) mod database;
#[cfg(test)]
mod end_to_end;
mod filters;
pub(super) mod get_agent;
pub(super) mod get_agent_by_name;
pub(super) mod overview;
mod query;
mod sql;
pub(super) mod summary;
mod table;

use self::sql::Affinity;

/// Seconds without a keep-alive after which an agent is disconnected (`common.limit_seconds`).
const LIMIT_SECONDS: i64 = 1800;

/// Agent 000's name: the manager's row as upstream's database schema inserts it.
pub(super) const MANAGER_NAME: &str = "localhost";

/// A field of upstream's `Agent.fields`, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Id,
    Name,
    Ip,
    Status,
    OsName,
    OsVersion,
    OsPlatform,
    Version,
    Manager,
    DateAdd,
    Group,
    MergedSum,
    ConfigSum,
    OsCodename,
    OsMajor,
    OsMinor,
    OsUname,
    OsArch,
    OsBuild,
    NodeName,
    LastKeepAlive,
    InternalKey,
    RegisterIp,
}

impl Field {
    /// Every field, in `Agent.fields` order.
    const ALL: [Field; 23] = [
        Field::Id,
        Field::Name,
        Field::Ip,
        Field::Status,
        Field::OsName,
        Field::OsVersion,
        Field::OsPlatform,
        Field::Version,
        Field::Manager,
        Field::DateAdd,
        Field::Group,
        Field::MergedSum,
        Field::ConfigSum,
        Field::OsCodename,
        Field::OsMajor,
        Field::OsMinor,
        Field::OsUname,
        Field::OsArch,
        Field::OsBuild,
        Field::NodeName,
        Field::LastKeepAlive,
        Field::InternalKey,
        Field::RegisterIp,
    ];

    /// The field's name in the API (`os.name`).
    fn api_name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
            Field::Ip => "ip",
            Field::Status => "status",
            Field::OsName => "os.name",
            Field::OsVersion => "os.version",
            Field::OsPlatform => "os.platform",
            Field::Version => "version",
            Field::Manager => "manager",
            Field::DateAdd => "dateAdd",
            Field::Group => "group",
            Field::MergedSum => "mergedSum",
            Field::ConfigSum => "configSum",
            Field::OsCodename => "os.codename",
            Field::OsMajor => "os.major",
            Field::OsMinor => "os.minor",
            Field::OsUname => "os.uname",
            Field::OsArch => "os.arch",
            Field::OsBuild => "os.build",
            Field::NodeName => "node_name",
            Field::LastKeepAlive => "lastKeepAlive",
            Field::InternalKey => "internal_key",
            Field::RegisterIp => "registerIP",
        }
    }

    /// The field named `name` in the API.
    fn from_api_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.api_name() == name)
    }

    /// The key under `os` of an `os.*` field.
    fn os_key(self) -> Option<&'static str> {
        self.api_name().strip_prefix("os.")
    }

    /// The first SQL token of the field's column expression in upstream's queries (what a
    /// syntax error there names).
    fn sql_token(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Name => "name",
            Field::Ip => "coalesce",
            Field::Status => "status",
            Field::OsName => "os_name",
            Field::OsVersion => "os_version",
            Field::OsPlatform => "os_platform",
            Field::Version => "version",
            Field::Manager => "manager_host",
            Field::DateAdd => "date_add",
            Field::Group => "`group`",
            Field::MergedSum => "merged_sum",
            Field::ConfigSum => "config_sum",
            Field::OsCodename => "os_codename",
            Field::OsMajor => "os_major",
            Field::OsMinor => "os_minor",
            Field::OsUname => "os_uname",
            Field::OsArch => "os_arch",
            Field::OsBuild => "os_build",
            Field::NodeName => "node_name",
            Field::LastKeepAlive => "last_keepalive",
            Field::InternalKey => "internal_key",
            Field::RegisterIp => "register_ip",
        }
    }

    /// The column's affinity: `id` is an `INTEGER` column, `ip` an expression, the rest `TEXT`.
    fn affinity(self) -> Affinity {
        match self {
            Field::Id => Affinity::Integer,
            Field::Ip => Affinity::Blob,
            _ => Affinity::Text,
        }
    }
}
