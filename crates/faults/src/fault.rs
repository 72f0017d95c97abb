//! The faults, and a run's plan of them: which fault, on which node, when, for how long, all
//! drawn from one seed (printed in the report) so a run can be repeated exactly.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// A fault the suite injects under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// No fault: the load alone (the checker's baseline).
    None,
    /// kill -9 of a Wardgate node, restarted after the down time.
    KillNode,
    /// kill -9 of a NATS server, restarted after the down time.
    KillNats,
    /// SIGSTOP of a Wardgate node, SIGCONT after the down time.
    PauseNode,
    /// A node's namespace (its Wardgate and its NATS server) cut off from the other nodes,
    /// healed after the down time.
    Partition,
    /// Every Wardgate node stopped (SIGTERM) and started again, one after another.
    RollingRestart,
    /// A node cut off as by [`FaultKind::Partition`], then its Wardgate killed (kill -9)
    /// before the partition heals, then restarted: what it acknowledged while cut off is lost
    /// unless it acknowledged nothing it could not make durable (guarantee 5).
    PartitionKill,
}

impl FaultKind {
    /// Every fault, in the order a full run injects them.
    pub const ALL: [FaultKind; 7] = [
        FaultKind::None,
        FaultKind::KillNode,
        FaultKind::KillNats,
        FaultKind::PauseNode,
        FaultKind::Partition,
        FaultKind::RollingRestart,
        FaultKind::PartitionKill,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::KillNode => "kill-node",
            FaultKind::KillNats => "kill-nats",
            FaultKind::PauseNode => "pause-node",
            FaultKind::Partition => "partition",
            FaultKind::RollingRestart => "rolling-restart",
            FaultKind::PartitionKill => "partition-kill",
        }
    }

    /// The fault named `name`.
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One planned fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Which fault.
    pub kind: FaultKind,
    /// The node it hits (the first one for a rolling restart).
    pub node: usize,
    /// How long after the load started it is injected.
    #[serde(serialize_with = "millis")]
    pub after: Duration,
    /// How long the node stays down, paused or cut off.
    #[serde(serialize_with = "millis")]
    pub down: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// The timing bounds of a plan.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The earliest injection after the load starts; the latest is twice it.
    pub earliest: Duration,
    /// The shortest down time; the longest is twice it.
    pub shortest_down: Duration,
}

/// `rounds` rounds of each of `kinds`, in order, with random nodes and timing from `seed`.
pub fn plan(
    kinds: &[FaultKind],
    rounds: usize,
    nodes: usize,
    seed: u64,
    t: Timing,
) -> Vec<Planned> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(kinds.len() * rounds);
    for _ in 0..rounds {
        for &kind in kinds {
            out.push(Planned {
                kind,
                node: rng.below(nodes as u64) as usize,
                after: t.earliest + rng.fraction_of(t.earliest),
                down: t.shortest_down + rng.fraction_of(t.shortest_down),
            });
        }
    }
    out
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator, enough for timing.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A duration in `0..=d`.
    pub fn fraction_of(&mut self, d: Duration) -> Duration {
        let ms = d.as_millis() as u64;
        Duration::from_millis(self.below(ms + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_plan_and_bounds_hold() {
        let t = Timing {
            earliest: Duration::from_secs(2),
            shortest_down: Duration::from_secs(3),
        };
        let a = plan(&FaultKind::ALL, 3, 3, 42, t);
        assert_eq!(a, plan(&FaultKind::ALL, 3, 3, 42, t));
        assert_ne!(a, plan(&FaultKind::ALL, 3, 3, 43, t));
        assert_eq!(a.len(), 21);
        for p in &a {
            assert!(p.node < 3);
            assert!(p.after >= t.earliest && p.after <= t.earliest * 2);
            assert!(p.down >= t.shortest_down && p.down <= t.shortest_down * 2);
        }
    }

    #[test]
    fn names_round_trip() {
        for kind in FaultKind::ALL {
            assert_eq!(FaultKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(FaultKind::parse("kill"), None);
    }
}
