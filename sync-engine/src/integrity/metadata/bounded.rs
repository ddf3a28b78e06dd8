//! Metadata documents from a peer, parsed with their entry count bounded *while* parsing.
//!
//! Why: a document is bounded in bytes by the package reader, but a short key costs more once
//! parsed (an owned path, a metadata record, a map node) than it does on the wire; a 1.2 MB
//! package listing 400,000 entries took the master half a gigabyte and a second of CPU per round
//! when the whole map was built before its size was checked. Here the parse stops at the first
//! entry past the limit.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::{FileMetadata, MetadataError};

/// Raw entries: path as sent → metadata.
pub(crate) type RawEntries = BTreeMap<String, FileMetadata>;

/// What one document may still hold, shared by its maps.
struct EntryBudget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl EntryBudget {
    fn new(max_entries: usize) -> Self {
        EntryBudget {
            left: Cell::new(max_entries),
            exceeded: Cell::new(false),
        }
    }
}

/// One JSON object of entries, drawing on a budget.
struct BoundedEntries<'a>(&'a EntryBudget);

impl<'de> DeserializeSeed<'de> for BoundedEntries<'_> {
    type Value = RawEntries;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RawEntries, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BoundedEntries<'_> {
    type Value = RawEntries;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of file metadata")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let Some(left) = self.0.left.get().checked_sub(1) else {
                self.0.exceeded.set(true);
                return Err(de::Error::custom("too many entries"));
            };
            self.0.left.set(left);
            let value = map.next_value::<FileMetadata>()?;
            entries.insert(key, value);
        }
        Ok(entries)
    }
}

/// The four groups of a master→worker `cluster_control.json`, in [`PLAN_GROUPS`] order.
struct PlanGroups<'a>(&'a EntryBudget);

/// The keys of a master→worker `cluster_control.json`.
pub(crate) const PLAN_GROUPS: [&str; 4] = ["missing", "extra", "shared", "extra_valid"];

impl<'de> Visitor<'de> for PlanGroups<'_> {
    type Value = [RawEntries; 4];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("struct Raw")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<[RawEntries; 4], A::Error> {
        let mut groups: [Option<RawEntries>; 4] = Default::default();
        while let Some(key) = map.next_key::<String>()? {
            let Some(at) = PLAN_GROUPS.iter().position(|g| *g == key) else {
                return Err(de::Error::unknown_field(&key, &PLAN_GROUPS));
            };
            if groups[at].is_some() {
                return Err(de::Error::duplicate_field(PLAN_GROUPS[at]));
            }
            groups[at] = Some(map.next_value_seed(BoundedEntries(self.0))?);
        }
        let mut out: [RawEntries; 4] = Default::default();
        for (at, group) in groups.into_iter().enumerate() {
            out[at] = group.ok_or_else(|| de::Error::missing_field(PLAN_GROUPS[at]))?;
        }
        Ok(out)
    }
}

/// Runs `parse` over `bytes` with a budget of `max_entries`; the whole input must be one value.
fn parse_with<T>(
    bytes: &[u8],
    max_entries: usize,
    parse: impl FnOnce(
        &EntryBudget,
        &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
    ) -> serde_json::Result<T>,
) -> Result<T, MetadataError> {
    let budget = EntryBudget::new(max_entries);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = parse(&budget, &mut deserializer).and_then(|value| {
        deserializer.end()?;
        Ok(value)
    });
    parsed.map_err(|e| {
        if budget.exceeded.get() {
            MetadataError::TooManyEntries(max_entries)
        } else {
            MetadataError::Malformed(e.to_string())
        }
    })
}

/// A `{path: metadata}` document of at most `max_entries` entries.
pub(crate) fn parse_entries(bytes: &[u8], max_entries: usize) -> Result<RawEntries, MetadataError> {
    parse_with(bytes, max_entries, |budget, de| {
        BoundedEntries(budget).deserialize(de)
    })
}

/// A master→worker `cluster_control.json` of at most `max_entries` entries in all its groups.
pub(crate) fn parse_plan_groups(
    bytes: &[u8],
    max_entries: usize,
) -> Result<[RawEntries; 4], MetadataError> {
    parse_with(bytes, max_entries, |budget, de| {
        de.deserialize_map(PlanGroups(budget))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"mod_time": "2019-08-01 10:00:00", "cluster_item_key": "/etc/", "merged": false, "md5": "d41d8cd98f00b204e9800998ecf8427e"}"#;

    fn document(n: usize) -> String {
        let entries: Vec<String> = (0..n).map(|i| format!(r#""/etc/f{i}": {ENTRY}"#)).collect();
        format!("{{{}}}", entries.join(", "))
    }

    #[test]
    fn a_document_past_its_limit_stops_at_the_first_entry_beyond() {
        assert_eq!(parse_entries(document(3).as_bytes(), 3).unwrap().len(), 3);
        assert_eq!(
            parse_entries(document(4).as_bytes(), 3),
            Err(MetadataError::TooManyEntries(3))
        );
        // Past the limit, even a malformed tail is not read: the count decides.
        let cut = format!("{}, garbage", &document(4)[..document(4).len() - 1]);
        assert_eq!(
            parse_entries(cut.as_bytes(), 3),
            Err(MetadataError::TooManyEntries(3))
        );
        assert!(matches!(
            parse_entries(b"[1]", 3),
            Err(MetadataError::Malformed(_))
        ));
        assert!(matches!(
            parse_entries(b"{} {}", 3),
            Err(MetadataError::Malformed(_))
        ));
    }

    #[test]
    fn the_plan_groups_share_one_budget_and_keep_their_shape() {
        let plan = |missing: usize, extra: usize| {
            format!(
                r#"{{"missing": {}, "extra": {}, "shared": {{}}, "extra_valid": {{}}}}"#,
                document(missing),
                document(extra).replace("/etc/f", "/etc/x")
            )
        };
        let groups = parse_plan_groups(plan(2, 2).as_bytes(), 4).unwrap();
        assert_eq!(groups.map(|g| g.len()), [2, 2, 0, 0]);
        assert_eq!(
            parse_plan_groups(plan(2, 3).as_bytes(), 4),
            Err(MetadataError::TooManyEntries(4))
        );
        let unknown = parse_plan_groups(br#"{"missing": {}, "other": {}}"#, 4);
        assert!(
            matches!(&unknown, Err(MetadataError::Malformed(m)) if m.starts_with("unknown field `other`, expected one of `missing`, `extra`, `shared`, `extra_valid`")),
            "{unknown:?}"
        );
        let missing = parse_plan_groups(br#"{"missing": {}, "extra": {}, "shared": {}}"#, 4);
        assert!(
            matches!(&missing, Err(MetadataError::Malformed(m)) if m.starts_with("missing field `extra_valid`")),
            "{missing:?}"
        );
    }
}
