//! The long-string sub-protocol (PROTOCOL.md §5): `new_str <len>` → `ok <id>`, then
//! `str_upd <id> <chunk>`… with no end marker.
//!
//! Why bounded and expiring: upstream 3.9.5 allocates whatever length the peer declares and never
//! frees a string. Here a string may declare at most `max_string_size` bytes, at most
//! `max_incoming_strings` are held at once, the declared lengths of the strings held add up to at
//! most `max_incoming_strings_bytes` (the per-string and count bounds alone would let a peer park
//! 16 × 64 MiB = 1 GiB; the declared length is reserved at `new_str`, so the aggregate bound holds
//! however the chunks arrive), memory grows with the bytes actually received (never with the
//! declared length), and a string nobody claims is dropped after `string_timeout`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::PeerError;
use super::receive::Refusal;
use crate::message::{parse_decimal, text};
use crate::rng::Rng;

/// An outgoing long string: the data (shared, not copied), how far it went, and its id once the
/// peer gave one.
#[derive(Debug, Clone)]
pub(crate) struct OutgoingString {
    pub(crate) data: Bytes,
    pub(crate) offset: usize,
    /// The id as the peer sent it (upstream: the whole value of the `new_str` reply).
    pub(crate) id: Option<Bytes>,
    /// Its next piece was asked for ([`Event::StringPieceWanted`](super::Event::StringPieceWanted))
    /// and not yet sent.
    pub(crate) piece_wanted: bool,
}

impl OutgoingString {
    pub(crate) fn new(data: Bytes) -> Self {
        OutgoingString {
            data,
            offset: 0,
            id: None,
            piece_wanted: false,
        }
    }

    /// Length of the next chunk (0 when done): `request_chunk - len(id) - 1` bytes at most.
    pub(crate) fn next_len(&self, request_chunk: usize) -> usize {
        let id_len = self.id.as_ref().map_or(0, Bytes::len);
        let chunk_max = request_chunk.saturating_sub(id_len + 1).max(1);
        (self.data.len() - self.offset.min(self.data.len())).min(chunk_max)
    }

    /// The next chunk to send, `request_chunk - len(id) - 1` bytes at most, or `None` when done.
    pub(crate) fn next_chunk(&mut self, request_chunk: usize) -> Option<Bytes> {
        let len = self.next_len(request_chunk);
        if len == 0 {
            return None;
        }
        let chunk = self.data.slice(self.offset..self.offset + len);
        self.offset += len;
        Some(chunk)
    }
}

#[derive(Debug)]
struct IncomingString {
    total: usize,
    data: Vec<u8>,
    /// Dropped at this instant unless claimed (pushed back by every chunk).
    expires: Instant,
}

/// What a `new_str` or `str_upd` led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrOutcome {
    /// Reply `ok` with this payload; `Some(id)` when the string just became complete.
    Ok(Vec<u8>, Option<u32>),
    /// Reply `err` (and report the peer's fault, if it is one).
    Refused(Refusal),
}

/// What the node's memory budget leaves a link when a `new_str` arrives (see
/// [`Connection::set_memory_allowance`](super::Connection::set_memory_allowance)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryRoom {
    /// Bytes the link's frame buffer and strings may hold together now.
    pub(crate) allowance: u64,
    /// Bytes its frame buffer holds now.
    pub(crate) frames: u64,
    /// Its largest frame with its header: the room a chunk of the string needs beside it.
    pub(crate) frame: u64,
}

/// The strings the peer is sending us, by id.
#[derive(Debug)]
pub(crate) struct IncomingStrings {
    strings: BTreeMap<u32, IncomingString>,
    max_strings: usize,
    max_size: u64,
    /// Bound on `reserved`.
    max_total: u64,
    /// Sum of the declared lengths of the strings held (released on take, expiry and clear).
    reserved: u64,
    timeout: Duration,
}

impl IncomingStrings {
    pub(crate) fn new(
        max_strings: usize,
        max_size: u64,
        max_total: u64,
        timeout: Duration,
    ) -> Self {
        IncomingStrings {
            strings: BTreeMap::new(),
            max_strings,
            max_size,
            max_total,
            reserved: 0,
            timeout,
        }
    }

    /// `new_str <total>`: admitted by [`IncomingStrings::admit`], then a fresh id (never one of a
    /// live string) and an empty buffer. `room`: what the node's memory budget leaves the link
    /// (`None`: no budget).
    pub(crate) fn open(
        &mut self,
        total: u64,
        room: Option<MemoryRoom>,
        now: Instant,
        rng: &mut Rng,
    ) -> StrOutcome {
        if let Err(error) = self.admit(total, room) {
            return StrOutcome::Refused(Refusal::Peer(error));
        }
        let id = loop {
            let candidate = rng.next_u32();
            if !self.strings.contains_key(&candidate) {
                break candidate;
            }
        };
        // `total <= max_size`, which fits in memory by configuration.
        self.reserved += total;
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let expires = now + self.timeout;
        self.strings.insert(
            id,
            IncomingString {
                total,
                data: Vec::new(),
                expires,
            },
        );
        let complete = (total == 0).then_some(id);
        StrOutcome::Ok(id.to_string().into_bytes(), complete)
    }

