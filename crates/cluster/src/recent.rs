//! A bounded memory of what was routed, to route a message only once when it arrives twice.

use std::collections::{HashSet, VecDeque};

/// The last `CAPACITY` keys seen (messages routed), to route a message only once when it
/// arrives twice.
#[derive(Default)]
pub(crate) struct Recent<const CAPACITY: usize> {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl<const CAPACITY: usize> Recent<CAPACITY> {
    /// Whether `key` is new (it is remembered from now on).
    pub(crate) fn first_time(&mut self, key: u64) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_seen_twice_is_new_once_and_forgotten_past_the_capacity() {
        let mut recent = Recent::<100>::default();
        assert!(recent.first_time(1));
        assert!(!recent.first_time(1));
        for key in 2..=101 {
            assert!(recent.first_time(key));
        }
        assert_eq!(recent.seen.len(), 100);
        assert!(recent.first_time(1), "forgotten past the capacity");
    }
}
