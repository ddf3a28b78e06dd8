//! 3.9.5's `WazuhDBQueryAgents` (`utils.py` `WazuhDBQuery`, `agent.py`) over the agent table:
//! the same steps in the same order, each failing as upstream fails. The filters are
//! `filters`', the clause `clause`'s, the SQL `sql`'s; here the pipeline, the selection, the
//! search, the sort, the cut and the items.
//!
//! 1. `select` (`{"fields": [...]}`): fields of `Agent.fields` but `internal_key` (1724);
//! 2. the filters: the legacy `filters` dict (`{"status": "active,pending", "older_than":
//!    "1d", ...}`, each value split on `,` into an OR group) then the query `q` (`field op value`
//!    joined by `;` AND / `,` OR, with parentheses; ops `=`, `!=`, `<`, `>`, `~`; 1407, 1408,
//!    1409), a value `all` dropping its filter, `null` meaning SQL `NULL`; `status` takes
//!    `active`, `disconnected`, `pending`, `never connected` (1729) through upstream's own SQL
//!    (which is not quite its `calculate_status`: `status=active` always keeps agent 000),
//!    `lastKeepAlive` / `dateAdd` take a timeframe (`30m`, `1d2h`) or a date (1411, 1412);
//! 3. `search` (`{"value", "negation"}`): a `LIKE '%value%'` over every column (the id as a
//!    number), wildcards in the value active as upstream leaves them;
//! 4. the count (`totalItems`), with the clause as SQLite parses it (see `sql`);
//! 5. `sort` (`{"fields", "order"}`, 1403; `status` sorts by last keep-alive, `os.version` by
//!    major then minor as numbers; default `id` ascending);
//! 6. `offset` / `limit` (1405 over 1000, 1406 for 0, a negative limit meaning none, as SQLite
//!    takes it);
//! 7. the items, formatted as `_format_data_into_dictionary` formats them.
//!
//! ```text
//! q = "status=active;os.platform=ubuntu", sort = {"fields": ["name"], "order": "desc"}
//! → WHERE ((last_keepalive >= :time_active AND version IS NOT NULL) or id = 0)
//!         AND (os_platform = :os.platform$0 COLLATE NOCASE)  ORDER BY name desc
//! ```

use super::clause::{Operand, Where, binding_of, check_like_patterns, matches, parse_clause};
use super::filters::filter_clause;
use super::sql::{
    Binding, CmpOp, Collation, FollowedBy, Parameters, SqlValue, Token, compare, near,
};
use super::table::{AgentRow, AgentTable};
use super::{Field, LIMIT_SECONDS};
use crate::dapi::builtin::MAXIMUM_LIMIT;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::python::{
    int_of, no_attribute, repr_of, str_method, str_of, unorderable,
};
use crate::dapi::builtin::time::{DateTime, days_in_month};
use crate::dapi::json::{JsonObject, JsonValue};
use crate::dapi::merge::{MergeError, get, iterate, truthy};
use crate::integrity::storage::Timestamp;
use std::collections::BTreeSet;

/// The arguments of one query, as the function received them.
pub(super) struct QueryArguments<'a> {
    pub(super) offset: &'a JsonValue,
    pub(super) limit: &'a JsonValue,
    pub(super) sort: &'a JsonValue,
    pub(super) search: &'a JsonValue,
    pub(super) select: &'a JsonValue,
    pub(super) q: JsonValue,
    pub(super) filters: &'a JsonValue,
}

/// What the query computes.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueryMode {
    /// `count`: compute `totalItems`.
    pub(super) count: bool,
    /// `get_data`: compute the items.
    pub(super) data: bool,
    /// Leave `internal_key` out of the items (`get_agent` keeps it).
    pub(super) remove_extra_fields: bool,
}

/// What the query found.
#[derive(Debug, Clone, Default)]
pub(super) struct QueryAnswer {
    pub(super) total_items: i64,
    pub(super) items: Vec<JsonObject>,
}

/// The sort keys of `ORDER BY`.
#[derive(Debug, Clone, Copy)]
enum SortKey {
    Column(Field),
    /// `CAST(<column> AS INTEGER)`.
    Integer(Field),
}

