//! Incoming QoS 2: the packet ids awaiting PUBREL.

use super::*;

impl Session {
    /// Takes an incoming QoS 2 PUBLISH whose flows awaiting PUBREL may number at most
    /// `receive_maximum` (the server's Receive Maximum). A new packet id is recorded only when
    /// it is routed ([`Qos2Receipt::Route`]): a refusal leaves nothing behind, so the client's
    /// retransmission after it resumes the session is routed, not taken for a duplicate.
    pub fn receive_qos2(&self, packet_id: PacketId, receive_maximum: usize) -> Qos2Receipt {
        let mut st = self.state.lock();
        if st.incoming_qos2.contains(&packet_id.get()) {
            Qos2Receipt::Duplicate
        } else if st.incoming_qos2.len() >= receive_maximum {
            Qos2Receipt::OverLimit
        } else {
            st.incoming_qos2.insert(packet_id.get());
            Qos2Receipt::Route
        }
    }

    /// Handles PUBREL. Returns false if the id was unknown.
    pub fn pubrel(&self, packet_id: PacketId) -> bool {
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
