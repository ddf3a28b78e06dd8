//! Fernet, the payload sealing of every TCP frame (PROTOCOL.md §2).
//!
//! Token = base64url **with padding** of `0x80 | timestamp (u64 BE) | IV (16) | AES-128-CBC-PKCS7
//! ciphertext | HMAC-SHA256 (32)` over everything before the HMAC.
//!
//! Why not the `fernet` crate: it draws the IV from the OS (`getrandom`) and reads the clock
//! (`SystemTime::now`) itself, with no way to pass either in, and works on `String`s. A sans-IO
//! core must take both as arguments (the IV comes from the connection's seeded RNG, the timestamp
//! from `now`) so that a run is reproducible byte for byte; and we want to seal straight into the
//! frame buffer. So this module composes the RustCrypto primitives (`aes` with runtime AES-NI
//! detection, `cbc`, `hmac` + `sha2` with runtime SHA-NI detection) and `base64-simd` (runtime
//! AVX2/SSSE3 detection; the scalar `base64` crate took 38 % of decryption time, base64-simd is
//! 4–5× faster and equally strict).
//!
//! Differences from the Fernet specification, both matching upstream Wazuh: [`Fernet::decrypt`]
//! has no TTL and no clock-skew check (upstream never passes a TTL), and base64 parsing is strict
//! (canonical padding, no stray characters), which every token a real node sends satisfies.
//! Decryption verifies the HMAC (constant time) before it touches the ciphertext, so a forged
//! token never reaches the padding check.

use std::ops::Range;

use aes::{Aes128Dec, Aes128Enc};
use base64_simd::{Out, URL_SAFE};
use bytes::BytesMut;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::consts::U16;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::inout::InOutBuf;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::key::ClusterKey;

mod opener;
pub use opener::Opener;

/// The version byte every Fernet token starts with.
const VERSION: u8 = 0x80;
/// Version (1) + timestamp (8) + IV (16).
const PREFIX_LEN: usize = 25;
/// HMAC-SHA256 tag length.
const TAG_LEN: usize = 32;
/// AES block length.
const BLOCK: usize = 16;
/// Shortest decoded token that has a prefix and a tag to check (the ciphertext length, which must
/// be a non-zero multiple of 16, is checked after the HMAC).
const MIN_RAW_LEN: usize = PREFIX_LEN + TAG_LEN;

/// Plaintext bytes encrypted per round of [`Fernet::encrypt_into`]: a multiple of 48 (AES blocks
/// and base64 groups), small enough that the round's bytes stay in L1 between AES, HMAC and
/// base64 instead of streaming a whole raw token through memory.
const ROUND: usize = 3072;
/// The staging buffer: one round plus the carry (at most the 25-byte prefix) and the final
/// padding block and tag.
const STAGE: usize = ROUND + 128;
/// Base64 of a full staging buffer, written to the stack and then appended to the output, so that
/// each output byte is written once (filling the output with zeros first and encoding over them
/// wrote a 5 MiB chunk's 6.7 MB token twice).
const STAGE_B64: usize = STAGE.div_ceil(3) * 4;

/// Length of the token for a plaintext of `plaintext_len` bytes
/// (`4 * ceil((57 + 16 * (floor(n / 16) + 1)) / 3)`; 100 bytes for 0..=15).
#[must_use]
pub const fn token_len(plaintext_len: usize) -> usize {
    4 * raw_len(plaintext_len).div_ceil(3)
}

/// Length of the decoded token for a plaintext of `plaintext_len` bytes.
const fn raw_len(plaintext_len: usize) -> usize {
    PREFIX_LEN + (plaintext_len / BLOCK + 1) * BLOCK + TAG_LEN
}

/// A Fernet key ready to seal and open tokens: the keyed HMAC and both AES key schedules are
/// computed once here, and cloned (a memcpy) per token.
#[derive(Clone)]
pub struct Fernet {
    signer: Hmac<Sha256>,
    encryptor: Aes128Enc,
    decryptor: Aes128Dec,
}

