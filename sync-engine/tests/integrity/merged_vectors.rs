//! Merged files against the real 3.9.5 `merge_agent_info` / `unmerge_agent_info`
//! (vectors/v3.9/merged.json, agent-info.merged, agent-groups.merged), plus bounds and hostile input.

use proptest::prelude::*;
use serde_json::Value;
use wazuh_cluster_sync::integrity::memory::MemoryStorage;
use wazuh_cluster_sync::integrity::merged::{
    MergeInput, MergedError, MergedLimits, merge_dir, merge_parts, min_mtime, unmerge,
    valid_part_name,
};
use wazuh_cluster_sync::integrity::metadata::{MergeType, timestamp_from_py_float};
use wazuh_cluster_sync::integrity::path::InstallPath;
use wazuh_cluster_sync::integrity::storage::Timestamp;

/// After the recording: every input is years old.
const NOW: Timestamp = Timestamp {
    secs: 1_795_682_700,
    nanos: 0,
};

struct Input {
    name: String,
    content: Vec<u8>,
    mtime: Timestamp,
}

/// The inputs of one case, in the order upstream's os.listdir gave them.
fn inputs(case: &Value, order: &[&str]) -> Vec<Input> {
    order
        .iter()
        .map(|name| {
            let i = &case["inputs"][*name];
            Input {
                name: (*name).to_owned(),
                content: i["content"].as_str().unwrap().as_bytes().to_vec(),
                mtime: timestamp_from_py_float(i["mtime"].as_f64().unwrap()),
            }
        })
        .collect()
}

fn merge(inputs: &[Input], min: Option<Timestamp>) -> (Vec<u8>, usize) {
    let out = merge_parts(
        inputs.iter().map(|i| MergeInput {
            name: &i.name,
            content: &i.content,
            mtime: i.mtime,
        }),
        min,
    );
    (out.bytes, out.parts)
}

fn unmerge_tuples(bytes: &[u8], merge_type: MergeType) -> Value {
    let un = unmerge(bytes, &MergedLimits::default());
    Value::Array(
        un.parts
            .iter()
            .map(|part| {
                serde_json::json!([
                    part.upstream_path(merge_type),
                    String::from_utf8(part.content.to_vec()).unwrap(),
                    part.mod_time
                ])
            })
            .collect(),
    )
}

