//! Property tests: every packet type, in every version, survives encode → decode unchanged, and
//! `encoded_len` is exact.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use wardgate_protocol::{
    DecodeLimits, Packet, ProtocolVersion, PublishParts, decode, encode, encode_publish,
    encode_publish_parts, encoded_len, encoded_publish_len,
};

use crate::strategies::*;

const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn round_trip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out);
    prop_assert_eq!(out.len(), encoded_len(packet, version));
    // CONNECT is what tells the decoder the version.
    let session = if matches!(packet, Packet::Connect(_)) {
        None
    } else {
        Some(version)
    };
    let decoded = decode(&mut out, session, &DecodeLimits::default());
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(out.is_empty(), "{} bytes left over", out.len());
    Ok(())
}

macro_rules! round_trips {
    ($($name:ident: $version:expr, $strategy:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(packet in $strategy) {
                    round_trip(&packet, $version)?;
                }
            )*
        }
    };
}

round_trips! {
    connect_v31: V31, connect(V31).prop_map(|c| Packet::Connect(Box::new(c)));
    connect_v311: V311, connect(V311).prop_map(|c| Packet::Connect(Box::new(c)));
    connect_v5: V5, connect(V5).prop_map(|c| Packet::Connect(Box::new(c)));
    connack_v311: V311, connack(V311).prop_map(Packet::ConnAck);
    connack_v5: V5, connack(V5).prop_map(Packet::ConnAck);
    publish_v311: V311, publish(V311).prop_map(Packet::Publish);
    publish_v5: V5, publish(V5).prop_map(Packet::Publish);
    puback_v311: V311, puback(V311, PUBACK_REASONS).prop_map(Packet::PubAck);
    puback_v5: V5, puback(V5, PUBACK_REASONS).prop_map(Packet::PubAck);
    pubrec_v311: V311, puback(V311, PUBACK_REASONS).prop_map(Packet::PubRec);
    pubrec_v5: V5, puback(V5, PUBACK_REASONS).prop_map(Packet::PubRec);
    pubrel_v311: V311, puback(V311, PUBREL_REASONS).prop_map(Packet::PubRel);
    pubrel_v5: V5, puback(V5, PUBREL_REASONS).prop_map(Packet::PubRel);
    pubcomp_v311: V311, puback(V311, PUBREL_REASONS).prop_map(Packet::PubComp);
    pubcomp_v5: V5, puback(V5, PUBREL_REASONS).prop_map(Packet::PubComp);
    subscribe_v311: V311, subscribe(V311).prop_map(Packet::Subscribe);
    subscribe_v5: V5, subscribe(V5).prop_map(Packet::Subscribe);
    suback_v311: V311, suback(V311).prop_map(Packet::SubAck);
    suback_v5: V5, suback(V5).prop_map(Packet::SubAck);
    unsubscribe_v311: V311, unsubscribe(V311).prop_map(Packet::Unsubscribe);
    unsubscribe_v5: V5, unsubscribe(V5).prop_map(Packet::Unsubscribe);
    unsuback_v311: V311, unsuback(V311).prop_map(Packet::UnsubAck);
    unsuback_v5: V5, unsuback(V5).prop_map(Packet::UnsubAck);
    pingreq_v311: V311, Just(Packet::PingReq);
    pingreq_v5: V5, Just(Packet::PingReq);
    pingresp_v311: V311, Just(Packet::PingResp);
    pingresp_v5: V5, Just(Packet::PingResp);
    disconnect_v311: V311, disconnect(V311).prop_map(Packet::Disconnect);
    disconnect_v5: V5, disconnect(V5).prop_map(Packet::Disconnect);
    auth_v5: V5, auth().prop_map(Packet::Auth);
}

proptest! {
    #[test]
    fn encode_publish_is_encode_of_the_packet(p in publish(V5), v5 in any::<bool>()) {
        let version = if v5 { V5 } else { V311 };
        let mut fast = BytesMut::new();
        encode_publish(&p, version, &mut fast);
        prop_assert_eq!(fast.len(), encoded_publish_len(&p, version));
        let mut general = BytesMut::new();
        encode(&Packet::Publish(p), version, &mut general);
        prop_assert_eq!(fast, general);
    }

    /// Borrowed parts encode as the packet does; no properties is an empty property section.
    #[test]
    fn publish_parts_encode_as_the_packet(mut p in publish(V5), v5 in any::<bool>(), bare in any::<bool>()) {
        let version = if v5 { V5 } else { V311 };
        if bare {
            p.properties = Default::default();
        }
        let mut parts = PublishParts::of(&p);
        if bare {
            parts.properties = None;
        }
        let mut out = BytesMut::new();
        encode_publish_parts(&parts, version, &mut out);
        prop_assert_eq!(out.len(), parts.encoded_len(version));
        let mut general = BytesMut::new();
        encode(&Packet::Publish(p.clone()), version, &mut general);
        prop_assert_eq!(out, general);
    }

    /// A stream of packets cut at arbitrary points decodes to the same packets in order.
    #[test]
    fn a_stream_split_anywhere_decodes_in_order(
        packets in vec(packet(V5).prop_filter("no CONNECT mid-session", |p| !matches!(p, Packet::Connect(_))), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut wire = BytesMut::new();
        for p in &packets {
            encode(p, V5, &mut wire);
        }
        let wire = wire.freeze();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut fed = 0;
        for point in points {
            buf.extend_from_slice(&wire[fed..point]);
            fed = point;
            while let Some(p) = decode(&mut buf, Some(V5), &DecodeLimits::default()).map_err(|e| TestCaseError::fail(e.to_string()))? {
                decoded.push(p);
            }
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }
}
