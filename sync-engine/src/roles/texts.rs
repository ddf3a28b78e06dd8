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

/// Texts of the distributed API commands (3.9.5 `master.py`, `worker.py`, `local_server.py`,
/// `local_client.py`).
pub mod dapi_text {
    /// `ok` reply to a `dapi` request taken in.
    pub const ADDED: &str = "Added request to API requests queue";
    /// Master's `ok` reply to `dapi_forward` to one worker.
    pub const FORWARDED_TO_WORKER: &str = "Request forwarded to worker node";
    /// Master's `ok` reply to `dapi_forward` to every worker.
    pub const FORWARDED_TO_ALL: &str = "Request forwarded to all worker nodes";
    /// Master's `ok` reply to `dapi_forward` to every worker when none is connected.
    pub const NO_WORKERS: &str = "There are no connected worker nodes";
    /// `ok` reply to a `dapi_res` passed on to a local client.
    pub const RESPONSE_FORWARDED: &str = "Response forwarded to worker";
    /// Master's `ok` reply to a `dapi_res` that answers one of its forwarded requests.
    pub const FORWARDED_RESPONSE: &str = "Forwarded response";
    /// `err` reply to a `dapi_res` / `dapi_err` for nobody waiting.
    pub const CANNOT_FORWARD: &str = "Could not forward request, connection is not available";
    /// `ok` reply to a `dapi_err` passed on.
    pub const ERROR_FORWARDED: &str = "DAPI error forwarded to worker";
    /// `ok` reply to a local `send_file` (both roles: upstream's master says "master" too).
    pub const FORWARDING_FILE: &str = "Forwarding file to master node";
    /// `send_f_res` payload when the file arrived (3.9.5 `Handler.send_file`'s result).
    pub const FILE_SENT: &str = "File sent";
}

/// Whether a reply value is upstream's failure: 3.9.5 turns every `err` reply (and a timeout)
/// into a value starting with `Error`, and its callers test exactly that prefix.
pub(crate) fn is_error_value(value: &[u8]) -> bool {
    value.starts_with(b"Error")
}
