//! The filters of upstream's agent queries (`WazuhDBQuery._parse_legacy_filters`,
//! `_parse_query`, `_process_filter`, and `WazuhDBQueryAgents`' own `_filter_status`,
//! `_filter_date`, `_process_filter` for groups): the legacy `filters` dict and the query
//! language `q`, parsed as upstream parses them (its pattern, its levels of parentheses, its
//! parameter names) and written as the clause's tokens.
//!
//! ```text
//! filters = {"status": "active,pending"}, q = "os.platform=ubuntu"
//! → (( <active> ) OR ( <pending> )) AND ( os_platform = :os.platform$0 COLLATE NOCASE )
//! ```

use super::clause::{Operand, Predicate, Where, binding_of, cmp_op};
use super::sql::{Binding, CmpOp, Collation, SqlValue, Token};
use super::{Field, LIMIT_SECONDS};
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::python::{no_attribute, str_method, str_of};
use crate::dapi::builtin::time::DateTime;
use crate::dapi::json::JsonValue;
use crate::dapi::merge::{contains, get, truthy};
use crate::integrity::storage::Timestamp;

/// The query operators, in upstream's order (for the 1409 text).
const OPERATORS: [(&str, &str); 5] = [
    ("=", "="),
    ("!=", "!="),
    ("<", "<"),
    (">", ">"),
    ("~", "LIKE"),
];

/// A filter of the clause (`query_filters`' entries).
#[derive(Debug, Clone)]
struct Filter {
    /// `<field>$<n>`: the parameter name, from which upstream also takes the field back.
    indexed: String,
    /// The value (`NULL` for `null`).
    value: JsonValue,
    /// `=`, `!=`, `<`, `>` or `LIKE`.
    operator: &'static str,
    /// What joins it to the next filter.
    separator: Separator,
    /// Parenthesis level.
    level: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Separator {
    And,
    Or,
    Nothing,
}

/// `_add_filters_to_query`: the legacy `filters` then `q`, as the tokens of the `WHERE` clause,
/// each filter between parentheses (two when its level rises or falls, which is how upstream
/// nests them), joined by its separator.
///
/// # Errors
/// Upstream's answers for the filters and the query it refuses.
pub(super) fn filter_clause(
    filters_argument: &JsonValue,
    q: JsonValue,
    now: Timestamp,
) -> FunctionResult<Where> {
    let mut q = q;
    let mut filters = legacy_filters(filters_argument, &mut q)?;
    if let Some(last) = filters.last_mut() {
        last.separator = if truthy(&q) {
            Separator::And
        } else {
            Separator::Nothing
        };
    }
    if truthy(&q) {
        parse_query(&q, &mut filters)?;
    }
    let mut clause = Where::default();
    let mut level = 0;
    for filter in &filters {
        clause.push(Token::Open);
        if level < filter.level {
            clause.push(Token::Open);
        }
        process_filter(&mut clause, filter, now)?;
        clause.push(Token::Close);
        if level > filter.level {
            clause.push(Token::Close);
        }
        match filter.separator {
            Separator::And => clause.push(Token::And),
            Separator::Or => clause.push(Token::Or),
            Separator::Nothing => {}
        }
        level = filter.level;
    }
    Ok(clause)
}

/// `_parse_legacy_filters` (agents' then the base's): the `filters` dict as filters, its
/// `older_than` appended to `q`.
fn legacy_filters(filters: &JsonValue, q: &mut JsonValue) -> FunctionResult<Vec<Filter>> {
    if !truthy(filters) {
        return Ok(Vec::new());
    }
    let mut entries: Vec<(&str, &JsonValue)> = Vec::new();
    if contains(filters, "older_than")? {
        let older_than = get(filters, "older_than")?;
        if *older_than != JsonValue::Null {
            let condition = format!(
                "(lastKeepAlive>{0};status!=neverconnected,dateAdd>{0};status=neverconnected)",
                str_of(older_than)
            );
            *q = append_to_q(q, &condition)?;
        }
    }
    let JsonValue::Object(filters) = filters else {
        return Err(no_attribute(filters, "items"));
    };
    for (name, value) in filters.iter() {
        if name != "older_than" {
            entries.push((name, value));
        }
    }
    let mut out = Vec::new();
    for (name, value) in entries {
        let values: Vec<JsonValue> = match value {
            JsonValue::Str(text) => text.split(',').map(JsonValue::from).collect(),
            JsonValue::Array(values) => values.clone(),
            other => vec![other.clone()],
        };
        let several = values.len() > 1;
        let last = values.len().saturating_sub(1);
        for (i, value) in values.into_iter().enumerate() {
            if value.as_str() == Some("all") {
                continue;
            }
            out.push(Filter {
                indexed: format!("{name}${i}"),
                value: null_if_null(value),
                operator: "=",
                separator: if several {
                    Separator::Or
                } else {
                    Separator::And
                },
                level: i64::from(i != last),
            });
        }
    }
    Ok(out)
}

/// `self.q += (';' if self.q else '') + condition`.
fn append_to_q(q: &JsonValue, condition: &str) -> FunctionResult<JsonValue> {
    let separator = if truthy(q) { ";" } else { "" };
    match q {
        JsonValue::Str(text) => Ok(JsonValue::from(format!("{text}{separator}{condition}"))),
        JsonValue::Array(_) => Err(FunctionError::python(
            "can only concatenate list (not \"str\") to list",
        )),
        other => Err(FunctionError::python(format!(
            "unsupported operand type(s) for +=: '{}' and 'str'",
            other.python_type_name()
        ))),
    }
}

fn null_if_null(value: JsonValue) -> JsonValue {
    if value.as_str() == Some("null") {
        JsonValue::Null
    } else {
        value
    }
}

/// One match of upstream's query pattern
/// `(\()?([\w.]+)([=!<>~]{1,2})([\w _\-\.:/']+)(\))?([,;])?`.
struct QueryTerm<'q> {
    open: bool,
    field: &'q str,
    operator: &'q str,
    value: &'q str,
    close: bool,
    separator: Option<char>,
    end: usize,
}