    /// Whether a string of `total` bytes may be held, in the one order every `new_str` is
    /// judged by: its size first (upstream's `Requested size exceeds maximum allowed limit`: no
    /// budget would ever hold it, so it is never reported as a want of memory), then this link's
    /// count and aggregate bounds, then the node's memory budget (`room`). A string the
    /// allowance holds but no frame of it could reach beside it would only fail later, so a
    /// frame's room is kept.
    fn admit(&self, total: u64, room: Option<MemoryRoom>) -> Result<(), PeerError> {
        if total > self.max_size {
            return Err(PeerError::StringTooLarge {
                declared: total,
                limit: self.max_size,
            });
        }
        if self.strings.len() >= self.max_strings {
            return Err(PeerError::TooManyStrings {
                limit: self.max_strings,
            });
        }
        // `total <= max_size` and `reserved <= max_total`: neither sum can overflow a u64 for any
        // bound that fits in memory, but saturate anyway so a huge configuration cannot wrap.
        if self.reserved.saturating_add(total) > self.max_total {
            return Err(PeerError::StringsTotalTooLarge {
                declared: total,
                reserved: self.reserved,
                limit: self.max_total,
            });
        }
        if let Some(room) = room {
            let needed = room
                .frames
                .saturating_add(self.reserved)
                .saturating_add(total)
                .saturating_add(room.frame);
            if needed > room.allowance {
                return Err(PeerError::StringOverMemoryBudget {
                    declared: total,
                    allowance: room.allowance,
                });
            }
        }
        Ok(())
    }

    /// `str_upd <id> <chunk>`: appends up to the declared total; bytes beyond it are dropped, as
    /// upstream's `InBuffer` does.
    pub(crate) fn update(&mut self, id: &[u8], chunk: &[u8], now: Instant) -> StrOutcome {
        let expires = now + self.timeout;
        let Some((key, string)) = self.lookup(id) else {
            return StrOutcome::Refused(Refusal::UnknownKey(Bytes::copy_from_slice(id)));
        };
        let was_complete = string.data.len() == string.total;
        let room = string.total - string.data.len();
        let take = room.min(chunk.len());
        let needed = string.data.len() + take;
        if needed > string.data.capacity() {
            // Grow with the data, not with the declaration, doubling for amortised appends but
            // never beyond the declared total.
            let target = needed.max(string.data.capacity() * 2).min(string.total);
            string.data.reserve_exact(target - string.data.len());
        }
        string.data.extend_from_slice(&chunk[..take]);
        string.expires = expires;
        let complete = (!was_complete && string.data.len() == string.total).then_some(key);
        StrOutcome::Ok(text::CHUNK_RECEIVED.to_vec(), complete)
    }

    /// The complete string `id`, removed from the table. `None` for an unknown or incomplete id.
    pub(crate) fn take(&mut self, id: u32) -> Option<Bytes> {
        let string = self.strings.get(&id)?;
        if string.data.len() != string.total {
            return None;
        }
        self.remove(id).map(|s| Bytes::from(s.data))
    }

