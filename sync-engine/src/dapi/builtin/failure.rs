//! How a built-in function fails, as a 3.9.5 node answers it: a `WazuhException` (a code of
//! upstream's `exception.py` table, its text, and the detail upstream appends), or any other
//! Python exception, which `DistributedAPI` answers as error 1000 with `str(exception)`.
//!
//! ```text
//! WazuhException(1701, "005")  →  {"message": "Agent does not exist: 005", "error": 1701}
//! KeyError('fields')           →  {"message": "'fields'", "error": 1000}
//! ```

use crate::dapi::error::{DapiError, python_repr};
use crate::dapi::merge::{MergeError, error_answer};

/// The texts of the `WazuhException` codes the built-in functions raise (3.9.5
/// `exception.py` `WazuhException.ERRORS`).
const ERRORS: [(u16, &str); 22] = [
    (1005, "Error reading file"),
    (1017, "Wazuh is restarting"),
    (1018, "Wazuh is stopped. Start Wazuh before using the API."),
    (
        1019,
        "There is a failed process. Review that before using the API.",
    ),
    (1101, "Requested component does not exist"),
    (1400, "Invalid offset"),
    (1401, "Invalid limit"),
    (1403, "Sort field invalid"),
    (1405, "Specified limit exceeds maximum allowed (1000)"),
    (1406, "0 is not a valid limit"),
    (1407, "query does not match expected format"),
    (1408, "Field does not exist."),
    (1409, "Invalid query operator."),
    (1411, "Timeframe is not valid"),
    (
        1412,
        "Date filter not valid. Valid formats are timeframe or YYYY-MM-DD HH:mm:ss",
    ),
    (1701, "Agent does not exist"),
    (2000, "No such database file"),
    (2003, "Error in wazuhdb request"),
    (1724, "Not a valid select field"),
    (
        1729,
        "Agent status not valid. Valid statuses are Active, Disconnected, Pending and Never Connected.",
    ),
    (3004, "Error in cluster configuration"),
    (3006, "Error reading cluster configuration"),
];

/// A failed built-in function: the code and text of the answer. See the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionError {
    /// The answer's `error`.
    pub(crate) code: u16,
    /// The answer's `message`.
    pub(crate) message: String,
}

impl FunctionError {
    /// `WazuhException(code, extra)`: the table's text, then `": <extra>"` when `extra` is given
    /// (upstream tests `extra` for truth, so an empty detail adds nothing).
    pub(crate) fn wazuh(code: u16, extra: Option<&str>) -> Self {
        let text = ERRORS
            .iter()
            .find(|(known, _)| *known == code)
            .map_or("Wazuh Internal Error", |(_, text)| text);
        let message = match extra {
            Some(extra) if !extra.is_empty() => format!("{text}: {extra}"),
            _ => text.to_owned(),
        };
        FunctionError { code, message }
    }

    /// Any other Python exception: error 1000 with its text.
    pub(crate) fn python(message: impl Into<String>) -> Self {
        FunctionError {
            code: 1000,
            message: message.into(),
        }
    }

    /// A failed SQLite statement: upstream's `Connection.execute` answers any exception of it
    /// as `WazuhException(2003, str(e))`.
    pub(crate) fn database(message: impl AsRef<str>) -> Self {
        FunctionError::wazuh(2003, Some(message.as_ref()))
    }

    /// `KeyError(key)`: its text is the key's `repr`.
    pub(crate) fn key_error(key: &str) -> Self {
        FunctionError::python(python_repr(key))
    }

    /// The answer `print_json` writes for it.
    pub(crate) fn answer(&self) -> String {
        error_answer(&self.message, self.code)
    }
}

impl From<DapiError> for FunctionError {
    fn from(error: DapiError) -> Self {
        FunctionError {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<MergeError> for FunctionError {
    /// The failures of the Python helpers shared with the merge (`sort_array`, `dict[key]`, ...).
    fn from(error: MergeError) -> Self {
        DapiError::from(error).into()
    }
}

/// Shorthand for the functions' results.
pub(crate) type FunctionResult<T> = Result<T, FunctionError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wazuh_exceptions_carry_upstream_texts() {
        assert_eq!(
            FunctionError::wazuh(1701, Some("005")).answer(),
            r#"{"message": "Agent does not exist: 005", "error": 1701}"#
        );
        assert_eq!(
            FunctionError::wazuh(1406, None).answer(),
            r#"{"message": "0 is not a valid limit", "error": 1406}"#
        );
        // An empty detail is no detail (`if extra_message:`).
        assert_eq!(
            FunctionError::wazuh(1701, Some("")).message,
            "Agent does not exist"
        );
        assert_eq!(
            FunctionError::key_error("fields").answer(),
            r#"{"message": "'fields'", "error": 1000}"#
        );
    }
}
