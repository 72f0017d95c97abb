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
//! In a cluster the same gate holds a QoS 1/2 PUBLISH's acknowledgement until JetStream has the
//! message (the fabric's ticket); when the cluster says it cannot make it durable
//! ([`Fabric::unavailable`]), [`Gate::release`] breaks and the connection ends without it.
//!
//! Holding everything behind the first held packet is simple and keeps every ordering rule; the
//! cost is that a PINGRESP or a QoS 0 PUBLISH may wait one group commit (a few milliseconds).

use std::collections::VecDeque;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::Arc;

use bytes::BytesMut;
use wardgate_core::{Fabric, Session, Store, Ticket, Wake};

use crate::wake::Control;

/// Output waiting for the store or the cluster. Without either it is empty (one pointer: every
/// idle connection keeps one).
pub(super) struct Gate(Option<Box<Held>>);

struct Held {
    store: Option<Arc<dyn Store>>,
    fabric: Option<Arc<dyn Fabric>>,
    session: Arc<Session>,
    held: VecDeque<(Need, BytesMut)>,
    held_bytes: usize,
    /// What the store and the fabric were asked to wake us for.
    waiting: Option<Need>,
}

/// What a held chunk waits for: a store ticket and a fabric ticket (`Ticket(0)`: nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Need {
    store: Ticket,
    fabric: Ticket,
}

impl Need {
    fn max(self, other: Need) -> Need {
        Need {
            store: self.store.max(other.store),
            fabric: self.fabric.max(other.fabric),
        }
    }
}

impl Held {
    /// What the session's last writes and forwards need now.
    fn need(&self) -> Need {
        Need {
            store: self.session.ticket(),
            fabric: self.session.fabric_ticket(),
        }
    }

    /// Whether `need` is met: durable in the store and in the cluster.
    fn met(&self, need: Need) -> bool {
        self.store
            .as_ref()
            .is_none_or(|s| s.durable() >= need.store)
            && self
                .fabric
                .as_ref()
                .is_none_or(|f| f.durable() >= need.fabric)
    }
}

impl Gate {
    pub(super) fn new(session: &Arc<Session>, fabric: Option<&Arc<dyn Fabric>>) -> Gate {
        let store = session.store().cloned();
        if store.is_none() && fabric.is_none() {
            return Gate(None);
        }
        Gate(Some(Box::new(Held {
            store,
            fabric: fabric.cloned(),
            session: session.clone(),
            held: VecDeque::new(),
            held_bytes: 0,
            waiting: None,
        })))
    }

    /// Bytes held back (they count towards the output buffer's limits).
    pub(super) fn held_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |g| g.held_bytes)
    }

    /// Takes what was written to `wbuf` from `from` on, if it must wait: the session's last
    /// store write or cluster forward is not durable yet, or earlier output is still held.
    pub(super) fn hold(&mut self, wbuf: &mut BytesMut, from: usize) {
        let Some(g) = &mut self.0 else { return };
        if wbuf.len() <= from {
            return;
        }
        let mut need = g.need();
        if g.held.is_empty() && g.met(need) {
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

    /// Moves what became durable to `wbuf`, and asks the store and the fabric to wake `waker`
    /// when the next held chunk is. `Break` when the next held chunk waits for the cluster and
    /// the cluster cannot make it durable now ([`Fabric::unavailable`]): the connection ends
    /// without it.
    pub(super) fn release(
        &mut self,
        wbuf: &mut BytesMut,
        waker: &Arc<Control>,
    ) -> ControlFlow<Unavailable> {
        let Some(g) = &mut self.0 else {
            return Continue(());
        };
        while let Some((need, _)) = g.held.front()
            && g.met(*need)
        {
            if let Some((_, chunk)) = g.held.pop_front() {
                g.held_bytes -= chunk.len();
                wbuf.extend_from_slice(&chunk);
            }
        }
        if let Some((need, _)) = g.held.front()
            && let Some(fabric) = &g.fabric
            && fabric.durable() < need.fabric
            && fabric.unavailable()
        {
            return Break(Unavailable);
        }
        if let Some((need, _)) = g.held.front()
            && g.waiting != Some(*need)
        {
            let need = *need;
            g.waiting = Some(need);
            // Each wakes us once its part is durable; the next pass finds whether both are.
            if let Some(store) = &g.store {
                store.wait_durable(need.store, waker.clone() as Arc<dyn Wake>);
            }
            if let Some(fabric) = &g.fabric {
                fabric.wait_durable(need.fabric, waker.clone() as Arc<dyn Wake>);
            }
        }
        Continue(())
    }
}

/// The cluster cannot make what a held chunk waits for durable now.
#[derive(Debug)]
pub(super) struct Unavailable;
