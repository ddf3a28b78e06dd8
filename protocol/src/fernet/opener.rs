//! Opening a token while its bytes arrive: see [`Opener`].
//!
//! Why: a file chunk's token is about 7 MB. Opened whole ([`Fernet::decrypt_in_place`]), it is
//! opened only once its last byte is in, so the receiver sits idle while the token crosses the
//! link and the sender, one chunk in flight, waits for both in turn: on a 500 MiB file about 6
//! of the 22 ms between a `file_upd` and its answer. An [`Opener`] does the base64, the HMAC and
//! the AES-CBC over the bytes received so far, in the token's own buffer, so that little is left
//! when the last byte arrives.
//!
//! What a token opened this way yields is what [`Fernet::decrypt_in_place`] yields: the same
//! plaintext, and the same error for every token but one kind, which only a holder of the key
//! can make (a token whose final padding says another length than its frame's; see
//! [`Opener::finish`]). Nothing decrypted is used before the HMAC is checked, over the whole
//! token, at the end, and the padding is checked after it, as whole.

use std::ops::Range;

use aes::Aes128Dec;
use base64_simd::URL_SAFE;
use cbc::cipher::BlockDecryptMut;
use cbc::cipher::block_padding::{Padding, Pkcs7};
use cbc::cipher::consts::U16;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::inout::InOutBuf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{BLOCK, Fernet, FernetError, PREFIX_LEN, TAG_LEN, VERSION};

/// Opens one token of a known length as its bytes arrive (see the module's doc).
///
/// ```
/// use wazuh_cluster_protocol::fernet::Fernet;
///
/// let fernet = Fernet::from_key_bytes(&[7; 32]);
/// let mut token = fernet.encrypt(b"a chunk of a file", [1; 16], 1_700_000_000);
/// let mut opener = fernet.opener(token.len());
/// // The bytes received so far, as many times as they grow...
/// opener.advance(&mut token[..60]);
/// // ...then the whole token.
/// let plaintext = opener.finish(&mut token).unwrap();
/// assert_eq!(&token[plaintext], b"a chunk of a file");
/// ```
pub struct Opener {
    fernet: Fernet,
    mac: Hmac<Sha256>,
    cbc: Option<cbc::Decryptor<Aes128Dec>>,
    token_len: usize,
    /// The decoded length a token of `token_len` characters has when its ciphertext is whole
    /// blocks; `None` when no such length exists (the token is opened whole at the end).
    raw_len: Option<usize>,
    /// Characters decoded, always whole groups of 4, never the last group.
    chars_done: usize,
    /// Decoded bytes, at the start of the buffer.
    raw_done: usize,
    /// Decoded bytes fed to the HMAC.
    maced: usize,
    /// End of the ciphertext decrypted (from `PREFIX_LEN`).
    decrypted: usize,
    /// A group decoded so far was not base64.
    bad_base64: bool,
}

impl Fernet {
    /// An [`Opener`] for a token of `token_len` bytes (a frame's declared payload length).
    #[must_use]
    pub fn opener(&self, token_len: usize) -> Opener {
        // 4 characters per 3 bytes, the last group padded: the decoded length is one of three,
        // and a ciphertext of whole blocks (at least one) fixes which.
        let raw_len = token_len
            .is_multiple_of(4)
            .then_some(token_len / 4 * 3)
            .and_then(|most| {
                (most.saturating_sub(2)..=most).find(|&len| {
                    len >= PREFIX_LEN + BLOCK + TAG_LEN
                        && (len - PREFIX_LEN - TAG_LEN).is_multiple_of(BLOCK)
                })
            });
        Opener {
            fernet: self.clone(),
            mac: self.signer.clone(),
            cbc: None,
            token_len,
            raw_len,
            chars_done: 0,
            raw_done: 0,
            maced: 0,
            decrypted: PREFIX_LEN,
            bad_base64: false,
        }
    }
}

