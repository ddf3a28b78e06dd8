//! The Fernet specification's own vectors (`fernet-spec/{generate,verify,invalid}.json`), with the
//! two differences upstream Wazuh implies: no TTL (so "far-future TS" and "expired TTL" open)
//! and strict base64 (so "trailing characters" and "invalid characters" are refused).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use serde_json::Value;
use wazuh_cluster_protocol::fernet::{Fernet, FernetError, token_len};

fn fernet_of(case: &Value) -> Fernet {
    let secret = URL_SAFE
        .decode(case["secret"].as_str().unwrap())
        .expect("spec secret is base64url");
    Fernet::from_key_bytes(&secret.try_into().expect("32-byte secret"))
}

/// Seconds since the Unix epoch of an RFC 3339 time such as `1985-10-26T01:20:00-07:00`.
fn unix_secs(rfc3339: &str) -> u64 {
    let num = |range: core::ops::Range<usize>| -> i64 { rfc3339[range].parse().unwrap() };
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
    let sign = if &rfc3339[19..20] == "-" { -1 } else { 1 };
    let offset = sign * (num(20..22) * 3600 + num(23..25) * 60);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second - offset).unwrap()
}

/// The cases of one spec file (never empty).
fn spec_cases(file: &str) -> Vec<Value> {
    let cases = wazuh_cluster_vectors::json(&format!("fernet-spec/{file}"));
    let cases = cases.as_array().unwrap().clone();
    assert!(!cases.is_empty(), "{file} has cases");
    cases
}

#[test]
fn rfc3339_helper_is_right() {
    // `date -d 1985-10-26T01:20:00-07:00 +%s`
    assert_eq!(unix_secs("1985-10-26T01:20:00-07:00"), 499_162_800);
    assert_eq!(unix_secs("1970-01-01T00:00:00+00:00"), 0);
}

#[test]
fn generate_vectors_match_byte_for_byte() {
    for case in &spec_cases("generate.json") {
        let iv: Vec<u8> = case["iv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
            .collect();
        let src = case["src"].as_str().unwrap().as_bytes();
        let token = fernet_of(case).encrypt(
            src,
            iv.try_into().unwrap(),
            unix_secs(case["now"].as_str().unwrap()),
        );
        assert_eq!(
            String::from_utf8(token).unwrap(),
            case["token"].as_str().unwrap()
        );
        assert_eq!(token_len(src.len()), case["token"].as_str().unwrap().len());
    }
}

#[test]
fn verify_vectors_open_to_their_source() {
    for case in &spec_cases("verify.json") {
        let token = case["token"].as_str().unwrap().as_bytes();
        let plaintext = fernet_of(case).decrypt(token).unwrap();
        assert_eq!(plaintext, case["src"].as_str().unwrap().as_bytes());
        assert_eq!(open_in_place(case, token), Ok(plaintext));
    }
}

/// `Fernet::decrypt_in_place` of `token`, its plaintext copied out; and the same from an
/// `Opener` given the token's bytes as they would arrive, cut after every byte and in one piece,
/// which must agree.
fn open_in_place(case: &Value, token: &[u8]) -> Result<Vec<u8>, FernetError> {
    let fernet = fernet_of(case);
    let mut buf = token.to_vec();
    let whole = fernet
        .decrypt_in_place(&mut buf)
        .map(|range| buf[range].to_vec());
    for step in [1, token.len()] {
        let mut buf = token.to_vec();
        let mut opener = fernet.opener(token.len());
        for received in (step..token.len()).step_by(step) {
            opener.advance(&mut buf[..received]);
        }
        let opened = opener.finish(&mut buf).map(|range| buf[range].to_vec());
        assert_eq!(
            opened, whole,
            "opened as it arrives, {step} byte(s) at a time"
        );
    }
    whole
}

#[test]
fn invalid_vectors_are_refused_except_the_ttl_ones() {
    let cases = spec_cases("invalid.json");
    let mut seen = Vec::new();
    for case in &cases {
        let desc = case["desc"].as_str().unwrap();
        let expected = match desc {
            "incorrect mac" => Err(FernetError::BadHmac),
            "too short" => Err(FernetError::TooShort { len: 40 }),
            "invalid base64" => Err(FernetError::BadBase64),
            "payload size not multiple of block size" => {
                Err(FernetError::BadCiphertextLength { len: 15 })
            }
            "payload padding error" => Err(FernetError::BadPadding),
            // No TTL upstream: these tokens are valid for the cluster. Both seal the empty
            // plaintext (as Python `cryptography` also opens them without a TTL).
            "far-future TS (unacceptable clock skew)" | "expired TTL" => Ok(Vec::new()),
            "incorrect IV (causes padding error)" => Err(FernetError::BadPadding),
            "trailing characters after b64 padding"
            | "invalid characters in b64"
            | "invalid non-urlsafe characters in b64" => Err(FernetError::BadBase64),
            other => panic!("unexpected case {other:?} in invalid.json: decide its outcome"),
        };
        let token = case["token"].as_str().unwrap().as_bytes();
        let got = fernet_of(case).decrypt(token);
        assert_eq!(got, expected, "case {desc:?}");
        assert_eq!(
            open_in_place(case, token),
            expected,
            "in place: case {desc:?}"
        );
        seen.push(desc);
    }
    assert_eq!(seen.len(), 11, "every case of invalid.json was checked");
}
