//! The socket side of a node: one reader and one writer task per connection, the listeners and
//! the dialer. None of it reads a byte of the protocol: bytes go to the node task as they come,
//! and out as the node yields them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use wazuh_cluster_host::log::log_refusal;
use wazuh_cluster_host::log_limit::LogLimiter;
use wazuh_cluster_host::progress::Progress;
use wazuh_cluster_sync::roles::PeerId;

use crate::messages::{Msg, WriteMsg};
use crate::slots::{AddressCounts, ConnectionCaps, Slot, SlotRefused};

/// The tasks and channels of one open connection, held by the node task.
#[derive(Debug)]
pub(crate) struct PeerIo {
    pub(crate) tx: mpsc::UnboundedSender<WriteMsg>,
    pub(crate) reader: JoinHandle<()>,
    pub(crate) writer: JoinHandle<()>,
    /// `true` asks the reader to stop reading (the node's buffers for this peer are full).
    pub(crate) pause: watch::Sender<bool>,
    /// Bytes handed to the writer and not yet flushed to the socket.
    pub(crate) backlog: Arc<AtomicUsize>,
    /// Bytes that arrived while the node did not want input from this peer.
    pub(crate) parked: std::collections::VecDeque<Bytes>,
    /// The peer's address (`ip:port`), for logs.
    pub(crate) addr: String,
    /// The bounded pool slot of an accepted connection.
    pub(crate) _slot: Option<Slot>,
}

