//! How anything outside a connection's task reaches it: one atomic byte of [`Event`]s and one
//! waker ([`Control`]). The core (queued messages, a takeover, a durable store write), a congested
//! queue that has room again ([`SpaceWake`]), the registry's keep-alive watch and the broker
//! ending the connection ([`Control::kick`]) each record their event and wake the task, which
//! needs no stored future (and no memory) per thing it waits for.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

use futures_util::task::AtomicWaker;
use wardgate_core::Wake;
use wardgate_protocol::ReasonCode;

/// Something that happened to a connection since its task last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// The session's queue has work, or the session was taken over, or a store write the
    /// connection waits for is durable.
    Queue = 1,
    /// A congested queue the connection's publisher waited for has room again.
    Space = 2,
    /// The broker ends the connection ([`Control::kick`]).
    Kick = 4,
    /// The keep-alive deadline passed.
    KeepAlive = 8,
}

/// The events recorded since the task last looked ([`Control::take`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events(u8);

impl Events {
    /// Whether `event` is among them.
    pub fn contains(self, event: Event) -> bool {
        self.0 & event as u8 != 0
    }
}

/// A live connection's wake-up: what happened since its task last looked, and the waker of that
/// task.
#[derive(Debug, Default)]
pub struct Control {
    events: AtomicU8,
    reason: AtomicU8,
    waker: AtomicWaker,
    /// When the client's keep-alive runs out, in [`clock_ms`] (0: no keep-alive). The registry
    /// watches every connection's deadline (`Registry::watch_keep_alive`), so no connection
    /// needs a timer of its own.
    keep_alive_due: AtomicU64,
}

impl Control {
    /// Asks the connection to send DISCONNECT `reason` (v5) and close.
    pub fn kick(&self, reason: ReasonCode) {
        self.reason.store(reason.0, Ordering::Release);
        self.signal(Event::Kick);
    }

    /// Records `event` and wakes the connection's task.
    fn signal(&self, event: Event) {
        self.events.fetch_or(event as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    /// Makes `waker` the one an event wakes. Register before [`Control::take`], so that no
    /// event is missed between the two.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Takes the events recorded since the last call.
    pub fn take(&self) -> Events {
        Events(self.events.swap(0, Ordering::AcqRel))
    }

    /// Moves the keep-alive deadline to `grace_ms` from now (0: no keep-alive, no deadline).
    pub fn keep_alive_for(&self, grace_ms: u64) {
        if grace_ms > 0 {
            self.keep_alive_due
                .store(clock_ms() + grace_ms, Ordering::Relaxed);
        }
    }

    /// Whether the keep-alive deadline passed by `now` ([`clock_ms`]).
    pub fn keep_alive_passed(&self, now: u64) -> bool {
        let due = self.keep_alive_due.load(Ordering::Relaxed);
        due != 0 && now >= due
    }

    /// The keep-alive watch: records [`Event::KeepAlive`] when the deadline passed by `now`.
    pub fn watch_keep_alive(&self, now: u64) {
        if self.keep_alive_passed(now) {
            self.signal(Event::KeepAlive);
        }
    }

    /// The reason of the last [`Control::kick`].
    pub fn kick_reason(&self) -> ReasonCode {
        ReasonCode(self.reason.load(Ordering::Acquire))
    }
}

/// The core wakes a connection through its session waker: that is its [`Control`].
impl Wake for Control {
    fn wake(&self) {
        self.signal(Event::Queue);
    }
}

/// The waker handed to a congested session: room there wakes the publisher's connection.
pub(crate) struct SpaceWake(pub(crate) Arc<Control>);

impl Wake for SpaceWake {
    fn wake(&self) {
        self.0.signal(Event::Space);
    }
}

/// Milliseconds since the process first asked: the clock of keep-alive deadlines.
pub fn clock_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_once_each_as_recorded() {
        let control = Arc::new(Control::default());
        control.wake();
        control.kick(ReasonCode::SERVER_SHUTTING_DOWN);
        let events = control.take();
        assert!(events.contains(Event::Queue));
        assert!(events.contains(Event::Kick));
        assert!(!events.contains(Event::Space));
        assert!(!events.contains(Event::KeepAlive));
        SpaceWake(control.clone()).wake();
        let events = control.take();
        assert!(events.contains(Event::Space));
        assert!(!events.contains(Event::Kick));
        assert_eq!(control.kick_reason(), ReasonCode::SERVER_SHUTTING_DOWN);
        assert!(!control.take().contains(Event::Queue));
    }

    #[test]
    fn the_keep_alive_watch_signals_a_passed_deadline_only() {
        let control = Control::default();
        control.watch_keep_alive(u64::MAX);
        assert!(!control.take().contains(Event::KeepAlive), "no keep-alive");
        control.keep_alive_for(60_000);
        let now = clock_ms();
        control.watch_keep_alive(now);
        assert!(!control.take().contains(Event::KeepAlive), "not due yet");
        control.watch_keep_alive(now + 60_000);
        assert!(control.take().contains(Event::KeepAlive));
    }
}
