//! How the core wakes a connection task.

/// How the core tells a connection task that its session has work (queued messages, a kick).
pub trait Wake: Send + Sync {
    /// Wakes the connection task; cheap and idempotent.
    fn wake(&self);
}

impl std::fmt::Debug for dyn Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}
