//! Small in-process fixtures for tests and benches that drive the core without sockets: a
//! [`Wake`] that counts its wake-ups, and a [`Message`] built from plain values.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use wardgate_core::{Message, Wake};
use wardgate_protocol::{PublishProperties, QoS, TopicName};

/// A session's waker that only counts how often the core woke it (where a server would wake
/// the connection's task).
#[derive(Debug, Default)]
pub struct WakeCount(AtomicUsize);

impl WakeCount {
    /// How many times the session was woken so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Wake for WakeCount {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A message as a client would publish it: no properties, no origin, no expiry.
///
/// # Panics
///
/// If `topic` is not a valid topic name.
pub fn message(topic: &str, payload: &str, qos: QoS, retain: bool) -> Message {
    Message {
        topic: TopicName::new(topic).expect("a valid topic name"),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: PublishProperties::default(),
        origin: None,
        expires_at: None,
    }
}
