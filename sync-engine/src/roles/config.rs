//! What a node is told at start: who it is, which cluster it joins, its cluster.json, and the
//! bounds that keep a hostile or slow peer from growing its memory.

use std::time::{Duration, Instant};

use wazuh_cluster_protocol::connection::{ConnectionConfig, InboxQuota, WallClock};
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;

use crate::dapi::DapiLimits;
use crate::integrity::apply::ApplyLimits;
use crate::integrity::items::ClusterItems;
pub use crate::integrity::items::NodeType;
use crate::integrity::merged::MergedLimits;
use crate::integrity::package::PackageLimits;
use crate::integrity::storage::Timestamp;

/// Longest node name accepted (ours: names become directory names).
pub const MAX_NODE_NAME_LEN: usize = 64;

/// Our node-name rule, stricter than upstream's (any name without a space): 1 to 64 of
/// `[A-Za-z0-9_.-]`, not starting with `.`, because the name becomes the directory
/// `queue/cluster/<name>/` on both nodes.
pub fn valid_node_name(name: &[u8]) -> bool {
    (1..=MAX_NODE_NAME_LEN).contains(&name.len())
        && name[0] != b'.'
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Descriptors a file being received holds while its staged write is open: the file and its
/// directory (the confined storage writes through the directory's descriptor).
pub const DESCRIPTORS_PER_INCOMING_FILE: usize = 2;

/// Files a link may always receive at once when the descriptor budget has room, however small its
/// quarter of [`NodeLimits::max_transfer_descriptors`] is.
pub const MIN_FILE_SHARE: usize = 4;

/// Most files one link may receive at once, however large the descriptor budget: a worker sends
/// at most two at once and a master one, so a quarter of a budget sized for 1,024 workers (1,024
/// files) would only be room for a hostile link to trickle into.
pub const MAX_FILE_SHARE: usize = 64;

/// Bounds of a node (TigerBeetle style: a limit on everything a peer can make it hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLimits {
    /// Master: most registered workers; a `hello` beyond it is refused.
    pub max_workers: usize,
    /// Most clients on the local socket at once; one more takes the place of the longest silent
    /// client the node owes nothing, or is refused when every one waits for an answer.
    pub max_local_clients: usize,
    /// A local client that sent nothing this long while the node owes it no answer is closed
    /// (3.9.5's tools send one command at once and wait for its answer).
    pub local_idle_timeout: Duration,
    /// Master: how long the holder of a name another link's `hello` claims has to answer an
    /// `echo-m` probe before it counts as dead and the claimant takes the name.
    pub hello_probe_timeout: Duration,
    /// Most bytes of frames yielded for one peer and not yet reported written with
    /// [`Node::handle_written`](super::Node::handle_written) (adapter buffers included). File
    /// chunks for that peer are not produced above it (keepalives and replies still are), and
    /// [`Node::wants_input`](super::Node::wants_input) turns false. Beyond this queue, a file
    /// goes out one chunk per reply of the peer (stop-and-wait, as upstream), so a peer that
    /// stops reading holds at most one chunk plus small frames of ours.
    pub max_queued_output: usize,
    /// Most bytes of big output in flight, every link together (8 MiB): file chunks from their
    /// read until their frame is reported written, long-string pieces from their send until
    /// written. Beyond it (or when the [`memory_budget`](Self::memory_budget) has no room for
    /// the next piece), no link gets a new piece until bytes drain, and the links waiting are
    /// served in turn; one piece always goes when none is in flight. Keepalives, replies and
    /// requests are never held back by it. With 25 workers receiving at once, the master holds
    /// one 5 MiB chunk's frame at a time instead of one for each (peak RSS 104 MB before).
    /// A link has one piece on its way at a time anyway (see `Shell::resume_sends`), so one
    /// link's speed does not depend on it.
    pub max_output_in_flight: u64,
    /// Most bytes received from one peer and not yet written to disk (file chunks waiting for
    /// their effect). Above it [`Node::wants_input`](super::Node::wants_input) turns false; at
    /// twice it the connection is closed.
    pub max_pending_disk_bytes: usize,
    /// Descriptors the node may hold for files being received, every link together: each
    /// incoming file holds [`DESCRIPTORS_PER_INCOMING_FILE`] from its `new_file` until its staged
    /// write is committed or aborted (8,192, so 4,096 files: [`NodeLimits::transfer_descriptors_for`]
    /// the 1,024 [`max_workers`](Self::max_workers), so that every registered worker holds a whole
    /// reserve). A link may hold at most a quarter of them (at least [`MIN_FILE_SHARE`] files, at
    /// most [`MAX_FILE_SHARE`]), so no peer takes all; a `new_file` beyond the
    /// budget or the link's share is answered `err` (`Too many files being received by this
    /// node, try again later`), the connection stays open. An adapter derives it from the
    /// process's descriptor limit, after keeping room for its connections, the local socket and
    /// the node's own disk work (files sent, package builds and scans open and close their
    /// descriptors within one effect, so they need none of this budget).
    pub max_transfer_descriptors: usize,
    /// Places of that budget kept for each link that may send files (a registered worker on a
    /// master, the master link on a worker) that no other link may take (2): however many files
    /// other links hold, such a link can always receive this many at once. Reserves keep at most
    /// half the budget (1,024 links with the defaults); the links past that wait for a reserve a
    /// leaving link gives up and meanwhile share the other half. Two: a worker sends at most two files at once, its
    /// agent-info and its integrity or extra-valid package (extra-valid follows integrity's
    /// answer), and a master one (its integrity package).
    pub reserved_files_per_link: usize,
    /// Bytes the node may hold for its peers, every link together (256 MiB): frames being
    /// received (their declared payload, allocated when the header arrives), incoming long
    /// strings (their declared length), file data waiting for the disk and output not yet
    /// written. The peers' input may take all but an eighth, kept for the node's own work; one
    /// link's input at most a quarter (at least two of its largest frames, and its largest string
    /// with a frame to carry it). A `new_str` beyond is
    /// answered `err` (`Not enough memory on this node for the string, try again later`); a
    /// frame beyond closes its link (a frame cannot be answered; the worker connects again); a
    /// link whose file data waits for the disk is not read while it or the peers are over. Frames
    /// within the pre-`hello` bound (64 KiB) are always taken, so a `hello` or a keepalive never
    /// waits: what they add is bounded by that bound per link.
    pub memory_budget: u64,
    /// Master: most synchronisation tasks one worker may hold at once (one per kind: 3).
    pub max_tasks_per_worker: usize,
    /// Bounds applied to packages read from a peer.
    pub package: PackageLimits,
    /// Bounds of an apply.
    pub apply: ApplyLimits,
    /// Bounds of merged files.
    pub merged: MergedLimits,
    /// Largest package file read back from disk for reading or applying.
    pub max_package_file: u64,
    /// Bytes asked per chunk-read effect when sending a file (at most the connection's chunk).
    pub read_chunk: usize,
    /// Whether a file's next chunk is read and sealed while its previous chunk waits for the
    /// peer's answer (true), rather than once the peer answered. The bytes on the wire are the
    /// same (see `Connection::seal_chunk`); the sender's reading and sealing overlap the link's
    /// round trip and the peer's opening of the chunk instead of adding to it (about 20 ms per
    /// 5 MiB chunk here). A link holds one such chunk at most; it holds its frame's bytes of
    /// [`max_output_in_flight`](Self::max_output_in_flight) from its read until it is written,
    /// and is read only when the gate has room without waiting and no other link waits.
    pub seal_chunks_ahead: bool,
    /// Bounds of the distributed API part.
    pub api: ApiLimits,
    /// Master: a worker's integrity metadata may list at most twice the master's own files plus
    /// this many entries (its extra and extra-valid files); a longer one is refused while it is
    /// parsed, before any comparison (upstream compared whatever came: a 1.2 MB package of
    /// 400,000 entries cost a second of CPU and 500 MB per round).
    pub worker_metadata_margin: usize,
    /// A file a peer sent whole into its directory (`queue/cluster/<name>/`) that no task
    /// claimed this long after its `file_end` is removed (no task can claim it any more: a
    /// task waits `timeout_receiving_file`, 120 s by default, for its file).
    pub unclaimed_file_timeout: Duration,
    /// A link whose output (a file chunk or string piece, counted at the output gate) makes no
    /// progress this long is closed: it does not read, and the node-wide output in flight it
    /// holds would otherwise keep every other link's chunks waiting. Three times upstream's
    /// `timeout_cluster_request` (20 s), in which a 5 MiB chunk crosses even a 1 Mbit/s link.
    pub output_stall_timeout: Duration,
    /// Most files and bytes one link's directory holds: files being received plus files
    /// received and not yet claimed (upstream has no bound: one link filled 193 MB in 8 s).
    pub inbox_quota: InboxQuota,
}

