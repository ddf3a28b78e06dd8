//! The in-memory byte network: TCP-like links between simulated nodes.
//!
//! A link has two ends, the *dialer* (the node that asked to connect) and the *acceptor* (the node
//! listening on the address), and one byte pipe per direction. Each pipe keeps order, adds a
//! latency, and, when a bandwidth is set, serialises writes one after the other (a 200 MiB package
//! takes 200 MiB / bandwidth to cross, and whatever is written behind it waits for it, as on a
//! real socket). Writes are delivered as whole pieces by default; [`Pieces::Random`] cuts them into
//! seeded random pieces down to one byte, the seam the fault model of a later issue widens.
//!
//! Faults available now: [`Network::stall`] (bytes and the FIN are held until
//! [`Network::unstall`], as when a route black-holes), [`Network::partition`] (every link between
//! two nodes stalls and new connections between them are refused), and [`Network::reset`] (both
//! ends see the connection drop at once, bytes in flight are lost).
//!
//! The network only computes *when* things arrive; the simulator schedules those arrivals on its
//! event queue and asks [`Network::accepts`] at delivery time whether the receiving end still
//! exists, so bytes in flight to a closed end are dropped as a kernel would.
//!
//! It also says when a write leaves its writer ([`Arrival::Taken`]), which the simulator reports
//! to the writing node as written, as an adapter reports what the kernel took. Each direction has
//! a send buffer ([`LinkParams::send_buffer`]): bytes taken stay in it until they are delivered
//! (the bytes a TCP sender keeps until they are acknowledged), and a write is taken only as far
//! as the buffer has room; the rest stays with the writer, and the network wakes itself
//! ([`Arrival::Writable`]) once enough of the buffer is delivered, to take more (a third of it
//! free, as Linux wakes a writer). So a node learns a partial write exactly as from a socket
//! that would block, and the bytes in the network are bounded by the buffers, not by what the
//! nodes produce. Unbounded (`None`) takes
//! every write at once; swarm runs draw one or the other from the seed
//! ([`SwarmOptions::link`](crate::swarm::SwarmOptions::link)). A stalled pipe takes nothing until
//! it is unstalled. Either way, what is not taken is held in the writer's name, where the node's
//! own bound ([`Node::wants_input`](wazuh_cluster_sync::roles::Node::wants_input)) sees it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use wazuh_cluster_protocol::rng::Rng;

use crate::clock::VirtualTime;

/// A link's number (allocated in creation order, so it is deterministic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

/// Which end of a simulated link: the node that dialled or the one that accepted. (Not the
/// protocol's `connection::Side`, the client or server role of a connection core.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkEnd {
    /// The end that connected.
    Dialer,
    /// The end that accepted.
    Acceptor,
}

impl LinkEnd {
    /// The other end.
    pub fn other(self) -> LinkEnd {
        match self {
            LinkEnd::Dialer => LinkEnd::Acceptor,
            LinkEnd::Acceptor => LinkEnd::Dialer,
        }
    }

    fn index(self) -> usize {
        match self {
            LinkEnd::Dialer => 0,
            LinkEnd::Acceptor => 1,
        }
    }
}

/// How a write is cut into the pieces the receiver's reads return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pieces {
    /// Each write arrives as one piece (default).
    Whole,
    /// Each write is cut into pieces of a seeded random length in `1..=max`.
    Random {
        /// Longest piece (1 = byte by byte).
        max: usize,
    },
}

/// Parameters of a link (both directions alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkParams {
    /// One-way delay added to every piece and to the connection handshake.
    pub latency: Duration,
    /// Bytes per second each direction carries; `None` = infinitely fast.
    pub bandwidth: Option<u64>,
    /// How writes are cut into pieces.
    pub pieces: Pieces,
    /// Most bytes each direction holds taken from its writer and not yet delivered (a kernel's
    /// send buffer; at least 1); `None` = unbounded, every write taken at once.
    pub send_buffer: Option<usize>,
}

