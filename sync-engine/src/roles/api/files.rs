//! Files the distributed API part sends and takes (3.9.5 `local_server.py` `send_file_request`,
//! `dapi.py` `send_tmp_file`, `common.py` `send_file`):
//!
//! * a local client's `send_file <path> <node>`: `ok` `Forwarding file to master node` (both
//!   roles say so, as upstream), the file to worker `<node>` (master) or to the master (worker),
//!   then the request `send_f_res` `File sent` (or upstream's failure text) to the client;
//! * a request with a `tmp_file` argument that leaves this node goes after its file: the file
//!   first, then the request, whatever became of the file (upstream ignores `send_tmp_file`'s
//!   result too), and the file is removed here once sent, as `dapi.py` does;
//! * a request with `tmp_file` that arrives on a link claims the file the peer sent before it.
//!
//! Differences from 3.9.5, on purpose: the path a local client names must lie under the install
//! root and reach a regular file without a symlink (upstream sends any file the daemon can read);
//! the file goes into the peer's inbox `queue/cluster/<worker>/` under its own name (upstream names
//! it by its path, and a peer writes it there, anywhere), and the request's `tmp_file` is pointed
//! there, so a 3.9.5 peer (which writes any path and reads `tmp_file` under its root) and ours
//! (which writes only into the inbox) both find it. A 3.9.5 peer sends its `tmp_file` as
//! `new_file /tmp/<name>`: we store that one form in its inbox too (not in the install's tmp/),
//! and its request's `tmp/<name>` claims it there.

use std::time::Instant;

use bytes::Bytes;
use wazuh_cluster_protocol::connection::{TransferId, upstream_tmp_name};

use super::cluster::ClusterView;
use super::{Asked, DistributedApi};
use crate::dapi::{DapiError, DapiRequest};
use crate::integrity::path::InstallPath;
use crate::integrity::storage::EntryKind;
use crate::roles::config::NodeType;
use crate::roles::effects::{Effect, EffectOutput, EffectResult};
use crate::roles::error::SendFailure;
use crate::roles::ids::PeerId;
use crate::roles::shell::{JobId, Shell, cluster_dir};
use crate::roles::texts::dapi_text;

/// Why a path cannot be sent: refused before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRefusal {
    /// `send_file`'s payload is not `<path> <node>`.
    #[error("send_file takes '<path> <node>'")]
    Payload,
    /// A local client's path is relative (upstream's clients name absolute paths).
    #[error("{0} is not an absolute path")]
    NotAbsolute(String),
    /// The path does not lie under the install root.
    #[error("{path} is outside the install root {root}")]
    OutsideRoot { path: String, root: String },
    /// The path has `..`, `.`, an empty component or a bad character.
    #[error("{0} is not a plain path under the install root")]
    NotPlain(String),
}

/// The file `path` a client names (absolute) or a request names (`tmp_file`: relative to the
/// root, or absolute under it), as a path of the install. Only the text is checked here; the stat
/// before the send refuses a symlink anywhere on the way.
pub(crate) fn confine(root: &str, path: &str) -> Result<InstallPath, PathRefusal> {
    let inside = if path.starts_with('/') {
        let root = root.trim_end_matches('/');
        path.strip_prefix(root)
            .filter(|rest| rest.starts_with('/'))
            .ok_or_else(|| PathRefusal::OutsideRoot {
                path: path.to_owned(),
                root: root.to_owned(),
            })?
            .to_owned()
    } else {
        format!("/{path}")
    };
    InstallPath::new(&inside).map_err(|_| PathRefusal::NotPlain(path.to_owned()))
}

/// What follows a file once sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AfterSend {
    /// `send_f_res <result>` to local client `client`.
    Client { client: PeerId, seq: u64 },
    /// The request that named the file (`tmp_file` already pointed at it), sent once the file
    /// went; the source is removed then.
    Request {
        command: &'static str,
        payload: Vec<u8>,
        then: Asked,
    },
}

