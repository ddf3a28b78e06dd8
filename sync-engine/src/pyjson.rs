//! Writing JSON the way Python's `json.dumps` does with its defaults, so that documents we send
//! (`cluster_control.json`, integrity metadata, DAPI requests and answers) are byte-identical to
//! upstream's for the same key order.
//!
//! Defaults that matter: `", "` and `": "` separators, `ensure_ascii=True` (every non-ASCII
//! character as `\uXXXX`, lowercase hex, surrogate pairs above U+FFFF), the short escapes
//! `\" \\ \n \r \t \b \f`, other control characters as `\u00XX`, and `/` left alone. Floats are
//! written as `float.__repr__` writes them (shortest round-trip digits, exponent form below 1e-4
//! and from 1e16 on), with `NaN`, `Infinity` and `-Infinity` for the non-finite values
//! (`allow_nan=True`).

/// Appends `s` as a JSON string literal, escaped like `json.dumps` (ensure_ascii).
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    push_u_escape(out, *unit);
                }
            }
        }
    }
    out.push('"');
}

fn push_u_escape(out: &mut String, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\u");
    for shift in [12, 8, 4, 0] {
        out.push(char::from(HEX[usize::from((unit >> shift) & 0xf)]));
    }
}

/// Writes `{"k": v, ...}` with Python's separators; `write_value` appends each value.
pub(crate) fn write_object<'a, K, V, I, F>(out: &mut String, entries: I, mut write_value: F)
where
    K: AsRef<str> + 'a,
    V: 'a,
    I: IntoIterator<Item = (K, V)>,
    F: FnMut(&mut String, V),
{
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_str(out, key.as_ref());
        out.push_str(": ");
        write_value(out, value);
    }
    out.push('}');
}

/// Writes `[v, ...]` with Python's separator; `write_value` appends each element.
pub(crate) fn write_array<V, I, F>(out: &mut String, elements: I, mut write_value: F)
where
    I: IntoIterator<Item = V>,
    F: FnMut(&mut String, V),
{
    out.push('[');
    for (i, element) in elements.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(out, element);
    }
    out.push(']');
}

/// Appends `x` as `json.dumps` writes a Python float: `float.__repr__`, or `NaN` / `Infinity` /
/// `-Infinity`.
pub(crate) fn write_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr (both pick, among the
    // shortest strings that read back as `x`, the one nearest to `x`); only the layout differs.
    let scientific = format!("{:e}", x.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Python (`format_float_short`, mode 'r'): positional notation while the decimal point falls
    // within -4 < decpt <= 16, where the value is 0.<digits> * 10^decpt.
    let decpt = exponent + 1;
    if decpt > -4 && decpt <= 16 {
        let n_digits = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        if decpt <= 0 {
            out.push_str("0.");
            push_zeros(out, -decpt);
            out.push_str(&digits);
        } else if decpt >= n_digits {
            out.push_str(&digits);
            push_zeros(out, decpt - n_digits);
            out.push_str(".0");
        } else {
            let (int_part, frac_part) = digits.split_at(decpt.unsigned_abs() as usize);
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    }
}

fn push_zeros(out: &mut String, count: i32) {
    for _ in 0..count {
        out.push('0');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python_ensure_ascii() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\n\t/é\u{1}\u{1F600}");
        // python3 -c 'import json; print(json.dumps("a\"b\\c\n\t/é\x01\U0001F600"))'
        assert_eq!(out, r#""a\"b\\c\n\t/\u00e9\u0001\ud83d\ude00""#);
    }

    #[test]
    fn floats_like_python_repr() {
        // python3.7 -c 'import json; print(json.dumps([...]))', one value at a time.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (0.0000123, "1.23e-05"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.7, "1234567890123456.8"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.0f64.powi(53), "9007199254740992.0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, expected) in cases {
            let mut out = String::new();
            write_float(&mut out, *x);
            assert_eq!(out, *expected, "{x:e}");
        }
    }

    #[test]
    fn arrays_use_python_separator() {
        let mut out = String::new();
        write_array(&mut out, ["a", "b"], write_str);
        assert_eq!(out, r#"["a", "b"]"#);
        out.clear();
        write_array(&mut out, Vec::<&str>::new(), write_str);
        assert_eq!(out, "[]");
    }
}