impl LinkParams {
    /// How long `bytes` written at once take to reach the other end of an idle direction: their
    /// serialisation at the bandwidth, plus one latency per send buffer's worth (a bounded
    /// buffer is refilled only once what it holds has been delivered, so a write larger than
    /// the buffer crosses at most a buffer per latency). Writes cut into random pieces arrive
    /// no later: the buffer is refilled as each piece is delivered, not only when all are.
    pub fn transfer_time(&self, bytes: u64) -> Duration {
        let serialise = self.bandwidth.map_or(0, |bw| {
            (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(bw.max(1)))
        });
        let fills = self
            .send_buffer
            .map_or(1, |b| u128::from(bytes.max(1)).div_ceil(b.max(1) as u128));
        let nanos = serialise + fills * self.latency.as_nanos();
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// A Linux-like send buffer (`net.ipv4.tcp_wmem`'s maximum is 4 MiB), for the runs that move
/// hundreds of megabytes per link and must not hold them all in the network.
pub const LINUX_SEND_BUFFER: usize = 4 << 20;

impl Default for LinkParams {
    /// 1 ms latency, no bandwidth limit, whole writes, unbounded send buffer.
    fn default() -> Self {
        LinkParams {
            latency: Duration::from_millis(1),
            bandwidth: None,
            pieces: Pieces::Whole,
            send_buffer: None,
        }
    }
}

/// What the network computed for a write, a close or a fault: arrivals to schedule, and writes
/// taken from their writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// The link took `len` bytes written by `from` at `at` (the writer may count them written).
    Taken {
        /// When.
        at: VirtualTime,
        /// Link.
        link: LinkId,
        /// Writing end.
        from: LinkEnd,
        /// Bytes of the write.
        len: usize,
    },
    /// Bytes reach `to` at `at`.
    Data {
        /// Arrival time.
        at: VirtualTime,
        /// Link.
        link: LinkId,
        /// Receiving end.
        to: LinkEnd,
        /// The piece.
        bytes: Bytes,
    },
    /// `to` learns at `at` that the other end closed (FIN or RST).
    Closed {
        /// Arrival time.
        at: VirtualTime,
        /// Link.
        link: LinkId,
        /// End being told.
        to: LinkEnd,
    },
    /// At `at`, room opens in the send buffer of `from`'s direction while bytes of its writer
    /// wait: call [`Network::writable`] then.
    Writable {
        /// When.
        at: VirtualTime,
        /// Link.
        link: LinkId,
        /// Writing end.
        from: LinkEnd,
    },
}

#[derive(Debug, Clone, Default)]
struct Pipe {
    /// The pipe is busy serialising earlier writes until then.
    busy_until: VirtualTime,
    /// Bytes written and not taken yet (stalled, or no room in the send buffer), in order.
    held: VecDeque<Bytes>,
    /// The sender closed while bytes were held: the FIN waits behind `held`.
    fin_held: bool,
    stalled: bool,
    /// Bytes written into this pipe (delivered or not).
    bytes_sent: u64,
    /// Bounded send buffer only: the pieces taken and not yet delivered, as (arrival, length),
    /// oldest first, and their total.
    buffered: VecDeque<(VirtualTime, usize)>,
    buffered_bytes: usize,
    /// An [`Arrival::Writable`] is out for this pipe (one at a time).
    wake_pending: bool,
}

impl Pipe {
    /// Room left in the send buffer at `now` (pieces delivered by then have left it).
    fn room(&mut self, now: VirtualTime, bound: Option<usize>) -> usize {
        let Some(bound) = bound else {
            return usize::MAX;
        };
        while let Some(&(at, len)) = self.buffered.front() {
            if at > now {
                break;
            }
            self.buffered.pop_front();
            self.buffered_bytes -= len;
        }
        bound.max(1).saturating_sub(self.buffered_bytes)
    }

