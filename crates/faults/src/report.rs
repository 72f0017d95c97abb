//! The report of a run: per round the fault, the checker's verdict and the recovery times — from
//! the fault to the first publish acknowledged again, to every publisher acknowledged again, and
//! to every session resumed — as JSON and as a markdown table for docs/cluster.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::checker::Verdict;
use crate::fault::Planned;
use crate::load::journal::{ClientRef, EventKind, Inner};

/// One round's figures.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// The round's number, from 0.
    pub round: usize,
    /// The fault injected.
    pub fault: Planned,
    /// What the checker found.
    pub verdict: Verdict,
    /// From the fault to the first publish acknowledged again: the earliest end of a stall (a
    /// publisher waiting over 1 s between acknowledgements) after the fault, or when no
    /// publisher stalled, the first acknowledgement after it; ms.
    pub first_ack_after_fault_ms: Option<u64>,
    /// From the fault until every publisher's acknowledgements flowed again (the end of its
    /// longest stall after the fault), in ms.
    pub all_publishers_acked_ms: Option<u64>,
    /// Clients that lost their connection after the fault.
    pub clients_reconnected: usize,
    /// From the fault until the last of them was connected again, in ms.
    pub sessions_resumed_ms: Option<u64>,
    /// Reconnections after the fault that found no session (Session Present 0).
    pub sessions_lost: usize,
    /// Whether the round kept every guarantee.
    pub passed: bool,
}

/// Computes a round's recovery times from its journal; `fault_at` is when the fault began.
pub fn round_report(
    round: usize,
    fault: Planned,
    verdict: Verdict,
    journal: &Inner,
    fault_at: Instant,
) -> RoundReport {
    let ms = |at: Instant| at.saturating_duration_since(fault_at).as_millis() as u64;
    // Per client: the last reconnection that followed a loss after the fault.
    let mut reconnected: HashMap<ClientRef, Option<Instant>> = HashMap::new();
    let mut sessions_lost = 0;
    let mut lost_since: HashMap<ClientRef, bool> = HashMap::new();
    for e in journal.events.iter().filter(|e| e.at >= fault_at) {
        match e.kind {
            EventKind::Lost => {
                lost_since.insert(e.client, true);
                reconnected.entry(e.client).or_insert(None);
            }
            EventKind::Connected {
                session_present,
                resumed,
                ..
            } => {
                if lost_since.remove(&e.client).is_some() {
                    reconnected.insert(e.client, Some(e.at));
                }
                if resumed && !session_present {
                    sessions_lost += 1;
                }
            }
        }
    }
    let recovered: Vec<(Instant, bool)> = (0..journal.acked.len() as u32)
        .filter_map(|p| recovery(&journal.acks, p, fault_at))
        .collect();
    let stalled = recovered.iter().filter(|(_, stalled)| *stalled);
    let first_ack = stalled
        .map(|(at, _)| ms(*at))
        .min()
        .or_else(|| recovered.iter().map(|(at, _)| ms(*at)).min());
    let all_acked = (recovered.len() == journal.acked.len())
        .then(|| recovered.iter().map(|(at, _)| ms(*at)).max())
        .flatten();
    // Every client that lost its connection must be back; one still away leaves it unknown.
    let resumed = if reconnected.values().all(Option::is_some) {
        reconnected.values().flatten().map(|at| ms(*at)).max()
    } else {
        None
    };
    let passed = verdict.passed();
    RoundReport {
        round,
        fault,
        verdict,
        first_ack_after_fault_ms: first_ack,
        all_publishers_acked_ms: all_acked,
        clients_reconnected: reconnected.len(),
        sessions_resumed_ms: resumed,
        sessions_lost,
        passed,
    }
}

/// A pause between two acknowledgements of one publisher longer than this is a stall.
const STALL: Duration = Duration::from_secs(1);

