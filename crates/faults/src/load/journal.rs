//! What the load clients saw, as they saw it: every message acknowledged to a publisher (PUBACK
//! or a successful PUBREC) with its time, every message a subscriber received, and every
//! connection lost or made. The checker and the report read it after a round.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use wardgate_bench::seq::SeqSet;

/// A load client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientRef {
    /// Publisher `n` of the round.
    Publisher(u32),
    /// Subscriber `n` of the round.
    Subscriber(u32),
}

/// Something that happened to a client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The client gave its connection up (closed by the node, or no answer in time).
    Lost,
    /// The client connected to `node`; `resumed` is false on its first connection.
    Connected {
        /// The node's index.
        node: usize,
        /// CONNACK's Session Present.
        session_present: bool,
        /// Whether the client had connected before in this round.
        resumed: bool,
    },
}

/// One connection event.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// When.
    pub at: Instant,
    /// Whose.
    pub client: ClientRef,
    /// What.
    pub kind: EventKind,
}

/// What one subscription received from one publisher.
#[derive(Debug, Clone, Default)]
pub struct Track {
    /// Every sequence number received.
    pub seen: SeqSet,
    /// Deliveries of a sequence number already received.
    pub duplicates: u64,
    /// First deliveries of a sequence number lower than one already received.
    pub out_of_order: u64,
    highest: Option<u32>,
}

impl Track {
    /// Records a delivery of `seq`.
    pub fn record(&mut self, seq: u32) {
        if !self.seen.insert(seq) {
            self.duplicates += 1;
            return;
        }
        match self.highest {
            Some(h) if seq < h => self.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
    }
}

/// The journal of one round.
#[derive(Debug)]
pub struct Journal {
    inner: Mutex<Inner>,
}

/// A copy of the journal's contents.
#[derive(Debug, Clone, Default)]
pub struct Inner {
    /// Per publisher, the sequence numbers acknowledged to it.
    pub acked: Vec<SeqSet>,
    /// Every acknowledgement: when, and to which publisher.
    pub acks: Vec<(Instant, u32)>,
    /// Per subscriber, per publisher, what it received.
    pub received: Vec<HashMap<u32, Track>>,
    /// Subscribers whose subscription was granted.
    pub subscribed: Vec<bool>,
    /// Connection events in order.
    pub events: Vec<Event>,
}

impl Journal {
    /// An empty journal for `publishers` publishers and `subscribers` subscribers.
    pub fn new(publishers: usize, subscribers: usize) -> Journal {
        Journal {
            inner: Mutex::new(Inner {
                acked: vec![SeqSet::default(); publishers],
                received: vec![HashMap::new(); subscribers],
                subscribed: vec![false; subscribers],
                ..Inner::default()
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut inner)
    }

    /// Publisher `publisher`'s message `seq` was acknowledged.
    pub fn acked(&self, publisher: u32, seq: u32) {
        let at = Instant::now();
        self.with(|j| {
            if let Some(set) = j.acked.get_mut(publisher as usize) {
                set.insert(seq);
            }
            j.acks.push((at, publisher));
        });
    }

    /// Subscriber `subscriber` received publisher `publisher`'s message `seq`.
    pub fn received(&self, subscriber: u32, publisher: u32, seq: u32) {
        self.with(|j| {
            if let Some(tracks) = j.received.get_mut(subscriber as usize) {
                tracks.entry(publisher).or_default().record(seq);
            }
        });
    }

    /// Subscriber `subscriber`'s subscription was granted.
    pub fn subscribed(&self, subscriber: u32) {
        self.with(|j| {
            if let Some(s) = j.subscribed.get_mut(subscriber as usize) {
                *s = true;
            }
        });
    }

    /// Records a connection event now.
    pub fn event(&self, client: ClientRef, kind: EventKind) {
        let at = Instant::now();
        self.with(|j| j.events.push(Event { at, client, kind }));
    }

    /// Whether every subscriber has its subscription.
    pub fn all_subscribed(&self) -> bool {
        self.with(|j| j.subscribed.iter().all(|s| *s))
    }

    /// How many acknowledged messages some subscriber has not received yet.
    pub fn missing(&self) -> u64 {
        self.with(|j| {
            let mut missing = 0;
            for tracks in &j.received {
                for (publisher, acked) in j.acked.iter().enumerate() {
                    let empty = SeqSet::default();
                    let seen = tracks.get(&(publisher as u32)).map_or(&empty, |t| &t.seen);
                    missing += acked.missing_from(seen);
                }
            }
            missing
        })
    }

    /// A copy of everything recorded.
    pub fn snapshot(&self) -> Inner {
        self.with(|j| j.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_counts_duplicates_and_late_first_deliveries() {
        let mut t = Track::default();
        for seq in [0, 1, 3, 2, 3, 4, 0] {
            t.record(seq);
        }
        assert_eq!((t.duplicates, t.out_of_order, t.seen.len()), (2, 1, 5));
    }

    #[test]
    fn missing_counts_what_was_acknowledged_and_not_received() {
        let j = Journal::new(2, 2);
        for seq in 0..10 {
            j.acked(0, seq);
            j.received(0, 0, seq);
        }
        j.acked(1, 0);
        for seq in 0..7 {
            j.received(1, 0, seq);
        }
        // Subscriber 1 misses 7..10 of publisher 0; both miss publisher 1's message 0.
        assert_eq!(j.missing(), 3 + 2);
    }
}
