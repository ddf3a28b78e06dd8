//! The receiving side of a connection: opening frames, telling responses from requests, and
//! answering the common-layer requests with upstream's exact bytes.
//!
//! Why a room of its own: this is where peer input turns into actions, so every bound and every
//! upstream text applies here; the public surface stays in `mod.rs`.

use std::borrow::Cow;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::error::{ConnectionError, PeerError};
use super::event::Event;
use super::string_transfer::{MemoryRoom, StrOutcome};
use super::{Connection, Side};
use crate::fernet::FernetError;
use crate::frame::{Command, Frame, HEADER_LEN};
use crate::message::{CommonRequest, Reply, cmd, key_error_text, text, unknown_command_text};

/// A refused request of the peer: why, which decides the `err` text it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The peer broke a bound: reported, and answered with [`PeerError::reply_text`].
    Peer(PeerError),
    /// A `file_upd`, `file_end` or `str_upd` names a file or string that is not open. Answered
    /// with upstream's `KeyError` text (the repr of the key) and not reported: upstream answers
    /// it the same way, and it is what a chunk of a transfer refused a moment ago gets.
    UnknownKey(Bytes),
    /// A `file_upd` or `file_end` of a file the connection gave up (idle or too long): answered
    /// with why, and not reported again (it was, when the file was given up).
    Abandoned(PeerError),
}

impl Refusal {
    /// The `err` payload: `None` only for a peer error that closes the link (never refused).
    pub(crate) fn reply_text(&self) -> Option<Cow<'static, [u8]>> {
        match self {
            Refusal::Peer(error) | Refusal::Abandoned(error) => error.reply_text(),
            Refusal::UnknownKey(key) => Some(Cow::Owned(key_error_text(key))),
        }
    }
}

impl Connection {
    pub(super) fn on_frame(&mut self, now: Instant, frame: Frame) {
        let Frame {
            counter,
            command,
            payload,
        } = frame;
        let payload = match &self.fernet {
            None => payload,
            Some(fernet) => {
                // Opened in the frame's own buffer (it is the decoder's alone unless the frame
                // shared a read with others): no second buffer, no copy, which for a 5 MiB file
                // chunk was an allocation's page faults and a 5 MiB move. The plaintext keeps the
                // token's buffer alive, 4/3 of its own size, until the chunk is on disk.
                let mut token = payload
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                // A large frame was opened as it arrived (`open_ahead`): the opener is this
                // frame's, the decoder holding one frame at a time.
                let opened = match self.opening.take() {
                    Some(opener) => opener.finish(&mut token),
                    None => fernet.decrypt_in_place(&mut token),
                };
                match opened {
                    Ok(plaintext) => {
                        self.decrypt_failures = 0;
                        token.freeze().slice(plaintext)
                    }
                    Err(error) => return self.on_decrypt_failure(now, counter, error),
                }
            }
        };
        if self.pending.contains(counter) {
            let reply = Reply::from_wire(command.as_bytes(), payload);
            self.on_reply(now, counter, reply);
        } else if self.pending.take_late_reply(counter, now) {
            // A reply to a request that already timed out: dropped (and counted).
        } else {
            self.on_request(now, counter, command, payload);
        }
    }

    /// 3.9.5 turns an undecryptable frame into `err` `Could not decrypt message…` and classifies
    /// it: an error reply if the counter is pending, else an `err` request, answered with
    /// `unknown command 'b'err''`. The payload is never processed. Before `hello`, or after
    /// `max_decrypt_failures` in a row, the link closes.
    fn on_decrypt_failure(&mut self, now: Instant, counter: u32, error: FernetError) {
        self.decrypt_failures += 1;
        if self.pending.contains(counter) {
            let reply = Reply::Err(Bytes::from_static(text::DECRYPT_FAILED));
            self.on_reply(now, counter, reply);
        } else if !self.pending.take_late_reply(counter, now) {
            self.answer(now, counter, Command::ERR, &unknown_command_text(cmd::ERR));
        }
        if self.closed {
            return;
        }
        if !self.authenticated {
            self.close_with(Some(PeerError::DecryptBeforeHello(error).into()));
        } else if self.decrypt_failures >= self.config.max_decrypt_failures {
            let count = self.decrypt_failures;
            self.close_with(Some(PeerError::TooManyDecryptFailures { count }.into()));
        }
    }

    fn on_request(&mut self, now: Instant, counter: u32, command: Command, payload: Bytes) {
        let allowed_before_hello = command == Command::HELLO || command == Command::ECHO_C;
        if self.config.require_hello && !self.authenticated && !allowed_before_hello {
            let refusal = Refusal::Peer(PeerError::BeforeHello { command });
            return self.refuse(now, counter, refusal, Event::Violation);
        }
        if !self.config.cluster_peer_commands && is_cluster_peer_command(&command) {
            let text = unknown_command_text(command.as_bytes());
            return self.answer(now, counter, Command::ERR, &text);
        }
        if self.config.claimed_commands.contains(&command) {
            if !self.unanswered.add(counter) {
                let limit = self.config.max_unanswered_requests;
                let refusal = Refusal::Peer(PeerError::TooManyUnansweredRequests { limit });
                return self.refuse(now, counter, refusal, Event::Violation);
            }
            self.events.push_back(Event::Request {
                counter,
                command,
                payload,
            });
            return;
        }
        match CommonRequest::parse(command.as_bytes(), &payload) {
            Ok(Some(request)) => self.on_common(now, counter, command, request),
            Ok(None) => self.answer(
                now,
                counter,
                Command::ERR,
                &unknown_command_text(command.as_bytes()),
            ),
            Err(text) => self.answer(now, counter, Command::ERR, &text),
        }
    }

