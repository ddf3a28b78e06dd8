//! One answer out of several: upstream 3.9.5 `DistributedAPI.merge_results`, exactly, and the
//! `print_json` answer shapes (PROTOCOL.md §13.4, §13.5).
//!
//! When the master sends a request to several nodes (agents spread over workers, or a `cluster`
//! route sent to every node), it merges their JSON answers into one dict, key by key, in node
//! order:
//! * a dict is merged recursively into the dict already there;
//! * a list is extended with those of its elements not already in the list there (Python `==`:
//!   `1`, `1.0` and `true` are the same element; duplicates inside the new list are all kept);
//! * an `int` (not a `bool`) is added when the key is `totalItems`, kept if larger when the key is
//!   `error`, and otherwise the first one stays;
//! * anything else (string, float, bool, null) keeps the first value, except that
//!   `"Some agents were not restarted"` replaces `"All selected agents were restarted"` and `"KO"`
//!   replaces `"OK"`.
//!
//! After each merge call (so at every nesting level, and for a nested dict after every answer),
//! if the dict has `data.items` as a list, the items are sorted when the request's arguments have
//! `sort` (`{"fields": [...], "order": "asc"|"desc"}`, strings compared lower-cased, upstream
//! `utils.sort_array`) and cut to `items[offset:offset + limit]` (defaults 0 and 500); then, if
//! `error` > 0, `data` is removed.
//!
//! Where a value of an unexpected type meets one of those operations, Python raises and upstream
//! answers error 1000 with the exception text; [`MergeError`] is that failure, its `Display` the
//! text Python 3.7 gives, at the same point of the walk. Three things differ on purpose or by
//! necessity: a `totalItems` sum beyond `i64` is an error (Python's ints are unbounded); the 1403
//! text lists fields in item / request order (upstream prints Python sets, in no fixed order);
//! sorting uses a stable merge sort, which orders exactly like Python's for any consistent
//! comparison, but may differ from it for keys Python cannot order consistently (`NaN`), and when
//! keys of different types meet it names the pair it met first (Python: the pair Timsort meets).
//! Sorting non-object items by named fields is an `AttributeError` here; upstream would get an
//! attribute when the field names one of the item type's Python attributes (`real` of an `int`).
//!
//! Work is bounded by the answers: the output is never larger than the answers together (up to the
//! digits a `totalItems` sum gains), the duplicate check of list elements is O(n log n) (upstream
//! compares every pair), and recursion follows the answers' depth (≤ [`super::json::MAX_DEPTH`]).
//!
//! ```
//! use wazuh_cluster_sync::dapi::json::{JsonLimits, JsonObject};
//! use wazuh_cluster_sync::dapi::merge::merged_answer;
//!
//! let worker1 = br#"{"data": {"items": [{"id": "001"}], "totalItems": 1}, "error": 0}"#;
//! let worker2 = br#"{"data": {"items": [{"id": "002"}], "totalItems": 1}, "error": 0}"#;
//! let merged = merged_answer(&[&worker1[..], &worker2[..]], &JsonObject::new(), &JsonLimits::default());
//! assert_eq!(
//!     merged,
//!     r#"{"data": {"items": [{"id": "001"}, {"id": "002"}], "totalItems": 2}, "error": 0}"#
//! );
//! ```

use std::cmp::Ordering;
use std::collections::BTreeSet;

use super::error::{DapiError, invalid_sort_field_message, python_repr};
use super::json::{JsonLimits, JsonObject, JsonValue};
use crate::pyjson;

/// Items kept when the request names no `limit` (upstream `common.database_limit`).
pub const DEFAULT_LIMIT: i64 = 500;

/// The string pairs where the later answer's value replaces the earlier one: (later, earlier).
const PRIORITIES: [(&str, &str); 2] = [
    (
        "Some agents were not restarted",
        "All selected agents were restarted",
    ),
    ("KO", "OK"),
];

