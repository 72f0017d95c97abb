//! Wardgate's fault-injection suite (issue 18, docs/cluster.md "The fault-injection suite"):
//! three Wardgate nodes and three NATS servers as real processes, each node's pair in its own
//! network namespace with its own address; QoS 1 and 2 publishers and persistent subscribers
//! spread over the nodes; faults under load (kill -9 of a node or of a NATS server, SIGSTOP,
//! a partition, a rolling restart) at times drawn from a seed; a checker that accounts for every
//! acknowledged message in every subscription; a report per fault.
//!
//! It needs root (namespaces, veth, nftables): it is a command (`wardgate-faults run`), not a
//! `cargo test`; `scripts/test` runs its short version.

pub mod checker;
pub mod error;
pub mod fault;
pub mod load;
pub mod netns;
pub mod procs;
pub mod report;
pub mod run;
