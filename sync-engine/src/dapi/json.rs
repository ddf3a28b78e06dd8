//! The JSON values DAPI carries: read as Python's `json.loads` reads them, written as `json.dumps`
//! writes them, key order kept, every document bounded.
//!
//! Why not `serde_json::Value`: upstream re-encodes requests and merges answers as Python dicts,
//! so what we forward must keep the key order it arrived in (serde_json's order-keeping feature
//! would change the order of every other JSON document of the workspace), must keep `1` apart from
//! `1.0` (Python writes them differently), must take Python's `NaN` / `Infinity` literals and its
//! rule for repeated keys (first position, last value), and must refuse what is too big or too
//! deep with a typed error instead of growing.
//!
//! Deliberate differences from `json.loads`: integers must fit in an `i64` (Python's are
//! unbounded) and a `\uXXXX` escape of a lone UTF-16 surrogate is refused (Python makes a string a
//! UTF-8 `String` cannot hold). Both are [`JsonError`]s.
//!
//! ```
//! use wazuh_cluster_sync::dapi::json::{JsonLimits, JsonValue};
//!
//! let text = br#"{"b":1,"a":[1.0,"\u00e9",null],"b":2}"#;
//! let value = JsonValue::parse(text, &JsonLimits::default()).unwrap();
//! // Repeated key: first position, last value; `1.0` stays a float; ASCII escapes on output.
//! assert_eq!(value.to_python_json(), r#"{"b": 2, "a": [1.0, "\u00e9", null]}"#);
//! ```

use std::collections::BTreeMap;

use crate::pyjson;

/// Hard ceiling on nesting, whatever [`JsonLimits::max_depth`] says: parsing, writing, comparing
/// and merging recurse once per level, so this bounds their stack use.
pub const MAX_DEPTH: usize = 128;

/// Bounds on one JSON document read from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonLimits {
    /// Largest document, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects (the top-level container is depth 1); capped at
    /// [`MAX_DEPTH`].
    pub max_depth: usize,
}

impl Default for JsonLimits {
    /// 1 MiB, 64 levels.
    fn default() -> Self {
        JsonLimits {
            max_bytes: 1 << 20,
            max_depth: 64,
        }
    }
}

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The document is larger than [`JsonLimits::max_bytes`].
    #[error("JSON document of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Document size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than [`JsonLimits::max_depth`].
    #[error("JSON nesting at byte {offset} is deeper than {limit} levels")]
    TooDeep {
        /// Where the container that went too deep opens.
        offset: usize,
        /// The limit applied.
        limit: usize,
    },
    /// The bytes are not UTF-8 (upstream decodes before parsing).
    #[error("JSON is not valid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// First invalid byte.
        offset: usize,
    },
    /// Not JSON as `json.loads` reads it.
    #[error("JSON syntax error at byte {offset}: expected {expected}")]
    Syntax {
        /// Where the parser stopped.
        offset: usize,
        /// What it expected there.
        expected: &'static str,
    },
    /// A `\uXXXX` escape of a UTF-16 surrogate without its other half.
    #[error("JSON string at byte {offset} escapes a lone UTF-16 surrogate")]
    LoneSurrogate {
        /// Where the escape starts.
        offset: usize,
    },
    /// An integer outside the `i64` range.
    #[error("JSON integer at byte {offset} does not fit in 64 bits")]
    IntegerOutOfRange {
        /// Where the number starts.
        offset: usize,
    },
}

/// A JSON value as Python's `json.loads` builds it: `None`, `bool`, `int`, `float`, `str`, `list`,
/// `dict` (key order kept).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// `null` (`None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number without fraction or exponent (`int`).
    Int(i64),
    /// A number with a fraction or an exponent, or `NaN` / `Infinity` / `-Infinity` (`float`).
    Float(f64),
    /// A string (`str`).
    Str(String),
    /// An array (`list`).
    Array(Vec<JsonValue>),
    /// An object (`dict`).
    Object(JsonObject),
}