#[test]
fn agent_info_merge_is_byte_exact() {
    let v = wazuh_cluster_vectors::json("v3.9/merged.json");
    let case = &v["agent-info"];
    let order: Vec<&str> = case["os_listdir_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let inputs = inputs(case, &order);
    let (bytes, parts) = merge(&inputs, None);
    assert_eq!(
        bytes,
        wazuh_cluster_vectors::unhex(case["output_hex"].as_str().unwrap())
    );
    assert_eq!(bytes, wazuh_cluster_vectors::read("v3.9/agent-info.merged"));
    assert_eq!(parts, case["n_files"].as_u64().unwrap() as usize);
    // The 1800 s rule: at recording time every input is too old, nothing is merged.
    let (bytes, parts) = merge(
        &inputs,
        min_mtime(NOW, std::time::Duration::from_secs(1800)),
    );
    assert_eq!(
        (bytes.len(), parts),
        (
            0,
            case["n_files_with_default_time_limit_1800"]
                .as_u64()
                .unwrap() as usize
        )
    );
    assert_eq!(
        unmerge_tuples(
            &wazuh_cluster_vectors::read("v3.9/agent-info.merged"),
            MergeType::AgentInfo
        ),
        case["unmerge_agent_info"]
    );
}

#[test]
fn agent_info_age_rule_boundary() {
    // st_mtime < now - 1800 is skipped; exactly now - 1800 is kept.
    let t = |secs| Input {
        name: format!("a-{secs}"),
        content: b"x".to_vec(),
        mtime: Timestamp::from_secs(secs),
    };
    let inputs = [t(NOW.secs - 1801), t(NOW.secs - 1800), t(NOW.secs)];
    let (bytes, parts) = merge(
        &inputs,
        min_mtime(NOW, std::time::Duration::from_secs(1800)),
    );
    assert_eq!(parts, 2);
    assert!(bytes.starts_with(format!("1 a-{} ", NOW.secs - 1800).as_bytes()));
    assert_eq!(min_mtime(NOW, std::time::Duration::ZERO), None);
    assert_eq!(
        min_mtime(
            Timestamp {
                secs: 10,
                nanos: 100
            },
            std::time::Duration::new(1, 200)
        ),
        Some(Timestamp {
            secs: 8,
            nanos: 999_999_900
        })
    );
}

#[test]
fn agent_groups_merge_is_byte_exact_from_storage() {
    let v = wazuh_cluster_vectors::json("v3.9/merged.json");
    let case = &v["agent-groups"];
    let mut storage = MemoryStorage::new();
    for (name, i) in case["inputs"].as_object().unwrap() {
        let path = InstallPath::new(&format!("/queue/agent-groups/{name}")).unwrap();
        let mtime = timestamp_from_py_float(i["mtime"].as_f64().unwrap());
        storage
            .add_file(
                &path,
                i["content"].as_str().unwrap().as_bytes().to_vec(),
                mtime,
                0o660,
            )
            .unwrap();
    }
    // merge_agent_info(files=['/queue/agent-groups/004', '/queue/agent-groups/002']): listing order.
    let out = merge_dir(
        &storage,
        MergeType::AgentGroups,
        Some(&["004", "002"]),
        None,
        &MergedLimits::default(),
    )
    .unwrap();
    assert_eq!(
        out.bytes,
        wazuh_cluster_vectors::unhex(case["output_hex"].as_str().unwrap())
    );
    assert_eq!(
        out.bytes,
        wazuh_cluster_vectors::read("v3.9/agent-groups.merged")
    );
    assert_eq!(out.parts, 2);
    assert_eq!(
        unmerge_tuples(&out.bytes, MergeType::AgentGroups),
        case["unmerge_agent_info"]
    );
    // Without a filter every file of the directory goes in.
    let all = merge_dir(
        &storage,
        MergeType::AgentGroups,
        None,
        None,
        &MergedLimits::default(),
    )
    .unwrap();
    assert_eq!(all.parts, 3);
}

#[test]
fn malformed_header_keeps_earlier_parts_like_upstream() {
    let v = wazuh_cluster_vectors::json("v3.9/merged.json");
    let case = &v["malformed"];
    let input = case["input_text"].as_str().unwrap().as_bytes();
    assert_eq!(
        unmerge_tuples(input, MergeType::AgentGroups),
        case["unmerge_agent_info"]
    );
    let un = unmerge(input, &MergedLimits::default());
    // "garbage-without-spaces" starts at byte 31.
    assert_eq!(un.error, Some(MergedError::MalformedHeader { offset: 31 }));
    assert_eq!(
        un.into_result(),
        Err(MergedError::MalformedHeader { offset: 31 })
    );
}

#[test]
fn hostile_input_is_refused_with_typed_errors() {
    let limits = MergedLimits {
        max_parts: 2,
        max_part_size: 16,
        max_total: 200,
    };
    let err = |input: &[u8]| unmerge(input, &limits).error;
    assert_eq!(
        err(b"3 ../x 2019-07-01 16:53:20\nabc"),
        Some(MergedError::BadName {
            offset: 0,
            name: "../x".into()
        })
    );
    assert_eq!(
        err(b"3 .hidden 2019-07-01 16:53:20\nabc"),
        Some(MergedError::BadName {
            offset: 0,
            name: ".hidden".into()
        })
    );
    assert_eq!(
        err(b"3 a\\b 2019-07-01 16:53:20\nabc"),
        Some(MergedError::BadName {
            offset: 0,
            name: "a\\b".into()
        })
    );
    assert_eq!(
        err(b"3 a\0b 2019-07-01 16:53:20\nabc"),
        Some(MergedError::BadName {
            offset: 0,
            name: "a\0b".into()
        })
    );
    assert_eq!(
        err(b"3  2019-07-01 16:53:20\nabc"),
        Some(MergedError::BadName {
            offset: 0,
            name: "".into()
        })
    );
    // A huge declared size is compared with the limit before anything is read or allocated.
    assert_eq!(
        err(b"18446744073709551615 a 2019-07-01 16:53:20\n"),
        Some(MergedError::PartTooLarge {
            offset: 0,
            size: u64::MAX,
            limit: 16
        })
    );
    // One more than u64 holds is not a size at all.
    assert_eq!(
        err(b"18446744073709551616 a 2019-07-01 16:53:20\n"),
        Some(MergedError::MalformedHeader { offset: 0 })
    );
    assert_eq!(
        err(b"17 a 2019-07-01 16:53:20\n"),
        Some(MergedError::PartTooLarge {
            offset: 0,
            size: 17,
            limit: 16
        })
    );
    assert_eq!(
        err(b"5 a 2019-07-01 16:53:20\nab"),
        Some(MergedError::Truncated {
            offset: 0,
            size: 5,
            available: 2
        })
    );
    assert_eq!(
        err(b"-1 a 2019-07-01 16:53:20\n"),
        Some(MergedError::MalformedHeader { offset: 0 })
    );
    assert_eq!(
        err(b"+1 a 2019-07-01 16:53:20\nx"),
        Some(MergedError::MalformedHeader { offset: 0 })
    );
    assert_eq!(
        err(b"1 a 2019-07-01 16:53:20"),
        Some(MergedError::UnterminatedHeader { offset: 0 })
    );
    assert_eq!(
        err(&[b'1'; 300]),
        Some(MergedError::TooLarge {
            size: 300,
            limit: 200
        })
    );
    assert_eq!(
        err(&[b'1'; 199]),
        Some(MergedError::UnterminatedHeader { offset: 0 })
    );
    assert_eq!(
        err(b"1 a t\nx1 b t\nx1 c t\nx"),
        Some(MergedError::TooManyParts(2))
    );
    assert_eq!(
        err(b"\xff a t\nx"),
        Some(MergedError::MalformedHeader { offset: 0 })
    );
    assert_eq!(err(b""), None);
    for bad in ["", ".", "..", ".x", "a/b", "a\\b", "a\0"] {
        assert!(!valid_part_name(bad), "{bad:?}");
    }
    assert!(valid_part_name("agent-one-10.0.0.1"));
}

#[test]
fn merged_part_helpers() {
    let input = b"3 001 2019-07-01 16:53:20.250000\nabc";
    let parts = unmerge(input, &MergedLimits::default())
        .into_result()
        .unwrap();
    assert_eq!(
        parts[0]
            .install_path(MergeType::AgentGroups)
            .unwrap()
            .as_str(),
        "/queue/agent-groups/001"
    );
    assert_eq!(
        parts[0].mtime(),
        Some(Timestamp {
            secs: 1_562_000_000,
            nanos: 250_000_000
        })
    );
}

fn arb_part() -> impl Strategy<Value = (String, Vec<u8>, i64, u32)> {
    (
        "[A-Za-z0-9][A-Za-z0-9_.-]{0,30}",
        proptest::collection::vec(any::<u8>(), 0..200),
        0i64..4_000_000_000,
        0u32..1_000_000_000,
    )
}

proptest! {
    #[test]
    fn build_then_parse_round_trips(parts in proptest::collection::vec(arb_part(), 0..20)) {
        let inputs: Vec<Input> = parts
            .iter()
            .map(|(name, content, secs, nanos)| Input { name: name.clone(), content: content.clone(), mtime: Timestamp { secs: *secs, nanos: *nanos } })
            .collect();
        let (bytes, n) = merge(&inputs, None);
        prop_assert_eq!(n, inputs.len());
        let parsed = unmerge(&bytes, &MergedLimits::default()).into_result().unwrap();
        prop_assert_eq!(parsed.len(), inputs.len());
        for (part, input) in parsed.iter().zip(&inputs) {
            prop_assert_eq!(part.name, input.name.as_str());
            prop_assert_eq!(part.content, input.content.as_slice());
            prop_assert_eq!(part.mod_time, wazuh_cluster_sync::integrity::metadata::format_mod_time(input.mtime));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_in_bounds(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        let limits = MergedLimits { max_parts: 3, max_part_size: 64, max_total: 300 };
        let un = unmerge(&input, &limits);
        prop_assert!(un.parts.len() <= 3);
        for part in &un.parts {
            prop_assert!(part.content.len() <= 64);
            prop_assert!(valid_part_name(part.name));
        }
    }
}