impl Opener {
    /// Opens what it can of `received`, the token's first bytes, in place: the same buffer each
    /// time, grown (the bytes already given are not looked at again, and those already opened
    /// were overwritten). The last group of 4 characters waits for [`Opener::finish`].
    pub fn advance(&mut self, received: &mut [u8]) {
        let Some(raw_len) = self.raw_len else {
            return;
        };
        if self.bad_base64 {
            return;
        }
        let end = received.len().min(self.token_len - 4) / 4 * 4;
        if end > self.chars_done {
            let group = &mut received[self.chars_done..end];
            // Padding belongs to the last group only: here it would end the decoding early.
            if group[group.len() - 2..].contains(&b'=') {
                self.bad_base64 = true;
                return;
            }
            let len = match URL_SAFE.decode_inplace(group) {
                Ok(raw) => raw.len(),
                Err(_) => {
                    self.bad_base64 = true;
                    return;
                }
            };
            received.copy_within(self.chars_done..self.chars_done + len, self.raw_done);
            self.raw_done += len;
            self.chars_done = end;
        }
        self.open(received, raw_len);
    }

    /// HMAC over the decoded bytes of the signed part, then AES-CBC over the whole blocks of
    /// ciphertext already fed to the HMAC (in place: the HMAC is of the ciphertext).
    fn open(&mut self, raw: &mut [u8], raw_len: usize) {
        let signed_end = self.raw_done.min(raw_len - TAG_LEN);
        if signed_end > self.maced {
            self.mac.update(&raw[self.maced..signed_end]);
            self.maced = signed_end;
        }
        if self.maced < PREFIX_LEN {
            return;
        }
        let cbc = self
            .cbc
            .get_or_insert_with(|| self.fernet.cbc_decryptor(raw));
        let end = PREFIX_LEN + (self.maced - PREFIX_LEN) / BLOCK * BLOCK;
        if end > self.decrypted {
            let (blocks, rest) = InOutBuf::from(&mut raw[self.decrypted..end]).into_chunks::<U16>();
            debug_assert!(rest.is_empty(), "whole blocks");
            cbc.decrypt_blocks_inout_mut(blocks);
            self.decrypted = end;
        }
    }

    /// Opens the rest of `token`, now whole, and checks it: returns where the plaintext lies in
    /// it, or the error [`Fernet::decrypt_in_place`] would give, checked in the same order
    /// (base64, version, HMAC, padding). A token whose last group decodes to another length
    /// than its length says (its padding characters altered) is [`FernetError::BadHmac`]: what
    /// the whole opening says for it too, unless the token was made with the key.
    ///
    /// # Errors
    /// Every [`FernetError`], as above.
    pub fn finish(mut self, token: &mut [u8]) -> Result<Range<usize>, FernetError> {
        let Some(raw_len) = self.raw_len.filter(|_| token.len() == self.token_len) else {
            return self.fernet.decrypt_in_place(token);
        };
        self.advance(token);
        if self.bad_base64 {
            return Err(FernetError::BadBase64);
        }
        let last = self.token_len - 4;
        let len = URL_SAFE
            .decode_inplace(&mut token[last..])
            .map_err(|_| FernetError::BadBase64)?
            .len();
        token.copy_within(last..last + len, self.raw_done);
        self.raw_done += len;
        if token[0] != VERSION {
            return Err(FernetError::BadVersion);
        }
        if self.raw_done != raw_len {
            return Err(FernetError::BadHmac);
        }
        self.open(token, raw_len);
        let signed = raw_len - TAG_LEN;
        self.mac
            .verify_slice(&token[signed..raw_len])
            .map_err(|_| FernetError::BadHmac)?;
        // PKCS#7 on the last block, as `decrypt_padded_mut` checks it when opened whole.
        let last_block = GenericArray::from_slice(&token[signed - BLOCK..signed]);
        let kept = <Pkcs7 as Padding<U16>>::unpad(last_block)
            .map_err(|_| FernetError::BadPadding)?
            .len();
        Ok(PREFIX_LEN..signed - BLOCK + kept)
    }
}

/// Where it stands, without the key or the HMAC state.
impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("token_len", &self.token_len)
            .field("raw_len", &self.raw_len)
            .field("chars_done", &self.chars_done)
            .field("decrypted", &self.decrypted)
            .field("bad_base64", &self.bad_base64)
            .finish_non_exhaustive()
    }
}
