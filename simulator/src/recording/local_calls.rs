//! The calls local clients (`cluster_control`, the API) made on a node's Unix socket, with the
//! time the node received them on the clock of its TCP link.

use std::collections::BTreeMap;
use std::time::Duration;

use super::fields::{array, bad, f64_field, str_field, u64_field};
use super::{RecordingError, Role};

/// One frame of a local client's call on a node's Unix socket (plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFrame {
    /// Sent by the client (else by the node's local server).
    pub from_client: bool,
    /// Header counter.
    pub counter: u32,
    /// Command.
    pub command: String,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One recorded call of a local client (`cluster_control` or the API) to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCall {
    /// The recording's title (`control.get_nodes()`).
    pub title: String,
    /// When the node received it, from the first frame of its TCP link.
    pub at: Duration,
    /// The frames, in order.
    pub frames: Vec<LocalFrame>,
}

/// Text the recording stores as latin-1 (one char a byte), back to bytes.
fn latin1(text: &str, file: &str) -> Result<Vec<u8>, RecordingError> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| bad(file, "payload is not latin-1")))
        .collect()
}

/// The `get_nodes` / `get_health` calls made to `role`'s local socket (the recording's
/// `control.*` calls), timed from `role`'s frame log.
///
/// # Errors
/// A malformed vector, or a call the frame log does not show.
pub fn local_control_calls(role: Role) -> Result<Vec<LocalCall>, RecordingError> {
    local_calls(role, "control.")
}

/// The distributed API calls made to `role`'s local socket (the recording's `dapi …` calls that
/// reached the socket: the API ran the others in its own process), timed as
/// [`local_control_calls`].
///
/// # Errors
/// As [`local_control_calls`].
pub fn local_dapi_calls(role: Role) -> Result<Vec<LocalCall>, RecordingError> {
    local_calls(role, "dapi ")
}

/// The recorded calls whose title starts with `prefix` and that put frames on the socket.
fn local_calls(role: Role, prefix: &str) -> Result<Vec<LocalCall>, RecordingError> {
    let file = match role {
        Role::Master => "v3.9/dapi_via_master.json",
        Role::Worker => "v3.9/dapi_via_worker.json",
    };
    let log = role.frames_file();
    let lines = wazuh_cluster_vectors::jsonl(log);
    let mut link_start = None;
    let mut received: BTreeMap<u64, f64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get("event").is_none()) {
        let conn = str_field(line, "conn", log)?;
        let t = f64_field(line, "t", log)?;
        if conn == role.handler() {
            link_start.get_or_insert(t);
        } else if str_field(line, "dir", log)? == "RECV" {
            received.insert(u64_field(line, "counter", log)?, t);
        }
    }
    let t0 = link_start.ok_or_else(|| bad(log, "no frame on the link"))?;
    let doc = wazuh_cluster_vectors::json(file);
    let mut out = Vec::new();
    for call in array(&doc, "calls", file)? {
        let title = str_field(call, "title", file)?;
        if !title.starts_with(prefix) {
            continue;
        }
        let mut frames = Vec::new();
        for f in array(call, "local_frames", file)? {
            let counter = u64_field(f, "counter", file)?;
            frames.push(LocalFrame {
                from_client: str_field(f, "dir", file)? == "client->local_server",
                counter: u32::try_from(counter).map_err(|_| bad(file, "counter"))?,
                command: str_field(f, "cmd", file)?.to_owned(),
                payload: latin1(str_field(f, "payload", file)?, file)?,
            });
        }
        let Some(first) = frames.first() else {
            continue;
        };
        let t = received
            .get(&u64::from(first.counter))
            .ok_or_else(|| bad(log, format!("{title}: not in the log")))?;
        out.push(LocalCall {
            title: title.to_owned(),
            at: Duration::from_secs_f64((t - t0).max(0.0)),
            frames,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_control_calls_of_the_worker() {
        let calls = local_control_calls(Role::Worker).unwrap();
        let titles: Vec<&str> = calls.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "control.get_nodes()",
                "control.get_health()",
                "control.get_health(filter_node=[\"worker1\"])"
            ]
        );
        let cmds: Vec<(bool, &str)> = calls[0]
            .frames
            .iter()
            .map(|f| (f.from_client, f.command.as_str()))
            .collect();
        assert_eq!(
            cmds,
            [
                (true, "get_nodes"),
                (false, "ok"),
                (false, "control_res"),
                (true, "ok")
            ]
        );
        assert_eq!(calls[0].frames[1].payload, b"Sent request to master node");
        assert!(calls[0].at > Duration::from_secs(7) && calls[0].at < calls[1].at);
    }

    #[test]
    fn local_dapi_calls_of_both_nodes() {
        let titles = |role| -> Vec<String> {
            local_dapi_calls(role)
                .unwrap()
                .into_iter()
                .map(|c| c.title)
                .collect()
        };
        assert_eq!(
            titles(Role::Worker),
            [
                "dapi /agents (local_master)",
                "dapi /syscollector/:agent_id/os (distributed_master)",
                "dapi /cluster/nodes",
                "dapi /cluster/healthcheck"
            ]
        );
        // The master's API ran `/agents` itself; for the cluster routes it asked the socket
        // `get_nodes` / `get_health`, and it forwarded the agent request.
        assert_eq!(
            titles(Role::Master),
            [
                "dapi /syscollector/:agent_id/os (distributed_master)",
                "dapi /cluster/nodes",
                "dapi /cluster/healthcheck"
            ]
        );
    }
}