/// `WazuhDBQueryAgents(...).run()`. See the [module documentation](self).
///
/// # Errors
/// Upstream's answer for every argument it refuses, and SQLite's for every clause it cannot run.
pub(super) fn run(
    table: &AgentTable,
    arguments: QueryArguments<'_>,
    mode: QueryMode,
    now: Timestamp,
) -> FunctionResult<QueryAnswer> {
    // `__init__`: `select.copy()`.
    if truthy(arguments.select)
        && !matches!(arguments.select, JsonValue::Object(_) | JsonValue::Array(_))
    {
        return Err(no_attribute(arguments.select, "copy"));
    }
    let selected = parse_select(arguments.select)?;

    let mut clause = filter_clause(arguments.filters, arguments.q, now)?;
    let searched = truthy(arguments.search);
    if searched {
        add_search(&mut clause, arguments.search)?;
    }

    let mut answer = QueryAnswer::default();
    let mut parsed = None;
    if mode.count {
        let where_clause = parse_clause(&clause, FollowedBy::End)?;
        clause.params.check()?;
        check_like_patterns(&clause)?;
        let count = table
            .rows
            .iter()
            .filter(|row| matches(where_clause.as_ref(), row, &clause.params, now))
            .count();
        answer.total_items = i64::try_from(count).unwrap_or(i64::MAX);
        parsed = Some(where_clause);
    }

    let (sort_keys, order) = sort_spec(arguments.sort, searched)?;
    let limited = limit_clause(arguments.limit, arguments.offset, &mut clause.params)?;
    if !mode.data {
        return Ok(answer);
    }
    let where_clause = match parsed {
        Some(where_clause) => where_clause,
        None => parse_clause(&clause, FollowedBy::OrderBy)?,
    };
    let descending = order_direction(&order)?;
    clause.params.check()?;
    check_like_patterns(&clause)?;
    let (offset, limit) = if limited {
        // SQLite's `MustBeInt` on the limit, then the offset.
        let limit = must_be_int(&clause.params.value("limit"))?;
        (must_be_int(&clause.params.value("offset"))?.max(0), limit)
    } else {
        (0, -1)
    };
    let mut rows: Vec<&AgentRow> = table
        .rows
        .iter()
        .filter(|row| matches(where_clause.as_ref(), row, &clause.params, now))
        .collect();
    rows.sort_by(|a, b| {
        sort_keys
            .iter()
            .map(|key| {
                let (x, y) = match key {
                    SortKey::Column(field) => (a.column(*field), b.column(*field)),
                    SortKey::Integer(field) => (
                        a.column(*field).cast_integer(),
                        b.column(*field).cast_integer(),
                    ),
                };
                let ordering = compare(&x, &y, Collation::Binary);
                if descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            })
            .find(|ordering| ordering.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let rows = rows
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX));
    let mut fields = selected;
    if mode.remove_extra_fields {
        fields.retain(|field| *field != Field::InternalKey);
    }
    if !fields.contains(&Field::Id) {
        fields.push(Field::Id);
    }
    for row in rows {
        answer.items.push(format_item(row, &fields, now)?);
    }
    Ok(answer)
}

/// The rows the query `q` keeps, in table order: what a count of `q` counts (no selection,
/// search, sort or cut).
///
/// # Errors
/// As [`run`] for the query.
pub(super) fn matching_rows<'t>(
    table: &'t AgentTable,
    q: &str,
    now: Timestamp,
) -> FunctionResult<Vec<&'t AgentRow>> {
    let clause = filter_clause(
        &JsonValue::Object(JsonObject::new()),
        JsonValue::from(q),
        now,
    )?;
    let where_clause = parse_clause(&clause, FollowedBy::End)?;
    clause.params.check()?;
    check_like_patterns(&clause)?;
    Ok(table
        .rows
        .iter()
        .filter(|row| matches(where_clause.as_ref(), row, &clause.params, now))
        .collect())
}

/// `_parse_select_filter`: the selected fields in `Agent.fields` order (all of them without a
/// selection).
fn parse_select(select: &JsonValue) -> FunctionResult<Vec<Field>> {
    if !truthy(select) {
        return Ok(Field::ALL.to_vec());
    }
    let requested = python_set(get(select, "fields")?)?;
    let allowed = |value: &JsonValue| {
        value
            .as_str()
            .and_then(Field::from_api_name)
            .filter(|field| *field != Field::InternalKey)
    };
    let unknown: Vec<&JsonValue> = requested.iter().filter(|v| allowed(v).is_none()).collect();
    if !unknown.is_empty() {
        let all: Vec<&str> = Field::ALL.iter().map(|f| f.api_name()).collect();
        return Err(FunctionError::wazuh(
            1724,
            Some(&format!(
                "Allowed select fields: {}. Fields {}",
                all.join(", "),
                join_names(&unknown)?
            )),
        ));
    }
    Ok(Field::ALL
        .into_iter()
        .filter(|field| requested.iter().any(|v| allowed(v) == Some(*field)))
        .collect())
}

