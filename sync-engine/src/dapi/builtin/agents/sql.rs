//! The part of SQLite that upstream's agent queries rely on, over the in-memory agent table: the
//! `WHERE` clause upstream writes (as tokens, parsed with SQL's precedence and failing where
//! SQLite's parser fails), three-valued comparisons with SQLite's type affinities and
//! collations, `LIKE`, `ORDER BY` ordering, and the binding of named parameters.
//!
//! Why tokens and not a tree: upstream builds the clause as text, filter by filter, and the way
//! it opens and closes parentheses does not always balance (`q=(name=a` opens one it never
//! closes); SQLite then refuses the statement with `incomplete input` or `near "X": syntax
//! error`, and the API answers that as error 1000. Parsing the same token sequence reproduces
//! both the meaning of the clauses that are valid and the refusal of those that are not.
//!
//! ```text
//! q = "name=a,name=b;os.platform=ubuntu"
//! → ( name = :name$0 ) OR ( name = :name$1 ) AND ( os_platform = :os_platform$0 )
//! → name = a  OR  (name = b AND os_platform = ubuntu)        (AND binds first)
//! ```

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::dapi::builtin::failure::{FunctionError, FunctionResult};

/// A value as SQLite holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SqlValue {
    /// `NULL`.
    Null,
    /// An `INTEGER`.
    Int(i64),
    /// A `REAL`.
    Real(f64),
    /// A `TEXT` (UTF-8).
    Text(String),
}

impl SqlValue {
    /// The text SQLite makes of the value (`CAST(x AS TEXT)`); `None` for `NULL`.
    pub(super) fn to_text(&self) -> Option<String> {
        match self {
            SqlValue::Null => None,
            SqlValue::Int(i) => Some(i.to_string()),
            SqlValue::Real(x) if x.fract() == 0.0 && x.abs() < 1e15 => Some(format!("{x:.1}")),
            SqlValue::Real(x) => Some(x.to_string()),
            SqlValue::Text(s) => Some(s.clone()),
        }
    }

    /// NUMERIC affinity applied to the value: a text that reads as a number becomes one.
    fn numeric(&self) -> SqlValue {
        match self {
            SqlValue::Text(text) => numeric_text(text).unwrap_or_else(|| self.clone()),
            other => other.clone(),
        }
    }

    /// TEXT affinity applied to the value: a number becomes its text.
    fn textual(&self) -> SqlValue {
        match self {
            SqlValue::Int(_) | SqlValue::Real(_) => {
                SqlValue::Text(self.to_text().unwrap_or_default())
            }
            other => other.clone(),
        }
    }

    /// `CAST(x AS INTEGER)`: the longest integer prefix of a text (0 without one), a real
    /// truncated, `NULL` kept.
    pub(super) fn cast_integer(&self) -> SqlValue {
        match self {
            SqlValue::Null => SqlValue::Null,
            SqlValue::Int(i) => SqlValue::Int(*i),
            // `as` saturates, as SQLite does.
            SqlValue::Real(x) => SqlValue::Int(*x as i64),
            SqlValue::Text(text) => {
                let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\u{c}']);
                let (negative, digits) = match text.as_bytes().first() {
                    Some(b'-') => (true, &text[1..]),
                    Some(b'+') => (false, &text[1..]),
                    _ => (false, text),
                };
                let value = digits
                    .bytes()
                    .take_while(u8::is_ascii_digit)
                    .fold(0i64, |v, d| {
                        v.saturating_mul(10).saturating_add(i64::from(d - b'0'))
                    });
                SqlValue::Int(if negative { -value } else { value })
            }
        }
    }
}

/// A text that SQLite's NUMERIC affinity turns into a number: a well-formed integer or real
/// literal, blanks around it allowed.
fn numeric_text(text: &str) -> Option<SqlValue> {
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r', '\u{c}']);
    let body = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    let well_formed = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if !well_formed {
        return None;
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return Some(SqlValue::Int(i));
    }
    trimmed.parse::<f64>().ok().map(SqlValue::Real)
}

/// How text is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Collation {
    /// Byte order.
    Binary,
    /// Byte order with ASCII letters folded (`COLLATE NOCASE`).
    NoCase,
}

/// A column's type affinity, which decides the conversions of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Affinity {
    /// `INTEGER` (the `id` column).
    Integer,
    /// `TEXT` (the other columns).
    Text,
    /// None: an expression such as `coalesce(ip, register_ip)`, or a parameter.
    Blob,
}

