//! The `WHERE` clause of upstream's agent queries, as the agent table evaluates it: its
//! predicates (the SQL upstream writes for a filter, a status or a search, one comparison
//! each), the clause's tokens and named parameters as they are written, and each row's value
//! of it. The parsing and the SQL semantics are `sql`'s.
//!
//! ```text
//! (last_keepalive >= :time_active AND version IS NOT NULL) or id = 0
//! → Open, Compare(lastKeepAlive >= :time_active), And, Null(version, negated), Close, Or,
//!   Compare(id = 0)
//! ```

use super::Field;
use super::sql::{
    Affinity, Binding, Clause, CmpOp, Collation, FollowedBy, MAX_LIKE_PATTERN, Parameters,
    SqlPredicate, SqlValue, Token, compare_op, parse,
};
use super::table::AgentRow;
use crate::dapi::builtin::failure::{FunctionError, FunctionResult};
use crate::dapi::builtin::time::DateTime;
use crate::dapi::json::JsonValue;
use crate::integrity::storage::Timestamp;

/// One predicate of the `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Predicate {
    /// `<column> <op> <operand> [COLLATE NOCASE]`.
    Compare {
        field: Field,
        op: CmpOp,
        operand: Operand,
        collation: Collation,
    },
    /// `<column> IS NULL` (`negated`: `IS NOT NULL`).
    Null { field: Field, negated: bool },
    /// `CAST(strftime('%s', <column>) AS INTEGER) <op> CAST(strftime('%s', 'now', 'localtime')
    /// AS INTEGER) - :<param>`.
    SinceNow {
        field: Field,
        op: CmpOp,
        param: String,
    },
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Operand {
    /// `:name`.
    Param(String),
    /// A literal integer.
    Int(i64),
}

impl SqlPredicate for Predicate {
    fn first_token(&self) -> &'static str {
        match self {
            Predicate::Compare { field, .. } | Predicate::Null { field, .. } => field.sql_token(),
            Predicate::SinceNow { .. } => "CAST",
        }
    }

    fn height(&self) -> usize {
        match self {
            // `x COLLATE NOCASE` is a node of its own above the parameter.
            Predicate::Compare {
                collation: Collation::NoCase,
                ..
            } => 3,
            Predicate::Compare { .. } | Predicate::Null { .. } => 2,
            // `CAST(strftime(...) AS INTEGER) op CAST(strftime(...) AS INTEGER) - :p`.
            Predicate::SinceNow { .. } => 5,
        }
    }
}

impl Predicate {
    fn param(&self) -> Option<&str> {
        match self {
            Predicate::Compare {
                operand: Operand::Param(name),
                ..
            }
            | Predicate::SinceNow { param: name, .. } => Some(name),
            _ => None,
        }
    }

    fn eval(&self, row: &AgentRow, params: &Parameters, now: Timestamp) -> Option<bool> {
        match self {
            Predicate::Compare {
                field,
                op,
                operand,
                collation,
            } => {
                let right = match operand {
                    Operand::Param(name) => params.value(name),
                    Operand::Int(i) => SqlValue::Int(*i),
                };
                compare_op(
                    (&row.column(*field), field.affinity()),
                    *op,
                    (&right, Affinity::Blob),
                    *collation,
                )
            }
            Predicate::Null { field, negated } => {
                Some((row.column(*field) == SqlValue::Null) != *negated)
            }
            Predicate::SinceNow { field, op, param } => {
                let column = row.column(*field).to_text()?;
                let secs = i128::from(DateTime::parse_sqlite(&column)?.to_unix());
                let SqlValue::Int(window) = params.value(param) else {
                    return None;
                };
                let since = i128::from(now.secs) - i128::from(window);
                Some(if *op == CmpOp::Gt {
                    secs > since
                } else {
                    secs < since
                })
            }
        }
    }
}

/// The clause being written: its tokens and its parameters.
#[derive(Debug, Default)]
pub(super) struct Where {
    pub(super) tokens: Vec<Token<Predicate>>,
    pub(super) params: Parameters,
}

impl Where {
    pub(super) fn push(&mut self, token: Token<Predicate>) {
        if let Token::Atom(predicate) = &token
            && let Some(name) = predicate.param()
        {
            self.params.uses(name);
        }
        self.tokens.push(token);
    }

    pub(super) fn atom(&mut self, predicate: Predicate) {
        self.push(Token::Atom(predicate));
    }

    pub(super) fn compare(
        &mut self,
        field: Field,
        op: CmpOp,
        operand: Operand,
        collation: Collation,
    ) {
        self.atom(Predicate::Compare {
            field,
            op,
            operand,
            collation,
        });
    }

    pub(super) fn null(&mut self, field: Field, negated: bool) {
        self.atom(Predicate::Null { field, negated });
    }
}

pub(super) fn parse_clause(
    clause: &Where,
    followed_by: FollowedBy,
) -> FunctionResult<Option<Clause<Predicate>>> {
    if clause.tokens.is_empty() {
        return Ok(None);
    }
    parse(&clause.tokens, followed_by).map(Some)
}

pub(super) fn matches(
    clause: Option<&Clause<Predicate>>,
    row: &AgentRow,
    params: &Parameters,
    now: Timestamp,
) -> bool {
    clause.is_none_or(|clause| clause.eval(&|p: &Predicate| p.eval(row, params, now)) == Some(true))
}

/// SQLite refuses a `LIKE` pattern past its length limit when it evaluates it.
pub(super) fn check_like_patterns(clause: &Where) -> FunctionResult<()> {
    let too_long = clause.tokens.iter().any(|token| match token {
        Token::Atom(Predicate::Compare {
            op: CmpOp::Like,
            operand: Operand::Param(name),
            ..
        }) => clause
            .params
            .value(name)
            .to_text()
            .is_some_and(|pattern| pattern.len() > MAX_LIKE_PATTERN),
        _ => false,
    });
    if too_long {
        return Err(FunctionError::database("LIKE or GLOB pattern too complex"));
    }
    Ok(())
}

pub(super) fn cmp_op(operator: &str) -> CmpOp {
    match operator {
        "!=" => CmpOp::Ne,
        "<" => CmpOp::Lt,
        ">" => CmpOp::Gt,
        "LIKE" => CmpOp::Like,
        _ => CmpOp::Eq,
    }
}

/// How Python's `sqlite3` binds a value.
pub(super) fn binding_of(value: &JsonValue) -> Binding {
    match value {
        JsonValue::Null => Binding::Value(SqlValue::Null),
        JsonValue::Bool(b) => Binding::Value(SqlValue::Int(i64::from(*b))),
        JsonValue::Int(i) => Binding::Value(SqlValue::Int(*i)),
        // SQLite stores a NaN as NULL.
        JsonValue::Float(x) if x.is_nan() => Binding::Value(SqlValue::Null),
        JsonValue::Float(x) => Binding::Value(SqlValue::Real(*x)),
        JsonValue::Str(s) => Binding::Value(SqlValue::Text(s.clone())),
        JsonValue::Array(_) | JsonValue::Object(_) => Binding::Unsupported,
    }
}
