//! The node's events for its subscribers: each subscriber has its own bounded queue; when it
//! reads too late the oldest events are dropped and counted (what tokio's broadcast channel does
//! for the tokio adapter), so a subscriber that never reads costs at most [`EVENT_BUFFER`]
//! events.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use wazuh_cluster_sync::roles::NodeEvent;

/// Events kept for a subscriber that reads late; older ones are dropped.
pub const EVENT_BUFFER: usize = 4096;

/// Why [`EventReceiver::recv_timeout`] gave no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing came in time.
    Timeout,
    /// The node has stopped and every event was read.
    Closed,
    /// This many events were dropped since the last read (the receiver read too late); the
    /// next read goes on with the oldest kept.
    Lagged(u64),
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<NodeEvent>,
    lagged: u64,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

/// One subscriber's events.
#[derive(Debug)]
pub struct EventReceiver(Arc<Shared>);

impl EventReceiver {
    /// The next event, waiting at most `timeout`.
    ///
    /// # Errors
    /// [`RecvError`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<NodeEvent, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if queue.lagged > 0 {
                return Err(RecvError::Lagged(std::mem::take(&mut queue.lagged)));
            }
            if let Some(event) = queue.events.pop_front() {
                return Ok(event);
            }
            if queue.closed {
                return Err(RecvError::Closed);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            queue = self
                .0
                .ready
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The next event if one is there.
    ///
    /// # Errors
    /// [`RecvError`] (`Timeout` when none is there yet).
    pub fn try_recv(&self) -> Result<NodeEvent, RecvError> {
        self.recv_timeout(Duration::ZERO)
    }
}

/// The loop's side: publishes to every live subscriber.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventHub(Arc<Mutex<Vec<Weak<Shared>>>>);

impl EventHub {
    /// A new subscriber, seeing events from now on.
    pub(crate) fn subscribe(&self) -> EventReceiver {
        let shared = Arc::new(Shared::default());
        let mut subs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        subs.push(Arc::downgrade(&shared));
        EventReceiver(shared)
    }

    /// Gives `event` to every subscriber (dropping its oldest when full); forgets those gone.
    pub(crate) fn publish(&self, event: &NodeEvent) {
        let mut subs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|weak| {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.events.len() >= EVENT_BUFFER {
                queue.events.pop_front();
                queue.lagged += 1;
            }
            queue.events.push_back(event.clone());
            shared.ready.notify_all();
            true
        });
    }

    /// The node has stopped: receivers end once they read what is left.
    pub(crate) fn close(&self) {
        let mut subs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for weak in subs.drain(..) {
            if let Some(shared) = weak.upgrade() {
                shared
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .closed = true;
                shared.ready.notify_all();
            }
        }
    }
}

/// Closes the hub when dropped: held by the loop's thread, so subscribers see the end whatever
/// way the loop ends.
pub(crate) struct CloseOnDrop(pub(crate) EventHub);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> NodeEvent {
        NodeEvent::IntegrityRecalculated {
            files: i,
            hashed: 0,
        }
    }

    #[test]
    fn a_late_reader_loses_the_oldest_events_and_is_told_how_many() {
        let hub = EventHub::default();
        let rx = hub.subscribe();
        for i in 0..EVENT_BUFFER + 3 {
            hub.publish(&event(i));
        }
        assert_eq!(rx.try_recv(), Err(RecvError::Lagged(3)));
        assert_eq!(rx.try_recv(), Ok(event(3)));
        hub.close();
        let mut left = 0;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        assert_eq!(left, EVENT_BUFFER - 1);
        assert_eq!(rx.try_recv(), Err(RecvError::Closed));
    }

    #[test]
    fn a_dropped_receiver_is_forgotten() {
        let hub = EventHub::default();
        drop(hub.subscribe());
        let kept = hub.subscribe();
        hub.publish(&event(1));
        assert_eq!(hub.0.lock().unwrap().len(), 1);
        assert_eq!(kept.try_recv(), Ok(event(1)));
        assert_eq!(kept.try_recv(), Err(RecvError::Timeout));
    }
}