/// SQLite's order of two values: `NULL` first, numbers by value, then text by `collation`.
pub(super) fn compare(a: &SqlValue, b: &SqlValue, collation: Collation) -> Ordering {
    use SqlValue::{Int, Null, Real, Text};
    let rank = |v: &SqlValue| match v {
        Null => 0,
        Int(_) | Real(_) => 1,
        Text(_) => 2,
    };
    match (a, b) {
        (Int(x), Int(y)) => x.cmp(y),
        (Int(x), Real(y)) => (*x as f64).partial_cmp(y).unwrap_or(Ordering::Equal),
        (Real(x), Int(y)) => x.partial_cmp(&(*y as f64)).unwrap_or(Ordering::Equal),
        (Real(x), Real(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Text(x), Text(y)) => match collation {
            Collation::Binary => x.as_bytes().cmp(y.as_bytes()),
            Collation::NoCase => x
                .bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(y.bytes().map(|b| b.to_ascii_lowercase())),
        },
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A comparison operator of the clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `LIKE`
    Like,
}

/// `left op right` with SQLite's rules: the affinity of a column operand converts the other
/// (NUMERIC wins over TEXT, TEXT over none), `NULL` makes `NULL` (`None`).
pub(super) fn compare_op(
    left: (&SqlValue, Affinity),
    op: CmpOp,
    right: (&SqlValue, Affinity),
    collation: Collation,
) -> Option<bool> {
    if op == CmpOp::Like {
        return like(&right.0.to_text()?, &left.0.to_text()?);
    }
    let (mut l, mut r) = (left.0.clone(), right.0.clone());
    match (left.1, right.1) {
        (Affinity::Integer, Affinity::Text | Affinity::Blob) => r = r.numeric(),
        (Affinity::Text | Affinity::Blob, Affinity::Integer) => l = l.numeric(),
        (Affinity::Text, Affinity::Blob) => r = r.textual(),
        (Affinity::Blob, Affinity::Text) => l = l.textual(),
        _ => {}
    }
    if l == SqlValue::Null || r == SqlValue::Null {
        return None;
    }
    let ordering = compare(&l, &r, collation);
    Some(match op {
        CmpOp::Eq => ordering == Ordering::Equal,
        CmpOp::Ne => ordering != Ordering::Equal,
        CmpOp::Lt => ordering == Ordering::Less,
        CmpOp::Gt => ordering == Ordering::Greater,
        CmpOp::Ge => ordering != Ordering::Less,
        CmpOp::Like => false,
    })
}

/// Longest `LIKE` pattern SQLite accepts (`SQLITE_MAX_LIKE_PATTERN_LENGTH`).
pub(super) const MAX_LIKE_PATTERN: usize = 50_000;

/// `text LIKE pattern`: `%` any run, `_` one character, ASCII letters case-blind, no escape.
/// `None` (the statement fails upstream) for a pattern longer than [`MAX_LIKE_PATTERN`].
///
/// The pattern is literal segments (where `_` stands for any character) between `%`s: the
/// first must start the text, the last end it, and each one between is taken where it first
/// occurs after the one before (taking it any later can only leave less room for the rest),
/// which keeps the match linear in the text for the usual `%value%`.
pub(super) fn like(pattern: &str, text: &str) -> Option<bool> {
    if pattern.len() > MAX_LIKE_PATTERN {
        return None;
    }
    let pattern = pattern.to_ascii_lowercase();
    let text = text.to_ascii_lowercase();
    let segments: Vec<&str> = pattern.split('%').collect();
    let [first, middle @ .., last] = segments.as_slice() else {
        // No `%`: the whole text, character for character.
        return Some(match_at(&pattern, &text) == Some(text.len()));
    };
    let Some(mut at) = match_at(first, &text) else {
        return Some(false);
    };
    for segment in middle {
        match find(segment, &text[at..]) {
            Some(end) => at += end,
            None => return Some(false),
        }
    }
    // The last segment ends the text: it starts as many characters before the end as it has.
    let from_end = last.chars().count();
    let start = if from_end == 0 {
        text.len()
    } else {
        match text.char_indices().rev().nth(from_end - 1) {
            Some((start, _)) => start,
            None => return Some(false),
        }
    };
    Some(start >= at && match_at(last, &text[start..]) == Some(text.len() - start))
}

/// How many bytes of `text` `segment` matches at its start (`_` any character), if it does.
fn match_at(segment: &str, text: &str) -> Option<usize> {
    let mut chars = text.char_indices();
    for p in segment.chars() {
        let (_, t) = chars.next()?;
        if p != '_' && p != t {
            return None;
        }
    }
    Some(chars.next().map_or(text.len(), |(i, _)| i))
}

/// Where the first occurrence of `segment` in `text` ends.
fn find(segment: &str, text: &str) -> Option<usize> {
    if !segment.contains('_') {
        return text.find(segment).map(|start| start + segment.len());
    }
    text.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .find_map(|start| match_at(segment, &text[start..]).map(|len| start + len))
}

/// A predicate of a clause, as SQLite sees its text.
pub(super) trait SqlPredicate: Clone {
    /// The SQL token its text starts with (what a syntax error there names).
    fn first_token(&self) -> &'static str;
    /// The height of its expression tree (a column or a parameter is 1, each operator adds
    /// one above its highest operand), which SQLite bounds.
    fn height(&self) -> usize;
}

/// One token of a `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token<A> {
    /// `(`
    Open,
    /// `)`
    Close,
    /// `AND`
    And,
    /// `OR`
    Or,
    /// `NOT`
    Not,
    /// A predicate.
    Atom(A),
}

impl<A: SqlPredicate> Token<A> {
    fn text(&self) -> &'static str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "AND",
            Token::Or => "OR",
            Token::Not => "NOT",
            Token::Atom(atom) => atom.first_token(),
        }
    }
}

/// A parsed `WHERE` clause over predicates `A`, at most [`MAX_EXPR_DEPTH`] high (so evaluating
/// it recurses at most that deep).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Clause<A> {
    /// A predicate.
    Atom(A),
    /// `NOT x`
    Not(Box<Clause<A>>),
    /// `x AND y`
    And(Box<Clause<A>>, Box<Clause<A>>),
    /// `x OR y`
    Or(Box<Clause<A>>, Box<Clause<A>>),
}

