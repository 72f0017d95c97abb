//! The report of a run: per round the fault, the checker's verdict and the recovery times — from
//! the fault to the first publish acknowledged again, to every publisher acknowledged again, and
//! to every session resumed — as JSON and as a markdown table for docs/cluster.md.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

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
    /// From the fault to the first acknowledgement a publisher that lost its node got (any
    /// publisher's, when none lost its node), in ms.
    pub first_ack_after_fault_ms: Option<u64>,
    /// From the fault until every publisher had an acknowledgement again, in ms.
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
    let affected: Vec<u32> = reconnected
        .keys()
        .filter_map(|c| match c {
            ClientRef::Publisher(p) => Some(*p),
            ClientRef::Subscriber(_) => None,
        })
        .collect();
    let after: Vec<&(Instant, u32)> = journal
        .acks
        .iter()
        .filter(|(at, _)| *at >= fault_at)
        .collect();
    let first_ack = after
        .iter()
        .find(|(_, p)| affected.is_empty() || affected.contains(p))
        .map(|(at, _)| ms(*at));
    let mut first_per_publisher: HashMap<u32, Instant> = HashMap::new();
    for (at, p) in &after {
        first_per_publisher.entry(*p).or_insert(*at);
    }
    let all_acked = (first_per_publisher.len() == journal.acked.len())
        .then(|| first_per_publisher.values().map(|at| ms(*at)).max())
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
    use std::time::Duration;

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
