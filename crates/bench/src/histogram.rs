//! A fixed-precision latency histogram (log-linear buckets, 64 per power of two: under 1.6%
//! error), cheap enough to record every delivered message.

use serde::Serialize;

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values above 2^40 ns (18 minutes) are clamped.
const MAX_SHIFT: u64 = 40 - SUB_BITS as u64;
const BUCKETS: usize = ((MAX_SHIFT + 1) * SUB + SUB) as usize;

/// Counts of nanosecond values.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

/// Percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest value seen.
    pub max_us: f64,
    /// How many values were recorded.
    pub samples: u64,
}

fn index(v: u64) -> usize {
    let v = v.min((1 << 40) - 1);
    let shift = u64::from((63 - (v | 1).leading_zeros()).saturating_sub(SUB_BITS));
    (shift * SUB + (v >> shift)) as usize
}

fn midpoint(i: usize) -> u64 {
    let i = i as u64;
    let shift = if i < 2 * SUB { 0 } else { i / SUB - 1 };
    let low = (i - shift * SUB) << shift;
    low + ((1u64 << shift) >> 1)
}

impl Histogram {
    /// Records one value in nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value at quantile `q` (0..=1), in nanoseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return midpoint(i).min(self.max);
            }
        }
        self.max
    }

    /// p50, p99, p99.9 and max, or `None` when nothing was recorded.
    pub fn percentiles(&self) -> Option<Percentiles> {
        (self.total > 0).then(|| Percentiles {
            p50_us: self.quantile(0.5) as f64 / 1e3,
            p99_us: self.quantile(0.99) as f64 / 1e3,
            p999_us: self.quantile(0.999) as f64 / 1e3,
            max_us: self.max as f64 / 1e3,
            samples: self.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..200_000u64).chain([1 << 20, 123_456_789, 1 << 39]) {
            let i = index(v);
            assert!(i >= last, "index not monotonic at {v}");
            last = i;
            let m = midpoint(i);
            let err = m.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 1.0 / 64.0 + 1e-9, "v={v} mid={m}");
        }
    }

    #[test]
    fn uniform_values_give_expected_percentiles() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p = h.percentiles().expect("values");
        assert!((p.p50_us - 50_000.0).abs() / 50_000.0 < 0.02, "{p:?}");
        assert!((p.p99_us - 99_000.0).abs() / 99_000.0 < 0.02, "{p:?}");
        assert_eq!(p.max_us, 100_000.0);
        let mut other = Histogram::default();
        other.merge(&h);
        assert_eq!(other.quantile(0.5), h.quantile(0.5));
    }
}