    /// When the held bytes should be offered to the buffer again: once the free space is at
    /// least half of what stays queued (Linux's `sk_stream_is_writeable`, what makes a socket
    /// writable for poll), i.e. once at most two thirds of the bound is still undelivered.
    /// Why not at the first delivered piece: with random pieces, each refill would take only
    /// what that piece freed and cut it smaller again, until the buffer moved one byte per
    /// event (a 300 KiB tree took 13 million events through a 97 KiB buffer).
    fn writable_at(&self, bound: usize) -> Option<VirtualTime> {
        let queued_at_most = bound.max(1) * 2 / 3;
        let mut left = self.buffered_bytes;
        for &(at, len) in &self.buffered {
            left -= len;
            if left <= queued_at_most {
                return Some(at);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
struct Link {
    nodes: [usize; 2],
    open: [bool; 2],
    pipes: [Pipe; 2],
    params: LinkParams,
    rng: Rng,
}

/// The whole network: links, their parameters and partitions.
#[derive(Debug, Clone)]
pub struct Network {
    links: BTreeMap<LinkId, Link>,
    next_link: u32,
    defaults: LinkParams,
    partitions: BTreeSet<(usize, usize)>,
    rng: Rng,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Network {
    /// An empty network whose new links get `defaults`; `rng` seeds the per-link piece cutting.
    pub fn new(defaults: LinkParams, rng: Rng) -> Network {
        Network {
            links: BTreeMap::new(),
            next_link: 0,
            defaults,
            partitions: BTreeSet::new(),
            rng,
        }
    }

    /// Parameters given to links created from now on.
    pub fn set_defaults(&mut self, params: LinkParams) {
        self.defaults = params;
    }

    /// Changes one link's parameters (applies to writes made from now on).
    pub fn set_params(&mut self, link: LinkId, params: LinkParams) {
        if let Some(l) = self.links.get_mut(&link) {
            l.params = params;
        }
    }

    /// Parameters of a link.
    pub fn params(&self, link: LinkId) -> Option<LinkParams> {
        self.links.get(&link).map(|l| l.params)
    }

    /// True when connections between the two nodes are refused (partitioned).
    pub fn is_partitioned(&self, a: usize, b: usize) -> bool {
        self.partitions.contains(&pair(a, b))
    }

    /// Opens a link from node `dialer` to node `acceptor`; `None` when they are partitioned.
    pub fn connect(&mut self, dialer: usize, acceptor: usize) -> Option<LinkId> {
        if self.is_partitioned(dialer, acceptor) {
            return None;
        }
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let rng = self.rng.fork(u64::from(id.0));
        self.links.insert(
            id,
            Link {
                nodes: [dialer, acceptor],
                open: [true, true],
                pipes: [Pipe::default(), Pipe::default()],
                params: self.defaults,
                rng,
            },
        );
        Some(id)
    }

    /// The link's one-way latency (zero for an unknown link).
    pub fn latency(&self, link: LinkId) -> Duration {
        self.links
            .get(&link)
            .map_or(Duration::ZERO, |l| l.params.latency)
    }

    /// The node at `end` of `link`.
    pub fn node(&self, link: LinkId, end: LinkEnd) -> Option<usize> {
        self.links.get(&link).map(|l| l.nodes[end.index()])
    }

    /// True while `end` of `link` is open (its node has not closed it or been told it closed).
    pub fn accepts(&self, link: LinkId, end: LinkEnd) -> bool {
        self.links.get(&link).is_some_and(|l| l.open[end.index()])
    }

    /// Bytes written by `from` into `link` so far.
    pub fn bytes_sent(&self, link: LinkId, from: LinkEnd) -> u64 {
        self.links
            .get(&link)
            .map_or(0, |l| l.pipes[from.index()].bytes_sent)
    }

    /// Bytes `from` wrote into `link` that it has not been told were taken (held by a stall or
    /// for lack of room in the send buffer): what its node must count as queued.
    pub fn unsent(&self, link: LinkId, from: LinkEnd) -> usize {
        self.links.get(&link).map_or(0, |l| {
            l.pipes[from.index()].held.iter().map(Bytes::len).sum()
        })
    }

    /// Bytes of `from`'s direction of `link` in its bounded send buffer (taken, not yet
    /// delivered) as last counted; always 0 when the buffer is unbounded.
    pub fn buffered(&self, link: LinkId, from: LinkEnd) -> usize {
        self.links
            .get(&link)
            .map_or(0, |l| l.pipes[from.index()].buffered_bytes)
    }

    /// Ids of the links still open at both ends, in creation order.
    pub fn open_links(&self) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|(_, l)| l.open[0] && l.open[1])
            .map(|(id, _)| *id)
            .collect()
    }

    /// `from` writes `bytes` at `now`: [`Arrival::Taken`] then the arrivals to schedule (nothing
    /// while the pipe is stalled, or when the writer's end is already closed).
    pub fn send(
        &mut self,
        now: VirtualTime,
        link: LinkId,
        from: LinkEnd,
        bytes: Bytes,
    ) -> Vec<Arrival> {
        let Some(l) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        if !l.open[from.index()] || bytes.is_empty() {
            return Vec::new();
        }
        let pipe = &mut l.pipes[from.index()];
        pipe.bytes_sent += bytes.len() as u64;
        pipe.held.push_back(bytes);
        let mut out = Vec::new();
        Self::flush(l, now, link, from, &mut out);
        out
    }

    /// The send buffer of `from`'s direction may have room again ([`Arrival::Writable`]): takes
    /// what its writer holds, as far as it fits.
    pub fn writable(&mut self, now: VirtualTime, link: LinkId, from: LinkEnd) -> Vec<Arrival> {
        let mut out = Vec::new();
        if let Some(l) = self.links.get_mut(&link) {
            l.pipes[from.index()].wake_pending = false;
            Self::flush(l, now, link, from, &mut out);
        }
        out
    }

    /// Takes the held bytes of `from`'s direction, oldest first, as far as its send buffer has
    /// room (all of them when it is unbounded), then the FIN that waited behind them; when bytes
    /// are left, asks to be woken once enough is delivered (`Pipe::writable_at`). Nothing while the
    /// pipe is stalled.
    fn flush(l: &mut Link, now: VirtualTime, link: LinkId, from: LinkEnd, out: &mut Vec<Arrival>) {
        let bound = l.params.send_buffer;
        if l.pipes[from.index()].stalled {
            return;
        }
        loop {
            let pipe = &mut l.pipes[from.index()];
            let room = pipe.room(now, bound);
            let Some(front) = pipe.held.front_mut() else {
                break;
            };
            if room == 0 {
                break;
            }
            let bytes = if front.len() <= room {
                pipe.held.pop_front().unwrap_or_default()
            } else {
                front.split_to(room)
            };
            Self::transmit(l, now, link, from, bytes, out);
        }
        let pipe = &mut l.pipes[from.index()];
        if !pipe.held.is_empty() {
            if !pipe.wake_pending
                && let Some(at) = bound.and_then(|b| pipe.writable_at(b))
            {
                pipe.wake_pending = true;
                out.push(Arrival::Writable { at, link, from });
            }
            return;
        }
        if std::mem::take(&mut pipe.fin_held) && l.open[from.other().index()] {
            out.push(Arrival::Closed {
                at: pipe.busy_until.max(now).plus(l.params.latency),
                link,
                to: from.other(),
            });
        }
    }

    /// Takes a write (or the part of it the send buffer has room for) from its writer, cuts it
    /// into pieces and times each behind what the pipe is already carrying.
    fn transmit(
        l: &mut Link,
        now: VirtualTime,
        link: LinkId,
        from: LinkEnd,
        mut bytes: Bytes,
        out: &mut Vec<Arrival>,
    ) {
        let params = l.params;
        out.push(Arrival::Taken {
            at: now,
            link,
            from,
            len: bytes.len(),
        });
        while !bytes.is_empty() {
            let take = match params.pieces {
                Pieces::Whole => bytes.len(),
                Pieces::Random { max } => {
                    let max = max.clamp(1, bytes.len());
                    1 + usize::try_from(l.rng.below(max as u64)).unwrap_or(0)
                }
            };
            let piece = bytes.split_to(take.min(bytes.len()));
            let pipe = &mut l.pipes[from.index()];
            let start = pipe.busy_until.max(now);
            let serialise = params.bandwidth.map_or(Duration::ZERO, |bw| {
                let nanos = (piece.len() as u128 * 1_000_000_000).div_ceil(u128::from(bw.max(1)));
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            });
            pipe.busy_until = start.plus(serialise);
            let at = pipe.busy_until.plus(params.latency);
            if params.send_buffer.is_some() {
                pipe.buffered.push_back((at, piece.len()));
                pipe.buffered_bytes += piece.len();
            }
            out.push(Arrival::Data {
                at,
                link,
                to: from.other(),
                bytes: piece,
            });
        }
    }

    /// `by` closes its end at `now` (graceful: the FIN follows the bytes already written). Returns
    /// the arrival of the close at the other end, if that end is still open.
    pub fn close(&mut self, now: VirtualTime, link: LinkId, by: LinkEnd) -> Vec<Arrival> {
        let Some(l) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        if !l.open[by.index()] {
            return Vec::new();
        }
        l.open[by.index()] = false;
        if !l.open[by.other().index()] {
            return Vec::new();
        }
        let pipe = &mut l.pipes[by.index()];
        if pipe.stalled || !pipe.held.is_empty() {
            pipe.fin_held = true;
            return Vec::new();
        }
        vec![Arrival::Closed {
            at: pipe.busy_until.max(now).plus(l.params.latency),
            link,
            to: by.other(),
        }]
    }

    /// Marks `end` as told that the link closed (it may no longer receive).
    pub fn mark_closed(&mut self, link: LinkId, end: LinkEnd) {
        if let Some(l) = self.links.get_mut(&link) {
            l.open[end.index()] = false;
        }
    }

    /// Connection reset: both ends learn at `now` that the link is gone; bytes in flight are lost
    /// (both ends stop accepting at once).
    pub fn reset(&mut self, now: VirtualTime, link: LinkId) -> Vec<Arrival> {
        let Some(l) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for end in [LinkEnd::Dialer, LinkEnd::Acceptor] {
            if l.open[end.index()] {
                out.push(Arrival::Closed {
                    at: now,
                    link,
                    to: end,
                });
            }
        }
        l.open = [false, false];
        for pipe in &mut l.pipes {
            pipe.held.clear();
            pipe.fin_held = false;
            pipe.stalled = false;
            pipe.buffered.clear();
            pipe.buffered_bytes = 0;
        }
        out
    }

    /// Stops delivery on both directions of `link`: writes and the FIN are held until
    /// [`Network::unstall`]. Bytes already in flight still arrive.
    pub fn stall(&mut self, link: LinkId) {
        if let Some(l) = self.links.get_mut(&link) {
            for pipe in &mut l.pipes {
                pipe.stalled = true;
            }
        }
    }

    /// Stops delivery of what `from` writes into `link` (one direction only); the other
    /// direction keeps flowing.
    pub fn stall_direction(&mut self, link: LinkId, from: LinkEnd) {
        if let Some(l) = self.links.get_mut(&link) {
            l.pipes[from.index()].stalled = true;
        }
    }

    /// Resumes delivery on `link`: what was held is taken and sent at `now`, in order, as far as
    /// the send buffer has room, FIN last.
    pub fn unstall(&mut self, now: VirtualTime, link: LinkId) -> Vec<Arrival> {
        let Some(l) = self.links.get_mut(&link) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for from in [LinkEnd::Dialer, LinkEnd::Acceptor] {
            l.pipes[from.index()].stalled = false;
            Self::flush(l, now, link, from, &mut out);
        }
        out
    }

    /// Cuts nodes `a` and `b` apart: their open links stall, new connections between them are
    /// refused.
    pub fn partition(&mut self, a: usize, b: usize) {
        self.partitions.insert(pair(a, b));
        let ids: Vec<LinkId> = self.links_between(a, b);
        for id in ids {
            self.stall(id);
        }
    }

    /// Heals a partition: held bytes flow again and connections are accepted.
    pub fn heal(&mut self, now: VirtualTime, a: usize, b: usize) -> Vec<Arrival> {
        self.partitions.remove(&pair(a, b));
        let ids = self.links_between(a, b);
        ids.into_iter()
            .flat_map(|id| self.unstall(now, id))
            .collect()
    }

    fn links_between(&self, a: usize, b: usize) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|(_, l)| pair(l.nodes[0], l.nodes[1]) == pair(a, b))
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(params: LinkParams) -> Network {
        Network::new(params, Rng::from_seed(7))
    }

    fn data(arrivals: &[Arrival]) -> Vec<(VirtualTime, Vec<u8>)> {
        arrivals
            .iter()
            .filter_map(|a| match a {
                Arrival::Data { at, bytes, .. } => Some((*at, bytes.to_vec())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn bandwidth_serialises_writes_behind_each_other() {
        let mut n = net(LinkParams {
            latency: Duration::from_millis(10),
            bandwidth: Some(1000),
            pieces: Pieces::Whole,
            send_buffer: None,
        });
        let l = n.connect(0, 1).unwrap();
        let first = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from(vec![1u8; 500]),
        );
        let second = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from_static(b"k"),
        );
        // Taken from the writer at once, whatever the bandwidth (an unbounded send buffer).
        assert_eq!(
            first[0],
            Arrival::Taken {
                at: VirtualTime::ZERO,
                link: l,
                from: LinkEnd::Dialer,
                len: 500
            }
        );
        // 500 bytes at 1000 B/s = 500 ms, + 10 ms; the 1-byte write waits behind it (1 ms more).
        assert_eq!(data(&first)[0].0, VirtualTime::from_millis(510));
        assert_eq!(data(&second)[0].0, VirtualTime::from_millis(511));
        // The other direction is independent.
        let back = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Acceptor,
            Bytes::from_static(b"r"),
        );
        assert_eq!(data(&back)[0].0, VirtualTime::from_millis(11));
        assert_eq!(n.bytes_sent(l, LinkEnd::Dialer), 501);
    }

    /// A stalled link whose dialer wrote `bytes` at zero (held: nothing arrives).
    fn stalled_after_writing(params: LinkParams, bytes: &'static [u8]) -> (Network, LinkId) {
        let mut n = net(params);
        let l = n.connect(0, 1).unwrap();
        n.stall(l);
        let out = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from_static(bytes),
        );
        assert!(out.is_empty(), "{out:?}");
        (n, l)
    }

    fn taken(arrivals: &[Arrival]) -> Vec<usize> {
        arrivals
            .iter()
            .filter_map(|a| match a {
                Arrival::Taken { len, .. } => Some(*len),
                _ => None,
            })
            .collect()
    }

    fn wake(arrivals: &[Arrival]) -> Option<VirtualTime> {
        arrivals.iter().find_map(|a| match a {
            Arrival::Writable { at, .. } => Some(*at),
            _ => None,
        })
    }

    #[test]
    fn a_bounded_send_buffer_takes_what_fits_and_the_rest_as_pieces_are_delivered() {
        let mut n = net(LinkParams {
            latency: Duration::from_millis(10),
            bandwidth: Some(1000),
            pieces: Pieces::Whole,
            send_buffer: Some(300),
        });
        let l = n.connect(0, 1).unwrap();
        let payload: Vec<u8> = (0..=255).cycle().take(700).collect();
        let first = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from(payload.clone()),
        );
        // 300 of the 700 bytes fit: they take 300 ms on the wire and arrive 10 ms later, when
        // they leave the buffer and the network asks to be woken.
        assert_eq!(taken(&first), [300]);
        assert_eq!(data(&first)[0].0, VirtualTime::from_millis(310));
        assert_eq!(wake(&first), Some(VirtualTime::from_millis(310)));
        // A later write and the close wait behind the held bytes, in order; nothing is taken, no
        // second wake is asked for.
        let second = n.send(
            VirtualTime::from_millis(5),
            l,
            LinkEnd::Dialer,
            Bytes::from_static(b"tail"),
        );
        assert!(second.is_empty(), "{second:?}");
        assert!(
            n.close(VirtualTime::from_millis(6), l, LinkEnd::Dialer)
                .is_empty()
        );
        // Too early: the first piece is still in the buffer.
        let early = n.writable(VirtualTime::from_millis(309), l, LinkEnd::Dialer);
        assert_eq!(wake(&early), Some(VirtualTime::from_millis(310)));
        assert!(taken(&early).is_empty());
        let mut all = first;
        let mut at = VirtualTime::from_millis(310);
        let mut closed = None;
        loop {
            let out = n.writable(at, l, LinkEnd::Dialer);
            // Never more than the bound taken and undelivered at once.
            assert!(taken(&out).iter().sum::<usize>() <= 300, "{out:?}");
            closed = closed.or(out.iter().find_map(|a| match a {
                Arrival::Closed { at, .. } => Some(*at),
                _ => None,
            }));
            let next = wake(&out);
            all.extend(out);
            match next {
                Some(t) => at = t,
                None => break,
            }
        }
        assert_eq!(taken(&all), [300, 300, 100, 4]);
        let pieces = data(&all);
        let joined: Vec<u8> = pieces.iter().flat_map(|(_, p)| p.clone()).collect();
        assert_eq!(joined, [&payload[..], b"tail"].concat());
        // Each refill starts when the buffer emptied: 310 + 300 + 10, then 620 + 104 + 10.
        assert_eq!(pieces[1].0, VirtualTime::from_millis(620));
        assert_eq!(pieces[3].0, VirtualTime::from_millis(734));
        assert_eq!(closed, Some(VirtualTime::from_millis(734)));
        assert_eq!(n.bytes_sent(l, LinkEnd::Dialer), 704);
    }

    /// Writes `len` bytes at zero and drives the send buffer's wakes until everything is
    /// delivered; the last arrival and the number of wakes.
    fn deliver_all(params: LinkParams, len: usize) -> (VirtualTime, usize) {
        let mut n = net(params);
        let l = n.connect(0, 1).unwrap();
        let mut out = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from(vec![7u8; len]),
        );
        let mut last = VirtualTime::ZERO;
        let (mut delivered, mut wakes) = (0, 0);
        loop {
            for (at, piece) in data(&out) {
                last = last.max(at);
                delivered += piece.len();
            }
            match wake(&out) {
                Some(at) => {
                    wakes += 1;
                    out = n.writable(at, l, LinkEnd::Dialer);
                }
                None => break,
            }
        }
        assert_eq!(delivered, len);
        (last, wakes)
    }

