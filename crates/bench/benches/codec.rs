//! Codec throughput: decoding and encoding PUBLISH packets of 16 B and 1 KiB payloads in MQTT
//! 3.1.1 and 5, reported in MB/s of wire bytes.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wardgate_protocol::{
    DecodeLimits, Packet, PacketId, ProtocolVersion, Publish, PublishProperties, PublishQos, QoS,
    TopicName, decode, encode_publish,
};

/// Packets per iteration: enough that per-iteration overhead disappears.
const BATCH: usize = 256;

fn publish(payload: usize, qos: QoS) -> Publish {
    Publish {
        dup: false,
        qos: PublishQos::new(qos, PacketId::new(17).expect("id")),
        retain: false,
        topic: Some(TopicName::new("site/7/line/3/device/42/telemetry").expect("topic")),
        properties: PublishProperties::default(),
        payload: Bytes::from(vec![0x5A; payload]),
    }
}

fn cases() -> Vec<(String, Publish, ProtocolVersion)> {
    let mut out = Vec::new();
    for (vname, version) in [("v3", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        for payload in [16, 1024] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
                out.push((
                    format!("{vname}/{payload}B/q{}", qos.as_u8()),
                    publish(payload, qos),
                    version,
                ));
            }
        }
    }
    out
}

fn decode_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_publish");
    let limits = DecodeLimits::default();
    for (name, p, version) in cases() {
        let mut wire = BytesMut::new();
        for _ in 0..BATCH {
            encode_publish(&p, version, &mut wire);
        }
        let wire = wire.freeze();
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(&name), &wire, |b, wire| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                let mut n = 0;
                while let Ok(Some(packet)) = decode(&mut buf, Some(version), &limits) {
                    if let Packet::Publish(p) = packet {
                        n += p.payload.len();
                    }
                }
                black_box(n)
            });
        });
    }
    group.finish();
}

fn encode_publish_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_publish");
    for (name, p, version) in cases() {
        let mut probe = BytesMut::new();
        encode_publish(&p, version, &mut probe);
        group.throughput(Throughput::Bytes((probe.len() * BATCH) as u64));
        let mut out = BytesMut::with_capacity(probe.len() * BATCH);
        group.bench_with_input(BenchmarkId::from_parameter(&name), &p, |b, p| {
            b.iter(|| {
                out.clear();
                for _ in 0..BATCH {
                    encode_publish(black_box(p), version, &mut out);
                }
                black_box(out.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, decode_publish, encode_publish_batch);
criterion_main!(benches);