impl Fernet {
    /// The Fernet of a cluster key (upstream: `Fernet(base64.b64encode(key.encode()))`).
    #[must_use]
    pub fn new(key: &ClusterKey) -> Fernet {
        Fernet::from_key_bytes(key.material())
    }

    /// A Fernet from the 32 bytes of key material: 0..16 sign, 16..32 encrypt (the base64-decoded
    /// key of the Fernet specification).
    #[must_use]
    pub fn from_key_bytes(key: &[u8; 32]) -> Fernet {
        let (signing, encryption) = key.split_at(16);
        Fernet {
            signer: <Hmac<Sha256> as KeyInit>::new_from_slice(signing)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
            encryptor: Aes128Enc::new(encryption.into()),
            decryptor: Aes128Dec::new(encryption.into()),
        }
    }

    /// Seals `plaintext` with the given IV and timestamp (seconds since the Unix epoch) and returns
    /// the token (base64url ASCII, [`token_len`] bytes).
    #[must_use]
    pub fn encrypt(&self, plaintext: &[u8], iv: [u8; 16], unix_secs: u64) -> Vec<u8> {
        let mut token = Vec::with_capacity(token_len(plaintext.len()));
        self.seal(
            Parts::new(&[plaintext], plaintext.len()),
            iv,
            unix_secs,
            |base64| token.extend_from_slice(base64),
        );
        token
    }

    /// As [`encrypt`](Self::encrypt), appending the token to `out` (e.g. right after a header
    /// written by [`crate::frame::encode_header`] with length [`token_len`]).
    pub fn encrypt_into(&self, plaintext: &[u8], iv: [u8; 16], unix_secs: u64, out: &mut BytesMut) {
        self.encrypt_parts_into(&[plaintext], iv, unix_secs, out);
    }

    /// Seals the concatenation of `parts` (e.g. `<path> ` and a file chunk) without joining them
    /// first, appending the token (of [`token_len`] of their total length) to `out`.
    pub fn encrypt_parts_into(
        &self,
        parts: &[&[u8]],
        iv: [u8; 16],
        unix_secs: u64,
        out: &mut BytesMut,
    ) {
        let total = parts.iter().map(|part| part.len()).sum();
        // Reserved, not resized: the token is appended, each output byte written once.
        out.reserve(token_len(total));
        self.seal(Parts::new(parts, total), iv, unix_secs, |base64| {
            out.extend_from_slice(base64);
        });
    }

    /// Produces the token of `plaintext`, handing it to `emit` in order, piece by piece
    /// ([`token_len`] bytes in all).
    ///
    /// The raw token is produced in rounds of [`ROUND`] bytes in a stack buffer: copy the
    /// plaintext in, encrypt in place (CBC keeps its chaining state across rounds), feed the HMAC,
    /// then base64 the whole 3-byte groups into a second stack buffer handed to `emit`, carrying
    /// the 0–2 leftover bytes to the next round. Base64 of a concatenation equals the
    /// concatenation of base64 of 3-byte-aligned pieces, so this is the token of the raw token
    /// encoded at once, without allocating it; and every byte stays in L1 between the passes.
    fn seal(
        &self,
        mut plaintext: Parts<'_>,
        iv: [u8; 16],
        unix_secs: u64,
        mut emit: impl FnMut(&[u8]),
    ) {
        let mut mac = self.signer.clone();
        let mut cbc =
            cbc::Encryptor::<Aes128Enc>::inner_iv_init(self.encryptor.clone(), &iv.into());
        let mut stage = Stage {
            buf: [0; STAGE],
            filled: PREFIX_LEN,
            base64: [0; STAGE_B64],
        };
        stage.buf[0] = VERSION;
        stage.buf[1..9].copy_from_slice(&unix_secs.to_be_bytes());
        stage.buf[9..PREFIX_LEN].copy_from_slice(&iv);
        mac.update(&stage.buf[..PREFIX_LEN]);

        while plaintext.remaining >= BLOCK {
            let len = (plaintext.remaining / BLOCK * BLOCK).min(ROUND);
            let round = &mut stage.buf[stage.filled..stage.filled + len];
            plaintext.read(round);
            let (blocks, rest) = InOutBuf::from(&mut *round).into_chunks::<U16>();
            debug_assert!(rest.is_empty(), "rounds are whole blocks");
            cbc.encrypt_blocks_inout_mut(blocks);
            mac.update(round);
            stage.filled += len;
            emit(stage.flush_groups());
        }

        // PKCS#7: the last block holds the tail and 1..=16 bytes of value `pad`.
        let tail = plaintext.remaining;
        let pad = BLOCK - tail;
        let mut last = [pad as u8; BLOCK];
        plaintext.read(&mut last[..tail]);
        cbc.encrypt_block_mut(GenericArray::from_mut_slice(&mut last));
        mac.update(&last);
        stage.push(&last);
        stage.push(&mac.finalize().into_bytes());
        emit(URL_SAFE.encode(
            &stage.buf[..stage.filled],
            Out::from_slice(&mut stage.base64),
        ));
    }