    fn on_common(&mut self, now: Instant, counter: u32, command: Command, request: CommonRequest) {
        match request {
            CommonRequest::Echo(payload) => self.answer(now, counter, Command::OK, &payload),
            CommonRequest::EchoC(payload) if self.side == Side::Server => {
                self.keepalive.received(now);
                self.answer(now, counter, Command::OK_M, &payload);
            }
            CommonRequest::EchoM(payload) if self.side == Side::Client => {
                self.answer(now, counter, Command::OK_C, &payload);
            }
            CommonRequest::NewFile { path } => match self.incoming_files.open(&path, now) {
                Ok(()) => {
                    self.events.push_back(Event::FileOpened { path });
                    self.answer(now, counter, Command::OK_NEW_FILE, text::READY_NEW_FILE);
                }
                // No file was opened: report the fault without a path to clean up.
                Err(refusal) => self.refuse(now, counter, refusal, Event::Violation),
            },
            CommonRequest::FileUpd { path, chunk } => {
                match self.incoming_files.update(&path, &chunk, now) {
                    Ok(()) => {
                        self.events
                            .push_back(Event::FileChunk { path, data: chunk });
                        self.answer(now, counter, Command::OK, text::FILE_UPDATED);
                    }
                    Err(refusal) => self.refuse_file(now, counter, path, refusal),
                }
            }
            CommonRequest::FileEnd { path, digest } => {
                match self.incoming_files.end(&path, &digest) {
                    Ok(done) => {
                        let (size, sha256) = (done.size, done.sha256);
                        self.events
                            .push_back(Event::FileReceived { path, size, sha256 });
                        self.answer(now, counter, Command::OK, text::FILE_RECEIVED);
                    }
                    Err(refusal) => self.refuse_file(now, counter, path, refusal),
                }
            }
            CommonRequest::NewStr { len } => {
                let room = self.memory_allowance.map(|allowance| MemoryRoom {
                    allowance,
                    frames: self.decoder.held_len() as u64,
                    frame: u64::from(self.config.max_frame_payload) + HEADER_LEN as u64,
                });
                let outcome = self.incoming_strings.open(len, room, now, &mut self.id_rng);
                self.on_str_outcome(now, counter, outcome);
            }
            CommonRequest::StrUpd { id, chunk } => {
                let outcome = self.incoming_strings.update(&id, &chunk, now);
                self.on_str_outcome(now, counter, outcome);
            }
            // echo-c on the client side, echo-m on the server side: not ours to answer.
            CommonRequest::EchoC(_) | CommonRequest::EchoM(_) => {
                self.answer(
                    now,
                    counter,
                    Command::ERR,
                    &unknown_command_text(command.as_bytes()),
                );
            }
        }
    }

    /// Answers a refused request `err` with the refusal's text; a fault of the peer is reported
    /// as `report(error)`.
    fn refuse(
        &mut self,
        now: Instant,
        counter: u32,
        refusal: Refusal,
        report: impl FnOnce(PeerError) -> Event,
    ) {
        let Some(text) = refusal.reply_text() else {
            return self.close_with(Some(ConnectionError::Bug(
                "a request was refused for a peer error that has no reply text",
            )));
        };
        if let Refusal::Peer(error) = refusal {
            self.events.push_back(report(error));
        }
        self.answer(now, counter, Command::ERR, &text);
    }

    /// A `file_upd`/`file_end` refused: the transfer (if any) is dropped; the layer above is told
    /// to discard the file when the peer is at fault.
    fn refuse_file(&mut self, now: Instant, counter: u32, path: Bytes, refusal: Refusal) {
        self.refuse(now, counter, refusal, |error| Event::FileFailed {
            path,
            error: Some(error),
        });
    }

    fn on_str_outcome(&mut self, now: Instant, counter: u32, outcome: StrOutcome) {
        match outcome {
            StrOutcome::Ok(payload, complete) => {
                self.answer(now, counter, Command::OK, &payload);
                if let Some(id) = complete {
                    self.events.push_back(Event::StringComplete { id });
                }
            }
            StrOutcome::Refused(refusal) => self.refuse(now, counter, refusal, Event::Violation),
        }
    }
}

/// The commands only a cluster peer sends (see
/// [`ConnectionConfig::cluster_peer_commands`](super::ConnectionConfig::cluster_peer_commands)).
fn is_cluster_peer_command(command: &Command) -> bool {
    matches!(
        command.name(),
        b"hello" | b"echo-c" | b"new_file" | b"file_upd" | b"file_end" | b"new_str" | b"str_upd"
    )
}
