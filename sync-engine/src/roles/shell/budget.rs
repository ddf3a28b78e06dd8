//! The node's daemon-wide budgets: one for the descriptors of files being received, one for the
//! memory the peers make the node hold. Each is one pool every link draws from, with a share per
//! link so that no peer takes all.
//!
//! # Descriptors
//!
//! A file holds its place from its `new_file` (the shell queues its `BeginFile`) until an effect
//! tells its staged write is closed: its commit or abort returned, or a begin or append failed
//! (the executor drops a failed staged write). Places are keyed by file, not by link, because a
//! closed link's aborts still run after it is gone: the descriptors stay open until then.
//!
//! The budget is enforced where the request is answered: before each input of a link the shell
//! tells its connection how many files it may have open
//! ([`Connection::set_file_allowance`](wazuh_cluster_protocol::connection::Connection::set_file_allowance)),
//! and the connection answers a `new_file` beyond it `err`. Only that link's input runs in
//! between, so the allowance cannot be overtaken by another link.
//!
//! ## Reserves: no starvation across links
//!
//! Shares alone let a key holder with a few links (each within its quarter) hold the whole pool,
//! and a real worker's files were refused until those links closed. So every link that may send
//! files (one with a directory: a registered worker, or a worker's master link) is *entitled* to
//! a reserve of [`NodeLimits::reserved_files_per_link`](crate::roles::NodeLimits) places that no
//! other link may take. One counting invariant, kept by every change of places
//! (`FileBudget::update`): `free places >= sum of the unmet reserves` (what the granted
//! reserves lack). A link may take its own unmet reserve, and beyond it only the free places no
//! reserve keeps ([`FileBudget::allowance`]). A reserve is granted from the free places not kept
//! for others when the link is entitled; what cannot be granted then is granted from the places
//! freed later, first come first granted, before anyone else may take them. So:
//!
//! * a link entitled while the pool had room for its reserve never waits for it, whatever the
//!   others do (each attacker's link gets a reserve too, and no more of the pool than is left);
//! * a link entitled when the pool was full (it joined during an attack) gets the first places
//!   freed: it waits at most until files held by others end, and each ends within its
//!   connection's file lifetime (`incoming_file_lifetime`, 120 s) however it trickles;
//! * reserves keep at most half the pool together (`FileBudget::reserve_cap`): with the defaults
//!   (4,096 places, reserves of 2) the first 1,024 entitled links hold whole reserves (with 256
//!   places, the default until the 1,000-worker scale cluster showed why not, the first 64),
//!   and the links entitled after them wait in line for a reserve a leaving link gives up while they draw, like
//!   any link, from the other half. Without the cap, reserves kept whether or not their link uses
//!   them took the whole pool at 128 links, and a master with more workers than that refused
//!   every file of the later ones for as long as the first stayed connected (the 1,000-worker
//!   scale cluster never converged). The late links' files are not guaranteed a place against
//!   links that hold the shared half, only against nobody: each file held there ends within
//!   its connection's file lifetime, and raising `max_transfer_descriptors` (the adapter derives
//!   it from the descriptor limit) raises both halves.
//!
//! Why reserves and not evicting another link's transfers when one waits: no link's transfer is
//! ever cut for another's sake, the descriptor limit is never overshot while an evicted file's
//! abort is still on its way, and what a link may take is one sum.

use std::collections::{BTreeMap, VecDeque};

use wazuh_cluster_protocol::frame::HEADER_LEN;

use crate::roles::config::{DESCRIPTORS_PER_INCOMING_FILE, MAX_FILE_SHARE, MIN_FILE_SHARE};
use crate::roles::effects::IncomingFileId;
use crate::roles::ids::PeerId;

/// What the file budget holds now; see [`Node::file_budget`](crate::roles::Node::file_budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileBudgetUse {
    /// Files holding descriptors now, every link (closed ones still cleaning up) together.
    pub held: usize,
    /// Most files at once, every link together.
    pub limit: usize,
    /// Most files at once for one link.
    pub share: usize,
    /// Places kept for the entitled links that hold fewer files than their reserve.
    pub unmet_reserves: usize,
}

