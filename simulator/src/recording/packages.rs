//! The packages (ZIP files) the link carried, rebuilt from their `file_upd` chunks and reduced to
//! what two runs share: member names and the shape of `cluster_control.json`.

use std::collections::BTreeMap;
use std::io::Cursor;

use serde_json::Value;
use wazuh_cluster_sync::integrity::package::{PackageLimits, PackageReader};

use super::flows::first_token;
use super::{Flow, LinkFrame, RecordingError, Role, request_flows, shape};

/// A package (the ZIP of a file transfer) reduced to what two runs share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSummary {
    /// Member names (install paths), sorted: upstream writes them in its dict's order, which
    /// carries no meaning.
    pub members: Vec<String>,
    /// [`shape`] of `cluster_control.json` with its object keys sorted.
    pub control: String,
}

/// A JSON value printed with object keys sorted, whatever order the writer used.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

/// Summarises one package.
///
/// # Errors
/// [`RecordingError::Package`] when `zip` is not a readable package.
pub fn package_summary(name: &str, zip: Vec<u8>) -> Result<PackageSummary, RecordingError> {
    let fail = |what: String| RecordingError::Package {
        name: name.to_owned(),
        what,
    };
    let reader = PackageReader::open(Cursor::new(zip), PackageLimits::default())
        .map_err(|e| fail(e.to_string()))?;
    let control: Value =
        serde_json::from_slice(reader.control_json()).map_err(|e| fail(e.to_string()))?;
    let mut members: Vec<String> = reader
        .members()
        .iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    members.sort();
    Ok(PackageSummary {
        members,
        control: shape(canonical(&control).as_bytes()),
    })
}

/// The packages sent on `link`, by sender and flow, in order: the `file_upd` chunks (`<path>
/// <chunk>`) between a `new_file` and its `file_end`. Needs whole payloads (not a tap's prefix).
///
/// # Errors
/// A transfer that is not a readable package.
pub fn packages(
    link: &[LinkFrame],
) -> Result<BTreeMap<(Role, Flow), Vec<PackageSummary>>, RecordingError> {
    let mut out: BTreeMap<(Role, Flow), Vec<PackageSummary>> = BTreeMap::new();
    // Transfers in progress, by sender and file name (two may interleave, see request_flows).
    let mut open: BTreeMap<(Role, &[u8]), Vec<u8>> = BTreeMap::new();
    for (f, flow) in link.iter().zip(request_flows(link)) {
        let Some(flow) = flow else { continue };
        let name = first_token(&f.payload);
        match f.command.as_str() {
            "new_file" => {
                open.insert((f.by, name), Vec::new());
            }
            "file_upd" => {
                if let (Some(zip), Some(chunk)) =
                    (open.get_mut(&(f.by, name)), f.payload.get(name.len() + 1..))
                {
                    zip.extend_from_slice(chunk);
                }
            }
            "file_end" => {
                if let Some(zip) = open.remove(&(f.by, name)) {
                    let summary = package_summary(&String::from_utf8_lossy(name), zip)?;
                    out.entry((f.by, flow)).or_default().push(summary);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::recorded_link;

    #[test]
    fn packages_of_the_recording() {
        let p = packages(&recorded_link(Role::Master).unwrap()).unwrap();
        let master = &p[&(Role::Master, Flow::Integrity)];
        assert_eq!(master.len(), 1);
        assert_eq!(
            master[0].members,
            [
                "/etc/client.keys",
                "/etc/lists/amazon/aws-eventnames",
                "/etc/lists/audit-keys.cdb",
                "/etc/rules/local_rules.xml",
                "/etc/shared/default/merged.mg",
                "/etc/shared/group2/merged.mg",
                "/queue/cluster/worker1/agent-groups-shared.merged",
                "/var/multigroups/e4f9f5fa/merged.mg",
            ]
        );
        assert!(
            master[0].control.starts_with("{\"extra\":{"),
            "{}",
            master[0].control
        );
        assert_eq!(p[&(Role::Worker, Flow::Integrity)].len(), 7);
        assert!(p[&(Role::Worker, Flow::Integrity)][0].members.is_empty());
        assert_eq!(
            p[&(Role::Worker, Flow::AgentInfo)][0].members,
            ["/queue/cluster/worker1/agent-info.merged"]
        );
        assert_eq!(
            p[&(Role::Worker, Flow::ExtraValid)][0].members,
            ["/queue/cluster/worker1/agent-groups.merged"]
        );
    }
}