/// A file on its way to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileSend {
    target: PeerId,
    source: InstallPath,
    /// The name on the wire: the file's name in the inbox it goes to.
    wire: InstallPath,
    /// How the client named it (for upstream's `File <f> not found.`).
    shown: String,
    then: AfterSend,
}

impl FileSend {
    /// Whether its result goes to local client `peer`.
    pub(super) fn for_client(&self, peer: PeerId) -> bool {
        matches!(self.then, AfterSend::Client { client, .. } if client == peer)
    }
}

impl DistributedApi {
    /// Whether disk job `job` is the part's.
    pub(crate) fn awaits_job(&self, job: JobId) -> bool {
        self.stats.contains_key(&job) || self.removals.contains(&job)
    }

    /// Whether file transfer `transfer` on `peer` is the part's.
    pub(crate) fn sends_file(&self, peer: PeerId, transfer: TransferId) -> bool {
        self.sends.contains_key(&(peer, transfer))
    }

    /// A local client's `send_file <path> <node>`.
    pub(super) fn send_file_for_client(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        now: Instant,
        client: PeerId,
        counter: u32,
        payload: &Bytes,
    ) {
        match self.client_file(shell, view, client, payload) {
            Ok(send) => {
                let text = dapi_text::FORWARDING_FILE.as_bytes();
                shell.reply(now, client, counter, true, text);
                self.stat_then_send(shell, now, send);
            }
            Err(error) => shell.reply(now, client, counter, false, error.err_payload().as_bytes()),
        }
    }

    /// The send a `send_file` payload asks for, or why not.
    fn client_file(
        &self,
        shell: &Shell,
        view: &dyn ClusterView,
        client: PeerId,
        payload: &[u8],
    ) -> Result<FileSend, DapiError> {
        let refused = |r: PathRefusal| DapiError::Internal(r.to_string());
        let text = std::str::from_utf8(payload).map_err(|_| refused(PathRefusal::Payload))?;
        // Upstream: `path, node_name = data.decode().split(' ')`, exactly two fields.
        let Some((path, node)) = text.split_once(' ').filter(|(_, n)| !n.contains(' ')) else {
            return Err(refused(PathRefusal::Payload));
        };
        if !path.starts_with('/') {
            return Err(refused(PathRefusal::NotAbsolute(path.to_owned())));
        }
        let config = shell.config();
        let source = confine(&config.install_root, path).map_err(refused)?;
        let (target, worker) = self.file_target(shell, view, node)?;
        let seq = shell.seq(client).unwrap_or_default();
        let wire = inbox_name(&worker, &source).map_err(refused)?;
        Ok(FileSend {
            target,
            source,
            wire,
            shown: path.to_owned(),
            then: AfterSend::Client { client, seq },
        })
    }

    /// Where a file for `node` goes and the worker whose inbox names it: on the master, worker
    /// `node` (3022 when not connected); on a worker, the master whatever `node` says (upstream's
    /// worker ignores it; its API sends `None`), 3023 without a link.
    fn file_target(
        &self,
        shell: &Shell,
        view: &dyn ClusterView,
        node: &str,
    ) -> Result<(PeerId, String), DapiError> {
        let config = shell.config();
        match config.node_type {
            NodeType::Master => view
                .worker_links()
                .into_iter()
                .find(|(name, _)| name == node)
                .map(|(name, peer)| (peer, name))
                .ok_or_else(|| DapiError::UnknownNode(node.to_owned())),
            NodeType::Worker => view
                .master_link()
                .map(|peer| (peer, config.node_name.clone()))
                .ok_or(DapiError::MasterNotConnected),
        }
    }