/// When publisher `p`'s acknowledgements flowed again after the fault: the end of its longest
/// pause between acknowledgements after the fault (counting from its last one before), when
/// that pause is a stall (`true`); else its first acknowledgement after the fault. `None` when
/// it had none after the fault.
fn recovery(acks: &[(Instant, u32)], p: u32, fault_at: Instant) -> Option<(Instant, bool)> {
    let mine = acks.iter().filter(|(_, q)| *q == p).map(|(at, _)| *at);
    let mut previous = fault_at;
    let mut first_after = None;
    let mut longest: Option<(Duration, Instant)> = None;
    for at in mine {
        if at < fault_at {
            previous = at;
            continue;
        }
        first_after.get_or_insert(at);
        let gap = at.saturating_duration_since(previous);
        if longest.is_none_or(|(g, _)| gap > g) {
            longest = Some((gap, at));
        }
        previous = at;
    }
    match longest {
        Some((gap, at)) if gap >= STALL => Some((at, true)),
        _ => first_after.map(|at| (at, false)),
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The seed every random choice came from.
    pub seed: u64,
    /// Whether the Wardgate nodes acknowledged before durability (the checker's self-test).
    pub ack_before_durable: bool,
    /// Each round.
    pub rounds: Vec<RoundReport>,
}

impl RunReport {
    /// Whether every round passed.
    pub fn passed(&self) -> bool {
        self.rounds.iter().all(|r| r.passed)
    }

    /// The markdown table.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Seed {}{}.\n\n\
             | round | fault | node | at ms | down ms | acknowledged (QoS 1 / 2) | lost | QoS 2 duplicates | QoS 1 redelivered | out of order | first ack after fault ms | all publishers acked ms | clients reconnected | sessions resumed ms | sessions lost | verdict |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            self.seed,
            if self.ack_before_durable {
                " (acknowledgement before durability forced)"
            } else {
                ""
            }
        );
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        for r in &self.rounds {
            let v = &r.verdict;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} ({} / {}) | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.round,
                r.fault.kind,
                r.fault.node,
                r.fault.after.as_millis(),
                r.fault.down.as_millis(),
                v.acknowledged,
                v.acknowledged_qos1,
                v.acknowledged_qos2,
                v.lost,
                v.qos2_duplicates,
                v.qos1_redelivered,
                v.out_of_order,
                opt(r.first_ack_after_fault_ms),
                opt(r.all_publishers_acked_ms),
                r.clients_reconnected,
                opt(r.sessions_resumed_ms),
                r.sessions_lost,
                if r.passed { "pass" } else { "FAIL" },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultKind;
    use crate::load::journal::Journal;

    #[test]
    fn a_stall_ends_at_the_first_acknowledgement_after_the_longest_pause() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Publisher 0: acknowledged at 100 (before the fault at 1000), 1010 (in flight when it
        // came), then stalled until 4000. Publisher 1: no stall.
        let acks = [
            (at(100), 0),
            (at(900), 1),
            (at(1010), 0),
            (at(1020), 1),
            (at(4000), 0),
            (at(4010), 0),
        ];
        assert_eq!(recovery(&acks, 0, at(1000)), Some((at(4000), true)));
        assert_eq!(recovery(&acks, 1, at(1000)), Some((at(1020), false)));
        assert_eq!(recovery(&acks, 2, at(1000)), None);
    }

    #[test]
    fn recovery_times_count_from_the_fault() {
        let j = Journal::new(2, 1);
        j.acked(0, 0);
        j.acked(1, 0);
        let fault_at = Instant::now();
        j.event(ClientRef::Publisher(0), EventKind::Lost);
        j.event(ClientRef::Subscriber(0), EventKind::Lost);
        std::thread::sleep(Duration::from_millis(20));
        j.acked(1, 1);
        j.event(
            ClientRef::Publisher(0),
            EventKind::Connected {
                node: 1,
                session_present: true,
                resumed: true,
            },
        );
        j.acked(0, 1);
        let planned = Planned {
            kind: FaultKind::KillNode,
            node: 0,
            after: Duration::ZERO,
            down: Duration::ZERO,
        };
        let journal = j.snapshot();
        let r = round_report(0, planned, Verdict::default(), &journal, fault_at);
        // The subscriber never came back: the sessions are not all resumed.
        assert_eq!(r.clients_reconnected, 2);
        assert_eq!(r.sessions_resumed_ms, None);
        assert!(r.first_ack_after_fault_ms.is_some_and(|ms| ms >= 20));
        assert!(r.all_publishers_acked_ms.is_some());
        j.event(
            ClientRef::Subscriber(0),
            EventKind::Connected {
                node: 2,
                session_present: false,
                resumed: true,
            },
        );
        let r = round_report(0, planned, Verdict::default(), &j.snapshot(), fault_at);
        assert!(r.sessions_resumed_ms.is_some());
        assert_eq!(r.sessions_lost, 1);
        assert!(
            RunReport {
                seed: 1,
                ack_before_durable: false,
                rounds: vec![r]
            }
            .markdown()
            .contains("| 0 | kill-node | 0 |")
        );
    }
}