    fn last_arrival(params: LinkParams, len: usize) -> VirtualTime {
        deliver_all(params, len).0
    }

    #[test]
    fn a_writer_is_woken_once_a_third_of_the_buffer_is_free_so_random_pieces_do_not_shrink() {
        // Woken at the first delivered piece, each refill took only what that piece freed and
        // cut it smaller, until one byte per wake: 2.25 million wakes for these 3 MiB (seed 18
        // of the sweep, this buffer: 13.5 million events instead of 85,000).
        let bound = 97 << 10;
        let len = 3 << 20;
        let params = LinkParams {
            latency: Duration::from_millis(8),
            bandwidth: Some(24 << 20),
            pieces: Pieces::Random { max: 2847 },
            send_buffer: Some(bound),
        };
        let (_, wakes) = deliver_all(params, len);
        // Each wake takes at least a third of the buffer.
        assert!(wakes <= len / (bound / 3) + 1, "{wakes} wakes");
        // Whole pieces: one piece per refill, the wake comes when it is delivered, as before.
        let (_, wakes) = deliver_all(
            LinkParams {
                pieces: Pieces::Whole,
                ..params
            },
            len,
        );
        assert_eq!(wakes, len.div_ceil(bound) - 1);
    }

    #[test]
    fn the_transfer_time_is_what_the_network_takes_to_deliver_a_write() {
        for (latency_us, bandwidth, send_buffer, len) in [
            (10_000, Some(1000), Some(300), 700),
            (10_000, Some(1000), Some(300), 600),
            (40_000, None, Some(16 << 10), 3 << 20),
            (50, Some(100 << 20), Some(16 << 10), 300 << 10),
            (25_000, Some(1 << 20), None, 1 << 20),
            (25_000, None, None, 5 << 20),
            (1_000, Some(10 << 20), Some(8 << 20), 20 << 20),
        ] {
            let whole = LinkParams {
                latency: Duration::from_micros(latency_us),
                bandwidth,
                pieces: Pieces::Whole,
                send_buffer,
            };
            let expected = VirtualTime::ZERO.plus(whole.transfer_time(len as u64));
            assert_eq!(last_arrival(whole, len), expected, "{whole:?}, {len} bytes");
            let cut = LinkParams {
                pieces: Pieces::Random { max: 4096 },
                ..whole
            };
            // Each piece's serialisation is rounded up to the nanosecond: at most one per byte.
            let rounding = Duration::from_nanos(len as u64);
            assert!(
                last_arrival(cut, len) <= expected.plus(rounding),
                "{cut:?}, {len} bytes"
            );
        }
    }

