//! Feeds arbitrary bytes to `decode` as a connection would (the first byte picks the session
//! state and a packet-size limit), and checks that every packet it accepts re-encodes without
//! panicking, to exactly `encoded_len` bytes, which decode to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wardgate_protocol::{
    DecodeLimits, MAX_PACKET_SIZE, Packet, ProtocolVersion, SubscriptionFilter, decode, encode,
    encode_publish, encoded_len, topic_matches,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let mut session = match selector & 0b11 {
        0 => None,
        1 => Some(ProtocolVersion::V31),
        2 => Some(ProtocolVersion::V311),
        _ => Some(ProtocolVersion::V5),
    };
    let max_packet_size = match (selector >> 2) & 0b11 {
        0 => 16,
        1 => 64,
        2 => 1024,
        _ => MAX_PACKET_SIZE,
    };
    let limits = DecodeLimits { max_packet_size };
    let mut buf = BytesMut::from(bytes);
    let mut last_topic = None;
    while let Ok(Some(packet)) = decode(&mut buf, session, &limits) {
        let layout = match &packet {
            Packet::Connect(c) => c.protocol,
            _ => session.unwrap_or(ProtocolVersion::V5),
        };
        let mut out = BytesMut::new();
        encode(&packet, layout, &mut out);
        assert_eq!(
            out.len(),
            encoded_len(&packet, layout),
            "encoded_len of {packet:?}"
        );
        let again = decode(&mut out, session, &DecodeLimits::default());
        assert_eq!(again, Ok(Some(packet.clone())), "re-decoding {packet:?}");

        match &packet {
            Packet::Connect(c) => session = Some(c.protocol),
            Packet::Publish(p) => {
                let mut fast = BytesMut::new();
                encode_publish(p, layout, &mut fast);
                let mut general = BytesMut::new();
                encode(&packet, layout, &mut general);
                assert_eq!(fast, general);
                last_topic = p.topic.clone();
            }
            Packet::Subscribe(s) => {
                for (filter, _) in &s.filters {
                    let _ = SubscriptionFilter::new(filter.clone());
                    if let Some(topic) = &last_topic {
                        assert_eq!(filter.matches(topic), topic_matches(filter, topic));
                    }
                }
            }
            _ => {}
        }
    }
});