/// Bounds of the distributed API part of a node: what a flood of requests can make it hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// Size and depth of request and answer documents.
    pub json: DapiLimits,
    /// Requests answered at once by this node (from its local clients and its peers); one more is
    /// answered at once with an error.
    pub max_requests: usize,
    /// Calls handed to the adapter's executor at once; the others wait their turn.
    pub max_calls: usize,
    /// Requests of one peer or local client answered at once (so no peer takes all).
    pub max_requests_per_peer: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            json: DapiLimits::default(),
            max_requests: 1024,
            max_calls: 16,
            max_requests_per_peer: 256,
        }
    }
}

/// The parts of the `<cluster>` block a node reports but does not act on itself (it answers them
/// to `get_config` and `/cluster/config`; the adapter binds and dials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `<port>`.
    pub port: u16,
    /// `<bind_addr>`.
    pub bind_addr: String,
    /// `<nodes>`.
    pub nodes: Vec<String>,
    /// `<hidden>`.
    pub hidden: bool,
}

impl Default for ClusterSettings {
    /// Upstream's defaults (3.9.5 `read_cluster_config`).
    fn default() -> Self {
        ClusterSettings {
            port: 1516,
            bind_addr: "0.0.0.0".to_owned(),
            nodes: vec!["NODE_IP".to_owned()],
            hidden: false,
        }
    }
}