/// What follows the clause in the statement: nothing (upstream's count query, where a missing
/// operand is `incomplete input`), or `ORDER BY ...` (its data query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FollowedBy {
    /// The end of the statement.
    End,
    /// `ORDER`.
    OrderBy,
}

/// SQLite's bound on an expression's height (`SQLITE_MAX_EXPR_DEPTH`): a longer chain of
/// `AND` / `OR` fails the statement.
pub(super) const MAX_EXPR_DEPTH: usize = 1000;

/// Most nested parentheses and `NOT`s parsed: SQLite's parser stack is bounded too (its text
/// here is SQLite's, the exact depth at which SQLite gives up is its build's).
const MAX_NESTING: usize = 1000;

/// `Clause::And` or `Clause::Or`, as a function of its operands.
type BinaryNode<A> = fn(Box<Clause<A>>, Box<Clause<A>>) -> Clause<A>;

/// A parsed part and its height; `None` once it is higher than [`MAX_EXPR_DEPTH`] (the
/// statement then fails, unless a syntax error further on is reported first, as SQLite does).
struct Parsed<A> {
    clause: Option<Clause<A>>,
    height: usize,
}

impl<A> Parsed<A> {
    fn join(self, right: Parsed<A>, node: BinaryNode<A>) -> Self {
        let height = self.height.max(right.height) + 1;
        let clause = match (self.clause, right.clause) {
            (Some(l), Some(r)) if height <= MAX_EXPR_DEPTH => Some(node(Box::new(l), Box::new(r))),
            _ => None,
        };
        Parsed { clause, height }
    }
}

/// Parses `tokens` with SQL's precedence (`NOT` over `AND` over `OR`).
///
/// # Errors
/// SQLite's text for the first token it cannot take (`near "X": syntax error`), `incomplete
/// input` when the statement ends too early, or a clause higher than SQLite allows.
pub(super) fn parse<A: SqlPredicate>(
    tokens: &[Token<A>],
    followed_by: FollowedBy,
) -> FunctionResult<Clause<A>> {
    let mut parser = Parser {
        tokens,
        pos: 0,
        followed_by,
    };
    let parsed = parser.or(0)?;
    if let Some(token) = tokens.get(parser.pos) {
        return Err(near(token.text()));
    }
    parsed.clause.ok_or_else(|| {
        FunctionError::database(format!(
            "Expression tree is too large (maximum depth {MAX_EXPR_DEPTH})"
        ))
    })
}

struct Parser<'t, A> {
    tokens: &'t [Token<A>],
    pos: usize,
    followed_by: FollowedBy,
}

impl<A: SqlPredicate> Parser<'_, A> {
    fn or(&mut self, depth: usize) -> FunctionResult<Parsed<A>> {
        let mut parsed = self.and(depth)?;
        while matches!(self.tokens.get(self.pos), Some(Token::Or)) {
            self.pos += 1;
            let right = self.and(depth)?;
            parsed = parsed.join(right, Clause::Or);
        }
        Ok(parsed)
    }

    fn and(&mut self, depth: usize) -> FunctionResult<Parsed<A>> {
        let mut parsed = self.not(depth)?;
        while matches!(self.tokens.get(self.pos), Some(Token::And)) {
            self.pos += 1;
            let right = self.not(depth)?;
            parsed = parsed.join(right, Clause::And);
        }
        Ok(parsed)
    }

    fn not(&mut self, depth: usize) -> FunctionResult<Parsed<A>> {
        if depth > MAX_NESTING {
            return Err(FunctionError::database("parser stack overflow"));
        }
        match self.tokens.get(self.pos) {
            Some(Token::Not) => {
                self.pos += 1;
                let inner = self.not(depth + 1)?;
                let height = inner.height + 1;
                let clause = inner
                    .clause
                    .filter(|_| height <= MAX_EXPR_DEPTH)
                    .map(|c| Clause::Not(Box::new(c)));
                Ok(Parsed { clause, height })
            }
            Some(Token::Open) => {
                self.pos += 1;
                let inner = self.or(depth + 1)?;
                match self.tokens.get(self.pos) {
                    Some(Token::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(near(other.text())),
                    None => Err(self.ended()),
                }
            }
            Some(Token::Atom(atom)) => {
                self.pos += 1;
                Ok(Parsed {
                    clause: Some(Clause::Atom(atom.clone())),
                    height: atom.height(),
                })
            }
            Some(other) => Err(near(other.text())),
            None => Err(self.ended()),
        }
    }

    fn ended(&self) -> FunctionError {
        match self.followed_by {
            FollowedBy::End => FunctionError::database("incomplete input"),
            FollowedBy::OrderBy => near("ORDER"),
        }
    }
}

/// SQLite's syntax error at `token`.
pub(super) fn near(token: &str) -> FunctionError {
    FunctionError::database(format!("near \"{token}\": syntax error"))
}

