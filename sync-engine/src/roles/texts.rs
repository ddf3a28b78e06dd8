//! Texts both roles put on the wire, as upstream 3.9.5 writes them (`master.py`, `worker.py`,
//! `common.py`, `local_server.py`, `exception.py`), and ours where upstream has none. They live
//! apart from either role because a master and a worker answer some of the same commands
//! (`<task> <file>` ends, `get_nodes`/`get_health` from local clients).

/// Upstream 3.9.5 `hello` refusal texts, and ours.
pub mod hello_text {
    /// Name of a registered worker (from another host).
    pub const ALREADY_PRESENT: &str = "Client already present";
    /// The master's own name.
    pub const SAME_AS_MASTER: &str = "Same name as master";
    /// Another cluster name.
    pub const OTHER_CLUSTER: &str = "Worker does not belong to the same cluster";
    /// Another version string.
    pub const OTHER_VERSION: &str = "Worker and master versions are not the same";
    /// Ours: the node-name rule.
    pub const BAD_NAME: &str =
        "Invalid node name: use 1 to 64 of [A-Za-z0-9_.-], not starting with '.'";
    /// Ours: `max_workers` reached.
    pub const TOO_MANY: &str = "Too many workers connected";
}

/// Upstream 3.9.5 texts of the synchronisation commands.
pub mod sync_text {
    /// Reply to `_e`.
    pub const FILE_RECEIVED: &str = "File correctly received";
    /// `_e` without a space.
    pub const TASK_NOT_RECEIVED: &str = "Task name not received correctly";
    /// `_e` naming no running task.
    pub const TASK_UNKNOWN: &str = "Task name doesnt exist";
    /// Reply to `_r`.
    pub const ERROR_RECEIVED: &str = "Error received";
    /// Ours: a task request while that synchronisation runs.
    pub const BUSY: &str = "Synchronization already in progress";
    /// Worker's reply to `sync_m_c_ok`.
    pub const THANKS: &str = "Thanks";
    /// Reply to `<kind>_p` when the lock is free.
    pub const PERMISSION_GRANTED: &str = "True";
    /// Reply to `<kind>_p` when the lock is held.
    pub const PERMISSION_DENIED: &str = "False";
    /// The file part of a `<task> <file>` end when the sender could not send its file.
    pub const NO_FILE: &str = "Error";
}

/// Texts of a worker's local server (3.9.5 `local_server.py`, `exception.py`).
pub mod local_text {
    /// `ok` reply to a forwarded `get_nodes` / `get_health`.
    pub const SENT: &str = "Sent request to master node";
    /// `err` reply when the worker has no master connection (`WazuhException(3023)` as 3.9.5's
    /// `dispatch` writes it).
    pub const NOT_CONNECTED: &str = "WazuhException 3023 Worker node is not connected to master";
}

/// Whether a reply value is upstream's failure: 3.9.5 turns every `err` reply (and a timeout)
/// into a value starting with `Error`, and its callers test exactly that prefix.
pub(crate) fn is_error_value(value: &[u8]) -> bool {
    value.starts_with(b"Error")
}