fn is_field_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '.'
}

fn is_value_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | ' ' | '-' | '.' | ':' | '/' | '\'')
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '<' | '>' | '~')
}

/// The pattern matched at byte `start` of `q` (the regex engine's greedy choices: no term of
/// the pattern can give back characters the next one would take); else where the next match
/// may start: past a field name with no operator and value after it, since no start inside that
/// name can match either (what keeps a scan of `q` linear).
fn query_term(q: &str, start: usize) -> Result<QueryTerm<'_>, usize> {
    let run = |from: usize, class: fn(char) -> bool| -> usize {
        q[from..]
            .chars()
            .take_while(|c| class(*c))
            .map(char::len_utf8)
            .sum()
    };
    let open = q[start..].starts_with('(');
    let field_start = start + usize::from(open);
    let field_len = run(field_start, is_field_char);
    if field_len == 0 {
        return Err(start + q[start..].chars().next().map_or(1, char::len_utf8));
    }
    let op_start = field_start + field_len;
    let op_len = run(op_start, is_operator_char);
    if op_len == 0 || op_len > 2 {
        return Err(op_start);
    }
    let value_start = op_start + op_len;
    let value_len = run(value_start, is_value_char);
    if value_len == 0 {
        return Err(op_start);
    }
    let mut end = value_start + value_len;
    let close = q[end..].starts_with(')');
    end += usize::from(close);
    let separator = q[end..].chars().next().filter(|c| matches!(c, ',' | ';'));
    end += separator.map_or(0, char::len_utf8);
    Ok(QueryTerm {
        open,
        field: &q[field_start..op_start],
        operator: &q[op_start..value_start],
        value: &q[value_start..value_start + value_len],
        close,
        separator,
        end,
    })
}

