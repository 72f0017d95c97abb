//! Durable acknowledgements (ARCHITECTURE.md: "with persistence on, no acknowledgement leaves
//! before the data it acknowledges is durable").
//!
//! The core writes to the store on the connection's behalf and records the write's ticket on the
//! session ([`Session::ticket`]). After each batch of work the connection hands the bytes it
//! produced to the [`Gate`]: if the session's last write is not durable yet, they are held, in
//! order behind anything already held (MQTT wants acknowledgements in the order of the packets
//! they answer), until the store's flusher reports the ticket durable and wakes the connection
//! through its session waker. Without persistence the gate holds nothing and costs one branch.
//!
//! Holding everything behind the first held packet is simple and keeps every ordering rule; the
//! cost is that a PINGRESP or a QoS 0 PUBLISH may wait one group commit (a few milliseconds).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use wardgate_core::{Session, Store, Ticket, Wake};

use crate::wake::Control;

/// Output waiting for the store. Without persistence it is empty (one pointer: every idle
/// connection keeps one).
pub(super) struct Gate(Option<Box<Held>>);

struct Held {
    store: Arc<dyn Store>,
    session: Arc<Session>,
    held: VecDeque<(Ticket, BytesMut)>,
    held_bytes: usize,
    /// The ticket the store was asked to wake us for.
    waiting: Option<Ticket>,
}

impl Gate {
    pub(super) fn new(session: &Arc<Session>) -> Gate {
        Gate(session.store().map(|store| {
            Box::new(Held {
                store: store.clone(),
                session: session.clone(),
                held: VecDeque::new(),
                held_bytes: 0,
                waiting: None,
            })
        }))
    }

    /// Bytes held back (they count towards the output buffer's limits).
    pub(super) fn held_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |g| g.held_bytes)
    }

    /// Takes what was written to `wbuf` from `from` on, if it must wait: the session's last
    /// store write is not durable yet, or earlier output is still held.
    pub(super) fn hold(&mut self, wbuf: &mut BytesMut, from: usize) {
        let Some(g) = &mut self.0 else { return };
        if wbuf.len() <= from {
            return;
        }
        let mut need = g.session.ticket();
        if g.held.is_empty() && g.store.durable() >= need {
            return;
        }
        if let Some((last, _)) = g.held.back() {
            need = need.max(*last);
        }
        let chunk = wbuf.split_off(from);
        g.held_bytes += chunk.len();
        match g.held.back_mut() {
            Some((last, bytes)) if *last == need => bytes.extend_from_slice(&chunk),
            _ => g.held.push_back((need, chunk)),
        }
    }

    /// Moves what became durable to `wbuf`, and asks the store to wake `waker` when the next
    /// held chunk is.
    pub(super) fn release(&mut self, wbuf: &mut BytesMut, waker: &Arc<Control>) {
        let Some(g) = &mut self.0 else { return };
        if g.held.is_empty() {
            return;
        }
        let durable = g.store.durable();
        while let Some((ticket, _)) = g.held.front()
            && *ticket <= durable
        {
            if let Some((_, chunk)) = g.held.pop_front() {
                g.held_bytes -= chunk.len();
                wbuf.extend_from_slice(&chunk);
            }
        }
        if let Some((ticket, _)) = g.held.front()
            && g.waiting != Some(*ticket)
        {
            g.waiting = Some(*ticket);
            g.store
                .wait_durable(*ticket, waker.clone() as Arc<dyn Wake>);
        }
    }
}