impl<A> Clause<A> {
    /// The clause's value for one row, `atom` giving each predicate's (`None`: `NULL`).
    pub(super) fn eval(&self, atom: &impl Fn(&A) -> Option<bool>) -> Option<bool> {
        match self {
            Clause::Atom(a) => atom(a),
            Clause::Not(inner) => inner.eval(atom).map(|v| !v),
            Clause::And(l, r) => match (l.eval(atom), r.eval(atom)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Clause::Or(l, r) => match (l.eval(atom), r.eval(atom)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
        }
    }
}

/// A value bound to a named parameter, as Python's `sqlite3` binds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Binding {
    /// A value SQLite takes.
    Value(SqlValue),
    /// A Python value `sqlite3` cannot bind (a list, a dict).
    Unsupported,
    /// A Python `int` beyond 64 bits.
    TooLarge,
}

/// The named parameters of a statement: their values, and the names in the order they first
/// appear in the statement's text.
#[derive(Debug, Clone, Default)]
pub(super) struct Parameters {
    values: BTreeMap<String, Binding>,
    order: Vec<String>,
    /// The names in `order`, to look them up.
    used: BTreeSet<String>,
}

impl Parameters {
    /// `request[name] = binding` (a later one replaces an earlier one).
    pub(super) fn supply(&mut self, name: &str, binding: Binding) {
        self.values.insert(name.to_owned(), binding);
    }

    /// `:name` appears in the statement's text.
    pub(super) fn uses(&mut self, name: &str) {
        if self.used.insert(name.to_owned()) {
            self.order.push(name.to_owned());
        }
    }

    /// The value of `:name` (`NULL` when not bound: [`Parameters::check`] refuses that first).
    pub(super) fn value(&self, name: &str) -> SqlValue {
        match self.values.get(name) {
            Some(Binding::Value(value)) => value.clone(),
            _ => SqlValue::Null,
        }
    }

