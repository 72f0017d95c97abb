//! The checker: every message acknowledged to its publisher is accounted for in every
//! subscription — lost (acknowledged, never received), duplicated (received twice: a defect for
//! QoS 2, allowed for QoS 1 and counted as a redelivery), out of order (a first delivery after a
//! later message of the same publisher). A round passes with no loss, no QoS 2 duplicate and
//! nothing out of order.

use serde::Serialize;
use wardgate_protocol::QoS;

use crate::load::journal::{Inner, Track};

/// What the checker found in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Messages acknowledged to their publishers (PUBACK, or a successful PUBREC).
    pub acknowledged: u64,
    /// Of them, at QoS 1.
    pub acknowledged_qos1: u64,
    /// Of them, at QoS 2.
    pub acknowledged_qos2: u64,
    /// Acknowledged messages a subscription never received, summed over subscriptions.
    pub lost: u64,
    /// Lost, per subscriber.
    pub lost_per_subscriber: Vec<u64>,
    /// QoS 2 messages a subscription received more than once.
    pub qos2_duplicates: u64,
    /// QoS 1 messages a subscription received more than once (allowed: at least once).
    pub qos1_redelivered: u64,
    /// First deliveries after a later message of the same publisher.
    pub out_of_order: u64,
}

impl Verdict {
    /// Whether the round kept every guarantee.
    pub fn passed(&self) -> bool {
        self.lost == 0 && self.qos2_duplicates == 0 && self.out_of_order == 0
    }
}

/// Checks a round's journal; `qos[p]` is publisher `p`'s QoS.
pub fn check(journal: &Inner, qos: &[QoS]) -> Verdict {
    let mut v = Verdict::default();
    for (p, acked) in journal.acked.iter().enumerate() {
        v.acknowledged += acked.len();
        match qos.get(p) {
            Some(QoS::ExactlyOnce) => v.acknowledged_qos2 += acked.len(),
            _ => v.acknowledged_qos1 += acked.len(),
        }
    }
    let empty = Track::default();
    for tracks in &journal.received {
        let mut lost = 0;
        for (p, acked) in journal.acked.iter().enumerate() {
            let track = tracks.get(&(p as u32)).unwrap_or(&empty);
            lost += acked.missing_from(&track.seen);
            match qos.get(p) {
                Some(QoS::ExactlyOnce) => v.qos2_duplicates += track.duplicates,
                _ => v.qos1_redelivered += track.duplicates,
            }
            v.out_of_order += track.out_of_order;
        }
        v.lost += lost;
        v.lost_per_subscriber.push(lost);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::journal::Journal;

    /// Two publishers (QoS 1, QoS 2), two subscribers: the first gets everything, the second
    /// misses publisher 0's message 3 and publisher 1's message 5, and gets publisher 1's
    /// message 1 twice.
    #[test]
    fn the_checker_finds_loss_duplicates_and_disorder() {
        let j = Journal::new(2, 2);
        for seq in 0..6 {
            j.acked(0, seq);
            j.acked(1, seq);
            j.received(0, 0, seq);
            j.received(0, 1, seq);
        }
        for seq in [0, 1, 2, 4, 5] {
            j.received(1, 0, seq);
        }
        for seq in [0, 1, 1, 2, 3, 4] {
            j.received(1, 1, seq);
        }
        let v = check(&j.snapshot(), &[QoS::AtLeastOnce, QoS::ExactlyOnce]);
        assert_eq!(v.acknowledged, 12);
        assert_eq!((v.acknowledged_qos1, v.acknowledged_qos2), (6, 6));
        assert_eq!(v.lost_per_subscriber, vec![0, 2]);
        assert_eq!(v.lost, 2, "publisher 0's 3 and publisher 1's 5");
        assert_eq!(v.qos2_duplicates, 1);
        assert!(!v.passed());
    }

    #[test]
    fn a_qos1_redelivery_passes_and_a_late_first_delivery_fails() {
        let j = Journal::new(1, 1);
        for seq in 0..3 {
            j.acked(0, seq);
        }
        for seq in [0, 1, 1, 2] {
            j.received(0, 0, seq);
        }
        let v = check(&j.snapshot(), &[QoS::AtLeastOnce]);
        assert_eq!((v.lost, v.qos1_redelivered, v.out_of_order), (0, 1, 0));
        assert!(v.passed());
        let j = Journal::new(1, 1);
        for seq in 0..3 {
            j.acked(0, seq);
        }
        for seq in [0, 2, 1] {
            j.received(0, 0, seq);
        }
        let v = check(&j.snapshot(), &[QoS::AtLeastOnce]);
        assert_eq!((v.lost, v.out_of_order), (0, 1));
        assert!(!v.passed());
    }
}
