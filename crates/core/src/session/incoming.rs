//! Incoming QoS 2: the packet ids awaiting PUBREL.
//!
//! A packet id is taken by [`Session::receive_qos2`] and held by the [`Qos2Admission`] it
//! returns until the message is routed ([`crate::Broker::publish_run`]). Whatever refuses the
//! message before it is taken (authorization, admission, a closed connection, every matching
//! queue full) drops the admission, and that releases the id: the client's retransmission is then
//! routed, not answered as a duplicate of a message never delivered. The connection holds no
//! QoS 2 rule.

use super::*;

/// What [`Session::receive_qos2`] decided for an incoming QoS 2 PUBLISH.
#[derive(Debug)]
pub enum Qos2Receipt {
    /// A new packet id: route the message with this admission, then answer PUBREC.
    Route(Qos2Admission),
    /// A retransmission of a packet id not yet released: answer PUBREC again, do not route.
    Duplicate,
    /// A new packet id past the Receive Maximum (DISCONNECT 0x93); nothing was recorded.
    OverLimit,
}

/// A new incoming QoS 2 packet id, recorded as awaiting PUBREL (it counts against the Receive
/// Maximum, and a retransmission is a duplicate) while this lives. Routing the message keeps the
/// id until PUBREL; dropping the admission unrouted, or routing a message that every matching
/// queue dropped, releases it.
#[derive(Debug)]
#[must_use = "dropping the admission releases the packet id: route the message with it"]
pub struct Qos2Admission {
    session: Arc<Session>,
    packet_id: PacketId,
    /// Set once the message is taken: the id then stays until PUBREL.
    taken: bool,
}

impl Qos2Admission {
    /// The PUBLISH's packet id.
    pub fn packet_id(&self) -> PacketId {
        self.packet_id
    }

    /// The message was taken: the packet id stays recorded until PUBREL.
    pub(crate) fn keep(mut self) {
        self.taken = true;
    }
}

impl Drop for Qos2Admission {
    fn drop(&mut self) {
        if !self.taken {
            self.session.release_qos2(self.packet_id);
        }
    }
}

impl Session {
    /// Takes an incoming QoS 2 PUBLISH whose flows awaiting PUBREL may number at most
    /// `receive_maximum` (the server's Receive Maximum). A new packet id is recorded for as long
    /// as the returned [`Qos2Admission`] lives, and after that only if the message was routed.
    pub fn receive_qos2(
        self: &Arc<Self>,
        packet_id: PacketId,
        receive_maximum: usize,
    ) -> Qos2Receipt {
        let mut st = self.state.lock();
        if st.incoming_qos2.contains(&packet_id.get()) {
            Qos2Receipt::Duplicate
        } else if st.incoming_qos2.len() >= receive_maximum {
            Qos2Receipt::OverLimit
        } else {
            st.incoming_qos2.insert(packet_id.get());
            Qos2Receipt::Route(Qos2Admission {
                session: Arc::clone(self),
                packet_id,
                taken: false,
            })
        }
    }

    /// Handles PUBREL. Returns false if the id was unknown.
    pub fn pubrel(&self, packet_id: PacketId) -> bool {
        self.release_qos2(packet_id)
    }

    /// Ends the incoming QoS 2 flow of `packet_id` (PUBREL, or a refused message). Returns false
    /// if the id was unknown.
    fn release_qos2(&self, packet_id: PacketId) -> bool {
        let mut st = self.state.lock();
        let known = st.incoming_qos2.remove(&packet_id.get());
        if known && st.persist_subs {
            // PUBCOMP waits for this: a client reuses the packet id once it has PUBCOMP.
            self.write(&[Op::ReleaseQos2 {
                session: self.id,
                packet_id,
            }]);
        }
        known
    }

    /// Whether incoming QoS 2 packet ids of this session are stored (it has a session expiry).
    pub(crate) fn persists_incoming(&self) -> bool {
        self.store.is_some() && self.state.lock().persist_subs
    }
}