    /// Opens a token: strict base64url, version byte, length, HMAC (constant time), then
    /// AES-CBC and PKCS#7 padding. No TTL, as upstream.
    ///
    /// # Errors
    /// The first check that fails, as a [`FernetError`].
    pub fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>, FernetError> {
        // Strict: canonical padding, no stray characters, zero trailing bits (base64-simd
        // refuses the rest, as the spec's invalid vectors require).
        let mut raw = URL_SAFE
            .decode_to_vec(token)
            .map_err(|_| FernetError::BadBase64)?;
        let plaintext_len = self.open_raw(&mut raw)?;
        raw.copy_within(PREFIX_LEN..PREFIX_LEN + plaintext_len, 0);
        raw.truncate(plaintext_len);
        Ok(raw)
    }

    /// As [`decrypt`](Self::decrypt), in the token's own buffer: the base64 is decoded over
    /// itself and the ciphertext decrypted where it lies, so a 5 MiB file chunk costs neither an
    /// allocation (and the page faults of a fresh one) nor a copy. Returns where the plaintext
    /// lies in `token`; after an error `token` holds garbage.
    ///
    /// # Errors
    /// As [`decrypt`](Self::decrypt).
    pub fn decrypt_in_place(&self, token: &mut [u8]) -> Result<Range<usize>, FernetError> {
        let raw = URL_SAFE
            .decode_inplace(token)
            .map_err(|_| FernetError::BadBase64)?;
        let plaintext_len = self.open_raw(raw)?;
        Ok(PREFIX_LEN..PREFIX_LEN + plaintext_len)
    }

    /// AES-CBC decryption with the IV of `raw`, a decoded token of at least `PREFIX_LEN` bytes.
    fn cbc_decryptor(&self, raw: &[u8]) -> cbc::Decryptor<Aes128Dec> {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&raw[9..PREFIX_LEN]);
        cbc::Decryptor::<Aes128Dec>::inner_iv_init(self.decryptor.clone(), &iv.into())
    }

    /// Checks and decrypts a decoded token in place: version, length, HMAC (constant time, before
    /// the ciphertext is touched), AES-CBC, PKCS#7. The plaintext is left at `raw[PREFIX_LEN..]`;
    /// returns its length.
    fn open_raw(&self, raw: &mut [u8]) -> Result<usize, FernetError> {
        if raw.first() != Some(&VERSION) {
            return Err(FernetError::BadVersion);
        }
        if raw.len() < MIN_RAW_LEN {
            return Err(FernetError::TooShort { len: raw.len() });
        }
        let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
        self.signer
            .clone()
            .chain_update(signed)
            .verify_slice(tag)
            .map_err(|_| FernetError::BadHmac)?;
        let ciphertext_len = signed.len() - PREFIX_LEN;
        if ciphertext_len == 0 || !ciphertext_len.is_multiple_of(BLOCK) {
            return Err(FernetError::BadCiphertextLength {
                len: ciphertext_len,
            });
        }
        let plaintext_len = self
            .cbc_decryptor(raw)
            .decrypt_padded_mut::<Pkcs7>(&mut raw[PREFIX_LEN..PREFIX_LEN + ciphertext_len])
            .map_err(|_| FernetError::BadPadding)?
            .len();
        Ok(plaintext_len)
    }
}