/// `_parse_query`: `q` as filters, appended to `filters`.
fn parse_query(q: &JsonValue, filters: &mut Vec<Filter>) -> FunctionResult<()> {
    let JsonValue::Str(q) = q else {
        return Err(FunctionError::python(
            "expected string or bytes-like object",
        ));
    };
    if query_term(q, 0).is_err() {
        return Err(FunctionError::wazuh(1407, Some(q)));
    }
    let mut counts = FilterCounts::of(filters);
    let mut level = 0i64;
    let mut at = 0;
    while at < q.len() {
        let term = match query_term(q, at) {
            Ok(term) => term,
            Err(resume_at) => {
                at = resume_at;
                continue;
            }
        };
        at = term.end;
        let Some(field) = Field::from_api_name(term.field) else {
            let all: Vec<&str> = Field::ALL.iter().map(|f| f.api_name()).collect();
            return Err(FunctionError::wazuh(
                1408,
                Some(&format!(
                    "Available fields: {}. Field: {}",
                    all.join(", "),
                    term.field
                )),
            ));
        };
        let Some((_, operator)) = OPERATORS.iter().find(|(op, _)| *op == term.operator) else {
            let all: Vec<&str> = OPERATORS.iter().map(|(op, _)| *op).collect();
            return Err(FunctionError::wazuh(
                1409,
                Some(&format!(
                    "Valid operators: {}. Used operator: {}",
                    all.join(", "),
                    term.operator
                )),
            ));
        };
        level += i64::from(term.open);
        level -= i64::from(term.close);
        if term.value == "all" {
            continue;
        }
        let index = counts.filters_naming(field);
        let indexed = format!("{}${index}", term.field);
        counts.add(&indexed);
        filters.push(Filter {
            indexed,
            value: null_if_null(JsonValue::from(term.value)),
            operator,
            separator: match term.separator {
                Some(',') => Separator::Or,
                Some(_) => Separator::And,
                None => Separator::Nothing,
            },
            level,
        });
    }
    Ok(())
}

/// For each field, how many filters there are whose parameter name contains the field's name
/// (upstream numbers a field's filters so: `len([f for f in query_filters if field in
/// f['field']])`, which also counts `name` in `os.name$0`), kept up to date instead of
/// recounted for every term.
struct FilterCounts([usize; Field::ALL.len()]);

impl FilterCounts {
    fn of(filters: &[Filter]) -> Self {
        let mut counts = FilterCounts([0; Field::ALL.len()]);
        for filter in filters {
            counts.add(&filter.indexed);
        }
        counts
    }

    fn add(&mut self, indexed: &str) {
        for (count, field) in self.0.iter_mut().zip(Field::ALL) {
            if indexed.contains(field.api_name()) {
                *count += 1;
            }
        }
    }

    fn filters_naming(&self, field: Field) -> usize {
        Field::ALL
            .iter()
            .position(|f| *f == field)
            .map_or(0, |i| self.0[i])
    }
}

/// `_process_filter`: the tokens of one filter, between its parentheses.
fn process_filter(clause: &mut Where, filter: &Filter, now: Timestamp) -> FunctionResult<()> {
    let field_filter = filter.indexed.replace('.', "_");
    // Upstream takes the field back from the parameter name, up to its first `$`.
    let field_name = filter.indexed.split('$').next().unwrap_or_default();
    match field_name {
        "group" if filter.value != JsonValue::Null => {
            let value = filter.value.as_str().ok_or_else(|| {
                FunctionError::python(format!(
                    "can only concatenate str (not \"{}\") to str",
                    filter.value.python_type_name()
                ))
            })?;
            let patterns = [
                format!("{field_filter}_1"),
                format!("{field_filter}_2"),
                format!("{field_filter}_3"),
            ];
            for (i, name) in patterns.iter().enumerate() {
                if i > 0 {
                    clause.push(Token::Or);
                }
                clause.compare(
                    Field::Group,
                    CmpOp::Like,
                    Operand::Param(name.clone()),
                    Collation::Binary,
                );
            }
            clause.push(Token::Or);
            clause.compare(
                Field::Group,
                CmpOp::Eq,
                Operand::Param(field_filter.clone()),
                Collation::Binary,
            );
            for (name, value) in patterns.iter().zip([
                format!("%,{value}"),
                format!("{value},%"),
                format!("%,{value},%"),
            ]) {
                clause
                    .params
                    .supply(name, Binding::Value(SqlValue::Text(value)));
            }
            clause.params.supply(
                &field_filter,
                Binding::Value(SqlValue::Text(value.to_owned())),
            );
            Ok(())
        }
        "status" => filter_status(clause, filter, now),
        "lastKeepAlive" | "dateAdd" if !matches_full_date(&filter.value)? => {
            filter_date(clause, filter)
        }
        name => {
            let Some(field) = Field::from_api_name(name) else {
                return Err(FunctionError::key_error(name));
            };
            if filter.value == JsonValue::Null {
                clause.null(field, false);
                return Ok(());
            }
            let value = if field == Field::Version {
                JsonValue::from(space_before_v(str_method(&filter.value, "sub").map_err(
                    |_| FunctionError::python("expected string or bytes-like object"),
                )?))
            } else {
                filter.value.clone()
            };
            let binding = if filter.operator == "LIKE" {
                Binding::Value(SqlValue::Text(format!("%{}%", str_of(&value))))
            } else {
                binding_of(&value)
            };
            clause.params.supply(&field_filter, binding);
            clause.compare(
                field,
                cmp_op(filter.operator),
                Operand::Param(field_filter),
                Collation::NoCase,
            );
            Ok(())
        }
    }
}

