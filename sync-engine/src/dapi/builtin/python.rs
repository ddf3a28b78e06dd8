//! Python's view of the arguments a built-in function receives: the call itself (keyword
//! arguments bound to the function's parameters, with Python's `TypeError`s), and what upstream's
//! code does with a value (`str()`, `repr()`, `int()`, a string method on a non-string), so that
//! an argument of the wrong type fails with the text Python 3.7 gives it.
//!
//! ```text
//! ossec_log(limit=1, colour="red")  →  "ossec_log() got an unexpected keyword argument 'colour'"
//! str(["001"])                      →  "['001']"
//! int("12x")                        →  "invalid literal for int() with base 10: '12x'"
//! ```

use super::failure::{FunctionError, FunctionResult};
use crate::dapi::error::python_repr;
use crate::dapi::json::{JsonObject, JsonValue};
use crate::pyjson;

/// A parameter's default value in a function's signature.
#[derive(Debug, Clone, Copy)]
pub(super) enum ArgDefault {
    /// No default: the caller must pass it.
    Required,
    /// `None`.
    None,
    /// An `int`.
    Int(i64),
    /// A `str`.
    Str(&'static str),
    /// `{}`.
    EmptyDict,
}

impl ArgDefault {
    fn value(self) -> Option<JsonValue> {
        match self {
            ArgDefault::Required => None,
            ArgDefault::None => Some(JsonValue::Null),
            ArgDefault::Int(i) => Some(JsonValue::Int(i)),
            ArgDefault::Str(s) => Some(JsonValue::from(s)),
            ArgDefault::EmptyDict => Some(JsonValue::Object(JsonObject::new())),
        }
    }
}

/// `function(**arguments)` for a function whose signature is `parameters` (name, default): the
/// value of every parameter, in signature order.
///
/// # Errors
/// Python 3.7's `TypeError` texts: the first argument the signature lacks, then the required
/// parameters not given.
pub(super) fn bind<const N: usize>(
    function: &str,
    parameters: &[(&str, ArgDefault); N],
    arguments: &JsonObject,
) -> FunctionResult<[JsonValue; N]> {
    if let Some(unknown) = arguments
        .keys()
        .find(|key| !parameters.iter().any(|(name, _)| name == key))
    {
        return Err(FunctionError::python(format!(
            "{function}() got an unexpected keyword argument '{unknown}'"
        )));
    }
    let missing: Vec<&str> = parameters
        .iter()
        .filter(|(name, default)| {
            matches!(default, ArgDefault::Required) && !arguments.contains_key(name)
        })
        .map(|(name, _)| *name)
        .collect();
    if let Some(message) = missing_message(function, &missing) {
        return Err(FunctionError::python(message));
    }
    Ok(std::array::from_fn(|i| {
        let (name, default) = parameters[i];
        arguments
            .get(name)
            .cloned()
            .or_else(|| default.value())
            .unwrap_or(JsonValue::Null)
    }))
}

/// `f() missing 1 required positional argument: 'a'` / `... 2 ...: 'a' and 'b'`.
fn missing_message(function: &str, missing: &[&str]) -> Option<String> {
    let quoted: Vec<String> = missing.iter().map(|name| format!("'{name}'")).collect();
    let names = match quoted.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    let plural = if missing.len() == 1 { "" } else { "s" };
    Some(format!(
        "{function}() missing {} required positional argument{plural}: {names}",
        missing.len()
    ))
}

/// Python's `str(value)`.
pub(super) fn str_of(value: &JsonValue) -> String {
    match value {
        JsonValue::Str(s) => s.clone(),
        other => repr_of(other),
    }
}

/// Python's `repr(value)`.
pub(super) fn repr_of(value: &JsonValue) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &JsonValue, out: &mut String) {
    match value {
        JsonValue::Null => out.push_str("None"),
        JsonValue::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        JsonValue::Int(i) => out.push_str(&i.to_string()),
        JsonValue::Float(x) if x.is_nan() => out.push_str("nan"),
        JsonValue::Float(x) if x.is_infinite() => {
            out.push_str(if *x > 0.0 { "inf" } else { "-inf" });
        }
        JsonValue::Float(x) => pyjson::write_float(out, *x),
        JsonValue::Str(s) => out.push_str(&python_repr(s)),
        JsonValue::Array(elements) => {
            out.push('[');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(element, out);
            }
            out.push(']');
        }
        JsonValue::Object(object) => {
            out.push('{');
            for (i, (key, element)) in object.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&python_repr(key));
                out.push_str(": ");
                write_repr(element, out);
            }
            out.push('}');
        }
    }
}

/// `value.method()` for a string method: the string, or Python's `AttributeError`.
pub(super) fn str_method<'v>(value: &'v JsonValue, method: &str) -> FunctionResult<&'v str> {
    value.as_str().ok_or_else(|| no_attribute(value, method))
}