impl PeerIo {
    /// Starts the reader and writer of `stream`. Reads go to `data` as `Msg::Data` / `Msg::Eof`;
    /// bytes flushed to the socket to `ctl` as `Msg::Written` (one per flush), a failed write as
    /// `Msg::WriteFailed`.
    pub(crate) fn spawn<S>(
        stream: S,
        peer: PeerId,
        addr: String,
        slot: Option<Slot>,
        read_buffer: usize,
        data: mpsc::Sender<Msg>,
        ctl: mpsc::UnboundedSender<Msg>,
    ) -> PeerIo
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(stream);
        let (tx, rx) = mpsc::unbounded_channel();
        let (pause, paused) = watch::channel(false);
        let backlog = Arc::new(AtomicUsize::new(0));
        // Inside the node's span (tasks do not inherit it), one span per connection.
        let span = tracing::info_span!("peer", tag = %addr);
        let reader =
            tokio::spawn(read_loop(peer, rd, data, paused, read_buffer).instrument(span.clone()));
        let writer = tokio::spawn(write_loop(peer, wr, rx, backlog.clone(), ctl).instrument(span));
        PeerIo {
            tx,
            reader,
            writer,
            pause,
            backlog,
            parked: std::collections::VecDeque::new(),
            addr,
            _slot: slot,
        }
    }

    /// Queues `bytes` for writing; `false` when the writer is gone.
    pub(crate) fn send(&self, bytes: Bytes) -> bool {
        self.backlog.fetch_add(bytes.len(), Ordering::Relaxed);
        self.tx.send(WriteMsg::Data(bytes)).is_ok()
    }

    /// Bytes queued for writing.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Stops reading at once; lets the writer flush what is queued for at most `grace`, then
    /// closes. Returns the task that ends when the writer is done (or was cut at `grace`).
    pub(crate) fn close(self, grace: Duration) -> JoinHandle<()> {
        self.reader.abort();
        let _ = self.tx.send(WriteMsg::Close);
        let writer = self.writer;
        let abort = writer.abort_handle();
        tokio::spawn(async move {
            if tokio::time::timeout(grace, writer).await.is_err() {
                abort.abort();
            }
        })
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    peer: PeerId,
    mut rd: R,
    data: mpsc::Sender<Msg>,
    mut paused: watch::Receiver<bool>,
    read_buffer: usize,
) {
    let mut buf = BytesMut::new();
    let mut progress = Progress::new("received");
    loop {
        // Backpressure: nothing is read while the node's buffers for this peer are full, so the
        // kernel's window closes and the peer's writes block.
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                return;
            }
        }
        buf.reserve(read_buffer);
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = data.send(Msg::Eof(peer)).await;
                return;
            }
            Ok(n) => {
                progress.add(n);
                if data
                    .send(Msg::Data(peer, buf.split().freeze()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Bytes written between two flushes (and `Msg::Written` reports) while more keeps coming, so
/// the node hears of progress on a busy link before its queue runs dry.
const FLUSH_BATCH: usize = 256 << 10;

async fn write_loop<W: AsyncWrite + Unpin>(
    peer: PeerId,
    wr: W,
    mut rx: mpsc::UnboundedReceiver<WriteMsg>,
    backlog: Arc<AtomicUsize>,
    ctl: mpsc::UnboundedSender<Msg>,
) {
    let mut w = BufWriter::with_capacity(64 << 10, wr);
    let mut progress = Progress::new("sent");
    while let Some(mut msg) = rx.recv().await {
        // Write what is already queued (up to a batch), then flush once and report it: a write
        // to a peer that does not read blocks here, unreported, and the node stops reading from
        // it once its bound of unwritten output is reached.
        let mut batch = 0;
        loop {
            match msg {
                WriteMsg::Data(bytes) => {
                    if w.write_all(&bytes).await.is_err() {
                        let _ = ctl.send(Msg::WriteFailed(peer));
                        return;
                    }
                    batch += bytes.len();
                    progress.add(bytes.len());
                }
                WriteMsg::Close => {
                    let _ = w.flush().await;
                    let _ = w.shutdown().await;
                    return;
                }
            }
            if batch >= FLUSH_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        if w.flush().await.is_err() {
            let _ = ctl.send(Msg::WriteFailed(peer));
            return;
        }
        backlog.fetch_sub(batch, Ordering::Relaxed);
        if ctl.send(Msg::Written(peer, batch)).is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Dials `addr` for the node's outgoing `peer`; the outcome goes to `ctl` as `Msg::Dialed`.
pub(crate) fn dial(
    peer: PeerId,
    addr: String,
    timeout: Duration,
    ctl: mpsc::UnboundedSender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let result = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(format!("connecting to {addr}: {e}")),
            Err(_) => Err(format!("connecting to {addr}: no answer in {timeout:?}")),
        };
        let _ = ctl.send(Msg::Dialed(peer, result));
    })
}

/// Accepts TCP connections, refusing (closing at once) those from an address that already has
/// `caps.per_ip` open and any once the node has `caps.total`; accepted ones go to `ctl` as
/// `Msg::Accepted`. Refusals are logged with the address, rate-limited per address.
pub(crate) fn listen_tcp(
    listener: TcpListener,
    counts: AddressCounts,
    caps: ConnectionCaps,
    ctl: mpsc::UnboundedSender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut limiter = LogLimiter::default();
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let slot = match counts.acquire(remote.ip(), caps) {
                Ok(slot) => slot,
                Err(refused) => {
                    drop(stream);
                    let peer = remote.ip().to_string();
                    let now = std::time::Instant::now();
                    log_refusal(&mut limiter, &peer, "connection refused", now, || {
                        tracing::warn!("{}", refused_connection_line(remote, refused))
                    });
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if ctl
                .send(Msg::Accepted(stream, remote.to_string(), slot))
                .is_err()
            {
                return;
            }
        }
    })
}

/// The log line of a connection refused a slot.
fn refused_connection_line(remote: std::net::SocketAddr, refused: SlotRefused) -> String {
    format!("refused connection from {remote}: {refused}")
}

/// Accepts local clients on the node's Unix socket, at most `limit` at once (the next one is
/// closed at once); accepted ones go to `ctl` as `Msg::AcceptedLocal`.
pub(crate) fn listen_local(
    listener: UnixListener,
    limit: usize,
    ctl: mpsc::UnboundedSender<Msg>,
) -> JoinHandle<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a local client: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::warn!("refused a local client: {limit} already connected");
                continue;
            };
            if ctl.send(Msg::AcceptedLocal(stream, permit)).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_logged_with_its_address_and_the_cap_it_met() {
        let remote = "10.1.2.3:40000".parse().unwrap();
        assert_eq!(
            refused_connection_line(remote, SlotRefused::PerAddress(10)),
            "refused connection from 10.1.2.3:40000: 10 connections already open from it"
        );
        assert_eq!(
            refused_connection_line(remote, SlotRefused::Total(512)),
            "refused connection from 10.1.2.3:40000: 512 cluster connections already open \
             (the node's cap)"
        );
    }

    #[tokio::test]
    async fn a_paused_reader_reads_nothing_until_resumed() {
        let (mut peer_end, our_end) = tokio::io::duplex(1024);
        let (data, mut rx) = mpsc::channel(4);
        let (pause, paused) = watch::channel(true);
        let reader = tokio::spawn(read_loop(PeerId(1), our_end, data, paused, 512));
        peer_end.write_all(b"held back").await.unwrap();
        // Paused: the bytes stay in the stream (the peer's writes would block once it is full).
        let early = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
        assert!(early.is_err(), "read while paused");
        pause.send(false).unwrap();
        match rx.recv().await {
            Some(Msg::Data(PeerId(1), bytes)) => assert_eq!(&bytes[..], b"held back"),
            other => panic!("{other:?}"),
        }
        drop(peer_end);
        assert!(matches!(rx.recv().await, Some(Msg::Eof(PeerId(1)))));
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_writer_reports_only_what_it_flushed_once_per_flush() {
        let (mut peer_end, our_end) = tokio::io::duplex(1024);
        let (tx, rx) = mpsc::unbounded_channel();
        let (ctl, mut reports) = mpsc::unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_loop(PeerId(1), our_end, rx, backlog.clone(), ctl));
        // What `PeerIo::send` does for two transmits.
        backlog.fetch_add(3000, Ordering::Relaxed);
        tx.send(WriteMsg::Data(Bytes::from(vec![1u8; 1000])))
            .unwrap();
        tx.send(WriteMsg::Data(Bytes::from(vec![2u8; 2000])))
            .unwrap();
        // The peer reads nothing: the flush cannot finish and nothing is reported written.
        let early = tokio::time::timeout(Duration::from_millis(100), reports.recv()).await;
        assert!(early.is_err(), "reported before the peer read");
        assert_eq!(backlog.load(Ordering::Relaxed), 3000);
        // It reads: both transmits are reported in one flush.
        let mut got = vec![0u8; 3000];
        peer_end.read_exact(&mut got).await.unwrap();
        assert!(got[..1000].iter().all(|&b| b == 1) && got[1000..].iter().all(|&b| b == 2));
        match reports.recv().await {
            Some(Msg::Written(PeerId(1), 3000)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(backlog.load(Ordering::Relaxed), 0);
        tx.send(WriteMsg::Close).unwrap();
        writer.await.unwrap();
        assert!(reports.try_recv().is_err());
    }
}