    /// What Python 3.7's `sqlite3` says binding the parameters, in the statement's order (as
    /// upstream answers it: 2003).
    ///
    /// # Errors
    /// A parameter without a value (`You did not supply a value for binding N.`), one of an
    /// unsupported type, an integer beyond 64 bits.
    pub(super) fn check(&self) -> FunctionResult<()> {
        for (index, name) in self.order.iter().enumerate() {
            match self.values.get(name) {
                None => {
                    return Err(FunctionError::database(format!(
                        "You did not supply a value for binding {}.",
                        index + 1
                    )));
                }
                Some(Binding::Unsupported) => {
                    return Err(FunctionError::database(format!(
                        "Error binding parameter :{name} - probably unsupported type."
                    )));
                }
                Some(Binding::TooLarge) => {
                    return Err(FunctionError::database(
                        "Python int too large to convert to SQLite INTEGER",
                    ));
                }
                Some(Binding::Value(_)) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> SqlValue {
        SqlValue::Text(s.to_owned())
    }

    #[test]
    fn like_is_sqlites() {
        assert_eq!(like("%ubu%", "Ubuntu"), Some(true));
        assert_eq!(like("a_c", "abc"), Some(true));
        assert_eq!(like("a_c", "ac"), Some(false));
        assert_eq!(like("%a%b%c%", "xxaxxbxxcxx"), Some(true));
        assert_eq!(like("%a%b%c", "xxaxxbxxcxxd"), Some(false));
        assert_eq!(like("É%", "é"), Some(false));
        assert_eq!(like(&"%".repeat(MAX_LIKE_PATTERN + 1), ""), None);
        assert_eq!(like("%", ""), Some(true));
        assert_eq!(like("", ""), Some(true));
        assert_eq!(like("", "a"), Some(false));
        assert_eq!(like("a%", "ab"), Some(true));
        assert_eq!(like("%b", "ab"), Some(true));
        assert_eq!(like("%b", "ba"), Some(false));
        assert_eq!(like("a%a", "a"), Some(false));
        assert_eq!(like("%é_", "xéy"), Some(true));
        assert_eq!(like("%_", ""), Some(false));
        assert_eq!(like("10.0.0.0/_%", "10.0.0.0/24"), Some(true));
        assert_eq!(like("10.0.0.0/_%", "10.0.0.0/"), Some(false));
    }

    /// (pattern, text, `text LIKE pattern`) as SQLite 3.40 (python3's `sqlite3`) computes it,
    /// for random patterns and texts over `a A b é É % _`, half of the texts made to match.
    const SQLITE_LIKE: [(&str, &str, bool); 400] = [
        ("ba", "_É", false),
        ("aba_", "aBÉ%", false),
        ("_", "é_", false),
        ("b%A__%", "bbaÉAbéé", true),
        ("é_aaé", "Éba", false),
        ("A", "A", true),
        ("bA%a", "AéAÉa", false),
        ("é__b_A", "é%b_ÉA", false),
        ("%A", "aAÉa", true),
        ("É", "é", false),
        ("é", "ÉÉ", false),
        ("", "", true),
        ("bAb", "AaÉ__", false),
        ("ébbé", "ÉBbÉ", false),
        ("Aabé_", "", false),
        ("AÉ", "aÉ", true),
        ("A", "", false),
        ("Aé", "aA", false),
        ("", "%", false),
        ("aAb_", "AAb%", true),
        ("é", "%AA", false),
        ("Ééa", "Ééa", true),
        ("%é_A", "ab", false),
        ("%É", "%Éé", false),
        ("", "A", false),
        ("_%ÉA%b", "%ébÉÉab%b", true),
        ("aÉ", "b", false),
        ("Ab_a", "ab__", false),
        ("ab%_%%", "A_ébÉ", false),
        ("b", "b", true),
        ("b", "é_", false),
        ("", "", true),
        ("%_A_é", "é", false),
        ("ab%Aé", "abéAé", true),
        ("", "", true),
        ("_b", "bb", true),
        ("", "É", false),
        ("AébA", "AAba", false),
        ("AÉéééÉ", "éÉ", false),
        ("AÉ", "bÉ", false),
        ("aé__AA", "__", false),
        ("%", "_b", true),
        ("béÉÉ_", "", false),
        ("éé%béé", "éÉA%béé", false),
        ("bA_AA", "éÉbéé%", false),
        ("%a%", "%%éab", true),
        ("aA_", "ébbÉAb", false),
        ("_AÉbé", "ÉAÉAé", false),
        ("", "a__%a%A", false),
        ("AÉ", "Aé", false),
        ("bééÉ", "aééaabA", false),
        ("É_A_%%", "éÉAA_ÉA_A_", false),
        ("%", "Aé%bbé", true),
        ("ÉaÉAaA", "éaÉAAa", false),
        ("", "a%b_Abb", false),
        ("%_AÉéa", "ba__Aééa", false),
        ("_a", "Éé%ÉAaa", false),
        ("_Ab%", "AAb%bé", true),
        ("ÉÉ_b", "ÉÉa%É", false),
        ("éAÉAA_", "éaÉAAé", true),
        ("éA", "aééa_a", false),
        ("aA", "aA", true),
        ("é_É", "_b__A", false),
        ("", "", true),
        ("bé", "ab_", false),
        ("ééAéb", "ÉÉAÉB", false),
        ("%", "%A%_", true),
        ("Éaa", "ÉAA", true),
        ("abA", "É__a%é", false),
        ("AéAb_", "aÉABÉ", false),
        ("__bÉÉÉ", "éAéé", false),
        ("%bé", "ÉbB%", false),
        ("AA", "ba%_b%é", false),
        ("_%AÉ", "baÉ", true),
        ("%", "", true),
        ("aa%ÉÉ_", "Aa__Ééb", false),
        ("", "", true),
        ("é", "É", false),
        ("ÉÉÉÉéb", "a%ÉéAA", false),
        ("%b", "aéb", true),
        ("a%A", "", false),
        ("", "", true),
        ("éaaé%", "%ÉA", false),
        ("_ééÉ%b", "%ééÉ_b", true),
        ("", "_", false),
        ("_aA", "aaA", true),
        ("%", "ÉÉ", true),
        ("éb%", "AB", false),
        ("", "%AA_É", false),
        ("%", "éaA", true),
        ("A__É_", "%A", false),
        ("%É%", "_%É%b", true),
        ("", "éA", false),
        ("b%", "%É", false),
        ("Éb_é", "é", false),
        ("", "", true),
        ("_é%%A", "é_b", false),
        ("É", "é", false),
        ("bb", "", false),
        ("A_ééÉ", "AÉÉéé", false),
        ("bé_É_%", "éb", false),
        ("bbA", "bBa", true),
        ("_b%a_", "", false),
        ("", "", true),
        ("a", "a", true),
        ("ab%", "aA_%", false),
        ("aÉÉéba", "bb%_A", false),
        ("Ab%_", "ABÉ", true),
        ("a_ééb", "a", false),
        ("b_Éébé", "BÉééBé", false),
        ("", "", true),
        ("é", "A", false),
        ("a%aéé", "_A_a", false),
        ("bÉ", "bé", false),
        ("", "%%", false),
        ("b", "b", true),
        ("_A_", "", false),
        ("", "", true),
        ("", "_é%", false),
        ("aÉéb%_", "aÉébÉ", true),
        ("%Aéaé%", "AabÉ", false),
        ("", "", true),
        ("", "%Aa%é", false),
        ("A_bbb%", "aÉbbb", true),
        ("ééa", "AÉb", false),
        ("éAaébé", "AAaÉbÉ", false),
        ("ÉAbAÉa", "_baÉaa_", false),
        ("a%aÉb", "abbAaéb", false),
        ("", "A%bÉ_aé", false),
        ("%a_", "%a_", true),
        ("%ÉAa", "%É%Éa_", false),
        ("", "", true),
        ("_a_É", "éÉ%Éé", false),
        ("éaÉaa", "éaéAb", false),
        ("%_", "_A", true),
        ("ab", "Ab", true),
        ("A_éAéA", "b%bÉÉ", false),
        ("AA", "Ab", false),
        ("Éé%é%", "bAA", false),
        ("", "", true),
        ("", "A", false),
        ("É", "É", true),
        ("_", "A_é%bAA", false),
        ("", "", true),
        ("É%É", "Aaa", false),
        ("%bab", "_abAB", true),
        ("é%", "Éé", false),
        ("bbÉ_éa", "bBÉbéa", true),
        ("b_É_Ab", "Aé", false),
        ("éÉAb", "ÉéAb", false),
        ("ÉéÉA", "a_aaÉAÉ", false),
        ("É", "É", true),
        ("bÉ_", "ÉAA", false),
        ("ÉAéb_%", "ÉAébÉ_A", true),
        ("%bbé", "aAA", false),
        ("_éa", "bÉa", false),
        ("a", "", false),
        ("a%", "aÉ", true),
        ("_aa_ab", "__", false),
        ("A_", "AA", true),
        ("a", "_%", false),
        ("_AaÉ", "ÉA_É", false),
        ("", "_b", false),
        ("éÉ", "ÉÉ", false),
        ("ÉA", "ÉAba", false),
        ("AaÉ", "Aéé", false),
        ("abÉaba", "", false),
        ("_A", "bA", true),
        ("%é%aÉA", "ÉÉA", false),
        ("%b", "é", false),
        ("_aé_é", "É%bÉ%", false),
        ("é", "A", false),
        ("É", "%Éb", false),
        ("aÉaé", "AéAé", false),
        ("a", "ÉÉ", false),
        ("", "", true),
        ("ÉaA__", "_é%éÉÉa", false),
        ("Éaé_A", "ÉaéÉA", true),
        ("baba", "bé_", false),
        ("%%b_", "%a_ba", true),
        ("", "%_é", false),
        ("AÉÉ", "_éÉ", false),
        ("", "%bé", false),
        ("_a_", "%A%", true),
        ("%_éÉ", "abé_", false),
        ("É%", "É", true),
        ("Éa%", "béé_", false),
        ("é%É__", "Éééb_", false),
        ("É%_%É", "a%_éÉ%b", false),
        ("Éa", "Éa", true),
        ("a%", "é%A%aAé", false),
        ("éaabéÉ", "éaaBÉb", false),
        ("AA", "é%", false),
        ("%é", "aÉaé", true),
        ("b%%É%", "bbaa", false),
        ("_É_%A", "ÉÉÉÉ_A", true),
        ("_%b", "a", false),
        ("_b", "Ab", true),
        ("é", "ÉbÉ", false),
        ("_aA%É", "AAAé", false),
        ("Éb", "", false),
        ("éÉÉb", "éÉÉb", true),
        ("AÉ%_ba", "é%", false),
        ("_", "É", true),
        ("aéÉé", "_É", false),
        ("éÉa%É", "ÉbaÉ_é", false),
        ("b%bA", "É%A_", false),
        ("Éb", "ÉB", true),
        ("béÉAé", "Éaa", false),
        ("_", "%", true),
        ("é_Aé", "éAé%b", false),
        ("Aé", "Aé", true),
        ("A_é_", "baAÉ%bb", false),
        ("é", "é", true),
        ("aAaAé", "A", false),
        ("_é", "_é", true),
        ("aba%_", "ab_É%ÉA", false),
        ("É", "é", false),
        ("ÉaÉAé", "bA_", false),
        ("b", "b", true),
        ("a", "Éé__%b", false),
        ("Éé%a", "_É%ba", false),
        ("_", "_ab%a", false),
        ("%", "", true),
        ("A", "AÉÉé%é_", false),
        ("_é_Éb%", "bé%éb_%", false),
        ("éb%b_%", "_ba_é", false),
        ("ÉA%_É", "É%AéÉ", false),
        ("ÉAb", "aa_baa", false),
        ("éaé%a", "ÉaÉÉÉa", false),
        ("_AéA", "b", false),
        ("Aabb", "Aabb", true),
        ("", "%_b", false),
        ("abab", "ABab", true),
        ("_É", "_", false),
        ("%_b_", "_bÉéBa", true),
        ("%A", "AbAba", true),
        ("_Éaaé", "ÉÉAaé", true),
        ("aÉ", "_", false),
        ("%béÉÉa", "%AAééÉÉA", false),
        ("é", "ab", false),
        ("a_É_A%", "A%ÉaAAbÉ", true),
        ("ÉAAÉÉA", "%", false),
        ("b_", "bÉ", true),
        ("A", "aÉé", false),
        ("", "", true),
        ("%a", "__éb", false),
        ("", "", true),
        ("", "A_b%bbb", false),
        ("Ééaa", "ÉéAa", true),
        ("ab", "aAAb", false),
        ("aaaÉé", "aéAÉé", false),
        ("_Éa", "éÉbb_%", false),
        ("aab", "aab", true),
        ("_ébAé%", "a%aé", false),
        ("", "", true),
        ("É", "%___%", false),
        ("", "", true),
        ("a", "_A%Aé%A", false),
        ("b%", "_AA", false),
        ("É_ÉéÉ_", "é", false),
        ("Éa", "É_", false),
        ("%é", "bA_", false),
        ("%AaAa", "AaéA", false),
        ("A_", "%b", false),
        ("_", "a", true),
        ("_a", "A", false),
        ("éÉ", "ÉA", false),
        ("%", "ééébbÉ", true),
        ("ébÉÉ_", "ébbÉa", false),
        ("", "É_É%%", false),
        ("_%", "béb", true),
        ("AÉAAé", "abAé", false),
        ("ÉÉaA%", "ÉÉaA", true),
        ("A%bA", "AAA", false),
        ("b_a%%", "bbaÉAAa", true),
        ("aA", "aa", true),
        ("%éA_É", "_AéAéÉ", true),
        ("é_%bé", "b_%", false),
        ("", "", true),
        ("%", "", true),
        ("a", "A", true),
        ("ÉaÉA%%", "bA%_bA", false),
        ("A", "A", true),
        ("Aaa%É", "b%ébAb", false),
        ("a", "é", false),
        ("b_ééb", "aÉ_%É_É", false),
        ("%b", "A", false),
        ("Éba%_é", "_ba", false),
        ("%", "%_", true),
        ("é_bÉbé", "éb%éb", false),
        ("", "", true),
        ("A", "", false),
        ("%éAa", "ÉéAa", true),
        ("É%%a%b", "Aa%", false),
        ("a", "a", true),
        ("bÉ", "a", false),
        ("bAa%_b", "BAaÉaAaB", true),
        ("%", "b", true),
        ("_AéÉ", "ÉAéé", false),
        ("Aa", "%a%b", false),
        ("%AÉ%", "_AAAé%", false),
        ("", "_%%é", false),
        ("bAÉ", "Baé", false),
        ("%éAÉ", "", false),
        ("ÉééA%a", "É_éaaa", false),
        ("éÉ_", "bébé", false),
        ("bébé", "bÉaé", false),
        ("aéA", "", false),
        ("ab", "AB", true),
        ("éaÉ", "_%_AbA", false),
        ("_", "a", true),
        ("bÉ%ÉÉÉ", "%", false),
        ("b", "B", true),
        ("%éAb__", "%", false),
        ("é", "é", true),
        ("bAbébb", "éa%", false),
        ("é_a%b%", "é_aaABa", true),
        ("é%%A", "bÉ", false),
        ("éÉ", "éÉ", true),
        ("b%_ÉÉ", "AÉ_a%Éa", false),
        ("_É_é", "éÉéé", true),
        ("AbbA", "aAééa_", false),
        ("b%é%é%", "bÉé_aéa", true),
        ("éb%", "AAé", false),
        ("É", "é", false),
        ("%", "_ÉbA%", true),
        ("__É_É%", "aAÉbéA", false),
        ("%%a", "", false),
        ("%_aÉa", "aÉa_bÉA", false),
        ("_béé_", "", false),
        ("_éÉ", "ééé", false),
        ("AbÉÉé", "éaÉ", false),
        ("É_b%", "ÉAbbé", true),
        ("%aa", "%", false),
        ("éÉéé", "éééé", false),
        ("", "", true),
        ("b_É_", "baÉ_", true),
        ("éAa_É", "%b", false),
        ("Ab_", "aBb", true),
        ("é", "Aé", false),
        ("É_", "Éé", true),
        ("%_%É%b", "b", false),
        ("b_aA", "BbaA", true),
        ("", "%bÉ", false),
        ("A%É%b", "AÉabAB", true),
        ("Ab_", "AAbb__A", false),
        ("%", "", true),
        ("a%%%bb", "bÉb%b", false),
        ("É_Éé%a", "ÉbéÉbaaa", false),
        ("bA", "_É", false),
        ("", "", true),
        ("_", "ÉÉb", false),
        ("ÉÉa", "ÉÉA", true),
        ("%Ab%É", "a%éÉ_A", false),
        ("ÉAé%é", "Éaé_bé", true),
        ("_bAa", "", false),
        ("a", "é", false),
        ("b%", "Aa__É", false),
        ("_éÉ", "%éb", false),
        ("b", "é", false),
        ("%É_", "ab%", false),
        ("", "é", false),
        ("é", "é", true),
        ("%Éaéé", "ab_", false),
        ("é", "a", false),
        ("_a%%_a", "", false),
        ("É", "É", true),
        ("%", "%", true),
        ("", "", true),
        ("", "", true),
        ("_", "b", true),
        ("AaéÉbÉ", "", false),
        ("%Éé", "éÉ", false),
        ("Ab__%É", "É__bb__", false),
        ("é", "é", true),
        ("", "aé", false),
        ("_", "a", true),
        ("", "éa%", false),
        ("É%Aé", "É_AÉ", false),
        ("Abééb", "éÉb_", false),
        ("éaéb", "ÉAéb", false),
        ("%É_", "%", false),
        ("éb__É", "ÉBaéÉ", false),
        ("A%Ab", "É%É", false),
        ("A_%%b_", "A%a_bbÉ", true),
        ("a", "É", false),
        ("", "", true),
        ("_A%é_", "AÉ%_é__", false),
        ("É%%ÉA_", "éAÉÉéA_", false),
        ("b", "_", false),
        ("_A_Éa_", "ÉAaÉaa", true),
        ("_ba", "%Abé%éé", false),
        ("éA%aA", "ÉabAAAÉ", false),
        ("%_Aab", "Aé_É", false),
        ("%a_ÉÉa", "abÉÉa", true),
        ("é%a%a", "%%_", false),
        ("ÉA", "Éa", true),
        ("ÉAAb_A", "", false),
        ("É_É", "ÉaÉ", true),
    ];

    #[test]
    fn like_agrees_with_sqlite() {
        for (pattern, text, expected) in SQLITE_LIKE {
            assert_eq!(
                like(pattern, text),
                Some(expected),
                "{text:?} LIKE {pattern:?}"
            );
        }
    }

    #[test]
    fn comparisons_apply_affinity_and_collation() {
        let id = (&SqlValue::Int(5), Affinity::Integer);
        assert_eq!(
            compare_op(
                id,
                CmpOp::Eq,
                (&text("005"), Affinity::Blob),
                Collation::NoCase
            ),
            Some(true)
        );
        // A text that is no number sorts after every number.
        assert_eq!(
            compare_op(
                id,
                CmpOp::Lt,
                (&text("abc"), Affinity::Blob),
                Collation::NoCase
            ),
            Some(true)
        );
        let name = (&text("Agent"), Affinity::Text);
        assert_eq!(
            compare_op(
                name,
                CmpOp::Eq,
                (&text("agent"), Affinity::Blob),
                Collation::NoCase
            ),
            Some(true)
        );
        assert_eq!(
            compare_op(
                name,
                CmpOp::Eq,
                (&text("agent"), Affinity::Blob),
                Collation::Binary
            ),
            Some(false)
        );
        assert_eq!(
            compare_op(
                name,
                CmpOp::Ne,
                (&SqlValue::Null, Affinity::Blob),
                Collation::NoCase
            ),
            None
        );
        assert_eq!(
            compare_op(
                (&text("7"), Affinity::Text),
                CmpOp::Eq,
                (&SqlValue::Int(7), Affinity::Blob),
                Collation::Binary
            ),
            Some(true)
        );
        assert_eq!(text(" 12x").cast_integer(), SqlValue::Int(12));
        assert_eq!(text("abc").cast_integer(), SqlValue::Int(0));
    }

    /// A predicate of fixed value, one level high.
    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Fixed(bool);

    impl SqlPredicate for Fixed {
        fn first_token(&self) -> &'static str {
            "x"
        }
        fn height(&self) -> usize {
            1
        }
    }

    #[test]
    fn clauses_parse_with_sql_precedence_and_sqlites_errors() {
        use Token::{And, Atom, Close, Not, Open, Or};
        let atom = |v: bool| Atom(Fixed(v));
        // true OR false AND false = true OR (false AND false) = true
        let clause = parse(
            &[atom(true), Or, atom(false), And, atom(false)],
            FollowedBy::End,
        )
        .unwrap();
        assert_eq!(clause.eval(&|v: &Fixed| Some(v.0)), Some(true));
        // NOT binds to the next operand only.
        let clause = parse(&[Not, atom(false), And, atom(false)], FollowedBy::End).unwrap();
        assert_eq!(clause.eval(&|v: &Fixed| Some(v.0)), Some(false));
        for (tokens, followed_by, message) in [
            (
                vec![Open, atom(true), And, atom(true)],
                FollowedBy::End,
                "incomplete input",
            ),
            (
                vec![Open, atom(true)],
                FollowedBy::OrderBy,
                "near \"ORDER\": syntax error",
            ),
            (
                vec![atom(true), Close],
                FollowedBy::End,
                "near \")\": syntax error",
            ),
            (
                vec![atom(true), And, And, atom(true)],
                FollowedBy::End,
                "near \"AND\": syntax error",
            ),
            (
                vec![Open, atom(true), Close, Open, atom(true), Close],
                FollowedBy::End,
                "near \"(\": syntax error",
            ),
        ] {
            let error = parse(&tokens, followed_by).unwrap_err();
            assert_eq!(
                (error.code, error.message),
                (2003, format!("Error in wazuhdb request: {message}"))
            );
        }
    }

    /// A chain of `n` predicates joined by `OR` is `n` high (`n - 1` operators above a leaf).
    #[test]
    fn clauses_higher_than_sqlite_allows_fail_unless_a_syntax_error_comes_first() {
        let chain = |n: usize| -> Vec<Token<Fixed>> {
            let mut tokens = vec![Token::Atom(Fixed(false))];
            for _ in 1..n {
                tokens.extend([Token::Or, Token::Atom(Fixed(false))]);
            }
            tokens
        };
        assert!(parse(&chain(MAX_EXPR_DEPTH), FollowedBy::End).is_ok());
        let too_high = chain(100_000);
        assert_eq!(
            parse(&too_high, FollowedBy::End).unwrap_err().message,
            "Error in wazuhdb request: Expression tree is too large (maximum depth 1000)"
        );
        let mut then_broken = too_high;
        then_broken.push(Token::Close);
        assert_eq!(
            parse(&then_broken, FollowedBy::End).unwrap_err().message,
            "Error in wazuhdb request: near \")\": syntax error"
        );
    }

    #[test]
    fn three_valued_logic() {
        let null = |_: &u8| None;
        let clause: Clause<u8> = Clause::Or(
            Box::new(Clause::Atom(0)),
            Box::new(Clause::Not(Box::new(Clause::Atom(0)))),
        );
        assert_eq!(clause.eval(&null), None);
    }

    #[test]
    fn bindings_fail_in_statement_order() {
        let mut parameters = Parameters::default();
        parameters.uses("a");
        parameters.uses("b");
        parameters.uses("a");
        parameters.supply("a", Binding::Value(SqlValue::Int(1)));
        assert_eq!(
            parameters.check().unwrap_err().message,
            "Error in wazuhdb request: You did not supply a value for binding 2."
        );
        parameters.supply("b", Binding::Unsupported);
        assert_eq!(
            parameters.check().unwrap_err().message,
            "Error in wazuhdb request: Error binding parameter :b - probably unsupported type."
        );
    }
}