/// `AttributeError`: `'<type>' object has no attribute '<name>'`.
pub(super) fn no_attribute(value: &JsonValue, attribute: &str) -> FunctionError {
    FunctionError::python(format!(
        "'{}' object has no attribute '{attribute}'",
        value.python_type_name()
    ))
}

/// `TypeError` of `left > right` (or another order operator) between types Python cannot order.
pub(super) fn unorderable(op: &str, left: &JsonValue, right: &str) -> FunctionError {
    FunctionError::python(format!(
        "'{op}' not supported between instances of '{}' and '{right}'",
        left.python_type_name()
    ))
}

/// Python's `int(value)` (`int` is unbounded; beyond `i128` the value saturates, which changes
/// no slice or comparison the functions make).
pub(super) fn int_of(value: &JsonValue) -> FunctionResult<i128> {
    match value {
        JsonValue::Int(i) => Ok(i128::from(*i)),
        JsonValue::Bool(b) => Ok(i128::from(*b)),
        JsonValue::Float(x) if x.is_nan() => {
            Err(FunctionError::python("cannot convert float NaN to integer"))
        }
        JsonValue::Float(x) if x.is_infinite() => Err(FunctionError::python(
            "cannot convert float infinity to integer",
        )),
        // Truncation toward zero; `as` saturates beyond i128.
        JsonValue::Float(x) => Ok(x.trunc() as i128),
        JsonValue::Str(s) => parse_int_literal(s).ok_or_else(|| {
            FunctionError::python(format!(
                "invalid literal for int() with base 10: {}",
                python_repr(s)
            ))
        }),
        other => Err(FunctionError::python(format!(
            "int() argument must be a string, a bytes-like object or a number, not '{}'",
            other.python_type_name()
        ))),
    }
}

/// `int(text)`: surrounding whitespace, an optional sign, ASCII digits with single `_` between
/// them.
fn parse_int_literal(text: &str) -> Option<i128> {
    let text = text.trim_matches(is_python_space);
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut magnitude: i128 = 0;
    for byte in digits.bytes().filter(|b| *b != b'_') {
        if !byte.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude
            .saturating_mul(10)
            .saturating_add(i128::from(byte - b'0'));
    }
    Some(if negative { -magnitude } else { magnitude })
}

/// Python's `str.isspace` for one character (what `\s` and `strip()` take as whitespace): the
/// Unicode white space, plus the four information separators U+001C..U+001F.
pub(super) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(text: &str) -> JsonObject {
        match JsonValue::parse(text.as_bytes(), &Default::default()) {
            Ok(JsonValue::Object(object)) => object,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn binding_reports_what_python_3_7_says() {
        let signature = [
            ("agent_id", ArgDefault::Required),
            ("select", ArgDefault::None),
        ];
        assert_eq!(
            bind("get_agent", &signature, &object(r#"{"agent_id": "001"}"#)),
            Ok([JsonValue::from("001"), JsonValue::Null])
        );
        assert_eq!(
            bind(
                "get_agent",
                &signature,
                &object(r#"{"select": null, "x": 1}"#)
            )
            .unwrap_err()
            .message,
            "get_agent() got an unexpected keyword argument 'x'"
        );
        assert_eq!(
            bind("get_agent", &signature, &object("{}"))
                .unwrap_err()
                .message,
            "get_agent() missing 1 required positional argument: 'agent_id'"
        );
        assert_eq!(
            missing_message("f", &["a", "b", "c"]).unwrap(),
            "f() missing 3 required positional arguments: 'a', 'b' and 'c'"
        );
    }

    #[test]
    fn str_and_repr_are_pythons() {
        let value = JsonValue::parse(
            br#"[null, true, 1, 1.5, NaN, -Infinity, "it's", {"a": []}]"#,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            str_of(&value),
            r#"[None, True, 1, 1.5, nan, -inf, "it's", {'a': []}]"#
        );
        assert_eq!(str_of(&JsonValue::from("plain")), "plain");
    }

    #[test]
    fn int_conversions_follow_python() {
        assert_eq!(int_of(&JsonValue::from(" -1_000 ")), Ok(-1000));
        assert_eq!(int_of(&JsonValue::Float(-2.7)), Ok(-2));
        assert_eq!(int_of(&JsonValue::Bool(true)), Ok(1));
        for (value, message) in [
            (
                JsonValue::from("1__0"),
                "invalid literal for int() with base 10: '1__0'",
            ),
            (
                JsonValue::Null,
                "int() argument must be a string, a bytes-like object or a number, not 'NoneType'",
            ),
            (
                JsonValue::Float(f64::INFINITY),
                "cannot convert float infinity to integer",
            ),
        ] {
            assert_eq!(int_of(&value).unwrap_err().message, message);
        }
    }
}
