//! The clients of the node's local socket as a whole: when each was last heard from, which one
//! is idle, and which one gives way when the socket is full.
//!
//! The local socket is keyless (anyone who may open it is trusted as an operator tool), but a
//! stuck or hostile tool must not lock the others out: 3.9.5's clients send one command and wait
//! for its answer, so a client that sent nothing for
//! [`NodeLimits::local_idle_timeout`](super::NodeLimits::local_idle_timeout) while the node owes
//! it nothing is closed, and at [`NodeLimits::max_local_clients`](super::NodeLimits) a new client
//! takes the place of the longest idle one. Only clients waiting for an answer can fill the
//! socket, and each of those waits at most its request's time limit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::ids::PeerId;

/// The node's local clients and when each was last heard from.
#[derive(Debug, Default)]
pub(crate) struct LocalClients {
    last_heard: BTreeMap<PeerId, Instant>,
}

impl LocalClients {
    /// A local client connected.
    pub(crate) fn connected(&mut self, peer: PeerId, now: Instant) {
        self.last_heard.insert(peer, now);
    }

    /// `peer` sent bytes (or was owed an answer when it turned idle): its idle time starts again.
    pub(crate) fn heard(&mut self, peer: PeerId, now: Instant) {
        if let Some(at) = self.last_heard.get_mut(&peer) {
            *at = now;
        }
    }

    /// Connections that closed.
    pub(crate) fn closed(&mut self, peers: &[PeerId]) {
        for peer in peers {
            self.last_heard.remove(peer);
        }
    }

    /// Local clients connected.
    pub(crate) fn len(&self) -> usize {
        self.last_heard.len()
    }

    /// Clients silent for `idle` at `now`, oldest first (the caller skips those it owes an
    /// answer and marks them [`heard`](Self::heard)).
    pub(crate) fn idle(&self, now: Instant, idle: Duration) -> Vec<PeerId> {
        let mut quiet: Vec<(Instant, PeerId)> = self
            .last_heard
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= idle)
            .map(|(peer, at)| (*at, *peer))
            .collect();
        quiet.sort();
        quiet.into_iter().map(|(_, peer)| peer).collect()
    }

    /// Every client but `except`, longest silent first: the candidates to give way.
    pub(crate) fn by_silence(&self, except: PeerId) -> Vec<PeerId> {
        let mut all: Vec<(Instant, PeerId)> = self
            .last_heard
            .iter()
            .filter(|(peer, _)| **peer != except)
            .map(|(peer, at)| (*at, *peer))
            .collect();
        all.sort();
        all.into_iter().map(|(_, peer)| peer).collect()
    }

    /// When the next client turns idle.
    pub(crate) fn next_timeout(&self, idle: Duration) -> Option<Instant> {
        self.last_heard.values().min().map(|at| *at + idle)
    }
}