impl JsonValue {
    /// Parses one document as `json.loads` does, within `limits`.
    ///
    /// # Errors
    /// [`JsonError`]: too large, too deep, not UTF-8, not JSON, a lone surrogate, an integer
    /// beyond `i64`.
    pub fn parse(input: &[u8], limits: &JsonLimits) -> Result<Self, JsonError> {
        if input.len() > limits.max_bytes {
            return Err(JsonError::TooLarge {
                size: input.len(),
                limit: limits.max_bytes,
            });
        }
        let text = std::str::from_utf8(input).map_err(|e| JsonError::InvalidUtf8 {
            offset: e.valid_up_to(),
        })?;
        let mut parser = Parser {
            text,
            pos: 0,
            max_depth: limits.max_depth.min(MAX_DEPTH),
        };
        let value = parser.value(0)?;
        parser.skip_whitespace();
        if parser.pos != text.len() {
            return Err(parser.syntax("end of input"));
        }
        Ok(value)
    }

    /// The document as Python's `json.dumps` writes it (default separators, `ensure_ascii`).
    pub fn to_python_json(&self) -> String {
        let mut out = String::new();
        self.write_python_json(&mut out);
        out
    }

    /// Appends the document as Python's `json.dumps` writes it.
    pub fn write_python_json(&self, out: &mut String) {
        match self {
            JsonValue::Null => out.push_str("null"),
            JsonValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            JsonValue::Int(i) => out.push_str(&i.to_string()),
            JsonValue::Float(x) => pyjson::write_float(out, *x),
            JsonValue::Str(s) => pyjson::write_str(out, s),
            JsonValue::Array(elements) => {
                pyjson::write_array(out, elements, |out, v| v.write_python_json(out));
            }
            JsonValue::Object(object) => object.write_python_json(out),
        }
    }