/// `print_json(data, 0)`: the answer of a request that succeeded, `{"data": <data>, "error": 0}`.
pub fn data_answer(data: &JsonValue) -> String {
    let mut out = String::from("{\"data\": ");
    data.write_python_json(&mut out);
    out.push_str(", \"error\": 0}");
    out
}

/// `print_json(message, code)`: the answer of a request that failed,
/// `{"message": <message>, "error": <code>}`.
pub fn error_answer(message: &str, code: u16) -> String {
    let mut out = String::from("{\"message\": ");
    pyjson::write_str(&mut out, message);
    out.push_str(", \"error\": ");
    out.push_str(&code.to_string());
    out.push('}');
    out
}

/// Why merging stopped, worded as upstream's failure is (Python 3.7 exception texts, or the
/// `WazuhException` of `sort_array`). [`DapiError::from`] gives the answer upstream sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// `AttributeError`: e.g. an answer that is not an object (`.items()`), or extending a
    /// non-list (`.extend`).
    #[error("'{type_name}' object has no attribute '{attribute}'")]
    NoAttribute {
        /// Python type of the value.
        type_name: &'static str,
        /// The attribute looked up.
        attribute: String,
    },
    /// `TypeError` of `key in value` on a value that is not a container.
    #[error("argument of type '{0}' is not iterable")]
    NotContainer(&'static str),
    /// `TypeError` of iterating a number (`set(5)`, `list += 5`).
    #[error("'{0}' object is not iterable")]
    NotIterable(&'static str),
    /// `TypeError` of `value[key]` (read or write) on a list.
    #[error("list indices must be integers or slices, not str")]
    ListIndex,
    /// `TypeError` of `value[key]` on a string.
    #[error("string indices must be integers")]
    StringIndex,
    /// `TypeError` of `value[key]` on a number, bool or null.
    #[error("'{0}' object is not subscriptable")]
    NotSubscriptable(&'static str),
    /// `TypeError` of `value[key] = x` on a string, number, bool or null.
    #[error("'{0}' object does not support item assignment")]
    NoItemAssignment(&'static str),
    /// `KeyError` (`sort` without `fields` or `order`); the text is Python's `repr` of the key.
    #[error("{}", python_repr(.0))]
    MissingKey(String),
    /// `TypeError` of hashing a list or dict (the priority check, the sort field set).
    #[error("unhashable type: '{0}'")]
    Unhashable(&'static str),
    /// `TypeError` of `<` or `>` between values Python cannot order.
    #[error("'{op}' not supported between instances of '{left}' and '{right}'")]
    Unorderable {
        /// `<` or `>`.
        op: &'static str,
        /// Left operand's type.
        left: &'static str,
        /// Right operand's type.
        right: &'static str,
    },
    /// `TypeError` of `+` on a string or list and something else.
    #[error("can only concatenate {sequence} (not \"{other}\") to {sequence}")]
    CannotConcatenate {
        /// `str` or `list`.
        sequence: &'static str,
        /// The other operand's type.
        other: &'static str,
    },
    /// `TypeError` of `+` / `+=` between types that do not add.
    #[error("unsupported operand type(s) for {op}: '{left}' and '{right}'")]
    UnsupportedOperand {
        /// `+` or `+=`.
        op: &'static str,
        /// Left operand's type.
        left: &'static str,
        /// Right operand's type.
        right: &'static str,
    },
    /// `TypeError` of slicing the items with a bound that is not an integer.
    #[error("slice indices must be integers or None or have an __index__ method")]
    SliceIndex,
    /// `TypeError` of joining sort field names that are not all strings.
    #[error("sequence item {index}: expected str instance, {type_name} found")]
    JoinNonString {
        /// Position of the offending name.
        index: usize,
        /// Its type.
        type_name: &'static str,
    },
    /// `TypeError` of `getattr` with a field name that is not a string.
    #[error("getattr(): attribute name must be string")]
    AttributeNameNotString,
    /// 1402: `sort.order` is neither `asc` nor `desc`.
    #[error("{}", DapiError::InvalidSortOrder)]
    InvalidSortOrder,
    /// 1403: sort fields the first item does not have.
    #[error("{}", invalid_sort_field_message(.allowed, .fields))]
    InvalidSortField {
        /// The first item's keys, in its order.
        allowed: Vec<String>,
        /// The missing fields, in request order.
        fields: Vec<String>,
    },
    /// 1404: objects sorted without a field.
    #[error("{}", DapiError::SortFieldRequired)]
    SortFieldRequired,
    /// A `totalItems` sum beyond `i64` (ours: Python's ints have no bound).
    #[error("totalItems sum does not fit in 64 bits")]
    IntegerOverflow,
}

impl From<MergeError> for DapiError {
    /// The answer upstream gives: the `WazuhException` of the sort, or error 1000 with the text.
    fn from(error: MergeError) -> Self {
        match error {
            MergeError::InvalidSortOrder => DapiError::InvalidSortOrder,
            MergeError::InvalidSortField { allowed, fields } => {
                DapiError::InvalidSortField { allowed, fields }
            }
            MergeError::SortFieldRequired => DapiError::SortFieldRequired,
            other => DapiError::Internal(other.to_string()),
        }
    }
}

/// Merges the answers of several nodes, in node order, as upstream's `merge_results` does;
/// `arguments` are the request's arguments (`offset`, `limit`, `sort`). The result is an object
/// (upstream starts from `{}` and only sets or removes its keys).
///
/// # Errors
/// [`MergeError`] where upstream's merge raises.
pub fn merge_answers(
    answers: impl IntoIterator<Item = JsonValue>,
    arguments: &JsonObject,
) -> Result<JsonValue, MergeError> {
    let mut merged = JsonValue::Object(JsonObject::new());
    merge_results(&mut merged, answers, arguments)?;
    Ok(merged)
}

/// The text the master answers after asking several nodes: their answers parsed (each within
/// `limits`) and merged, written as `json.dumps` does; or, when an answer is not JSON or the merge
/// fails, the error answer upstream gives (1000 with the failure's text, or the sort's code).
pub fn merged_answer<A: AsRef<[u8]>>(
    answers: &[A],
    arguments: &JsonObject,
    limits: &JsonLimits,
) -> String {
    let parsed: Result<Vec<JsonValue>, DapiError> = answers
        .iter()
        .map(|a| {
            JsonValue::parse(a.as_ref(), limits).map_err(|e| DapiError::Internal(e.to_string()))
        })
        .collect();
    match parsed.and_then(|answers| merge_answers(answers, arguments).map_err(DapiError::from)) {
        Ok(merged) => merged.to_python_json(),
        Err(error) => error.answer_json(),
    }
}

/// `merge_results(responses, final_json)`: every response into `target`, then the items step.
fn merge_results(
    target: &mut JsonValue,
    responses: impl IntoIterator<Item = JsonValue>,
    arguments: &JsonObject,
) -> Result<(), MergeError> {
    for response in responses {
        let JsonValue::Object(fields) = response else {
            return Err(no_attribute(&response, "items"));
        };
        for (key, field) in fields {
            merge_field(target, key, field, arguments)?;
        }
    }
    finish_level(target, arguments)
}

fn merge_field(
    target: &mut JsonValue,
    key: String,
    field: JsonValue,
    arguments: &JsonObject,
) -> Result<(), MergeError> {
    let present = contains(target, &key)?;
    match field {
        JsonValue::Object(_) => {
            let mut nested = if present {
                std::mem::replace(get_mut(target, &key)?, JsonValue::Null)
            } else {
                JsonValue::Object(JsonObject::new())
            };
            merge_results(&mut nested, [field], arguments)?;
            set(target, key, nested)
        }
        JsonValue::Array(elements) if present => {
            let existing = get_mut(target, &key)?;
            let JsonValue::Array(list) = existing else {
                return Err(no_attribute(existing, "extend"));
            };
            let known: BTreeSet<String> = list.iter().map(equality_key).collect();
            list.extend(
                elements
                    .into_iter()
                    .filter(|e| !known.contains(&equality_key(e))),
            );
            Ok(())
        }
        JsonValue::Int(value) if present => {
            if key == "totalItems" {
                let existing = get_mut(target, &key)?;
                *existing = add_in_place(existing, value)?;
            } else if key == "error" {
                let existing = get_mut(target, &key)?;
                if less_than(existing, &JsonValue::Int(value), "<")? {
                    *existing = JsonValue::Int(value);
                }
            }
            Ok(())
        }
        JsonValue::Array(_) | JsonValue::Int(_) => set(target, key, field),
        _ if present => {
            let existing = get_mut(target, &key)?;
            if matches!(existing, JsonValue::Array(_) | JsonValue::Object(_)) {
                return Err(MergeError::Unhashable(existing.python_type_name()));
            }
            let replaces = match (&field, &*existing) {
                (JsonValue::Str(later), JsonValue::Str(earlier)) => {
                    PRIORITIES.iter().any(|(l, e)| l == later && e == earlier)
                }
                _ => false,
            };
            if replaces {
                *existing = field;
            }
            Ok(())
        }
        _ => set(target, key, field),
    }
}

/// The end of each `merge_results` call: sort and cut `data.items`, drop `data` on error.
fn finish_level(target: &mut JsonValue, arguments: &JsonObject) -> Result<(), MergeError> {
    if contains(target, "data")? {
        let data = get_mut(target, "data")?;
        if contains(data, "items")? {
            let items = get_mut(data, "items")?;
            if let JsonValue::Array(list) = items {
                let list = std::mem::take(list);
                *items = JsonValue::Array(select_items(list, arguments)?);
            }
        }
    }
    if contains(target, "error")? {
        let error = get(target, "error")?;
        let failed = less_than(&JsonValue::Int(0), error, ">")?;
        // `target['error']` worked, so `target` is a dict.
        if failed
            && contains(target, "data")?
            && let JsonValue::Object(object) = target
        {
            object.remove("data");
        }
    }
    Ok(())
}

/// `sort_array` (when `sort` is given) then `items[offset:offset + limit]`.
fn select_items(
    items: Vec<JsonValue>,
    arguments: &JsonObject,
) -> Result<Vec<JsonValue>, MergeError> {
    let items = match arguments.get("sort") {
        Some(sort) => {
            let fields = get(sort, "fields")?;
            let order = get(sort, "order")?;
            sort_array(items, fields, order)?
        }
        None => items,
    };
    let offset = arguments.get("offset").unwrap_or(&JsonValue::Int(0));
    let limit = arguments
        .get("limit")
        .unwrap_or(&JsonValue::Int(DEFAULT_LIMIT));
    let (start, stop) = slice_bounds(offset, limit)?;
    Ok(python_slice(items, start, stop))
}

/// Upstream `utils.sort_array(array, sort_by, order)` without `allowed_sort_fields`.
pub(crate) fn sort_array(
    items: Vec<JsonValue>,
    sort_by: &JsonValue,
    order: &JsonValue,
) -> Result<Vec<JsonValue>, MergeError> {
    if items.is_empty() {
        return Ok(items);
    }
    let JsonValue::Str(order) = order else {
        return Err(no_attribute(order, "lower"));
    };
    let descending = match order.to_lowercase().as_str() {
        "desc" => true,
        "asc" => false,
        _ => return Err(MergeError::InvalidSortOrder),
    };
    if !truthy(sort_by) {
        return match items.first() {
            Some(JsonValue::Object(_)) => Err(MergeError::SortFieldRequired),
            _ => python_sorted(items, descending, |a, b| less_than(a, b, "<")),
        };
    }
    let fields = iterate(sort_by)?;
    let Some(JsonValue::Object(first)) = items.first() else {
        // `getattr(item, field)` on a value that is not an object.
        return match (items.first(), fields.first()) {
            (Some(item), Some(JsonValue::Str(field))) => Err(no_attribute(item, field)),
            (Some(_), Some(_)) => Err(MergeError::AttributeNameNotString),
            _ => Ok(items),
        };
    };
    check_sort_fields(first, &fields)?;
    let field_names: Vec<&str> = fields.iter().filter_map(JsonValue::as_str).collect();
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        let JsonValue::Object(object) = &item else {
            return Err(no_attribute(&item, "get"));
        };
        let key = field_names
            .iter()
            .map(|field| match object.get(field) {
                Some(JsonValue::Str(s)) => JsonValue::Str(s.to_lowercase()),
                Some(value) => value.clone(),
                None => JsonValue::Null,
            })
            .collect();
        keyed.push((JsonValue::Array(key), item));
    }
    let sorted = python_sorted(keyed, descending, |a, b| less_than(&a.0, &b.0, "<"))?;
    Ok(sorted.into_iter().map(|(_, item)| item).collect())
}

/// `check_sort_fields(set(first.keys()), set(sort_by))`: every field must be a key of the first
/// item; the names must hash (and, to be listed in the 1403 text, be strings).
fn check_sort_fields(first: &JsonObject, fields: &[JsonValue]) -> Result<(), MergeError> {
    let mut missing: Vec<&JsonValue> = Vec::new();
    for field in fields {
        if matches!(field, JsonValue::Array(_) | JsonValue::Object(_)) {
            return Err(MergeError::Unhashable(field.python_type_name()));
        }
        let known = field.as_str().is_some_and(|f| first.contains_key(f));
        if !known && !missing.iter().any(|m| same(m, field)) {
            missing.push(field);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut names = Vec::with_capacity(missing.len());
    for (index, field) in missing.iter().enumerate() {
        match field {
            JsonValue::Str(name) => names.push(name.clone()),
            other => {
                return Err(MergeError::JoinNonString {
                    index,
                    type_name: other.python_type_name(),
                });
            }
        }
    }
    Err(MergeError::InvalidSortField {
        allowed: first.keys().map(str::to_owned).collect(),
        fields: names,
    })
}

/// `sorted(items, reverse=descending)` with `less` as `<`: Python reverses, sorts stably,
/// reverses again, so equal keys keep their order either way.
fn python_sorted<T>(
    mut items: Vec<T>,
    descending: bool,
    mut less: impl FnMut(&T, &T) -> Result<bool, MergeError>,
) -> Result<Vec<T>, MergeError> {
    if descending {
        items.reverse();
    }
    let mut sorted = stable_sort(items, &mut less)?;
    if descending {
        sorted.reverse();
    }
    Ok(sorted)
}

/// Merge sort that takes from the right run only when its head is strictly less: stable, and it
/// cannot panic or loop on an inconsistent comparison (std's sorts may panic on one).
fn stable_sort<T>(
    mut items: Vec<T>,
    less: &mut impl FnMut(&T, &T) -> Result<bool, MergeError>,
) -> Result<Vec<T>, MergeError> {
    if items.len() <= 1 {
        return Ok(items);
    }
    let right = items.split_off(items.len() / 2);
    let left = stable_sort(items, less)?;
    let right = stable_sort(right, less)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let next = if less(r, l)? {
            right.next()
        } else {
            left.next()
        };
        out.extend(next);
    }
    out.extend(left);
    out.extend(right);
    Ok(out)
}

/// The two slice bounds of `items[offset:offset + limit]`, as Python integers.
fn slice_bounds(offset: &JsonValue, limit: &JsonValue) -> Result<(i128, i128), MergeError> {
    if let (Some(o), Some(l)) = (python_int(offset), python_int(limit)) {
        return Ok((o, o + l));
    }
    // Python computes `offset + limit` first (which may raise), then refuses a bound that is not
    // an integer (a float, a string, a list).
    check_addable(offset, limit)?;
    Err(MergeError::SliceIndex)
}

/// Python `list[start:stop]` with integer bounds.
pub(crate) fn python_slice(mut items: Vec<JsonValue>, start: i128, stop: i128) -> Vec<JsonValue> {
    let len = i128::try_from(items.len()).unwrap_or(i128::MAX);
    let clamp = |i: i128| {
        let i = if i < 0 { i + len } else { i };
        usize::try_from(i.clamp(0, len)).unwrap_or(0)
    };
    let (start, stop) = (clamp(start), clamp(stop));
    if start >= stop {
        return Vec::new();
    }
    items.truncate(stop);
    items.split_off(start)
}

/// An `int` as Python sees it (`bool` included).
fn python_int(value: &JsonValue) -> Option<i128> {
    match value {
        JsonValue::Int(i) => Some(i128::from(*i)),
        JsonValue::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}

/// Whether Python can compute `a + b`, else its `TypeError`.
fn check_addable(a: &JsonValue, b: &JsonValue) -> Result<(), MergeError> {
    use JsonValue::{Array, Bool, Float, Int, Str};
    match (a, b) {
        (Int(_) | Bool(_) | Float(_), Int(_) | Bool(_) | Float(_))
        | (Str(_), Str(_))
        | (Array(_), Array(_)) => Ok(()),
        (Str(_) | Array(_), other) => Err(MergeError::CannotConcatenate {
            sequence: a.python_type_name(),
            other: other.python_type_name(),
        }),
        _ => Err(MergeError::UnsupportedOperand {
            op: "+",
            left: a.python_type_name(),
            right: b.python_type_name(),
        }),
    }
}

/// `existing += value` for an `int` value (the `totalItems` sum).
fn add_in_place(existing: &JsonValue, value: i64) -> Result<JsonValue, MergeError> {
    match existing {
        JsonValue::Int(i) => i
            .checked_add(value)
            .map(JsonValue::Int)
            .ok_or(MergeError::IntegerOverflow),
        JsonValue::Bool(b) => i64::from(*b)
            .checked_add(value)
            .map(JsonValue::Int)
            .ok_or(MergeError::IntegerOverflow),
        // Python converts the int to the nearest double, as `as` does.
        JsonValue::Float(x) => Ok(JsonValue::Float(x + value as f64)),
        JsonValue::Str(_) => Err(MergeError::CannotConcatenate {
            sequence: "str",
            other: "int",
        }),
        JsonValue::Array(_) => Err(MergeError::NotIterable("int")),
        JsonValue::Object(_) | JsonValue::Null => Err(MergeError::UnsupportedOperand {
            op: "+=",
            left: existing.python_type_name(),
            right: "int",
        }),
    }
}

/// Python `a < b` (`op` `"<"`), or `b > a` written as `a < b` with `op` `">"` naming it in the
/// error: numbers by value, strings by code point, lists lexicographically; other pairs raise.
fn less_than(a: &JsonValue, b: &JsonValue, op: &'static str) -> Result<bool, MergeError> {
    let unorderable = || {
        let (left, right) = if op == ">" { (b, a) } else { (a, b) };
        MergeError::Unorderable {
            op,
            left: left.python_type_name(),
            right: right.python_type_name(),
        }
    };
    if let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) {
        return Ok(x.compare(y) == Some(Ordering::Less));
    }
    match (a, b) {
        (JsonValue::Str(x), JsonValue::Str(y)) => Ok(x < y),
        (JsonValue::Array(x), JsonValue::Array(y)) => {
            match x.iter().zip(y).find(|(i, j)| !same(i, j)) {
                Some((i, j)) => less_than(i, j, "<"),
                None => Ok(x.len() < y.len()),
            }
        }
        _ => Err(unorderable()),
    }
}

/// Python `==` between JSON values, as seen by `in` and by comparisons inside containers: numbers
/// by value (`1 == 1.0 == True`), dicts whatever their key order, and `NaN` equal to `NaN`
/// (`json.loads` returns one shared `NaN` object, and Python checks identity first).
fn same(a: &JsonValue, b: &JsonValue) -> bool {
    if let (Some(x), Some(y)) = (Number::of(a), Number::of(b)) {
        return x.compare(y) == Some(Ordering::Equal)
            || matches!((x, y), (Number::Float(x), Number::Float(y)) if x.is_nan() && y.is_nan());
    }
    match (a, b) {
        (JsonValue::Null, JsonValue::Null) => true,
        (JsonValue::Str(x), JsonValue::Str(y)) => x == y,
        (JsonValue::Array(x), JsonValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(i, j)| same(i, j))
        }
        (JsonValue::Object(x), JsonValue::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => false,
    }
}

/// A text that two values share exactly when [`same`] holds between them: it lets the list merge
/// find known elements in a sorted set instead of comparing every pair.
fn equality_key(value: &JsonValue) -> String {
    let mut out = String::new();
    write_equality_key(value, &mut out);
    out
}

fn write_equality_key(value: &JsonValue, out: &mut String) {
    match value {
        JsonValue::Null => out.push_str("n;"),
        JsonValue::Bool(b) => out.push_str(if *b { "i1;" } else { "i0;" }),
        JsonValue::Int(i) => {
            out.push('i');
            out.push_str(&i.to_string());
            out.push(';');
        }
        JsonValue::Float(x) => match Number::Float(*x).as_exact_int() {
            Some(i) => {
                out.push('i');
                out.push_str(&i.to_string());
                out.push(';');
            }
            None if x.is_nan() => out.push_str("nan;"),
            None => {
                out.push('f');
                pyjson::write_float(out, *x);
                out.push(';');
            }
        },
        JsonValue::Str(s) => write_sized(s, out),
        JsonValue::Array(elements) => {
            out.push('[');
            for element in elements {
                write_equality_key(element, out);
            }
            out.push(']');
        }
        JsonValue::Object(object) => {
            let mut entries: Vec<(&str, &JsonValue)> = object.iter().collect();
            entries.sort_by(|x, y| x.0.cmp(y.0));
            out.push('{');
            for (key, value) in entries {
                write_sized(key, out);
                write_equality_key(value, out);
            }
            out.push('}');
        }
    }
}

/// `s<len>:<text>`: self-delimiting, so keys of nested values cannot run into each other.
fn write_sized(s: &str, out: &mut String) {
    out.push('s');
    out.push_str(&s.len().to_string());
    out.push(':');
    out.push_str(s);
}

/// A Python number (`bool` is an `int`).
#[derive(Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn of(value: &JsonValue) -> Option<Number> {
        match value {
            JsonValue::Int(i) => Some(Number::Int(*i)),
            JsonValue::Bool(b) => Some(Number::Int(i64::from(*b))),
            JsonValue::Float(x) => Some(Number::Float(*x)),
            _ => None,
        }
    }

    /// The integer this number equals exactly, if it is one an `i64` holds.
    fn as_exact_int(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            // -2^63 <= x < 2^63 and integral: the cast is exact.
            Number::Float(x)
                if x.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x) =>
            {
                Some(x as i64)
            }
            Number::Float(_) => None,
        }
    }

    /// Exact comparison, as Python compares an `int` with a `float`; `None` when a `NaN` is
    /// involved.
    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(x), Number::Int(y)) => Some(x.cmp(&y)),
            (Number::Float(x), Number::Float(y)) => x.partial_cmp(&y),
            (Number::Int(i), Number::Float(x)) => compare_int_float(i, x),
            (Number::Float(x), Number::Int(i)) => compare_int_float(i, x).map(Ordering::reverse),
        }
    }
}