/// A cursor over plaintext given in pieces.
struct Parts<'a> {
    parts: &'a [&'a [u8]],
    /// Bytes of `parts[0]` already read.
    offset: usize,
    remaining: usize,
}

impl<'a> Parts<'a> {
    fn new(parts: &'a [&'a [u8]], total: usize) -> Parts<'a> {
        Parts {
            parts,
            offset: 0,
            remaining: total,
        }
    }

    /// Fills `dst` with the next bytes (the caller checked `remaining >= dst.len()`).
    fn read(&mut self, mut dst: &mut [u8]) {
        self.remaining -= dst.len();
        while !dst.is_empty() {
            let [part, rest @ ..] = self.parts else {
                unreachable!("remaining counts the bytes of parts")
            };
            let n = (part.len() - self.offset).min(dst.len());
            dst[..n].copy_from_slice(&part[self.offset..self.offset + n]);
            dst = &mut dst[n..];
            self.offset += n;
            if self.offset == part.len() {
                self.parts = rest;
                self.offset = 0;
            }
        }
    }
}

/// Raw token bytes between the cipher and base64 (see [`Fernet::encrypt_to_slice`]).
struct Stage {
    buf: [u8; STAGE],
    /// Raw bytes staged, not yet base64-encoded.
    filled: usize,
    /// The base64 of the staged bytes, handed on to the output.
    base64: [u8; STAGE_B64],
}

impl Stage {
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    /// Encodes the whole 3-byte groups (no padding mid-token), keeps the 0–2 leftover bytes and
    /// returns the base64 of the whole groups.
    fn flush_groups(&mut self) -> &[u8] {
        let whole = self.filled / 3 * 3;
        let encoded = URL_SAFE
            .encode(&self.buf[..whole], Out::from_slice(&mut self.base64))
            .len();
        self.buf.copy_within(whole..self.filled, 0);
        self.filled -= whole;
        &self.base64[..encoded]
    }
}

impl core::fmt::Debug for Fernet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Fernet(<key redacted>)")
    }
}