/// One link's places.
#[derive(Debug, Clone, Copy, Default)]
struct LinkFiles {
    /// Files holding a place.
    count: usize,
    /// Its reserve as granted so far (`None`: it has none); at most the budget's `reserve`.
    granted: Option<usize>,
}

impl LinkFiles {
    /// Places its reserve lacks: kept for it, no other link takes them.
    fn unmet(&self) -> usize {
        self.granted.unwrap_or(0).saturating_sub(self.count)
    }
}

/// See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct FileBudget {
    limit: usize,
    share: usize,
    /// Places each entitled link may always have.
    reserve: usize,
    /// Most places the reserves keep together (half the pool): past it, links wait for a reserve.
    reserve_cap: usize,
    /// Sum of the links' granted reserves; never more than `reserve_cap`.
    reserved: usize,
    held: BTreeMap<IncomingFileId, PeerId>,
    links: BTreeMap<PeerId, LinkFiles>,
    /// Sum of the links' unmet reserves; never more than the free places.
    unmet: usize,
    /// Entitled links whose reserve is not granted whole yet (they came when the free places
    /// were kept for others), in the order they came: each place freed is granted to the first.
    waiting: VecDeque<PeerId>,
}

impl FileBudget {
    /// A budget of `descriptors` (see
    /// [`NodeLimits::max_transfer_descriptors`](crate::roles::NodeLimits::max_transfer_descriptors))
    /// keeping `reserve` places for each entitled link.
    pub(crate) fn new(descriptors: usize, reserve: usize) -> FileBudget {
        let limit = descriptors / DESCRIPTORS_PER_INCOMING_FILE;
        let share = (limit / 4).clamp(MIN_FILE_SHARE, MAX_FILE_SHARE).min(limit);
        FileBudget {
            limit,
            share,
            reserve: reserve.min(share),
            reserve_cap: limit / 2,
            reserved: 0,
            held: BTreeMap::new(),
            links: BTreeMap::new(),
            unmet: 0,
            waiting: VecDeque::new(),
        }
    }

    fn free(&self) -> usize {
        self.limit.saturating_sub(self.held.len())
    }

    fn link(&self, peer: PeerId) -> LinkFiles {
        self.links.get(&peer).copied().unwrap_or_default()
    }

    /// Changes `peer`'s places with `change`, keeping the sums of unmet and granted reserves
    /// (every change goes through here, so the sums cannot drift).
    fn update(&mut self, peer: PeerId, change: impl FnOnce(&mut LinkFiles)) {
        let link = self.links.entry(peer).or_default();
        let (unmet, granted) = (link.unmet(), link.granted.unwrap_or(0));
        change(link);
        let (unmet_after, granted_after) = (link.unmet(), link.granted.unwrap_or(0));
        if link.count == 0 && link.granted.is_none() {
            self.links.remove(&peer);
        }
        self.unmet = self.unmet + unmet_after - unmet;
        self.reserved = self.reserved + granted_after - granted;
    }

    /// Places a reserve may be granted now: free ones no reserve keeps, within the cap.
    fn grantable(&self) -> usize {
        self.free()
            .saturating_sub(self.unmet)
            .min(self.reserve_cap.saturating_sub(self.reserved))
    }

    /// `peer` may send files from now on: it is granted its reserve as far as the free places
    /// not kept for others and the cap go, and the rest as places are freed or reserves given up
    /// (see [`FileBudget::release`], [`FileBudget::forget`]).
    pub(crate) fn entitle(&mut self, peer: PeerId) {
        if self.link(peer).granted.is_some() {
            return;
        }
        let grant = self.reserve.min(self.grantable());
        self.update(peer, |link| link.granted = Some(grant));
        if grant < self.reserve {
            self.waiting.push_back(peer);
        }
    }