/// `set(value)`: its elements once each, in first-seen order.
fn python_set(value: &JsonValue) -> FunctionResult<Vec<JsonValue>> {
    let mut seen = BTreeSet::new();
    let mut set = Vec::new();
    for element in iterate(value)? {
        let key = match &element {
            JsonValue::Array(_) | JsonValue::Object(_) => {
                return Err(MergeError::Unhashable(element.python_type_name()).into());
            }
            JsonValue::Str(s) => format!("s{s}"),
            // Python: `1 == 1.0 == True`, one element.
            JsonValue::Int(i) => format!("n{i}"),
            JsonValue::Bool(b) => format!("n{}", i64::from(*b)),
            JsonValue::Float(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => {
                format!("n{}", *x as i64)
            }
            JsonValue::Float(x) => format!("f{}", x.to_bits()),
            JsonValue::Null => "z".to_owned(),
        };
        if seen.insert(key) {
            set.push(element);
        }
    }
    Ok(set)
}

/// `', '.join(values)`.
fn join_names(values: &[&JsonValue]) -> FunctionResult<String> {
    let mut names = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        match value {
            JsonValue::Str(name) => names.push(name.as_str()),
            other => {
                return Err(MergeError::JoinNonString {
                    index,
                    type_name: other.python_type_name(),
                }
                .into());
            }
        }
    }
    Ok(names.join(", "))
}

/// `_add_search_to_query` (agents' version).
fn add_search(clause: &mut Where, search: &JsonValue) -> FunctionResult<()> {
    let negation = truthy(get(search, "negation")?);
    let value = get(search, "value")?;
    if !clause.tokens.is_empty() {
        clause.push(Token::And);
    }
    if negation {
        clause.push(Token::Not);
    }
    clause.push(Token::Open);
    for (i, field) in Field::ALL
        .into_iter()
        .filter(|f| *f != Field::Id)
        .enumerate()
    {
        if i > 0 {
            clause.push(Token::Or);
        }
        clause.push(Token::Open);
        clause.compare(
            field,
            CmpOp::Like,
            Operand::Param("search".into()),
            Collation::Binary,
        );
        clause.push(Token::And);
        clause.null(field, true);
        clause.push(Token::Close);
    }
    clause.push(Token::Or);
    clause.compare(
        Field::Id,
        CmpOp::Like,
        Operand::Param("search_id".into()),
        Collation::Binary,
    );
    clause.push(Token::Close);
    clause.params.supply(
        "search",
        Binding::Value(SqlValue::Text(format!("%{}%", str_of(value)))),
    );
    let text = str_method(value, "isdigit")?;
    let search_id = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .map_or(Binding::TooLarge, |id| Binding::Value(SqlValue::Int(id)))
    } else {
        Binding::Value(SqlValue::Text(text.to_owned()))
    };
    clause.params.supply("search_id", search_id);
    Ok(())
}

/// `_add_sort_to_query`: the sort keys and the order text.
fn sort_spec(sort: &JsonValue, searched: bool) -> FunctionResult<(Vec<SortKey>, String)> {
    if !truthy(sort) {
        return Ok((vec![SortKey::Column(Field::Id)], "ASC".to_owned()));
    }
    let fields = get(sort, "fields")?;
    if !truthy(fields) {
        return Ok((
            vec![SortKey::Column(Field::Id)],
            str_of(get(sort, "order")?),
        ));
    }
    let requested = python_set(fields)?;
    let unknown: Vec<&JsonValue> = requested
        .iter()
        .filter(|v| v.as_str().and_then(Field::from_api_name).is_none())
        .collect();
    if !unknown.is_empty() {
        // After a search, upstream has moved `id` to the end of its fields.
        let mut allowed: Vec<Field> = Field::ALL.to_vec();
        if searched {
            allowed.retain(|f| *f != Field::Id);
            allowed.push(Field::Id);
        }
        let allowed: Vec<String> = allowed
            .iter()
            .map(|f| repr_of(&JsonValue::from(f.api_name())))
            .collect();
        return Err(FunctionError::wazuh(
            1403,
            Some(&format!(
                "Allowerd sort fields: {{{}}}. Fields: {}",
                allowed.join(", "),
                join_names(&unknown)?
            )),
        ));
    }
    let order = str_of(get(sort, "order")?);
    let keys = requested
        .iter()
        .filter_map(|v| v.as_str().and_then(Field::from_api_name))
        .flat_map(|field| match field {
            Field::Status => vec![SortKey::Column(Field::LastKeepAlive)],
            Field::OsVersion => vec![
                SortKey::Integer(Field::OsMajor),
                SortKey::Integer(Field::OsMinor),
            ],
            other => vec![SortKey::Column(other)],
        })
        .collect();
    Ok((keys, order))
}

