//! Outcomes of our own requests: replies and timeouts routed to their owner (the layer above,
//! the keepalive, or a step of an outgoing file or string transfer).
//!
//! Why a room of its own: the transfer state machines advance here, one acknowledged step at a
//! time, as upstream's `send_file` / `send_string` loops do.

use std::time::Instant;

use bytes::Bytes;

use super::Connection;
use super::error::PeerError;
use super::event::{Event, TransferFailure, TransferId};
use super::file_transfer::Acked;
use super::pending::{Owner, Pending};
use crate::frame::Command;
use crate::message::Reply;

impl Connection {
    pub(super) fn on_reply(&mut self, now: Instant, counter: u32, reply: Reply) {
        let Some(pending) = self.pending.take(counter) else {
            return;
        };
        match pending.owner {
            Owner::User => {
                self.events.push_back(Event::Response {
                    counter,
                    command: pending.command,
                    reply,
                });
            }
            Owner::Keepalive => self.keepalive_outcome(now, !reply.is_upstream_error()),
            Owner::File(id) => self.file_step_done(now, TransferId(id), &pending.command, reply),
            Owner::Str(id) => self.string_step_done(now, TransferId(id), reply),
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant, counter: u32, pending: Pending) {
        let failure = TransferFailure::TimedOut {
            command: pending.command,
        };
        match pending.owner {
            Owner::User => {
                self.events.push_back(Event::TimedOut {
                    counter,
                    command: pending.command,
                });
            }
            Owner::Keepalive => self.keepalive_outcome(now, false),
            Owner::File(id) => self.fail_file(TransferId(id), failure),
            Owner::Str(id) => self.fail_string(TransferId(id), failure),
        }
    }

    pub(super) fn keepalive_outcome(&mut self, now: Instant, success: bool) {
        if let Some(attempts) = self.keepalive.outcome(now, success) {
            self.close_with(Some(PeerError::KeepaliveFailed { attempts }.into()));
        }
    }

    fn file_step_done(
        &mut self,
        now: Instant,
        transfer: TransferId,
        command: &Command,
        reply: Reply,
    ) {
        if reply.is_upstream_error() {
            return self.fail_file(transfer, TransferFailure::Refused(reply));
        }
        let Some(file) = self.outgoing_files.get_mut(&transfer) else {
            return;
        };
        match file.acked(command) {
            // The end was asked for while chunks were unacknowledged: it goes after the last.
            // The pending table has room: this reply just took an entry of the transfer out.
            Acked::Step if file.ending && !file.has_unacked() => {
                self.send_file_end(now, transfer);
            }
            Acked::Step => self.want_chunk(transfer),
            Acked::End => {
                let size = file.bytes_sent;
                self.outgoing_files.remove(&transfer);
                self.events.push_back(Event::FileSent { transfer, size });
            }
        }
    }

    fn fail_file(&mut self, transfer: TransferId, failure: TransferFailure) {
        if self.outgoing_files.remove(&transfer).is_some() {
            self.events
                .push_back(Event::TransferFailed { transfer, failure });
        }
    }

    fn string_step_done(&mut self, now: Instant, transfer: TransferId, reply: Reply) {
        if reply.is_upstream_error() {
            return self.fail_string(transfer, TransferFailure::Refused(reply));
        }
        let request_chunk = self.config.request_chunk;
        let Some(string) = self.outgoing_strings.get_mut(&transfer) else {
            return;
        };
        if string.id.is_none() {
            // Upstream uses the whole value of the `new_str` reply as the id.
            string.id = Some(Bytes::from(reply.upstream_value()));
        }
        let id = string.id.clone().unwrap_or_default();
        let len = string.next_len(request_chunk);
        if len == 0 {
            self.outgoing_strings.remove(&transfer);
            self.events.push_back(Event::StringSent { transfer, id });
            return;
        }
        // The id comes from the peer: one that leaves no room for data would make every
        // `str_upd` exceed `request_chunk` (a peer fault, not ours).
        let limit = request_chunk.saturating_sub(2);
        if id.len() > limit {
            let len = id.len();
            let error = PeerError::StringIdTooLong { len, limit };
            return self.close_with(Some(error.into()));
        }
        string.piece_wanted = true;
        if self.config.pull_string_pieces {
            let frame_len = self.frame_len(id.len() + 1 + len);
            self.events.push_back(Event::StringPieceWanted {
                transfer,
                frame_len,
            });
        } else {
            self.string_piece(now, transfer);
        }
    }

    /// Sends the piece of `transfer` that was wanted, if any.
    pub(super) fn string_piece(&mut self, now: Instant, transfer: TransferId) {
        let request_chunk = self.config.request_chunk;
        let Some(string) = self.outgoing_strings.get_mut(&transfer) else {
            return;
        };
        if !std::mem::take(&mut string.piece_wanted) {
            return;
        }
        let id = string.id.clone().unwrap_or_default();
        if let Some(chunk) = string.next_chunk(request_chunk) {
            // The pending table has room: the reply that asked for this piece took the
            // transfer's entry out, and nothing else of the transfer waits.
            self.core_request(
                now,
                Command::STR_UPD,
                &[&id, b" ", &chunk],
                Owner::Str(transfer.0),
            );
        }
    }

    fn fail_string(&mut self, transfer: TransferId, failure: TransferFailure) {
        if self.outgoing_strings.remove(&transfer).is_some() {
            self.events
                .push_back(Event::TransferFailed { transfer, failure });
        }
    }
}