    /// Sends `command payload` on `peer` as [`DistributedApi::ask`] does, after `file` (from
    /// [`tmp_file_to_send`]) when there is one. `false` when nothing could start.
    #[expect(
        clippy::too_many_arguments,
        reason = "the request's coordinates as `ask` takes them, plus its file"
    )]
    pub(super) fn ask_after_file(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        file: Option<TmpFile>,
        command: &'static str,
        payload: Vec<u8>,
        then: Asked,
    ) -> bool {
        let Some(TmpFile {
            source,
            wire,
            shown,
        }) = file
        else {
            return self.ask(shell, now, peer, command, &payload, then);
        };
        if shell.seq(peer).is_none() {
            return false;
        }
        let send = FileSend {
            target: peer,
            source,
            wire,
            shown,
            then: AfterSend::Request {
                command,
                payload,
                then,
            },
        };
        self.stat_then_send(shell, now, send);
        true
    }

    /// The file the request `json` from `peer` names as `tmp_file`, if the peer sent it: claimed
    /// (the caller removes it when the request is done), with the request pointed at it. A
    /// 3.9.5 peer's `tmp/<name>` (or `/tmp/<name>`) is the file it sent as `new_file
    /// /tmp/<name>`, which landed in its inbox; any other is looked up by its name in the peer's
    /// inbox, where our sender puts it.
    pub(super) fn claim_for_request(
        &mut self,
        shell: &mut Shell,
        view: &dyn ClusterView,
        peer: PeerId,
        json: &[u8],
    ) -> Option<(String, InstallPath)> {
        // Most requests have no file: no parse for them.
        if !json.windows(8).any(|w| w == b"tmp_file") {
            return None;
        }
        let mut request = DapiRequest::parse(json, &shell.config().limits.api.json).ok()?;
        let worker = match shell.config().node_type {
            NodeType::Master => view
                .worker_links()
                .into_iter()
                .find(|(_, p)| *p == peer)
                .map(|(name, _)| name)?,
            NodeType::Worker => shell.config().node_name.clone(),
        };
        let tmp_file = request.tmp_file()?;
        let upstream = format!("/{}", tmp_file.trim_start_matches('/'));
        let wire = if upstream_tmp_name(upstream.as_bytes()).is_some() {
            upstream
        } else {
            let name = tmp_file.rsplit('/').next()?;
            cluster_dir(&worker)?.join(name).ok()?.as_str().to_owned()
        };
        let claimed = shell.claim_received(peer, wire.as_bytes())?;
        request.set_tmp_file(claimed.as_str().trim_start_matches('/'));
        Some((request.to_python_json(), claimed))
    }

    /// The file task `task` claimed, removed now that the task is done.
    pub(super) fn release_claimed(&mut self, shell: &mut Shell, task: u64) {
        if let Some(path) = self.claimed.remove(&task) {
            self.remove_file(shell, path);
        }
    }

    /// Removes a file the part owns (absent is fine).
    pub(super) fn remove_file(&mut self, shell: &mut Shell, path: InstallPath) {
        let job = shell.run_node_job(Effect::RemoveFile { path });
        self.removals.insert(job);
    }

    /// First the stat (a regular file, no symlink on the way), then the send.
    fn stat_then_send(&mut self, shell: &mut Shell, now: Instant, send: FileSend) {
        let limit = shell.config().limits.api.max_requests;
        if self.stats.len() + self.sends.len() >= limit {
            let text = format!("Error sending file: too many files in transfer (limit {limit})");
            return self.file_done(shell, now, send, text.into_bytes());
        }
        let job = shell.run_node_job(Effect::StatFile {
            path: send.source.clone(),
        });
        self.stats.insert(job, send);
    }

    /// A disk job of the part returned.
    pub(super) fn job_done(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        job: JobId,
        result: EffectResult,
    ) {
        if self.removals.remove(&job) {
            return;
        }
        let Some(send) = self.stats.remove(&job) else {
            return;
        };
        let size = match result {
            Ok(EffectOutput::Stat(Some(stat))) if stat.kind == EntryKind::File => stat.size,
            Ok(EffectOutput::Stat(None)) => {
                let text = format!("File {} not found.", send.shown);
                return self.file_done(shell, now, send, text.into_bytes());
            }
            Ok(EffectOutput::Stat(Some(stat))) => {
                let text = format!(
                    "Error sending file: {} is a {:?}, not a file",
                    send.shown, stat.kind
                );
                return self.file_done(shell, now, send, text.into_bytes());
            }
            Ok(other) => {
                let text = format!("Error sending file: unexpected {}", other.kind());
                return self.file_done(shell, now, send, text.into_bytes());
            }
            Err(e) => {
                let text = format!("Error sending file: {}: {e}", send.shown);
                return self.file_done(shell, now, send, text.into_bytes());
            }
        };
        match shell.send_file_as(now, send.target, &send.source, &send.wire, size) {
            Some(transfer) => {
                self.sends.insert((send.target, transfer), send);
            }
            None => {
                let text = format!("Error sending file: {} could not start", send.shown);
                self.file_done(shell, now, send, text.into_bytes());
            }
        }
    }

    /// A file of the part's reached the peer or did not.
    pub(super) fn file_sent(
        &mut self,
        shell: &mut Shell,
        now: Instant,
        peer: PeerId,
        transfer: TransferId,
        failure: Option<SendFailure>,
    ) {
        if let Some(send) = self.sends.remove(&(peer, transfer)) {
            let result = match failure {
                None => dapi_text::FILE_SENT.as_bytes().to_vec(),
                Some(failure) => failure.to_string().into_bytes(),
            };
            self.file_done(shell, now, send, result);
        }
    }

    /// The files waiting on closed `peer`s fail; those for closed clients are forgotten.
    pub(super) fn files_closed(&mut self, shell: &mut Shell, now: Instant, peer: PeerId) {
        let for_peer = |send: &FileSend| send.target == peer || send.for_client(peer);
        let mut failed: Vec<FileSend> = Vec::new();
        self.stats.retain(|_, send| {
            !for_peer(send) || {
                failed.push(send.clone());
                false
            }
        });
        self.sends.retain(|_, send| {
            !for_peer(send) || {
                failed.push(send.clone());
                false
            }
        });
        for send in failed {
            let text = b"Error sending file: connection lost".to_vec();
            self.file_done(shell, now, send, text);
        }
    }

    /// What follows a file, with upstream's `send_file` result.
    fn file_done(&mut self, shell: &mut Shell, now: Instant, send: FileSend, result: Vec<u8>) {
        match send.then {
            AfterSend::Client { client, seq } => {
                if shell.is_live(client, seq) {
                    self.ask(shell, now, client, "send_f_res", &result, Asked::Notice);
                }
            }
            AfterSend::Request {
                command,
                payload,
                then,
            } => {
                self.remove_file(shell, send.source);
                if !self.ask(shell, now, send.target, command, &payload, then) {
                    let text = b"Error sending request: connection lost".to_vec();
                    self.answered(shell, now, then, text);
                }
            }
        }
    }
}