/// The direction an order text gives `ORDER BY` (upstream writes it into the statement as is).
///
/// # Errors
/// SQLite's syntax error for anything but `asc`, `desc` (any case) or nothing.
fn order_direction(order: &str) -> FunctionResult<bool> {
    let mut words = order.split_whitespace();
    let direction = match words.next() {
        None => return Ok(false),
        Some(word) if word.eq_ignore_ascii_case("asc") => false,
        Some(word) if word.eq_ignore_ascii_case("desc") => true,
        Some(word) => return Err(near(word)),
    };
    match words.next() {
        None => Ok(direction),
        Some(word) => Err(near(word)),
    }
}

/// `_add_limit_to_query`: whether the statement gets `LIMIT :offset,:limit` (whose values go to
/// `params`).
fn limit_clause(
    limit: &JsonValue,
    offset: &JsonValue,
    params: &mut Parameters,
) -> FunctionResult<bool> {
    if truthy(limit) {
        let beyond = match limit {
            JsonValue::Int(l) => *l > MAXIMUM_LIMIT,
            JsonValue::Float(l) => *l > MAXIMUM_LIMIT as f64,
            JsonValue::Bool(_) => false,
            other => return Err(unorderable(">", other, "int")),
        };
        if beyond {
            return Err(FunctionError::wazuh(1405, Some(&str_of(limit))));
        }
        params.uses("offset");
        params.uses("limit");
        params.supply("offset", binding_of(offset));
        params.supply("limit", binding_of(limit));
        return Ok(true);
    }
    let zero = matches!(limit, JsonValue::Int(0) | JsonValue::Bool(false))
        || matches!(limit, JsonValue::Float(x) if *x == 0.0);
    if zero {
        return Err(FunctionError::wazuh(1406, None));
    }
    Ok(false)
}

