//! Shared helpers: hex parsing, packet builders, and the runner for data-driven decode tables.

use bytes::{Bytes, BytesMut};
use wardgate_protocol::{
    DecodeError, DecodeLimits, Packet, PacketId, ProtocolVersion, TopicFilter, TopicName, decode,
    encode, encoded_len,
};

pub(crate) const NONE: Option<ProtocolVersion> = None;
pub(crate) const V3: Option<ProtocolVersion> = Some(ProtocolVersion::V311);
pub(crate) const V5: Option<ProtocolVersion> = Some(ProtocolVersion::V5);

/// Bytes from a readable spec: hex tokens ("30", "0004", "DEADBEEF") and quoted ASCII ('a/b').
pub(crate) fn hex(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for token in spec.split_whitespace() {
        if let Some(text) = token.strip_prefix('\'') {
            let text = text
                .strip_suffix('\'')
                .expect("quoted token ends with a quote");
            out.extend_from_slice(text.as_bytes());
        } else {
            assert!(token.len() % 2 == 0, "odd hex token {token:?}");
            for i in (0..token.len()).step_by(2) {
                out.push(u8::from_str_radix(&token[i..i + 2], 16).expect("hex digit"));
            }
        }
    }
    out
}

pub(crate) fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero packet id")
}

pub(crate) fn topic(s: &str) -> TopicName {
    TopicName::new(s).expect("valid topic name")
}

pub(crate) fn filter(s: &str) -> TopicFilter {
    TopicFilter::new(s).expect("valid topic filter")
}

pub(crate) fn b(s: &'static [u8]) -> Bytes {
    Bytes::from_static(s)
}

/// What decoding a case must give.
pub(crate) enum Expect {
    /// This packet, and encoding it gives back exactly the input bytes.
    Canonical(Packet),
    /// This packet; the encoder is allowed to choose a shorter form.
    Packet(Packet),
    /// This error, whose reason code must be the given byte.
    Error(DecodeError, u8),
    /// `Ok(None)`: more bytes needed.
    Incomplete,
}

/// One row of a decode table.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) version: Option<ProtocolVersion>,
    pub(crate) bytes: Vec<u8>,
    pub(crate) max_packet_size: Option<u32>,
    pub(crate) expect: Expect,
}

pub(crate) fn case(
    name: &'static str,
    version: Option<ProtocolVersion>,
    spec: &str,
    expect: Expect,
) -> Case {
    Case {
        name,
        version,
        bytes: hex(spec),
        max_packet_size: None,
        expect,
    }
}

pub(crate) fn canonical(p: Packet) -> Expect {
    Expect::Canonical(p)
}

pub(crate) fn malformed(msg: &'static str) -> Expect {
    Expect::Error(DecodeError::MalformedPacket(msg), 0x81)
}

pub(crate) fn protocol_error(msg: &'static str) -> Expect {
    Expect::Error(DecodeError::ProtocolError(msg), 0x82)
}

/// The version that decides the encoding layout of a decoded packet.
fn layout_version(case: &Case, packet: &Packet) -> ProtocolVersion {
    match (packet, case.version) {
        (Packet::Connect(c), _) => c.protocol,
        (_, Some(v)) => v,
        (_, None) => ProtocolVersion::V5,
    }
}

/// Runs every case and reports all failures at once.
pub(crate) fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(why) = run_one(case) {
            failures.push(format!("{}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn run_one(case: &Case) -> Result<(), String> {
    let limits = DecodeLimits {
        max_packet_size: case
            .max_packet_size
            .unwrap_or(DecodeLimits::default().max_packet_size),
    };
    let mut buf = BytesMut::from(&case.bytes[..]);
    let got = decode(&mut buf, case.version, &limits);
    match &case.expect {
        Expect::Incomplete => {
            if got != Ok(None) {
                return Err(format!("expected Ok(None), got {got:?}"));
            }
            if buf[..] != case.bytes[..] {
                return Err("the buffer changed on Ok(None)".into());
            }
        }
        Expect::Error(error, code) => {
            if got.as_ref() != Err(error) {
                return Err(format!("expected Err({error:?}), got {got:?}"));
            }
            if error.reason_code().0 != *code {
                return Err(format!(
                    "reason code {} != 0x{code:02X}",
                    error.reason_code()
                ));
            }
        }
        Expect::Canonical(packet) | Expect::Packet(packet) => {
            if got.as_ref() != Ok(&Some(packet.clone())) {
                return Err(format!("expected {packet:?}, got {got:?}"));
            }
            if !buf.is_empty() {
                return Err(format!("{} bytes left over", buf.len()));
            }
            let version = layout_version(case, packet);
            let mut out = BytesMut::new();
            encode(packet, version, &mut out);
            if out.len() != encoded_len(packet, version) {
                return Err("encoded_len disagrees with encode".into());
            }
            if matches!(case.expect, Expect::Canonical(_)) && out[..] != case.bytes[..] {
                return Err(format!("re-encoded as {:02X?}", &out[..]));
            }
            // Streaming: every strict prefix asks for more bytes and leaves the buffer alone.
            for cut in 0..case.bytes.len() {
                let mut prefix = BytesMut::from(&case.bytes[..cut]);
                let got = decode(&mut prefix, case.version, &limits);
                if got != Ok(None) || prefix.len() != cut {
                    return Err(format!("prefix of {cut} bytes gave {got:?}"));
                }
            }
        }
    }
    Ok(())
}