/// Why a token could not be opened. Upstream 3.9.5 turns any of these into an `err` message
/// "Could not decrypt message. Check key is correct."; 4.x closes the connection.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FernetError {
    /// Not canonical base64url with padding.
    #[error("Fernet token is not canonical base64url with padding")]
    BadBase64,
    /// The first byte is not 0x80 (or the token is empty).
    #[error("Fernet token does not start with version byte 0x80")]
    BadVersion,
    /// Shorter than version, timestamp, IV and HMAC (57 bytes decoded).
    #[error("Fernet token too short: {len} bytes decoded, at least 57 needed")]
    TooShort {
        /// Decoded length.
        len: usize,
    },
    /// The HMAC does not match: wrong key or tampered token.
    #[error("Fernet token HMAC does not match (wrong key or altered token)")]
    BadHmac,
    /// The ciphertext is not a whole, non-zero number of AES blocks.
    #[error("Fernet ciphertext of {len} bytes is not a non-zero multiple of 16")]
    BadCiphertextLength {
        /// Ciphertext length.
        len: usize,
    },
    /// The decrypted data has no valid PKCS#7 padding.
    #[error("Fernet plaintext has invalid padding")]
    BadPadding,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_len_matches_protocol_md() {
        assert_eq!(token_len(0), 100);
        assert_eq!(token_len(15), 100);
        assert_eq!(token_len(16), 120);
        assert_eq!(token_len(5_242_880), 6_990_604);
    }

    /// The token built in one piece, the obvious way, to check the round-by-round builder.
    fn one_shot_token(key: &[u8; 32], plaintext: &[u8], iv: [u8; 16], secs: u64) -> Vec<u8> {
        use base64::Engine as _;
        use cbc::cipher::KeyIvInit;
        let mut raw = vec![VERSION];
        raw.extend_from_slice(&secs.to_be_bytes());
        raw.extend_from_slice(&iv);
        let mut body = plaintext.to_vec();
        body.resize((plaintext.len() / BLOCK + 1) * BLOCK, 0);
        cbc::Encryptor::<aes::Aes128>::new(key[16..].into(), &iv.into())
            .encrypt_padded_mut::<Pkcs7>(&mut body, plaintext.len())
            .unwrap();
        raw.extend_from_slice(&body);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key[..16]).unwrap();
        mac.update(&raw);
        raw.extend_from_slice(&mac.finalize().into_bytes());
        base64::engine::general_purpose::URL_SAFE
            .encode(raw)
            .into_bytes()
    }

    #[test]
    fn round_by_round_token_equals_the_one_shot_token() {
        let key: [u8; 32] = core::array::from_fn(|i| i as u8 * 7);
        let fernet = Fernet::from_key_bytes(&key);
        let data: Vec<u8> = (0..3 * ROUND + 100).map(|i| (i % 253) as u8).collect();
        for len in [
            0,
            1,
            15,
            16,
            17,
            47,
            48,
            ROUND - 1,
            ROUND,
            ROUND + 1,
            ROUND + 16,
            2 * ROUND + 5,
            3 * ROUND + 100,
        ] {
            let plaintext = &data[..len];
            let token = fernet.encrypt(plaintext, [len as u8; 16], 1_500_000_000 + len as u64);
            assert_eq!(
                token,
                one_shot_token(&key, plaintext, [len as u8; 16], 1_500_000_000 + len as u64),
                "plaintext length {len}"
            );
            assert_eq!(fernet.decrypt(&token).unwrap(), plaintext);
            let mut framed = BytesMut::from(&b"header"[..]);
            fernet.encrypt_into(
                plaintext,
                [len as u8; 16],
                1_500_000_000 + len as u64,
                &mut framed,
            );
            assert_eq!(&framed[..6], b"header");
            assert_eq!(&framed[6..], &token[..]);
            // The same plaintext in pieces (empty ones included) gives the same token.
            for cut in [0, len / 3, len / 2, len] {
                let (a, b) = plaintext.split_at(cut);
                let (b, c) = b.split_at(b.len() / 2);
                let mut pieces = BytesMut::new();
                fernet.encrypt_parts_into(
                    &[a, &[], b, c],
                    [len as u8; 16],
                    1_500_000_000 + len as u64,
                    &mut pieces,
                );
                assert_eq!(&pieces[..], &token[..], "length {len} cut at {cut}");
            }
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let fernet = Fernet::from_key_bytes(&[7; 32]);
        let token = fernet.encrypt(b"keepalive", [1; 16], 42);
        assert_eq!(token.len(), 100);
        assert_eq!(fernet.decrypt(&token).unwrap(), b"keepalive");
        let mut bad = token.clone();
        bad[50] = if bad[50] == b'A' { b'B' } else { b'A' };
        assert_eq!(fernet.decrypt(&bad), Err(FernetError::BadHmac));
        assert_eq!(fernet.decrypt(b""), Err(FernetError::BadVersion));
        assert_eq!(
            fernet.decrypt(b"gA=="),
            Err(FernetError::TooShort { len: 1 })
        );
        assert_eq!(
            format!("{fernet:?}"),
            "Fernet(<key redacted>)",
            "Debug never shows key material"
        );
    }
}
