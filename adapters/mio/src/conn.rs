//! One open connection on the event loop: its non-blocking stream (TCP or the local Unix socket),
//! the node's transmits not yet taken by the kernel, and what the last readiness events said.
//! It reads no byte of the protocol.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;

use bytes::{Buf, Bytes};
use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use wazuh_cluster_host::progress::Progress;
use wazuh_cluster_host::slots::AddressSlot;

/// A connection's stream.
#[derive(Debug)]
pub(crate) enum Stream {
    /// A worker or master over TCP.
    Tcp(TcpStream),
    /// A local client on the Unix socket.
    Unix(UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn io_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn io_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

/// What one read gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// This many bytes, at the start of the buffer.
    Data(usize),
    /// Nothing more until the next readable event.
    WouldBlock,
    /// The peer closed, or the socket failed.
    Closed,
}

/// One open connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) token: Token,
    stream: Stream,
    /// The peer's `ip:port` (or `local`), for logs.
    pub(crate) addr: String,
    /// A local client (counted against `max_local_clients`).
    pub(crate) local: bool,
    /// The connection's place in its address's count, given back on drop.
    _slot: Option<AddressSlot>,
    /// Transmits not yet taken by the kernel, oldest first (the first may be partly written).
    out: VecDeque<Bytes>,
    queued: usize,
    /// The last readiness said there may be bytes to read (cleared when a read would block:
    /// mio's events are edge-triggered).
    pub(crate) readable: bool,
    /// Bytes read and written, for the progress lines of long transfers.
    received: Progress,
    sent: Progress,
}

impl Conn {
    /// Registers `stream` for reads and writes under `token`.
    pub(crate) fn open(
        registry: &Registry,
        token: Token,
        mut stream: Stream,
        addr: String,
        slot: Option<AddressSlot>,
    ) -> io::Result<Conn> {
        registry.register(
            stream.source(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let local = matches!(stream, Stream::Unix(_));
        Ok(Conn {
            token,
            stream,
            addr,
            local,
            _slot: slot,
            out: VecDeque::new(),
            queued: 0,
            // A connection may have bytes before its first event reaches us.
            readable: true,
            received: Progress::new("received"),
            sent: Progress::new("sent"),
        })
    }

    /// Bytes queued and not yet taken by the kernel.
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Queues a transmit (after every earlier one).
    pub(crate) fn queue(&mut self, bytes: Bytes) {
        self.queued += bytes.len();
        self.out.push_back(bytes);
    }

    /// Writes what is queued until done or the socket would block. Returns how many bytes the
    /// kernel took (for `Node::handle_written`).
    ///
    /// # Errors
    /// The socket failed (the connection is lost).
    pub(crate) fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        while let Some(front) = self.out.front_mut() {
            match self.stream.io_write(front) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.queued -= n;
                    front.advance(n);
                    if front.is_empty() {
                        self.out.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.sent.add(written);
        Ok(written)
    }

    /// Reads once into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            match self.stream.io_read(buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    self.received.add(n);
                    return ReadOutcome::Data(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return ReadOutcome::WouldBlock;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Everything queued was written: half-close our side (the peer reads to the end).
    pub(crate) fn finish(&mut self, registry: &Registry) {
        self.stream.shutdown_write();
        let _ = registry.deregister(self.stream.source());
    }

    /// Forgets the connection's registration (before dropping it unflushed).
    pub(crate) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.stream.source());
    }
}
