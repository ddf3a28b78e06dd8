//! Fields of the recording's JSON vector files, read with errors that name the file and the key:
//! a vector that does not have the layout its README describes is a [`RecordingError::Vector`],
//! not a panic deep inside a comparison.

use serde_json::Value;

use super::RecordingError;

/// A [`RecordingError::Vector`] for `file`.
pub(super) fn bad(file: &str, what: impl Into<String>) -> RecordingError {
    RecordingError::Vector {
        file: file.to_owned(),
        what: what.into(),
    }
}

pub(super) fn field<'a>(v: &'a Value, key: &str, file: &str) -> Result<&'a Value, RecordingError> {
    v.get(key)
        .ok_or_else(|| bad(file, format!("no field {key}")))
}

pub(super) fn str_field<'a>(
    v: &'a Value,
    key: &str,
    file: &str,
) -> Result<&'a str, RecordingError> {
    field(v, key, file)?
        .as_str()
        .ok_or_else(|| bad(file, format!("{key} is not a string")))
}

pub(super) fn u64_field(v: &Value, key: &str, file: &str) -> Result<u64, RecordingError> {
    field(v, key, file)?
        .as_u64()
        .ok_or_else(|| bad(file, format!("{key} is not a whole number")))
}

pub(super) fn f64_field(v: &Value, key: &str, file: &str) -> Result<f64, RecordingError> {
    field(v, key, file)?
        .as_f64()
        .ok_or_else(|| bad(file, format!("{key} is not a number")))
}

pub(super) fn array<'a>(
    v: &'a Value,
    key: &str,
    file: &str,
) -> Result<&'a Vec<Value>, RecordingError> {
    field(v, key, file)?
        .as_array()
        .ok_or_else(|| bad(file, format!("{key} is not an array")))
}

pub(super) fn object<'a>(
    v: &'a Value,
    key: &str,
    file: &str,
) -> Result<&'a serde_json::Map<String, Value>, RecordingError> {
    field(v, key, file)?
        .as_object()
        .ok_or_else(|| bad(file, format!("{key} is not an object")))
}

pub(super) fn strings(v: &Value, key: &str, file: &str) -> Result<Vec<String>, RecordingError> {
    array(v, key, file)?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(file, format!("{key} holds a non-string")))
        })
        .collect()
}
