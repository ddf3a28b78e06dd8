//! A key holder speaking the cluster wire by hand over a blocking socket, to play a worker (a
//! plain or a hostile one) against a running daemon: the real-process tests and the
//! `hostile_load` example drive it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wazuh_cluster_protocol::connection::{
    Connection, ConnectionConfig, Event, Side, TransferFailure, TransferId, WallClock,
};
use wazuh_cluster_protocol::frame::Command;
use wazuh_cluster_protocol::key::ClusterKey;
use wazuh_cluster_protocol::profile::Profile;
use wazuh_cluster_protocol::rng::Rng;

/// One link of a key holder. See the [module documentation](self).
pub struct WireClient {
    stream: TcpStream,
    /// Its protocol core (send requests, strings and files through it, then [`WireClient::drive`]).
    pub conn: Connection,
    /// Every event the core reported, in order.
    pub events: Vec<Event>,
    /// Where in `events` the asks for chunks not yet answered start (see
    /// [`WireClient::trickle`]).
    asks_from: usize,
}

impl WireClient {
    /// Says `hello` as worker `name` of cluster `wazuh` over `stream` with `key`; `None` when the
    /// link fails or no answer comes within 10 s (the answer, `ok` or `err`, is in `events`).
    pub fn hello(stream: TcpStream, key: &str, name: &str) -> Option<WireClient> {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .ok()?;
        let key = ClusterKey::new(key).ok()?;
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut config = ConnectionConfig::new(
            Profile::V3_9,
            Some(key),
            WallClock::new(Instant::now(), unix),
        );
        config.keep_alive = Duration::from_secs(3600);
        // Distinct per link; nothing here needs more than that.
        let seed = name
            .bytes()
            .fold(u64::from(stream.local_addr().ok()?.port()), |h, b| {
                h.wrapping_mul(31).wrapping_add(u64::from(b))
            });
        let conn = Connection::new(config, Side::Client, Rng::from_seed(seed), Instant::now());
        let mut client = WireClient {
            stream,
            conn,
            events: Vec::new(),
            asks_from: 0,
        };
        let hello = Command::new(Profile::V3_9, b"hello").ok()?;
        let payload = format!("{name} wazuh worker 3.9.5");
        let counter = client
            .conn
            .send_request(Instant::now(), hello, payload.as_bytes())
            .ok()?;
        let answered = client.drive(
            Duration::from_secs(10),
            |e| matches!(e, Event::Response { counter: c, .. } if *c == counter),
        );
        if !answered {
            return None;
        }
        // As a worker does once its hello is answered: without it the core, which requires a
        // hello by default, closes a link that stays more than `hello_timeout` (30 s).
        client.conn.set_authenticated(Instant::now());
        Some(client)
    }

    /// Moves bytes both ways until an event matches `done` (true), or the link ends or `within`
    /// passes (false).
    pub fn drive(&mut self, within: Duration, mut done: impl FnMut(&Event) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = vec![0u8; 64 << 10];
        while Instant::now() < deadline {
            while let Some(bytes) = self.conn.poll_transmit() {
                if self.stream.write_all(&bytes).is_err() {
                    return false;
                }
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => self.conn.handle_input(Instant::now(), &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return false,
            }
            self.conn.handle_timeout(Instant::now());
            while let Some(event) = self.conn.poll_event() {
                let matched = done(&event);
                self.events.push(event);
                if matched {
                    return true;
                }
            }
        }
        false
    }

    /// Opens a file transfer for each of `paths` and sends one chunk of at most `chunk` bytes of
    /// each the peer accepted, never finishing them: how many were accepted.
    pub fn open_files(&mut self, paths: &[String], chunk: usize) -> usize {
        let mut transfers = 0;
        for path in paths {
            if self.conn.send_file(Instant::now(), path.as_bytes()).is_ok() {
                transfers += 1;
            }
        }
        let mut answered = 0;
        let mut wanted = Vec::new();
        self.drive(Duration::from_secs(10), |e| {
            match e {
                Event::FileChunkWanted { transfer, max_len } => {
                    wanted.push((*transfer, *max_len));
                    answered += 1;
                }
                Event::TransferFailed {
                    failure: TransferFailure::Refused(_),
                    ..
                } => answered += 1,
                _ => {}
            }
            answered >= transfers
        });
        let data = vec![b'f'; chunk];
        self.asks_from = self.events.len();
        for &(transfer, max_len) in &wanted {
            let _ = self
                .conn
                .file_chunk(Instant::now(), transfer, &data[..max_len.min(chunk)]);
        }
        self.drive(Duration::from_millis(200), |_| false);
        wanted.len()
    }

    /// Sends `len` bytes more of every file the peer asked the next chunk of since the last call
    /// (or since [`WireClient::open_files`]), never finishing them: how many it took (it asked
    /// for more again).
    pub fn trickle(&mut self, len: usize) -> usize {
        let asked: BTreeMap<TransferId, usize> = self.events[self.asks_from..]
            .iter()
            .filter_map(|e| match e {
                Event::FileChunkWanted { transfer, max_len } => Some((*transfer, *max_len)),
                _ => None,
            })
            .collect();
        self.asks_from = self.events.len();
        if asked.is_empty() {
            // Nothing to answer for: no need to wait for anything.
            return 0;
        }
        let data = vec![b't'; len];
        for (&transfer, &max_len) in &asked {
            let _ = self
                .conn
                .file_chunk(Instant::now(), transfer, &data[..max_len.min(len)]);
        }
        let mut answered = 0;
        self.drive(Duration::from_secs(10), |e| {
            if matches!(
                e,
                Event::FileChunkWanted { .. } | Event::TransferFailed { .. }
            ) {
                answered += 1;
            }
            answered >= asked.len()
        });
        self.events[self.asks_from..]
            .iter()
            .filter(|e| matches!(e, Event::FileChunkWanted { .. }))
            .count()
    }

    /// Sends `data` whole as file `path`: `Ok` once the peer confirmed it, else why not.
    pub fn send_whole_file(&mut self, path: &str, data: &[u8]) -> Result<(), String> {
        let transfer = self
            .conn
            .send_file(Instant::now(), path.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut offset = 0;
        loop {
            let mut asked = None;
            let mut ended = None;
            let heard = self.drive(Duration::from_secs(30), |e| match e {
                Event::FileChunkWanted {
                    transfer: t,
                    max_len,
                } if *t == transfer => {
                    asked = Some(*max_len);
                    true
                }
                Event::FileSent { transfer: t, .. } if *t == transfer => {
                    ended = Some(Ok(()));
                    true
                }
                Event::TransferFailed {
                    transfer: t,
                    failure,
                } if *t == transfer => {
                    ended = Some(Err(format!("{failure:?}")));
                    true
                }
                _ => false,
            });
            if let Some(ended) = ended {
                return ended;
            }
            let Some(max_len) = asked.filter(|_| heard) else {
                return Err("no answer".into());
            };
            let sent = if offset < data.len() {
                let end = (offset + max_len).min(data.len());
                let chunk = &data[offset..end];
                offset = end;
                self.conn.file_chunk(Instant::now(), transfer, chunk)
            } else {
                self.conn.finish_file(Instant::now(), transfer)
            };
            sent.map_err(|e| format!("{e:?}"))?;
        }
    }

    /// Transfers the peer refused so far.
    pub fn refused_transfers(&self) -> usize {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::TransferFailed {
                        failure: TransferFailure::Refused(_),
                        ..
                    }
                )
            })
            .count()
    }
}