    /// The name of the Python type `json.loads` gives this value (`NoneType`, `bool`, `int`,
    /// `float`, `str`, `list`, `dict`), as upstream's error texts name it.
    pub fn python_type_name(&self) -> &'static str {
        match self {
            JsonValue::Null => "NoneType",
            JsonValue::Bool(_) => "bool",
            JsonValue::Int(_) => "int",
            JsonValue::Float(_) => "float",
            JsonValue::Str(_) => "str",
            JsonValue::Array(_) => "list",
            JsonValue::Object(_) => "dict",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&JsonObject> {
        match self {
            JsonValue::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[JsonValue]> {
        match self {
            JsonValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<&str> for JsonValue {
    fn from(s: &str) -> Self {
        JsonValue::Str(s.to_owned())
    }
}

impl From<String> for JsonValue {
    fn from(s: String) -> Self {
        JsonValue::Str(s)
    }
}

impl From<bool> for JsonValue {
    fn from(b: bool) -> Self {
        JsonValue::Bool(b)
    }
}

impl From<i64> for JsonValue {
    fn from(i: i64) -> Self {
        JsonValue::Int(i)
    }
}

impl From<JsonObject> for JsonValue {
    fn from(o: JsonObject) -> Self {
        JsonValue::Object(o)
    }
}

impl From<Vec<JsonValue>> for JsonValue {
    fn from(a: Vec<JsonValue>) -> Self {
        JsonValue::Array(a)
    }
}

/// Objects with more keys than this get a key index, so lookups stay O(log n) on a big object a
/// peer sent while small ones (most of them) stay a plain vector.
const INDEX_FROM_LEN: usize = 16;

/// A JSON object with Python `dict` semantics: keys unique, kept in insertion order; setting an
/// existing key replaces its value in place; removing a key keeps the others' order.
#[derive(Debug, Clone, Default)]
pub struct JsonObject {
    entries: Vec<(String, JsonValue)>,
    /// Key → position, present once the object has more than [`INDEX_FROM_LEN`] keys.
    index: Option<BTreeMap<String, usize>>,
}

impl JsonObject {
    /// An empty object.
    pub const fn new() -> Self {
        JsonObject {
            entries: Vec::new(),
            index: None,
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// The value of `key`, to change it in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut JsonValue> {
        self.position(key).map(|i| &mut self.entries[i].1)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` (Python `d[key] = value`): an existing key keeps its position and gets the new
    /// value (the old one is returned), a new key goes last.
    pub fn insert(&mut self, key: impl Into<String>, value: JsonValue) -> Option<JsonValue> {
        let key = key.into();
        if let Some(i) = self.position(&key) {
            return Some(std::mem::replace(&mut self.entries[i].1, value));
        }
        let position = self.entries.len();
        if let Some(index) = &mut self.index {
            index.insert(key.clone(), position);
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > INDEX_FROM_LEN {
            self.rebuild_index();
        }
        None
    }

    /// Removes `key` (Python `del d[key]`), keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<JsonValue> {
        let position = self.position(key)?;
        let (_, value) = self.entries.remove(position);
        if self.index.is_some() {
            self.rebuild_index();
        }
        Some(value)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &JsonValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The object as Python's `json.dumps` writes it.
    pub fn to_python_json(&self) -> String {
        let mut out = String::new();
        self.write_python_json(&mut out);
        out
    }

    /// Appends the object as Python's `json.dumps` writes it.
    pub fn write_python_json(&self, out: &mut String) {
        pyjson::write_object(out, self.iter(), |out, v| v.write_python_json(out));
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k == key),
        }
    }

    fn rebuild_index(&mut self) {
        self.index = (self.entries.len() > INDEX_FROM_LEN).then(|| {
            self.entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect()
        });
    }
}

/// Order matters: two objects are equal when they hold the same entries in the same order (what
/// a byte-exact round trip needs; Python's order-blind `==` is the merge's business).
impl PartialEq for JsonObject {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl FromIterator<(String, JsonValue)> for JsonObject {
    fn from_iter<I: IntoIterator<Item = (String, JsonValue)>>(iter: I) -> Self {
        let mut object = JsonObject::new();
        for (key, value) in iter {
            object.insert(key, value);
        }
        object
    }
}

impl IntoIterator for JsonObject {
    type Item = (String, JsonValue);
    type IntoIter = std::vec::IntoIter<(String, JsonValue)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Recursive-descent reader over text already checked to be UTF-8; recursion is bounded by
/// `max_depth` (≤ [`MAX_DEPTH`]).
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn syntax(&self, expected: &'static str) -> JsonError {
        JsonError::Syntax {
            offset: self.pos,
            expected,
        }
    }

    /// Python's JSON whitespace: space, tab, newline, carriage return.
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(expected))
        }
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue, JsonError> {
        self.skip_whitespace();
        let rest = &self.text[self.pos..];
        let constant = [
            ("null", JsonValue::Null),
            ("true", JsonValue::Bool(true)),
            ("false", JsonValue::Bool(false)),
            ("NaN", JsonValue::Float(f64::NAN)),
            ("Infinity", JsonValue::Float(f64::INFINITY)),
            ("-Infinity", JsonValue::Float(f64::NEG_INFINITY)),
        ]
        .into_iter()
        .find(|(word, _)| rest.starts_with(word));
        if let Some((word, value)) = constant {
            self.pos += word.len();
            return Ok(value);
        }
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(JsonValue::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.syntax("a value")),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), JsonError> {
        if depth > self.max_depth {
            Err(JsonError::TooDeep {
                offset: self.pos,
                limit: self.max_depth,
            })
        } else {
            Ok(())
        }
    }

    fn object(&mut self, depth: usize) -> Result<JsonValue, JsonError> {
        self.enter(depth)?;
        self.pos += 1; // '{'
        let mut object = JsonObject::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(JsonValue::Object(object));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("a property name in double quotes"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            self.expect(b':', "':'")?;
            let value = self.value(depth)?;
            object.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(JsonValue::Object(object));
                }
                _ => return Err(self.syntax("',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<JsonValue, JsonError> {
        self.enter(depth)?;
        self.pos += 1; // '['
        let mut elements = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(JsonValue::Array(elements));
        }
        loop {
            elements.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(JsonValue::Array(elements));
                }
                _ => return Err(self.syntax("',' or ']'")),
            }
        }
    }

    /// A string literal starting at the opening quote.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // Stopped on an ASCII byte or at the end: a char boundary of the valid UTF-8 text.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(_) => return Err(self.syntax("no raw control character in a string")),
                None => return Err(self.syntax("'\"' closing the string")),
            }
        }
    }

    /// One escape sequence starting at its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let start = self.pos;
        self.pos += 1; // '\\'
        let simple = match self.peek() {
            Some(b'"') => Some('"'),
            Some(b'\\') => Some('\\'),
            Some(b'/') => Some('/'),
            Some(b'b') => Some('\u{8}'),
            Some(b'f') => Some('\u{c}'),
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            Some(b'u') => None,
            _ => return Err(self.syntax("a valid escape")),
        };
        self.pos += 1;
        if let Some(c) = simple {
            out.push(c);
            return Ok(());
        }
        let unit = self.hex4()?;
        let lone = JsonError::LoneSurrogate { offset: start };
        let code = match unit {
            0xd800..=0xdbff => {
                // A high half must be followed at once by `\u` and a low half (Python joins them).
                if self.text[self.pos..].starts_with("\\u") {
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return Err(lone);
                    }
                    0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                } else {
                    return Err(lone);
                }
            }
            0xdc00..=0xdfff => return Err(lone),
            _ => unit,
        };
        out.push(char::from_u32(code).ok_or(lone)?);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.syntax("four hex digits after \\u"))?;
        let unit = u32::from_str_radix(digits, 16).map_err(|_| self.syntax("hex digits"))?;
        self.pos += 4;
        Ok(unit)
    }

    /// Python's number pattern `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`: an `int` without fraction
    /// and exponent, a `float` otherwise. A `.` or `e` not followed by digits ends the number (and
    /// then fails as unexpected data, as in Python).
    fn number(&mut self) -> Result<JsonValue, JsonError> {
        let start = self.pos;
        let bytes = self.bytes();
        let digits_from = |mut i: usize| {
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        let mut end = start;
        if bytes.get(end) == Some(&b'-') {
            end += 1;
        }
        match bytes.get(end) {
            Some(b'0') => end += 1,
            Some(b'1'..=b'9') => end = digits_from(end),
            _ => return Err(self.syntax("a digit")),
        }
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = digits_from(end + 1);
            is_float = true;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut exponent = end + 1;
            if matches!(bytes.get(exponent), Some(b'+' | b'-')) {
                exponent += 1;
            }
            if bytes.get(exponent).is_some_and(u8::is_ascii_digit) {
                end = digits_from(exponent);
                is_float = true;
            }
        }
        let literal = &self.text[start..end];
        self.pos = end;
        if is_float {
            // Rust's parse is correctly rounded like Python's `float()`; huge exponents give ±inf
            // as in Python.
            literal
                .parse()
                .map(JsonValue::Float)
                .map_err(|_| JsonError::Syntax {
                    offset: start,
                    expected: "a number",
                })
        } else {
            literal
                .parse()
                .map(JsonValue::Int)
                .map_err(|_| JsonError::IntegerOutOfRange { offset: start })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> Result<JsonValue, JsonError> {
        JsonValue::parse(text.as_bytes(), &JsonLimits::default())
    }

    fn round_trip(text: &str) -> String {
        parse(text).unwrap().to_python_json()
    }

    #[test]
    fn writes_what_python_writes_after_loading() {
        // Each expected output is python3.7 `json.dumps(json.loads(text))`.
        let cases = [
            (r#"{"a":1,"b":2,"a":3}"#, r#"{"a": 3, "b": 2}"#),
            (
                "[1E400, -1e400, -0, -0.0, 1.5E+3, 10000000000000000.0, NaN, -Infinity]",
                "[Infinity, -Infinity, 0, -0.0, 1500.0, 1e+16, NaN, -Infinity]",
            ),
            (
                r#"["\/", "\u00E9\ud83d\ude00", "\b\f"]"#,
                r#"["/", "\u00e9\ud83d\ude00", "\b\f"]"#,
            ),
            (" \t\n\r{ } ", "{}"),
            ("[[], {}, [ ], { }]", "[[], {}, [], {}]"),
            ("[1e5, 0.5, 1.0, 10]", "[100000.0, 0.5, 1.0, 10]"),
            ("\"é\u{7f}\u{2028}\"", r#""\u00e9\u007f\u2028""#),
            ("-9223372036854775808", "-9223372036854775808"),
            ("true", "true"),
        ];
        for (text, expected) in cases {
            assert_eq!(round_trip(text), expected, "{text}");
        }
    }

    #[test]
    fn refuses_what_python_refuses() {
        // python3.7 json.loads raises on each of these.
        for text in [
            "",
            " ",
            "\u{feff}[1]",
            "[1,]",
            r#"{"a":1,}"#,
            "01",
            "1.",
            "[.5]",
            r#""\u00e""#,
            "\"\t\"",
            "\u{2028}",
            "[1 2]",
            "{1: 2}",
            r#"{"a" 1}"#,
            "nul",
            "-",
            "1e",
            "[",
            r#""abc"#,
            r#""\x""#,
            "Infinit",
            "-NaN",
            "+1",
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn deliberate_refusals_are_typed() {
        assert_eq!(
            parse(r#"["\ud800"]"#),
            Err(JsonError::LoneSurrogate { offset: 2 })
        );
        assert_eq!(
            parse(r#""\udc00\ud800""#),
            Err(JsonError::LoneSurrogate { offset: 1 })
        );
        assert_eq!(
            parse(r#""\ud800\u0041""#),
            Err(JsonError::LoneSurrogate { offset: 1 })
        );
        assert_eq!(
            parse("[9223372036854775808]"),
            Err(JsonError::IntegerOutOfRange { offset: 1 })
        );
        assert_eq!(
            JsonValue::parse(b"[\"\xff\"]", &JsonLimits::default()),
            Err(JsonError::InvalidUtf8 { offset: 2 })
        );
    }

    #[test]
    fn limits_hold() {
        let limits = JsonLimits {
            max_bytes: 10,
            max_depth: 2,
        };
        assert_eq!(
            JsonValue::parse(b"[1, 2, 3, 4]", &limits),
            Err(JsonError::TooLarge {
                size: 12,
                limit: 10
            })
        );
        assert!(JsonValue::parse(b"[[1]]", &limits).is_ok());
        assert_eq!(
            JsonValue::parse(b"[[[1]]]", &limits),
            Err(JsonError::TooDeep {
                offset: 2,
                limit: 2
            })
        );
        let shallow = JsonLimits {
            max_bytes: 100,
            max_depth: 2,
        };
        assert_eq!(
            JsonValue::parse(br#"{"a":{"b":{}}}"#, &shallow),
            Err(JsonError::TooDeep {
                offset: 10,
                limit: 2
            })
        );
        // The hard ceiling applies whatever the caller asks for.
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let generous = JsonLimits {
            max_bytes: usize::MAX,
            max_depth: usize::MAX,
        };
        assert!(matches!(
            JsonValue::parse(deep.as_bytes(), &generous),
            Err(JsonError::TooDeep {
                limit: MAX_DEPTH,
                ..
            })
        ));
    }

    #[test]
    fn objects_behave_like_python_dicts() {
        let mut object: JsonObject = (0..40)
            .map(|i| (format!("k{i}"), JsonValue::Int(i)))
            .collect();
        assert_eq!(object.len(), 40);
        assert_eq!(
            object.insert("k3", JsonValue::Null),
            Some(JsonValue::Int(3))
        );
        assert_eq!(object.keys().nth(3), Some("k3"));
        assert_eq!(object.remove("k0"), Some(JsonValue::Int(0)));
        assert_eq!(object.get("k39"), Some(&JsonValue::Int(39)));
        assert_eq!(object.keys().next(), Some("k1"));
        assert!(!object.contains_key("k0"));
        for i in 1..40 {
            object.remove(&format!("k{i}"));
        }
        assert!(object.is_empty());
        object.insert("x", JsonValue::Bool(true));
        assert_eq!(object.to_python_json(), r#"{"x": true}"#);
    }

    /// Values of every kind (no NaN: it is not equal to itself), keys repeated on purpose.
    fn json_value() -> impl Strategy<Value = JsonValue> {
        let leaf = prop_oneof![
            Just(JsonValue::Null),
            any::<bool>().prop_map(JsonValue::Bool),
            any::<i64>().prop_map(JsonValue::Int),
            any::<f64>()
                .prop_filter("NaN != NaN", |x| !x.is_nan())
                .prop_map(JsonValue::Float),
            any::<String>().prop_map(JsonValue::Str),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(JsonValue::Array),
                prop::collection::vec(("[a-c]{0,2}", inner), 0..6)
                    .prop_map(|entries| JsonValue::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// What we write reads back as the same value (floats included: repr round-trips).
        #[test]
        fn written_values_read_back(value in json_value()) {
            let text = value.to_python_json();
            prop_assert_eq!(parse(&text), Ok(value));
        }

        /// Text made of JSON's own characters: a value or a typed error, never a panic.
        #[test]
        fn json_like_text_never_panics(text in r#"[\[\]{}",:0-9a-eEINfnrtu\\. +-]{0,64}"#) {
            let _ = parse(&text);
        }
    }
}