fn compare_int_float(i: i64, x: f64) -> Option<Ordering> {
    const TWO_POW_63: f64 = 9.223_372_036_854_776e18;
    if x.is_nan() {
        None
    } else if x >= TWO_POW_63 {
        Some(Ordering::Less)
    } else if x < -TWO_POW_63 {
        Some(Ordering::Greater)
    } else {
        let whole = x.trunc();
        // Within (-2^63, 2^63): the truncated value is an exact i64.
        match i.cmp(&(whole as i64)) {
            Ordering::Equal => 0.0f64.partial_cmp(&(x - whole)),
            unequal => Some(unequal),
        }
    }
}

/// Python truthiness.
pub(crate) fn truthy(value: &JsonValue) -> bool {
    match value {
        JsonValue::Null => false,
        JsonValue::Bool(b) => *b,
        JsonValue::Int(i) => *i != 0,
        JsonValue::Float(x) => *x != 0.0,
        JsonValue::Str(s) => !s.is_empty(),
        JsonValue::Array(a) => !a.is_empty(),
        JsonValue::Object(o) => !o.is_empty(),
    }
}

/// `for x in value`: list elements, string characters, dict keys.
pub(crate) fn iterate(value: &JsonValue) -> Result<Vec<JsonValue>, MergeError> {
    match value {
        JsonValue::Array(elements) => Ok(elements.clone()),
        JsonValue::Str(s) => Ok(s.chars().map(|c| JsonValue::Str(c.to_string())).collect()),
        JsonValue::Object(object) => Ok(object.keys().map(JsonValue::from).collect()),
        other => Err(MergeError::NotIterable(other.python_type_name())),
    }
}