/// `re.sub(r'([a-zA-Z])([v])', r'\1 \2', value)`: a space between a letter and a `v`.
fn space_before_v(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c.is_ascii_alphabetic() && chars.peek() == Some(&'v') {
            out.push(' ');
            out.push('v');
            chars.next();
        }
    }
    out
}

/// `self.date_regex.match(value)`: `\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}` at the start.
fn matches_full_date(value: &JsonValue) -> FunctionResult<bool> {
    let JsonValue::Str(value) = value else {
        return Err(FunctionError::python(
            "expected string or bytes-like object",
        ));
    };
    Ok(digit_pattern(value, "dddd-dd-dd dd:dd:dd"))
}

/// Whether `text` starts with `pattern`, `d` standing for an ASCII digit.
fn digit_pattern(text: &str, pattern: &str) -> bool {
    text.len() >= pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(t, p)| {
            if p == b'd' {
                t.is_ascii_digit()
            } else {
                t == p
            }
        })
}

/// `_filter_status`: upstream's SQL for a status.
fn filter_status(clause: &mut Where, filter: &Filter, now: Timestamp) -> FunctionResult<()> {
    let value = match &filter.value {
        JsonValue::Str(s) => JsonValue::from(s.to_lowercase()),
        other => other.clone(),
    };
    let time_active = DateTime::from_unix(now.secs - LIMIT_SECONDS).to_string();
    clause
        .params
        .supply("time_active", Binding::Value(SqlValue::Text(time_active)));
    let active_since = || Operand::Param("time_active".to_owned());
    let known = matches!(
        value.as_str(),
        Some("active" | "disconnected" | "never connected" | "neverconnected" | "pending")
    );
    if !known {
        let extra = truthy(&value).then(|| str_of(&value));
        return Err(FunctionError::wazuh(1729, extra.as_deref()));
    }
    if filter.operator == "!=" {
        clause.push(Token::Not);
    }
    match value.as_str() {
        Some("active") => {
            clause.push(Token::Open);
            clause.compare(
                Field::LastKeepAlive,
                CmpOp::Ge,
                active_since(),
                Collation::Binary,
            );
            clause.push(Token::And);
            clause.null(Field::Version, true);
            clause.push(Token::Close);
            clause.push(Token::Or);
            clause.compare(Field::Id, CmpOp::Eq, Operand::Int(0), Collation::Binary);
        }
        Some("disconnected") => {
            clause.compare(
                Field::LastKeepAlive,
                CmpOp::Lt,
                active_since(),
                Collation::Binary,
            );
        }
        Some("pending") => {
            clause.null(Field::LastKeepAlive, true);
            clause.push(Token::And);
            clause.null(Field::Version, false);
        }
        _ => {
            clause.null(Field::LastKeepAlive, false);
            clause.push(Token::And);
            clause.compare(Field::Id, CmpOp::Ne, Operand::Int(0), Collation::Binary);
        }
    }
    Ok(())
}