impl NodeLimits {
    /// Descriptors a transfer budget needs for `links` links that may send files to hold whole
    /// reserves ([`reserved_files_per_link`](Self::reserved_files_per_link) places each, the
    /// reserves keeping at most half the pool): below it, the links past that many wait for a
    /// reserve and share what is left, and at the same instant of a round (1,000 workers started
    /// together) most of their files are refused and retried one interval later.
    pub fn transfer_descriptors_for(&self, links: usize) -> usize {
        links
            .saturating_mul(self.reserved_files_per_link)
            .saturating_mul(DESCRIPTORS_PER_INCOMING_FILE)
            .saturating_mul(2)
    }
}

impl Default for NodeLimits {
    fn default() -> Self {
        let mut limits = NodeLimits {
            max_workers: 1024,
            hello_probe_timeout: Duration::from_secs(5),
            max_local_clients: 64,
            local_idle_timeout: Duration::from_secs(30),
            max_queued_output: 16 << 20,
            max_output_in_flight: 8 << 20,
            max_pending_disk_bytes: 16 << 20,
            max_tasks_per_worker: 3,
            // Below: enough for every worker's reserve.
            max_transfer_descriptors: 0,
            reserved_files_per_link: 2,
            memory_budget: 256 << 20,
            package: PackageLimits::default(),
            apply: ApplyLimits::default(),
            merged: MergedLimits::default(),
            max_package_file: 1 << 30,
            read_chunk: wazuh_cluster_protocol::connection::DEFAULT_REQUEST_CHUNK,
            seal_chunks_ahead: true,
            api: ApiLimits::default(),
            worker_metadata_margin: 10_000,
            unclaimed_file_timeout: Duration::from_secs(300),
            output_stall_timeout: Duration::from_secs(60),
            // One package of the largest size read back, plus an agent-info and an extra-valid
            // package beside it; a worker's three tasks send one file each.
            inbox_quota: InboxQuota {
                files: 16,
                bytes: (1 << 30) + (512 << 20),
            },
        };
        limits.max_transfer_descriptors = limits.transfer_descriptors_for(limits.max_workers);
        limits
    }
}

/// Everything a [`Node`](super::Node) needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's name (`node_name`), checked with [`valid_node_name`].
    pub node_name: String,
    /// Master or worker.
    pub node_type: NodeType,
    /// The cluster's name (`name`, `wazuh` by default); `hello` must carry the same.
    pub cluster_name: String,
    /// The version announced in `hello` and required from workers (upstream demands the exact
    /// same string on both sides): `3.9.5` for profile 3.9.
    pub version: String,
    /// This node's address as `get_nodes` reports it (upstream: the master's `nodes[0]`).
    pub address: String,
    /// Worker: the master's `host:port` to dial.
    pub master_addr: String,
    /// The install root as local clients name files (upstream's `ossec_path`, `/var/ossec`):
    /// a local `send_file <path> <node>` names an absolute path, which must lie under it. Only
    /// text here (the node does no I/O); the adapter that opens the root sets it
    /// (`NodeSpec::prepare_start` in wazuh-cluster-host).
    pub install_root: String,
    /// Template of every connection: profile, key, wall-clock anchor, protocol bounds. The node
    /// sets the keepalive period and attempts from [`NodeConfig::items`] and claims its commands.
    pub connection: ConnectionConfig,
    /// cluster.json: integrity items and every interval.
    pub items: ClusterItems,
    /// Bounds.
    pub limits: NodeLimits,
    /// What `get_config` reports of the `<cluster>` block besides the fields above.
    pub settings: ClusterSettings,
}

