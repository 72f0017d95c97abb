//! Sets of per-publisher sequence numbers, kept as sorted half-open ranges: in-order delivery
//! (the common case) keeps one range per publisher, whatever the message count.

/// A set of `u32` sequence numbers as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqSet {
    ranges: Vec<(u32, u32)>,
}

impl SeqSet {
    /// The set `0..n`.
    pub fn prefix(n: u32) -> SeqSet {
        let ranges = if n == 0 { Vec::new() } else { vec![(0, n)] };
        SeqSet { ranges }
    }

    /// Adds `seq`; returns false if it was already there (a duplicate).
    pub fn insert(&mut self, seq: u32) -> bool {
        match self.ranges.last_mut() {
            None => {
                self.ranges.push((seq, seq + 1));
                return true;
            }
            Some(last) if seq == last.1 => {
                last.1 += 1;
                return true;
            }
            Some(last) if seq > last.1 => {
                self.ranges.push((seq, seq + 1));
                return true;
            }
            Some(_) => {}
        }
        // Out of order: find the first range that ends at or after `seq`.
        let i = self.ranges.partition_point(|&(_, end)| end < seq);
        let (start, end) = self.ranges[i];
        if start <= seq && seq < end {
            return false;
        }
        if end == seq {
            // Extends range i at its end; may now touch range i + 1.
            self.ranges[i].1 += 1;
            if let Some(&(next_start, next_end)) = self.ranges.get(i + 1)
                && next_start == seq + 1
            {
                self.ranges[i].1 = next_end;
                self.ranges.remove(i + 1);
            }
        } else if start == seq + 1 {
            self.ranges[i].0 = seq;
        } else {
            self.ranges.insert(i, (seq, seq + 1));
        }
        true
    }

    /// How many numbers the set holds.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(s, e)| u64::from(e - s)).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Adds every number of `other`; returns how many were already here (duplicates).
    pub fn union_with(&mut self, other: &SeqSet) -> u64 {
        let total = self.len() + other.len();
        let mut merged: Vec<(u32, u32)> =
            Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (
            self.ranges.iter().peekable(),
            other.ranges.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let &(s, e) = next.expect("peeked");
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.ranges = merged;
        total - self.len()
    }

    /// How many numbers of `self` are missing from `other`.
    pub fn missing_from(&self, other: &SeqSet) -> u64 {
        let mut missing = 0u64;
        let mut j = 0;
        for &(s, e) in &self.ranges {
            let mut covered = 0u64;
            while j < other.ranges.len() && other.ranges[j].1 <= s {
                j += 1;
            }
            let mut k = j;
            while k < other.ranges.len() && other.ranges[k].0 < e {
                let (os, oe) = other.ranges[k];
                covered += u64::from(oe.min(e) - os.max(s));
                k += 1;
            }
            missing += u64::from(e - s) - covered;
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> (SeqSet, u64) {
        let mut s = SeqSet::default();
        let dups = items.iter().filter(|&&i| !s.insert(i)).count() as u64;
        (s, dups)
    }

    #[test]
    fn in_order_stays_one_range() {
        let (s, dups) = set(&(0..1000).collect::<Vec<_>>());
        assert_eq!((s.ranges.len(), s.len(), dups), (1, 1000, 0));
    }

    #[test]
    fn out_of_order_merges_and_detects_duplicates() {
        let (s, dups) = set(&[5, 3, 4, 0, 2, 1, 4, 9, 7, 8, 6, 0]);
        assert_eq!(s.ranges, vec![(0, 10)]);
        assert_eq!(dups, 2);
    }

    #[test]
    fn union_counts_overlap_and_missing_counts_gaps() {
        let (mut a, _) = set(&[0, 1, 2, 10, 11]);
        let (b, _) = set(&[2, 3, 11, 12]);
        assert_eq!(a.union_with(&b), 2);
        assert_eq!(a.ranges, vec![(0, 4), (10, 13)]);
        let acked = SeqSet::prefix(14);
        assert_eq!(acked.missing_from(&a), 14 - 7);
        assert_eq!(a.missing_from(&acked), 0);
        assert_eq!(SeqSet::prefix(0).missing_from(&a), 0);
    }

    #[test]
    fn agrees_with_a_plain_set() {
        // A deterministic shuffle with duplicates, checked against BTreeSet.
        let mut x: u64 = 12345;
        let mut reference = std::collections::BTreeSet::new();
        let mut s = SeqSet::default();
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = ((x >> 33) % 700) as u32;
            assert_eq!(s.insert(v), reference.insert(v));
        }
        assert_eq!(s.len(), reference.len() as u64);
        let acked = SeqSet::prefix(800);
        assert_eq!(acked.missing_from(&s), 800 - reference.len() as u64);
    }
}
