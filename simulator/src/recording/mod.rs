//! The recorded upstream 3.9.5 session (`vectors/v3.9/session`) in the forms conformance tests
//! compare against: the link's frames in order, split into flows, rounds and payload shapes; the
//! recorded peers' replies and requests as a script a stand-in peer can play; the packages the
//! frames carried; the install trees before the run and the state on disk after it.
//!
//! Why one module: two tests replay the same recording — the simulator's conformance test (our
//! master and our worker on virtual time) and the tokio adapter's session test (a scripted
//! upstream peer against one of our nodes over real TCP) — and both must judge "answers in kind"
//! the same way. One reading of the recording, one notion of shape, round and flow, so the two
//! cannot drift apart.
//!
//! One file per part of that reading: `link` (the frames), `flows` (flows, exchanges, rounds,
//! shapes), `script` (playing one side), `packages`, `local_calls`, and `trees` (the trees before
//! the run and the state after it); `fields` reads the vector files. Their items are re-exported
//! here, so tests name them `recording::…` whichever file holds them.
//!
//! ```text
//!   raw/conn1_w2m.bin ─┐ decrypted, full plaintext,        ┌─► exchanges() ─► rounds()  (compare)
//!   raw/conn1_m2w.bin ─┼─► literal command fields ──► link ├─► script() / Replies        (replay)
//!   <role>_frames.jsonl┘ (order as one process saw it)     └─► packages()                (compare)
//! ```
//!
//! What is left out: DAPI (`dapi*` and the `new_str` / `str_upd` string transfers it rides on) is
//! a later issue; [`Flow::Dapi`] keeps those frames apart so tests can say what they skip.

mod fields;
mod flows;
mod link;
mod local_calls;
mod packages;
mod script;
mod trees;

use std::time::Duration;

use wazuh_cluster_protocol::fernet::Fernet;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_sync::integrity::storage::Timestamp;
use wazuh_cluster_sync::roles::NodeConfig;

pub use flows::{
    Exchange, Flow, answered, dump, exchanges, flow_of, flow_order, payload_shape, request_flows,
    rounds, shape,
};
pub use link::{LinkFrame, is_reply, link_of_tap, recorded_link, recorded_stream};
pub use local_calls::{LocalCall, LocalFrame, local_control_calls, local_dapi_calls};
pub use packages::{PackageSummary, package_summary, packages};
pub use script::{Replies, Reply, Trigger, Turn, ends_round, script};
pub use trees::{
    AgentInfoFile, RecordedCheck, agent_groups, agent_info, dir_names, recorded_check,
    recorded_tree,
};

use crate::cluster::{Cluster, ClusterBuilder};
use crate::fixtures::recorded_intervals;
use crate::sim::SimConfig;
use crate::tree::storage_from;
use fields::bad;

/// The recording's cluster key (README: 32 ASCII characters).
pub use wazuh_cluster_vectors::CLUSTER_KEY as KEY;
/// The recorded master's node name.
pub const MASTER_NAME: &str = "master01";
/// The recorded worker's node name.
pub const WORKER_NAME: &str = "worker1";
/// Unix time at the start of the run `trees.json` was taken for: its agent-info files are dated
/// "start of the run minus 60 s" (mtime 1795683021).
pub const TREES_START: u64 = 1_795_683_081;

/// Which of the two recorded nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `master01`.
    Master,
    /// `worker1`.
    Worker,
}

impl Role {
    /// The other node.
    pub fn other(self) -> Role {
        match self {
            Role::Master => Role::Worker,
            Role::Worker => Role::Master,
        }
    }

    /// The raw byte stream this node sent.
    pub(super) fn raw_file(self) -> &'static str {
        match self {
            Role::Master => "v3.9/session/raw/conn1_m2w.bin",
            Role::Worker => "v3.9/session/raw/conn1_w2m.bin",
        }
    }

    /// The frames this node's process logged.
    pub(super) fn frames_file(self) -> &'static str {
        match self {
            Role::Master => "v3.9/session/master_frames.jsonl",
            Role::Worker => "v3.9/session/worker_frames.jsonl",
        }
    }

    /// The handler class of the TCP link in this node's log (local-socket handlers are others).
    pub(super) fn handler(self) -> &'static str {
        match self {
            Role::Master => "MasterHandler",
            Role::Worker => "WorkerHandler",
        }
    }
}

