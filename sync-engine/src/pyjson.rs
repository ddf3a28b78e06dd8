//! Writing JSON the way Python's `json.dumps` does with its defaults, so that documents we send
//! (`cluster_control.json`, integrity metadata) are byte-identical to upstream's for the same key
//! order. Crate-wide: the integrity documents and the DAPI JSON share it.
//!
//! Defaults that matter: `", "` and `": "` separators, `ensure_ascii=True` (every non-ASCII
//! character as `\uXXXX`, lowercase hex, surrogate pairs above U+FFFF), the short escapes
//! `\" \\ \n \r \t \b \f`, other control characters as `\u00XX`, and `/` left alone.

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
}
