//! `Opener` (a token opened as its bytes arrive) against `Fernet::decrypt_in_place` (opened
//! whole): the same plaintext for any token cut anywhere, and the same error for any token
//! altered anywhere.

use proptest::prelude::*;
use wazuh_cluster_protocol::fernet::{Fernet, FernetError};

/// Opens `token` whole, and as it arrives cut at `cuts` (sorted, any values: those past the
/// end are left out); both results with their plaintext copied out.
type Opened = Result<Vec<u8>, FernetError>;

fn both_ways(fernet: &Fernet, token: &[u8], cuts: &[usize]) -> (Opened, Opened) {
    let mut whole = token.to_vec();
    let whole = fernet
        .decrypt_in_place(&mut whole)
        .map(|range| whole[range].to_vec());
    let mut buf = token.to_vec();
    let mut opener = fernet.opener(token.len());
    for &cut in cuts.iter().filter(|&&cut| cut < token.len()) {
        opener.advance(&mut buf[..cut]);
    }
    let arriving = opener.finish(&mut buf).map(|range| buf[range].to_vec());
    (arriving, whole)
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..12_000, 0..12).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_token_opens_to_its_plaintext_however_it_arrives(
        key in any::<[u8; 32]>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..8_000),
        iv in any::<[u8; 16]>(),
        secs in any::<u64>(),
        cuts in cuts(),
    ) {
        let fernet = Fernet::from_key_bytes(&key);
        let token = fernet.encrypt(&plaintext, iv, secs);
        let (arriving, whole) = both_ways(&fernet, &token, &cuts);
        prop_assert_eq!(&whole, &Ok(plaintext));
        prop_assert_eq!(arriving, whole);
    }

    /// One byte replaced anywhere (a base64 character, a padding `=`, garbage), or the wrong
    /// key: the same error as opened whole.
    #[test]
    fn an_altered_token_fails_as_it_would_whole(
        key in any::<[u8; 32]>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..3_000),
        iv in any::<[u8; 16]>(),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![
            Just(b'='),
            Just(b'A'),
            Just(b'_'),
            Just(b'+'),
            any::<u8>(),
        ],
        other_key in any::<bool>(),
        cuts in cuts(),
    ) {
        let fernet = Fernet::from_key_bytes(&key);
        let mut token = fernet.encrypt(&plaintext, iv, 1_700_000_000);
        let at = at.index(token.len());
        token[at] = byte;
        let opener = if other_key {
            let mut other = key;
            other[0] ^= 1;
            other[31] ^= 1;
            Fernet::from_key_bytes(&other)
        } else {
            fernet
        };
        let (arriving, whole) = both_ways(&opener, &token, &cuts);
        prop_assert_eq!(arriving, whole);
    }
}

/// Tokens whose length no Fernet token has (not whole groups of 4, too short for a block of
/// ciphertext) are opened whole at the end, with the same errors.
#[test]
fn impossible_lengths_fail_as_they_would_whole() {
    let fernet = Fernet::from_key_bytes(&[9; 32]);
    let token = fernet.encrypt(b"twenty bytes of text", [3; 16], 5);
    for len in [0, 1, 3, 4, 50, 99, 100, token.len() - 1, token.len() + 3] {
        let mut cut = token.clone();
        cut.resize(len, b'A');
        let (arriving, whole) = both_ways(&fernet, &cut, &[1, 10, 60]);
        assert!(whole.is_err(), "{len}");
        assert_eq!(arriving, whole, "{len}");
    }
}

/// Tokens made with the key whose last plaintext block ends in every possible byte: the
/// padding is checked (after the HMAC, which these pass) as when opened whole.
#[test]
fn every_padding_byte_is_judged_as_whole() {
    use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
    use hmac::{Hmac, Mac};
    let key = [5u8; 32];
    let fernet = Fernet::from_key_bytes(&key);
    let iv = [6u8; 16];
    let mut valid = 0;
    for last in 0..=255u8 {
        let mut plaintext = [last; 48];
        plaintext[..30].copy_from_slice(&[b'x'; 30]);
        let mut raw = vec![0x80];
        raw.extend_from_slice(&7u64.to_be_bytes());
        raw.extend_from_slice(&iv);
        let mut body = plaintext;
        cbc::Encryptor::<aes::Aes128>::new(key[16..].into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut body, 48)
            .unwrap();
        raw.extend_from_slice(&body);
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key[..16]).unwrap();
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        let token = base64_simd::URL_SAFE.encode_to_string(&raw).into_bytes();
        let (arriving, whole) = both_ways(&fernet, &token, &[7, 64, 100]);
        valid += usize::from(whole.is_ok());
        assert_eq!(arriving, whole, "last byte {last}");
    }
    // 1..=16 in the last block's last byte: 1 is valid alone, 2..=16 need more equal bytes
    // (the 18 bytes of `last` after the 30 of `x`).
    assert_eq!(valid, 16, "pads 1..=16 of equal bytes open");
}