/// Why the recording could not be read as expected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// A vector file does not have the layout its README describes.
    #[error("vector {file}: {what}")]
    Vector {
        /// The vector file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// A storage could not be read back.
    #[error("reading a tree: {0}")]
    Storage(String),
    /// The replayed cluster could not be set up or run.
    #[error("replaying the recorded cluster: {0}")]
    Replay(String),
    /// The frames of a file transfer do not make a readable package.
    #[error("package {name}: {what}")]
    Package {
        /// The transferred file's name.
        name: String,
        /// What is wrong.
        what: String,
    },
}

/// The recording's Fernet (the cluster key of the README).
pub fn fernet() -> Result<Fernet, RecordingError> {
    let key = ClusterKey::new(KEY).map_err(|e| bad("README.md", e.to_string()))?;
    Ok(Fernet::new(&key))
}

/// How long the recorded worker ran: the replayed cluster runs as long before it is compared.
pub const RECORDED_RUN: Duration = Duration::from_secs(23);

/// Our master and worker started from the two recorded install trees, with the recording's key,
/// start time and intervals (one seed, so every replay is the same), after [`RECORDED_RUN`] of
/// synchronisation: what the conformance tests set next to the recording.
pub fn replayed_cluster() -> Result<Cluster, RecordingError> {
    let start = Timestamp::from_secs(TREES_START as i64);
    let tree = |role| {
        storage_from(recorded_tree(role, start)?)
            .map_err(|e| RecordingError::Storage(e.to_string()))
    };
    let config = SimConfig {
        key: KEY.to_owned(),
        unix_start: TREES_START,
        seed: 3_9_5,
        ..SimConfig::default()
    };
    let replay = |e: &dyn std::fmt::Display| RecordingError::Replay(e.to_string());
    let mut cluster = ClusterBuilder::new(config)
        .master(MASTER_NAME, tree(Role::Master)?)
        .worker(WORKER_NAME, tree(Role::Worker)?)
        .configure(recorded_intervals)
        .build()
        .map_err(|e| replay(&e))?;
    cluster.sim.run_for(RECORDED_RUN).map_err(|e| replay(&e))?;
    Ok(cluster)
}

/// The recorded intervals ([`recorded_intervals`]) divided by `divisor`: the same cadence, run
/// faster, for tests on the real clock.
pub fn recorded_intervals_divided(config: &mut NodeConfig, divisor: u32) {
    recorded_intervals(config);
    let divisor = divisor.max(1);
    let i = &mut config.items.intervals;
    for d in [
        &mut i.worker.sync_integrity,
        &mut i.worker.sync_files,
        &mut i.worker.keep_alive,
        &mut i.worker.connection_retry,
        &mut i.master.recalculate_integrity,
        &mut i.master.check_worker_lastkeepalive,
        &mut i.master.max_allowed_time_without_keepalive,
    ] {
        *d /= divisor;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn intervals_divided() {
        let wall = wazuh_cluster_protocol::connection::WallClock::new(
            std::time::Instant::now(),
            1_800_000_000,
        );
        let mut c = NodeConfig::new(wazuh_cluster_sync::roles::NodeType::Worker, "w", None, wall);
        recorded_intervals_divided(&mut c, 4);
        let i = &c.items.intervals;
        assert_eq!(i.worker.sync_integrity, Duration::from_millis(750));
        assert_eq!(i.worker.keep_alive, Duration::from_millis(500));
        assert_eq!(i.master.recalculate_integrity, Duration::from_millis(250));
        assert_eq!(
            i.master.max_allowed_time_without_keepalive,
            Duration::from_millis(7500)
        );
    }
}
