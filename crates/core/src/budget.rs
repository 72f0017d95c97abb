//! The memory budget for in-flight PUBLISH data (the memory profile's "incoming PUBLISH buffer",
//! `aio-broker.md` §2.3): how many payload and topic bytes the broker holds for messages that are
//! queued or in flight towards subscribers.
//!
//! Every routed message carries one [`Charge`], shared by all its queued copies; the charge is
//! released when the last copy is acknowledged, dropped or expires. Past 75% of the budget new
//! QoS 1/2 messages are refused (PUBACK/PUBREC 0x97, AIO's backpressure point); past 100% QoS 0
//! messages are dropped too. Retained messages are not charged: they are stored, not in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The broker-wide budget.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: AtomicU64,
    used: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Arc<Budget> {
        Arc::new(Budget {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        })
    }

    pub(crate) fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// The limit in bytes.
    pub(crate) fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether `bytes` more would pass `percent` of the limit.
    pub(crate) fn would_pass(&self, bytes: u64, percent: u64) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        if limit == u64::MAX {
            return false;
        }
        let threshold = u128::from(limit) * u128::from(percent) / 100;
        u128::from(self.used() + bytes) > threshold
    }

    /// Charges `bytes` until the returned charge is dropped.
    pub(crate) fn charge(self: &Arc<Budget>, bytes: u64) -> Arc<Charge> {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        Arc::new(Charge {
            bytes,
            budget: self.clone(),
        })
    }
}

/// Bytes charged for one message; released on drop.
pub(crate) struct Charge {
    bytes: u64,
    budget: Arc<Budget>,
}

impl Charge {
    /// The bytes this charge holds.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Charge({})", self.bytes)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_released_when_the_last_copy_goes() {
        let budget = Budget::new(1000);
        let charge = budget.charge(700);
        let copy = charge.clone();
        assert_eq!(budget.used(), 700);
        assert!(budget.would_pass(100, 75), "800 > 750");
        assert!(!budget.would_pass(100, 100));
        drop(charge);
        assert_eq!(budget.used(), 700);
        drop(copy);
        assert_eq!(budget.used(), 0);
        assert!(!Budget::new(u64::MAX).would_pass(u64::MAX / 2, 75));
    }
}