/// `_filter_date` (agents' version): a timeframe relative to now, or a date; then
/// `AND id != 0`.
fn filter_date(clause: &mut Where, filter: &Filter) -> FunctionResult<()> {
    let field = if filter.indexed.starts_with("lastKeepAlive$") {
        Field::LastKeepAlive
    } else {
        Field::DateAdd
    };
    // A full date never gets here (`matches_full_date`), so the value is a string.
    let value = filter.value.as_str().unwrap_or_default();
    let all_digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let timeframe = all_digits
        || (digits > 0
            && matches!(
                value.as_bytes().get(digits),
                Some(b'd' | b'h' | b'm' | b's')
            ));
    if timeframe {
        let op = if matches!(filter.operator, "<" | "=") {
            CmpOp::Gt
        } else {
            CmpOp::Lt
        };
        let seconds = timeframe_seconds(value)?;
        let binding =
            i64::try_from(seconds).map_or(Binding::TooLarge, |s| Binding::Value(SqlValue::Int(s)));
        clause.params.supply(&filter.indexed, binding);
        clause.push(Token::Open);
        clause.null(field, true);
        clause.push(Token::And);
        clause.atom(Predicate::SinceNow {
            field,
            op,
            param: filter.indexed.clone(),
        });
        clause.push(Token::Close);
    } else if digit_pattern(value, "dddd-dd-dd") {
        clause.params.supply(
            &filter.indexed,
            Binding::Value(SqlValue::Text(value.to_owned())),
        );
        clause.null(field, true);
        clause.push(Token::And);
        // Upstream drops the last character of the statement here, meaning to drop a blank:
        // it is the last one of the parameter's name.
        let mut param = filter.indexed.clone();
        param.pop();
        clause.compare(
            field,
            cmp_op(filter.operator),
            Operand::Param(param),
            Collation::Binary,
        );
    } else {
        return Err(FunctionError::wazuh(1412, Some(value)));
    }
    clause.push(Token::And);
    clause.compare(Field::Id, CmpOp::Ne, Operand::Int(0), Collation::Binary);
    Ok(())
}

/// `get_timeframe_in_seconds(value)` for a value of digits or starting `<digits><d|h|m|s>`.
fn timeframe_seconds(value: &str) -> FunctionResult<i128> {
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(parse_digits(value));
    }
    // `re.findall(r'(\d+)(\w)', value)`.
    let chars: Vec<char> = value.chars().collect();
    let mut seconds: i128 = 0;
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if run == 0 {
            i += 1;
            continue;
        }
        let (digits, unit, next) = match chars.get(i + run) {
            Some(&unit) if unit.is_alphanumeric() || unit == '_' => {
                (&chars[i..i + run], unit, i + run + 1)
            }
            _ if run >= 2 => (&chars[i..i + run - 1], chars[i + run - 1], i + run),
            _ => {
                i += 1;
                continue;
            }
        };
        let number = parse_digits(&digits.iter().collect::<String>());
        let factor = match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            other => return Err(FunctionError::key_error(&other.to_string())),
        };
        seconds = seconds.saturating_add(number.saturating_mul(factor));
        i = next;
    }
    Ok(seconds)
}

fn parse_digits(digits: &str) -> i128 {
    digits.bytes().fold(0i128, |v, d| {
        v.saturating_mul(10).saturating_add(i128::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_terms_match_as_upstreams_pattern() {
        let term = query_term("(name!=a b;id<5)", 0).ok().unwrap();
        assert!(term.open && !term.close);
        assert_eq!(
            (term.field, term.operator, term.value),
            ("name", "!=", "a b")
        );
        assert_eq!(term.separator, Some(';'));
        let term = query_term("(name!=a b;id<5)", term.end).ok().unwrap();
        assert_eq!(
            (term.field, term.operator, term.value, term.close),
            ("id", "<", "5", true)
        );
        assert_eq!(query_term("name===a", 0).err(), Some(4));
        assert_eq!(query_term("((name=a", 0).err(), Some(1));
        assert_eq!(
            query_term("os.name~ubu", 0).ok().map(|t| t.operator),
            Some("~")
        );
    }

    #[test]
    fn upstream_helpers() {
        assert_eq!(space_before_v("Wazuhv3.9.5"), "Wazuh v3.9.5");
        assert_eq!(space_before_v("vvv"), "v vv");
        assert_eq!(timeframe_seconds("1d2h"), Ok(93_600));
        assert_eq!(timeframe_seconds("90"), Ok(90));
        assert_eq!(timeframe_seconds("1d2").unwrap(), 86_400);
        assert_eq!(timeframe_seconds("1d23").unwrap_err().message, "'3'");
    }
}
