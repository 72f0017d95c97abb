//! A fixed total rate, evenly spaced: message `j` of the run is due at `start + (j + 1) / rate`
//! and belongs to publisher `j mod N`. So the publishers take turns, and the broker sees one
//! steady stream, not N publishers firing at the same instant. Tokio's timers tick in
//! milliseconds, too coarse at tens of thousands of messages per second (every tick would release
//! a burst), so a thread of its own sleeps until each message is due and wakes its publisher.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::wire::now_ns;

/// The pacing thread's shortest sleep: at high rates it releases the messages that fell due
/// in the meantime together (a few at tens of thousands per second).
const QUANTUM_NS: u64 = 50_000;

/// The timetable of a fixed-rate run.
pub(super) struct Schedule {
    /// Messages per second over all publishers.
    rate: f64,
    /// One per publisher: woken when one of its messages falls due.
    wakers: Box<[Notify]>,
}

impl Schedule {
    pub(super) fn new(rate: f64, publishers: usize) -> Self {
        Self {
            rate: rate.max(1e-3),
            wakers: (0..publishers.max(1)).map(|_| Notify::new()).collect(),
        }
    }

    /// When message `j` of the run is due, in [`now_ns`] time.
    fn due_at(&self, start: u64, j: u64) -> u64 {
        start + ((j + 1) as f64 * 1e9 / self.rate) as u64
    }

    /// The run's index of `publisher`'s message `seq`.
    fn message(&self, publisher: u32, seq: u32) -> u64 {
        u64::from(seq) * self.wakers.len() as u64 + u64::from(publisher)
    }

    /// How many of `publisher`'s messages from `seq` on are due at `now` (at most `cap`).
    pub(super) fn due(&self, start: u64, publisher: u32, seq: u32, now: u64, cap: u64) -> u64 {
        (0..cap)
            .take_while(|&i| self.due_at(start, self.message(publisher, seq + i as u32)) <= now)
            .count() as u64
    }

    /// Resolves once a message of `publisher`'s has fallen due since it last looked (a wake-up
    /// is kept when the publisher is busy, so none is missed).
    pub(super) async fn wait(&self, publisher: u32) {
        self.wakers[publisher as usize].notified().await;
    }

    /// Starts the thread that wakes each publisher when its message falls due, until `stop`.
    pub(super) fn start(self: &Arc<Self>, start: u64, stop: CancellationToken) -> JoinHandle<()> {
        let schedule = self.clone();
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || schedule.pace(start, &stop))
            .expect("spawn the pacing thread")
    }

    fn pace(&self, start: u64, stop: &CancellationToken) {
        let n = self.wakers.len() as u64;
        let mut next = 0u64;
        while !stop.is_cancelled() {
            let now = now_ns();
            while self.due_at(start, next) <= now {
                self.wakers[(next % n) as usize].notify_one();
                next += 1;
            }
            // Sleep until the next message, at least QUANTUM_NS (the kernel adds its timer
            // slack, 50 us by default), at most 1 ms to see the stop.
            let wait = self.due_at(start, next).saturating_sub(now_ns());
            std::thread::sleep(Duration::from_nanos(wait.clamp(QUANTUM_NS, 1_000_000)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publishers_take_turns_at_even_intervals() {
        // 4 publishers, 1,000 msg/s in all: one message every millisecond, publishers in turn.
        let s = Schedule::new(1_000.0, 4);
        let ms = 1_000_000;
        let start = 7 * ms;
        // At 1 ms, only publisher 0's first message is due; at 2 ms, publisher 1's as well.
        assert_eq!(s.due(start, 0, 0, start + ms, 10), 1);
        assert_eq!(s.due(start, 1, 0, start + ms, 10), 0);
        assert_eq!(s.due(start, 1, 0, start + 2 * ms, 10), 1);
        assert_eq!(s.due(start, 3, 0, start + 3 * ms, 10), 0);
        assert_eq!(s.due(start, 3, 0, start + 4 * ms, 10), 1);
        // Publisher 0's second message is the run's fifth (at 5 ms); after 13 ms, 4 are due.
        assert_eq!(s.due(start, 0, 1, start + 4 * ms, 10), 0);
        assert_eq!(s.due(start, 0, 1, start + 5 * ms, 10), 1);
        assert_eq!(s.due(start, 0, 0, start + 13 * ms, 10), 4);
        assert_eq!(s.due(start, 0, 0, start + 13 * ms, 3), 3, "capped");
    }

    #[tokio::test]
    async fn the_pacer_wakes_each_publisher_when_its_message_is_due() {
        let s = Arc::new(Schedule::new(2_000.0, 3));
        let stop = CancellationToken::new();
        let start = now_ns();
        let pacer = s.start(start, stop.clone());
        // Publisher 2's tenth message is the run's 29th: due at 30 x 0.5 ms. Every wake-up
        // must arrive (a lost one would stall the publisher until the timeout).
        let mut seq = 0u32;
        let waited = tokio::time::timeout(Duration::from_secs(2), async {
            while seq < 10 {
                s.wait(2).await;
                seq += s.due(start, 2, seq, now_ns(), 64) as u32;
            }
        })
        .await;
        assert!(waited.is_ok(), "stalled after {seq} messages");
        let elapsed = now_ns() - start;
        assert!(
            elapsed >= 15_000_000,
            "10 messages due by 15 ms came at {elapsed} ns"
        );
        stop.cancel();
        pacer.join().expect("the pacer ends");
    }
}