    /// The earliest expiry.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.strings.values().map(|s| s.expires).min()
    }

    /// Removes one string expired at `now` (lowest id first among the expired).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        let id = self
            .strings
            .iter()
            .find(|(_, s)| s.expires <= now)
            .map(|(&id, _)| id)?;
        self.remove(id);
        Some(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }

    /// Sum of the declared lengths of the strings held.
    pub(crate) fn reserved(&self) -> u64 {
        self.reserved
    }

    pub(crate) fn clear(&mut self) {
        self.strings.clear();
        self.reserved = 0;
    }

    /// Removes a string and releases its reservation.
    fn remove(&mut self, id: u32) -> Option<IncomingString> {
        let string = self.strings.remove(&id)?;
        self.reserved -= string.total as u64;
        Some(string)
    }

    /// Looks an id up by its exact bytes, as upstream's dict of bytes keys does: `0123` is not
    /// `123`.
    fn lookup(&mut self, id: &[u8]) -> Option<(u32, &mut IncomingString)> {
        let value = u32::try_from(parse_decimal(id)?).ok()?;
        if value.to_string().as_bytes() != id {
            return None;
        }
        self.strings.get_mut(&value).map(|s| (value, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_chunks_follow_upstream() {
        let mut s = OutgoingString::new(Bytes::from(vec![b'S'; 1000]));
        s.id = Some(Bytes::from_static(b"633094699"));
        let sizes: Vec<usize> = std::iter::from_fn(|| s.next_chunk(400))
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![390, 390, 220]);
    }

    #[test]
    fn incoming_strings_are_bounded_and_drop_extra_bytes() {
        let t0 = super::super::test_origin();
        let mut rng = Rng::from_seed(5);
        let mut strings = IncomingStrings::new(1, 10, 100, Duration::from_secs(3));
        assert_eq!(
            strings.open(11, None, t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::StringTooLarge {
                declared: 11,
                limit: 10
            }))
        );
        let StrOutcome::Ok(id, None) = strings.open(4, None, t0, &mut rng) else {
            panic!()
        };
        assert_eq!(
            strings.open(1, None, t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::TooManyStrings { limit: 1 }))
        );
        let key: u32 = String::from_utf8(id.clone()).unwrap().parse().unwrap();
        let unknown = [b"0", &id[..]].concat();
        let StrOutcome::Refused(refusal) = strings.update(&unknown, b"ab", t0) else {
            panic!("an unknown id is refused")
        };
        assert_eq!(refusal, Refusal::UnknownKey(Bytes::from(unknown)));
        assert_eq!(
            refusal.reply_text(),
            Some([b"b'0", &id[..], b"'"].concat().into())
        );
        assert_eq!(
            strings.update(&id, b"ab", t0),
            StrOutcome::Ok(b"Chunk received".to_vec(), None)
        );
        assert_eq!(
            strings.take(key),
            None,
            "incomplete strings cannot be claimed"
        );
        assert_eq!(
            strings.update(&id, b"cdEXTRA", t0),
            StrOutcome::Ok(b"Chunk received".to_vec(), Some(key))
        );
        assert_eq!(
            strings.update(&id, b"more", t0),
            StrOutcome::Ok(b"Chunk received".to_vec(), None)
        );
        assert_eq!(strings.next_expiry(), Some(t0 + Duration::from_secs(3)));
        assert_eq!(strings.take(key), Some(Bytes::from_static(b"abcd")));
        assert_eq!(strings.len(), 0);
    }

    #[test]
    fn unclaimed_strings_expire() {
        let t0 = super::super::test_origin();
        let mut rng = Rng::from_seed(5);
        let mut strings = IncomingStrings::new(2, 10, 100, Duration::from_secs(3));
        let StrOutcome::Ok(id, Some(key)) = strings.open(0, None, t0, &mut rng) else {
            panic!()
        };
        assert_eq!(id, key.to_string().into_bytes());
        assert_eq!(strings.pop_expired(t0 + Duration::from_millis(2999)), None);
        assert_eq!(strings.pop_expired(t0 + Duration::from_secs(3)), Some(key));
        assert_eq!(strings.take(key), None);
    }

    #[test]
    fn declared_lengths_are_reserved_against_the_aggregate_bound() {
        let t0 = super::super::test_origin();
        let mut rng = Rng::from_seed(9);
        let mut strings = IncomingStrings::new(4, 10, 15, Duration::from_secs(3));
        let StrOutcome::Ok(_, None) = strings.open(10, None, t0, &mut rng) else {
            panic!()
        };
        assert_eq!(strings.reserved(), 10);
        assert_eq!(
            strings.open(6, None, t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::StringsTotalTooLarge {
                declared: 6,
                reserved: 10,
                limit: 15
            }))
        );
        let StrOutcome::Ok(id, None) = strings.open(5, None, t0, &mut rng) else {
            panic!()
        };
        assert_eq!(strings.reserved(), 15, "exactly at the bound is accepted");
        let key: u32 = String::from_utf8(id.clone()).unwrap().parse().unwrap();
        assert_eq!(
            strings.update(&id, b"12345", t0),
            StrOutcome::Ok(b"Chunk received".to_vec(), Some(key))
        );
        assert_eq!(strings.take(key), Some(Bytes::from_static(b"12345")));
        assert_eq!(strings.reserved(), 10, "taking releases the reservation");
        assert!(strings.pop_expired(t0 + Duration::from_secs(3)).is_some());
        assert_eq!(strings.reserved(), 0, "expiry releases the reservation");
        let StrOutcome::Ok(_, None) = strings.open(10, None, t0, &mut rng) else {
            panic!()
        };
        strings.clear();
        assert_eq!(strings.reserved(), 0);
    }

    #[test]
    fn a_string_is_judged_by_its_size_first_then_the_links_bounds_then_the_memory_budget() {
        let t0 = super::super::test_origin();
        let mut rng = Rng::from_seed(3);
        let mut strings = IncomingStrings::new(1, 100, 100, Duration::from_secs(3));
        let room = |allowance| {
            Some(MemoryRoom {
                allowance,
                frames: 5,
                frame: 10,
            })
        };
        // Over the size limit with no memory left: upstream's size text, not a want of memory.
        assert_eq!(
            strings.open(1 << 40, room(0), t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::StringTooLarge {
                declared: 1 << 40,
                limit: 100
            }))
        );
        // Within it: the frame buffer, the string and a frame's room must fit the allowance.
        assert_eq!(
            strings.open(50, room(64), t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::StringOverMemoryBudget {
                declared: 50,
                allowance: 64
            }))
        );
        let StrOutcome::Ok(..) = strings.open(50, room(65), t0, &mut rng) else {
            panic!("5 + 50 + 10 fit 65")
        };
        // The link's own count comes before the node's memory.
        assert_eq!(
            strings.open(1, room(0), t0, &mut rng),
            StrOutcome::Refused(Refusal::Peer(PeerError::TooManyStrings { limit: 1 }))
        );
    }
}