    /// `peer`'s link is gone: its reserve is no one's (the places its files hold come back as
    /// their staged writes close).
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.update(peer, |link| link.granted = None);
        self.waiting.retain(|&p| p != peer);
        self.grant_waiting();
    }

    /// How many files `peer`'s connection may have open at once now, given the `receiving` it
    /// has open: those plus the new ones its share has room for, taken from its unmet reserve
    /// and from the free places no reserve keeps (see the [module documentation](self)).
    pub(crate) fn allowance(&self, peer: PeerId, receiving: usize) -> usize {
        let link = self.link(peer);
        let room = self
            .share
            .saturating_sub(link.count)
            .min(link.unmet() + self.free().saturating_sub(self.unmet));
        receiving + room
    }

    /// `file` of `peer` is being received: it holds a place until [`FileBudget::release`].
    pub(crate) fn acquire(&mut self, file: IncomingFileId, peer: PeerId) {
        if self.held.insert(file, peer).is_none() {
            self.update(peer, |link| link.count += 1);
        }
    }

    /// `file`'s staged write is closed: its place is free (a second release is nothing), and
    /// granted to the first link waiting for its reserve, if no reserve keeps it.
    pub(crate) fn release(&mut self, file: IncomingFileId) {
        let Some(peer) = self.held.remove(&file) else {
            return;
        };
        self.update(peer, |link| link.count -= 1);
        self.grant_waiting();
    }

    /// Grants the places no reserve keeps to the links waiting for their reserve, first come
    /// first granted, within the cap.
    fn grant_waiting(&mut self) {
        while self.grantable() > 0
            && let Some(&first) = self.waiting.front()
        {
            let reserve = self.reserve;
            let mut whole = false;
            self.update(first, |link| {
                let granted = link.granted.get_or_insert(0);
                *granted += 1;
                whole = *granted >= reserve;
            });
            if whole {
                self.waiting.pop_front();
            }
        }
    }

    /// What it holds now.
    pub(crate) fn usage(&self) -> FileBudgetUse {
        FileBudgetUse {
            held: self.held.len(),
            limit: self.limit,
            share: self.share,
            unmet_reserves: self.unmet,
        }
    }
}

/// What the memory budget holds now; see [`Node::memory_budget`](crate::roles::Node::memory_budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudgetUse {
    /// Bytes the peers' input holds, every link together: frames being received (their declared
    /// payload), long strings (their declared length) and file data waiting for the disk.
    pub input: u64,
    /// Bytes yielded to the peers and not yet reported written, every link together.
    pub output: u64,
    /// The budget: `input + output` stays within it.
    pub limit: u64,
    /// What the peers' input may hold together: the budget less an eighth kept for the node's
    /// own work (its sends, replies and keepalives).
    pub pool: u64,
    /// What one link's input may hold.
    pub share: u64,
}

/// The memory budget's bounds. Usage is not kept here but counted from the links: each link's
/// connection and disk queue count their own bytes and release them on every path (a claimed,
/// expired or refused string, a completed frame, a written chunk, a closed link), and the shell
/// keeps the sum over the links current as they change (`links::LinkTally`), so it cannot drift
/// from what is held.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryBudget {
    limit: u64,
    pool: u64,
    share: u64,
}

/// What one link holds, as the memory budget counts it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LinkMemory {
    /// Its connection's frame buffer and strings
    /// ([`held_input_bytes`](wazuh_cluster_protocol::connection::Connection::held_input_bytes)).
    pub(crate) connection: u64,
    /// Its file data waiting for the disk.
    pub(crate) disk: u64,
    /// Yielded to it and not yet written.
    pub(crate) output: u64,
}

impl LinkMemory {
    /// Its part of the peers' input.
    pub(crate) fn input(&self) -> u64 {
        self.connection + self.disk
    }
}

