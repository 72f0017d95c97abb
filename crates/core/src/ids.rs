//! Identifiers the core's modules share.

/// A broker-unique session number (never reused while the process runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);