/// A request's `tmp_file`, to send before the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TmpFile {
    source: InstallPath,
    wire: InstallPath,
    shown: String,
}

/// The `tmp_file` `request` names, if it has one under the install `root`, with the request
/// pointed at the name it gets in `worker`'s inbox (3.9.5 `dapi.py` sends it before forwarding).
/// A path outside the root is left as is: the node that runs the request answers for it.
pub(super) fn tmp_file_to_send(
    root: &str,
    worker: &str,
    request: &mut DapiRequest,
) -> Option<TmpFile> {
    let shown = request.tmp_file()?.to_owned();
    let source = confine(root, &shown).ok()?;
    let wire = inbox_name(worker, &source).ok()?;
    request.set_tmp_file(wire.as_str().trim_start_matches('/'));
    Some(TmpFile {
        source,
        wire,
        shown,
    })
}

/// `/queue/cluster/<worker>/<file name>`: where the peer's receiver writes `source`.
fn inbox_name(worker: &str, source: &InstallPath) -> Result<InstallPath, PathRefusal> {
    let refused = || PathRefusal::NotPlain(source.as_str().to_owned());
    let name = source.file_name().ok_or_else(refused)?;
    cluster_dir(worker)
        .and_then(|dir| dir.join(name).ok())
        .ok_or_else(refused)
}