impl MemoryBudget {
    /// A budget of `limit` bytes (see
    /// [`NodeLimits::memory_budget`](crate::roles::NodeLimits::memory_budget)) for links whose
    /// largest frame is `largest_frame` bytes and largest string `largest_string`: a link's share
    /// is a quarter of the budget, but at least two of its largest frames and its largest string
    /// with a frame to carry it (so what one link may send always fits), and at most the pool.
    pub(crate) fn new(limit: u64, largest_frame: u64, largest_string: u64) -> MemoryBudget {
        let pool = limit - limit / 8;
        let frame = largest_frame + HEADER_LEN as u64;
        MemoryBudget {
            limit,
            pool,
            share: (limit / 4)
                .max(2 * frame)
                .max(largest_string + frame)
                .min(pool),
        }
    }

    /// What `link`'s connection may hold (frames and strings) now that the peers' input holds
    /// `input` bytes in all: what it holds plus what its share and the pool still have room for.
    pub(crate) fn allowance(&self, link: LinkMemory, input: u64) -> u64 {
        let room = self
            .share
            .saturating_sub(link.input())
            .min(self.pool.saturating_sub(input));
        link.connection + room
    }

    /// Whether `link` may be read now. A link whose file data waits for the disk is not read
    /// while it is over its share or the peers' input is over the pool: that data drains by the
    /// node's own effects, after which it is read again. A link with nothing waiting is always
    /// read, so a frame under way is never stuck: what it may allocate is bounded by
    /// [`MemoryBudget::allowance`].
    pub(crate) fn may_read(&self, link: LinkMemory, input: u64) -> bool {
        link.disk == 0 || (link.input() < self.share && input < self.pool)
    }

    /// The use when the links' input holds `input` bytes and their unwritten output `output`.
    pub(crate) fn usage(&self, input: u64, output: u64) -> MemoryBudgetUse {
        MemoryBudgetUse {
            input,
            output,
            limit: self.limit,
            pool: self.pool,
            share: self.share,
        }
    }
}

/// What the output gate holds now; see [`Node::output_gate`](crate::roles::Node::output_gate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputGateUse {
    /// Bytes of big output in flight, every link together: chunk reads under way and chunk and
    /// string-piece frames yielded and not yet reported written.
    pub held: u64,
    /// The cap on `held` ([`NodeLimits::max_output_in_flight`](crate::roles::NodeLimits)).
    pub cap: u64,
    /// Links waiting for their turn to produce a piece.
    pub waiting: usize,
}

/// The node's big output, paced node-wide: file chunks and long-string pieces (each up to a
/// 5 MiB request and its Fernet token). A piece holds its frame's bytes from the moment it is
/// let go (its chunk read queued, or its string piece sent) until the adapter reports its last
/// byte written. A new piece goes only while the pieces in flight and it stay within the cap and
/// the memory budget has room for it; else its link waits its turn in a round-robin queue, served
/// as bytes drain. One piece always goes when none is in flight, so the node never waits on
/// itself; and small frames (keepalives, replies, requests) never pass through here.
#[derive(Debug)]
pub(crate) struct OutputGate {
    cap: u64,
    held: u64,
    waiting: VecDeque<PeerId>,
}