impl NodeConfig {
    /// A profile-3.9 node with upstream's defaults: cluster `wazuh`, version `3.9.5`, 3.9.5's
    /// cluster.json, port 1516 on `127.0.0.1` for the master address.
    pub fn new(
        node_type: NodeType,
        node_name: &str,
        key: Option<ClusterKey>,
        wall_clock: WallClock,
    ) -> NodeConfig {
        let profile = Profile::V3_9;
        // One chunk in flight per file, as upstream (`file_window` 0). Pipelining is a choice
        // for clusters of our nodes only (`node --pipelined-chunks`): a 3.9.5 receiver replaces
        // its read buffer on every read and closes the link when a read ends inside a frame's
        // header (PROTOCOL.md §1.4), which back-to-back chunks make possible (about 0.5 % of
        // 300 MiB files at 256 KiB reads) and stop-and-wait never does; and it gained about 5 %
        // on a 500 MiB file here.
        let connection = ConnectionConfig::new(profile, key, wall_clock);
        NodeConfig {
            node_name: node_name.to_owned(),
            node_type,
            cluster_name: "wazuh".to_owned(),
            version: profile.upstream_version().to_owned(),
            address: "127.0.0.1".to_owned(),
            master_addr: "127.0.0.1:1516".to_owned(),
            install_root: "/var/ossec".to_owned(),
            connection,
            items: ClusterItems::defaults_3_9(),
            limits: NodeLimits::default(),
            settings: ClusterSettings::default(),
        }
    }

    /// `intervals.communication.timeout_receiving_file`.
    pub fn timeout_receiving_file(&self) -> Duration {
        self.items.intervals.communication.timeout_receiving_file
    }
}

/// The wall-clock time at `now` from an anchor (sub-second precision, unlike
/// [`WallClock::unix_secs_at`]). Public so that an adapter dates its effects exactly as the node
/// dates its own (one conversion, not two that could disagree).
pub fn unix_time_at(clock: &WallClock, now: Instant) -> Timestamp {
    let base = Duration::from_secs(clock.unix_secs);
    let at = if now >= clock.instant {
        base + (now - clock.instant)
    } else {
        base.saturating_sub(clock.instant - now)
    };
    Timestamp {
        secs: i64::try_from(at.as_secs()).unwrap_or(i64::MAX),
        nanos: at.subsec_nanos(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{unix_time_at, valid_node_name};
    use crate::integrity::storage::Timestamp;
    use wazuh_cluster_protocol::connection::WallClock;

    #[test]
    fn node_name_rule() {
        for ok in ["worker1", "w", "Worker_2.east-1", "a.", &"x".repeat(64)] {
            assert!(valid_node_name(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ".w",
            "..",
            "a/b",
            "a b",
            "w\u{e9}",
            "w:1",
            "w\0",
            &"x".repeat(65),
        ] {
            assert!(!valid_node_name(bad.as_bytes()), "{bad:?}");
        }
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "tests need an arbitrary origin instant"
    )]
    fn origin() -> std::time::Instant {
        std::time::Instant::now()
    }

    #[test]
    fn wall_time_keeps_sub_second_precision_on_both_sides_of_the_anchor() {
        let t0 = origin() + Duration::from_secs(10);
        // (anchor's Unix seconds, milliseconds from the anchor, expected time)
        let cases: [(u64, i64, i64, u32); 3] = [
            (1_795_682_923, 406_941, 1_795_683_329, 941_000_000),
            (1_795_682_923, -1_500, 1_795_682_921, 500_000_000),
            // The tokio adapter's case (it dates its effects with this function).
            (1_800_000_000, 2_500, 1_800_000_002, 500_000_000),
        ];
        for (anchor, offset_ms, secs, nanos) in cases {
            let clock = WallClock::new(t0, anchor);
            let offset = Duration::from_millis(offset_ms.unsigned_abs());
            let at = if offset_ms >= 0 {
                t0 + offset
            } else {
                t0 - offset
            };
            assert_eq!(
                unix_time_at(&clock, at),
                Timestamp { secs, nanos },
                "{offset_ms} ms from {anchor}"
            );
        }
    }
}
