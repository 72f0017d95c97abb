//! Arbitrary and corrupted input never panics the decoder, and whatever it accepts re-encodes to
//! something that decodes to the same packet.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use wardgate_protocol::{
    DecodeLimits, MAX_PACKET_SIZE, Packet, ProtocolVersion, decode, encode, encoded_len,
};

use crate::strategies::packet;

fn any_session() -> impl Strategy<Value = Option<ProtocolVersion>> {
    select(vec![
        None,
        Some(ProtocolVersion::V31),
        Some(ProtocolVersion::V311),
        Some(ProtocolVersion::V5),
    ])
}

fn any_limit() -> impl Strategy<Value = u32> {
    prop_oneof![Just(MAX_PACKET_SIZE), 0u32..64]
}

/// Decodes everything in `bytes` the way a connection would (the CONNECT fixes the version),
/// checking that each accepted packet is stable under encode → decode.
fn decode_stream(
    bytes: &[u8],
    mut session: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<(), TestCaseError> {
    let limits = DecodeLimits { max_packet_size };
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(packet)) = decode(&mut buf, session, &limits) {
        let layout = match &packet {
            Packet::Connect(c) => c.protocol,
            _ => session.unwrap_or(ProtocolVersion::V5),
        };
        let mut again = BytesMut::new();
        encode(&packet, layout, &mut again);
        prop_assert_eq!(again.len(), encoded_len(&packet, layout));
        let redecoded = decode(&mut again, session, &DecodeLimits::default());
        prop_assert_eq!(redecoded, Ok(Some(packet.clone())));
        if let Packet::Connect(c) = &packet {
            session = Some(c.protocol);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..300),
        session in any_session(),
        max in any_limit(),
    ) {
        decode_stream(&bytes, session, max)?;
    }

    /// Valid packets with a few bytes overwritten, cut short or extended reach far deeper into
    /// the decoder than random bytes do.
    #[test]
    fn corrupted_packets_never_panic(
        v5 in any::<bool>(),
        packets in vec(packet(ProtocolVersion::V5), 1..3),
        edits in vec((any::<Index>(), any::<u8>()), 0..4),
        cut in any::<Index>(),
        max in any_limit(),
    ) {
        let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
        let mut wire = BytesMut::new();
        for p in &packets {
            encode(p, version, &mut wire);
        }
        let mut bytes = wire.to_vec();
        for (at, value) in edits {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        decode_stream(&bytes, Some(version), max)?;
        decode_stream(&bytes, None, max)?;
    }
}

#[test]
fn every_two_byte_input_is_handled() {
    for session in [None, Some(ProtocolVersion::V311), Some(ProtocolVersion::V5)] {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let mut buf = BytesMut::from(&[a, b][..]);
                let _ = decode(&mut buf, session, &DecodeLimits::default());
            }
        }
    }
}
