//! The distributed API functions a node runs itself, over its install's files (through a
//! [`Storage`], so a test or the simulator runs them on an in-memory tree exactly as the daemon
//! does on disk). A route without a built-in function is answered with
//! [`not_served`](super::call::not_served): an adapter may run those with the install's own
//! framework instead (the daemon's `--api-exec`).

use super::call::{ApiCall, not_served};
use crate::integrity::storage::{Storage, Timestamp};

/// The built-in executor. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct BuiltinExecutor;

impl BuiltinExecutor {
    /// Whether `call`'s function is one of the built-in ones.
    pub fn serves(&self, _call: &ApiCall) -> bool {
        false
    }

    /// Runs `call` over `storage` at wall-clock time `now`; the answer in 3.9.5's `print_json`
    /// shape.
    pub fn run<S: Storage + ?Sized>(
        &self,
        _storage: &S,
        call: &ApiCall,
        _now: Timestamp,
    ) -> String {
        not_served(call)
    }
}