    #[test]
    fn a_stalled_bounded_pipe_takes_only_what_fits_when_unstalled() {
        let (mut n, l) = stalled_after_writing(
            LinkParams {
                send_buffer: Some(2),
                ..LinkParams::default()
            },
            b"abc",
        );
        // A wake that comes while stalled takes nothing and asks for nothing.
        assert!(
            n.writable(VirtualTime::from_secs(1), l, LinkEnd::Dialer)
                .is_empty()
        );
        let out = n.unstall(VirtualTime::from_secs(2), l);
        assert_eq!(taken(&out), [2]);
        assert_eq!(wake(&out), Some(VirtualTime::from_millis(2001)));
        let out = n.writable(VirtualTime::from_millis(2001), l, LinkEnd::Dialer);
        assert_eq!(
            data(&out),
            [(VirtualTime::from_millis(2002), b"c".to_vec())]
        );
        assert_eq!(wake(&out), None);
        // A reset drops what was held and buffered: a wake after it finds nothing to do.
        n.send(
            VirtualTime::from_millis(2001),
            l,
            LinkEnd::Dialer,
            Bytes::from_static(b"def"),
        );
        n.reset(VirtualTime::from_millis(2001), l);
        assert!(
            n.writable(VirtualTime::from_secs(3), l, LinkEnd::Dialer)
                .is_empty()
        );
    }