impl OutputGate {
    /// A gate letting `cap` bytes of pieces be in flight at once (one piece always).
    pub(crate) fn new(cap: u64) -> OutputGate {
        OutputGate {
            cap,
            held: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Whether `peer` may let a piece of `size` bytes go now, with `room` bytes left in the
    /// memory budget: only in its turn (no link waits before it) and within the cap and the
    /// room, or when nothing is in flight.
    pub(crate) fn admits(&self, peer: PeerId, size: u64, room: u64) -> bool {
        if self.waiting.front().is_some_and(|&head| head != peer) {
            return false;
        }
        self.held == 0 || (self.held.saturating_add(size) <= self.cap && size <= room)
    }

    /// `peer` let a piece of `size` bytes go: it holds them, and leaves the head of the queue
    /// (it queues again behind the others for its next piece).
    pub(crate) fn let_go(&mut self, peer: PeerId, size: u64) {
        self.held += size;
        if self.waiting.front() == Some(&peer) {
            self.waiting.pop_front();
        }
    }

    /// `peer` has a piece the gate did not admit: it waits its turn (once).
    pub(crate) fn wait(&mut self, peer: PeerId) {
        if !self.waiting.contains(&peer) {
            self.waiting.push_back(peer);
        }
    }

    /// `peer` wants nothing from the gate now (no piece, closed, or paused by its own bound).
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.waiting.retain(|&p| p != peer);
    }

    /// Bytes of pieces written (or dropped) are no longer held.
    pub(crate) fn release(&mut self, size: u64) {
        self.held = self.held.saturating_sub(size);
    }

    /// Whether `peer` must go after others that wait (it waits behind them).
    pub(crate) fn others_wait(&self, peer: PeerId) -> bool {
        self.waiting.iter().any(|&p| p != peer)
    }

    /// The link whose turn it is.
    pub(crate) fn head(&self) -> Option<PeerId> {
        self.waiting.front().copied()
    }

    /// What it holds now.
    pub(crate) fn usage(&self) -> OutputGateUse {
        OutputGateUse {
            held: self.held,
            cap: self.cap,
            waiting: self.waiting.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_links_memory_allowance_is_its_share_and_the_pool_whichever_is_less() {
        // 64 MiB: pool 56 MiB, share 16 MiB (a quarter; two 1 MiB frames or a 4 MiB string are
        // less).
        let budget = MemoryBudget::new(64 << 20, 1 << 20, 4 << 20);
        let u = budget.usage(0, 0);
        assert_eq!((u.limit, u.pool, u.share), (64 << 20, 56 << 20, 16 << 20));
        let link = |connection: u64, disk: u64| LinkMemory {
            connection,
            disk,
            output: 0,
        };
        assert_eq!(budget.allowance(link(0, 0), 0), 16 << 20);
        // Holding 10 MiB of strings, 4 MiB on the way to disk: 2 MiB more.
        assert_eq!(
            budget.allowance(link(10 << 20, 4 << 20), 14 << 20),
            12 << 20
        );
        // The pool is nearly full: 1 MiB more, whatever the share says.
        assert_eq!(budget.allowance(link(0, 0), 55 << 20), 1 << 20);
        assert_eq!(budget.allowance(link(3, 0), 60 << 20), 3);
        // Reading: always with nothing waiting for the disk; else within share and pool.
        assert!(budget.may_read(link(16 << 20, 0), 60 << 20));
        assert!(budget.may_read(link(0, 1), 0));
        assert!(!budget.may_read(link(16 << 20, 1), 16 << 20));
        assert!(!budget.may_read(link(0, 1), 56 << 20));
    }

    #[test]
    fn a_share_holds_what_one_link_may_send_unless_the_pool_is_smaller() {
        let (frame, string) = (8 << 20, 64 << 20);
        let framed = frame + HEADER_LEN as u64;
        // The defaults: a 64 MiB string and the frame carrying it are above a quarter.
        assert_eq!(
            MemoryBudget::new(256 << 20, frame, string).share,
            string + framed
        );
        assert_eq!(MemoryBudget::new(1 << 30, frame, string).share, 256 << 20);
        assert_eq!(
            MemoryBudget::new(32 << 20, frame, 1 << 20).share,
            2 * framed
        );
        assert_eq!(MemoryBudget::new(8 << 20, frame, string).share, 7 << 20);
    }

    #[test]
    fn a_link_gets_its_share_the_pool_its_limit_and_places_come_back_per_file() {
        // 40 descriptors: 20 files, a link's share 5.
        let mut budget = FileBudget::new(40, 0);
        assert_eq!((budget.usage().limit, budget.usage().share), (20, 5));
        let (a, b) = (PeerId(1), PeerId(2));
        for i in 0..5 {
            assert_eq!(budget.allowance(a, i), 5);
            budget.acquire(IncomingFileId(i as u64), a);
        }
        // A full share leaves only the files already open.
        assert_eq!(budget.allowance(a, 5), 5);
        assert_eq!(budget.allowance(a, 2), 2);
        assert_eq!(budget.allowance(b, 0), 5);
        // Three more links fill the pool: the next link gets nothing.
        for (n, peer) in (2..5).map(PeerId).enumerate() {
            for i in 0..5 {
                budget.acquire(IncomingFileId(100 * (n as u64 + 1) + i), peer);
            }
        }
        assert_eq!(budget.usage().held, 20);
        assert_eq!(budget.allowance(PeerId(9), 0), 0);
        // Released once, twice: one place back.
        budget.release(IncomingFileId(0));
        budget.release(IncomingFileId(0));
        assert_eq!(budget.usage().held, 19);
        assert_eq!(budget.allowance(PeerId(9), 0), 1);
        assert_eq!(budget.allowance(a, 4), 5);
    }

    #[test]
    fn the_output_gate_serves_links_in_turn_within_its_cap_and_the_memory_room() {
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        let mut gate = OutputGate::new(10);
        // Nothing in flight: one piece goes whatever its size and the room.
        assert!(gate.admits(a, 50, 0));
        gate.let_go(a, 50);
        assert!(!gate.admits(b, 1, 100), "over the cap");
        gate.release(50);
        gate.let_go(a, 6);
        assert!(!gate.admits(b, 4, 3), "over the memory room");
        assert!(gate.admits(b, 4, 4));
        assert!(!gate.admits(b, 5, 100));
        // b and c wait, in that order: a may not pass them though its piece would fit.
        gate.wait(b);
        gate.wait(c);
        gate.wait(b);
        assert_eq!(gate.usage().waiting, 2);
        assert!(!gate.admits(a, 1, 100));
        assert!(!gate.admits(c, 1, 100));
        assert!(gate.admits(b, 1, 100));
        gate.let_go(b, 1);
        assert_eq!(gate.head(), Some(c));
        assert!(gate.others_wait(b) && !gate.others_wait(c));
        gate.forget(c);
        assert_eq!(gate.head(), None);
        assert_eq!(gate.usage().held, 7);
    }

    #[test]
    fn a_small_budget_still_gives_a_link_a_few_files_and_never_more_than_it_has() {
        assert_eq!(FileBudget::new(8, 2).usage().share, 4);
        assert_eq!(FileBudget::new(4, 2).usage().share, 2);
        assert_eq!(FileBudget::new(0, 2).allowance(PeerId(1), 0), 0);
    }

    #[test]
    fn an_entitled_links_reserve_is_never_taken_and_a_late_one_gets_the_first_places_freed() {
        // 16 files, shares of 4, reserves of 1 (kept for at most 8 links: half the pool).
        let mut budget = FileBudget::new(32, 1);
        let worker = PeerId(1);
        budget.entitle(worker);
        assert_eq!(budget.usage().unmet_reserves, 1);
        // Five greedy entitled links: each takes what the pool less the others' reserves leaves.
        let greedy: Vec<PeerId> = (10..15).map(PeerId).collect();
        let mut next = 0;
        for &peer in &greedy {
            budget.entitle(peer);
            while budget.allowance(peer, budget.link(peer).count) > budget.link(peer).count {
                budget.acquire(IncomingFileId(next), peer);
                next += 1;
            }
        }
        let counts: Vec<usize> = greedy.iter().map(|&p| budget.link(p).count).collect();
        assert_eq!(
            counts,
            [4, 4, 4, 3, 0],
            "each took its share of what the others' reserves left; the last found nothing left"
        );
        // The worker's reserve is intact: its file goes through at once.
        assert_eq!(budget.allowance(worker, 0), 1);
        budget.acquire(IncomingFileId(100), worker);
        assert_eq!(
            (budget.usage().held, budget.usage().unmet_reserves),
            (16, 0)
        );
        assert_eq!(budget.allowance(worker, 1), 1, "the pool is full");
        // The last link, entitled when the free places were kept: it waits for its reserve,
        // and the next place freed is granted to it, not retaken by whoever asks first.
        let late = greedy[4];
        assert_eq!(budget.allowance(late, 0), 0);
        budget.release(IncomingFileId(0));
        assert_eq!(budget.allowance(greedy[0], 3), 3, "not retaken");
        assert_eq!(budget.allowance(late, 0), 1);
        budget.release(IncomingFileId(1));
        assert_eq!(budget.allowance(late, 0), 2);
        // A link that leaves gives its reserve up; its places come back as they close.
        budget.forget(late);
        assert!(budget.waiting.is_empty());
        assert_eq!(budget.usage().unmet_reserves, 0);
        assert_eq!(budget.allowance(greedy[0], 2), 4);
        budget.forget(worker);
        budget.release(IncomingFileId(100));
        assert_eq!(budget.usage().unmet_reserves, 0);
        assert_eq!(budget.usage().held, 13);
    }

    #[test]
    fn reserves_keep_at_most_half_the_pool_and_the_later_links_share_the_rest() {
        // 8 places, reserves of 2: two links take the reserves (half the pool) without a file.
        let mut budget = FileBudget::new(16, 2);
        let (a, b, c, d) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4));
        for peer in [a, b, c, d] {
            budget.entitle(peer);
        }
        assert_eq!(budget.usage().unmet_reserves, 4);
        // The idle reserves do not keep the later links out: they share the other half.
        assert_eq!(budget.allowance(c, 0), 4);
        assert_eq!(budget.allowance(d, 0), 4);
        budget.acquire(IncomingFileId(1), c);
        assert_eq!(budget.allowance(d, 0), 3);
        assert_eq!(
            budget.allowance(a, 0),
            4,
            "its reserve and the shared places, within its share"
        );
        // A link that leaves hands its reserve on to the first in line.
        budget.forget(a);
        assert_eq!(budget.link(c).granted, Some(2));
        assert_eq!(budget.link(d).granted, Some(0));
        assert_eq!(budget.usage().unmet_reserves, 2 + 1);
    }

    #[test]
    fn a_thousand_idle_links_leave_the_thousandth_room_for_its_files() {
        // A budget of 512 descriptors (256 places, the default before) and a master with 1,000
        // workers, none receiving anything yet: the last to come may still receive.
        let mut budget = FileBudget::new(512, 2);
        for peer in 0..1000 {
            budget.entitle(PeerId(peer));
        }
        assert_eq!(budget.usage().unmet_reserves, 128);
        assert_eq!(budget.allowance(PeerId(999), 0), budget.usage().share);
    }

    #[test]
    fn the_default_budget_keeps_a_whole_reserve_for_every_worker_a_master_registers() {
        // 1,000 workers whose rounds start at the same instant each send two files (integrity,
        // agent-info). With 256 places the 936 past the reserves shared 128 and most of their
        // files were refused at every round (the scale cluster took 80 s to hear from them all).
        let limits = crate::roles::NodeLimits::default();
        let mut budget = FileBudget::new(
            limits.max_transfer_descriptors,
            limits.reserved_files_per_link,
        );
        let workers = limits.max_workers as u64;
        for peer in 0..workers {
            budget.entitle(PeerId(peer));
        }
        assert!(
            budget.waiting.is_empty(),
            "every worker holds a whole reserve"
        );
        for peer in 0..workers {
            let reserve = limits.reserved_files_per_link;
            assert!(budget.allowance(PeerId(peer), 0) >= reserve);
            for file in 0..reserve as u64 {
                budget.acquire(IncomingFileId(peer * 8 + file), PeerId(peer));
            }
        }
        assert_eq!(budget.usage().held, limits.max_workers * 2);
        // One link still may not take more than its bounded share of what is left.
        assert_eq!(budget.allowance(PeerId(0), 2), 2 + MAX_FILE_SHARE - 2);
    }
}