/// SQLite's `MustBeInt` on a `LIMIT` / `OFFSET` value.
fn must_be_int(value: &SqlValue) -> FunctionResult<i64> {
    let mismatch = || FunctionError::database("datatype mismatch");
    let numeric = match value {
        SqlValue::Text(text) => text
            .trim()
            .parse::<i64>()
            .map(SqlValue::Int)
            .or_else(|_| text.trim().parse::<f64>().map(SqlValue::Real))
            .map_err(|_| mismatch())?,
        other => other.clone(),
    };
    match numeric {
        SqlValue::Int(i) => Ok(i),
        SqlValue::Real(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Ok(x as i64),
        _ => Err(mismatch()),
    }
}

/// `_format_data_into_dictionary`: the row's selected fields that are set, `os.*` nested first.
fn format_item(row: &AgentRow, fields: &[Field], now: Timestamp) -> FunctionResult<JsonObject> {
    let mut os: Vec<(&str, JsonValue)> = Vec::new();
    let mut item = JsonObject::new();
    for field in Field::ALL.into_iter().filter(|f| fields.contains(f)) {
        let value = match field {
            Field::Id => JsonValue::from(zfill3(row.id)),
            Field::Status => JsonValue::from(agent_status(row, now)?),
            Field::Group => match &row.group {
                Some(group) => JsonValue::Array(group.split(',').map(JsonValue::from).collect()),
                None => continue,
            },
            other => match row.column(other).to_text() {
                Some(text) => JsonValue::from(text),
                None => continue,
            },
        };
        match field.os_key() {
            Some(key) => os.push((key, value)),
            None => {
                item.insert(field.api_name(), value);
            }
        }
    }
    if os.is_empty() {
        return Ok(item);
    }
    os.sort_by(|a, b| a.0.cmp(b.0));
    let mut nested = JsonObject::new();
    nested.insert(
        "os",
        JsonValue::Object(os.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    );
    for (key, value) in item {
        nested.insert(key, value);
    }
    Ok(nested)
}

/// `str(id).zfill(3)`.
fn zfill3(id: i64) -> String {
    if id < 0 {
        format!("-{:0>2}", id.unsigned_abs())
    } else {
        format!("{id:0>3}")
    }
}

/// `Agent.calculate_status(lastKeepAlive, version is None, now)`.
fn agent_status(row: &AgentRow, now: Timestamp) -> FunctionResult<&'static str> {
    let Some(last) = row
        .last_keepalive
        .as_deref()
        .filter(|last| !last.is_empty())
    else {
        return Ok("Never connected");
    };
    let last = keepalive_date(last)?;
    let now_micros = i128::from(now.secs) * 1_000_000 + i128::from(now.nanos / 1000);
    let elapsed_micros = now_micros - i128::from(last.to_unix()) * 1_000_000;
    Ok(if elapsed_micros > i128::from(LIMIT_SECONDS) * 1_000_000 {
        "Disconnected"
    } else if row.version.is_none() {
        "Pending"
    } else {
        "Active"
    })
}

/// `calculate_status`'s reading of a `lastKeepAlive` text: `datetime(year=int(s[:4]),
/// month=int(s[5:7]), day=int(s[8:10]), hour=int(s[11:13]), minute=int(s[14:16]),
/// second=int(s[17:19]))`, each failure with Python's text (a database may hold anything).
fn keepalive_date(text: &str) -> FunctionResult<DateTime> {
    let chars: Vec<char> = text.chars().collect();
    let part = |from: usize, to: usize| -> FunctionResult<i128> {
        let slice: String = chars[from.min(chars.len())..to.min(chars.len())]
            .iter()
            .collect();
        int_of(&JsonValue::Str(slice))
    };
    let (year, month, day) = (part(0, 4)?, part(5, 7)?, part(8, 10)?);
    let (hour, minute, second) = (part(11, 13)?, part(14, 16)?, part(17, 19)?);
    if !(1..=9999).contains(&year) {
        return Err(FunctionError::python(format!(
            "year {year} is out of range"
        )));
    }
    let in_range = |value: i128, low: i128, high: i128, what: &str| match u32::try_from(value) {
        Ok(v) if (low..=high).contains(&value) => Ok(v),
        _ => Err(FunctionError::python(format!(
            "{what} must be in {low}..{high}"
        ))),
    };
    let month = in_range(month, 1, 12, "month")?;
    // `year` is 1..=9999 here.
    let year = year as i64;
    let day = match u32::try_from(day) {
        Ok(day) if (1..=days_in_month(year, month)).contains(&day) => day,
        _ => return Err(FunctionError::python("day is out of range for month")),
    };
    Ok(DateTime {
        year,
        month,
        day,
        hour: in_range(hour, 0, 23, "hour")?,
        minute: in_range(minute, 0, 59, "minute")?,
        second: in_range(second, 0, 59, "second")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_texts_are_read_as_calculate_status_reads_them() {
        let date = keepalive_date("2019-07-15 09:59:00").unwrap();
        assert_eq!(date.to_string(), "2019-07-15 09:59:00");
        // Only the slices count: what follows the seconds is ignored, blanks around a number
        // are taken.
        let date = keepalive_date("2019-07-15 09:59:00.123 junk").unwrap();
        assert_eq!(date.to_string(), "2019-07-15 09:59:00");
        assert_eq!(keepalive_date(" 999-01-01 00:00:00").unwrap().year, 999);
        let message = |text: &str| keepalive_date(text).unwrap_err().message;
        assert_eq!(
            message("yesterday"),
            "invalid literal for int() with base 10: 'yest'"
        );
        assert_eq!(
            message("2019-07-15"),
            "invalid literal for int() with base 10: ''"
        );
        assert_eq!(message("0000-01-01 00:00:00"), "year 0 is out of range");
        assert_eq!(message("2019-13-01 00:00:00"), "month must be in 1..12");
        assert_eq!(
            message("2019-02-30 00:00:00"),
            "day is out of range for month"
        );
        assert_eq!(message("2019-02-28 24:00:00"), "hour must be in 0..23");
        assert_eq!(message("2019-02-28 23:60:00"), "minute must be in 0..59");
        assert_eq!(message("2019-02-28 23:59:60"), "second must be in 0..59");
    }

    #[test]
    fn upstream_helpers() {
        assert_eq!(zfill3(7), "007");
        assert_eq!(zfill3(1234), "1234");
        assert_eq!(zfill3(-5), "-05");
        assert_eq!(order_direction(" DESC "), Ok(true));
        assert_eq!(order_direction(""), Ok(false));
        assert_eq!(
            order_direction("up").unwrap_err().message,
            "Error in wazuhdb request: near \"up\": syntax error"
        );
        assert_eq!(must_be_int(&SqlValue::Text("5".into())), Ok(5));
        assert_eq!(
            must_be_int(&SqlValue::Real(2.5)).unwrap_err().message,
            "Error in wazuhdb request: datatype mismatch"
        );
        assert_eq!(
            must_be_int(&SqlValue::Null).unwrap_err().message,
            "Error in wazuhdb request: datatype mismatch"
        );
    }
}