    #[test]
    fn random_pieces_cover_the_write_in_order() {
        let mut n = net(LinkParams {
            pieces: Pieces::Random { max: 3 },
            ..LinkParams::default()
        });
        let l = n.connect(0, 1).unwrap();
        let payload: Vec<u8> = (0..100).collect();
        let arrivals = n.send(
            VirtualTime::ZERO,
            l,
            LinkEnd::Dialer,
            Bytes::from(payload.clone()),
        );
        let pieces = data(&arrivals);
        assert!(pieces.iter().all(|(_, p)| (1..=3).contains(&p.len())));
        assert!(pieces.len() >= 34);
        let joined: Vec<u8> = pieces.into_iter().flat_map(|(_, p)| p).collect();
        assert_eq!(joined, payload);
    }

    #[test]
    fn stall_holds_bytes_and_fin_until_unstalled() {
        let (mut n, l) = stalled_after_writing(LinkParams::default(), b"ab");
        assert!(n.close(VirtualTime::ZERO, l, LinkEnd::Dialer).is_empty());
        let out = n.unstall(VirtualTime::from_secs(5), l);
        assert_eq!(
            out,
            vec![
                Arrival::Taken {
                    at: VirtualTime::from_secs(5),
                    link: l,
                    from: LinkEnd::Dialer,
                    len: 2,
                },
                Arrival::Data {
                    at: VirtualTime::from_millis(5001),
                    link: l,
                    to: LinkEnd::Acceptor,
                    bytes: Bytes::from_static(b"ab"),
                },
                Arrival::Closed {
                    at: VirtualTime::from_millis(5001),
                    link: l,
                    to: LinkEnd::Acceptor,
                },
            ]
        );
        assert!(!n.accepts(l, LinkEnd::Dialer));
        assert!(n.accepts(l, LinkEnd::Acceptor));
    }

    #[test]
    fn partition_refuses_connections_and_reset_tells_both_ends() {
        let mut n = net(LinkParams::default());
        let l = n.connect(0, 1).unwrap();
        n.partition(1, 0);
        assert_eq!(n.connect(0, 1), None);
        assert!(n.connect(0, 2).is_some());
        let out = n.reset(VirtualTime::from_secs(3), l);
        assert_eq!(
            out,
            vec![
                Arrival::Closed {
                    at: VirtualTime::from_secs(3),
                    link: l,
                    to: LinkEnd::Dialer
                },
                Arrival::Closed {
                    at: VirtualTime::from_secs(3),
                    link: l,
                    to: LinkEnd::Acceptor
                },
            ]
        );
        assert!(!n.accepts(l, LinkEnd::Dialer) && !n.accepts(l, LinkEnd::Acceptor));
        assert!(n.heal(VirtualTime::from_secs(4), 0, 1).is_empty());
        assert!(n.connect(0, 1).is_some());
    }
}