/// `key in container`.
pub(crate) fn contains(container: &JsonValue, key: &str) -> Result<bool, MergeError> {
    match container {
        JsonValue::Object(object) => Ok(object.contains_key(key)),
        JsonValue::Array(elements) => Ok(elements.iter().any(|e| e.as_str() == Some(key))),
        JsonValue::Str(s) => Ok(s.contains(key)),
        other => Err(MergeError::NotContainer(other.python_type_name())),
    }
}

/// `container[key]`, read.
pub(crate) fn get<'v>(container: &'v JsonValue, key: &str) -> Result<&'v JsonValue, MergeError> {
    match container {
        JsonValue::Object(object) => object
            .get(key)
            .ok_or_else(|| MergeError::MissingKey(key.to_owned())),
        other => Err(subscript_error(other)),
    }
}

/// `container[key]`, to change the value in place.
fn get_mut<'v>(container: &'v mut JsonValue, key: &str) -> Result<&'v mut JsonValue, MergeError> {
    match container {
        JsonValue::Object(object) => object
            .get_mut(key)
            .ok_or_else(|| MergeError::MissingKey(key.to_owned())),
        other => Err(subscript_error(other)),
    }
}

fn subscript_error(container: &JsonValue) -> MergeError {
    match container {
        JsonValue::Array(_) => MergeError::ListIndex,
        JsonValue::Str(_) => MergeError::StringIndex,
        other => MergeError::NotSubscriptable(other.python_type_name()),
    }
}

/// `container[key] = value`.
fn set(container: &mut JsonValue, key: String, value: JsonValue) -> Result<(), MergeError> {
    match container {
        JsonValue::Object(object) => {
            object.insert(key, value);
            Ok(())
        }
        JsonValue::Array(_) => Err(MergeError::ListIndex),
        other => Err(MergeError::NoItemAssignment(other.python_type_name())),
    }
}

pub(crate) fn no_attribute(value: &JsonValue, attribute: &str) -> MergeError {
    MergeError::NoAttribute {
        type_name: value.python_type_name(),
        attribute: attribute.to_owned(),
    }
}

#[cfg(test)]
mod tests;
