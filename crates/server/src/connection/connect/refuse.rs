//! Refusing a CONNECT: the refusals decided from CONNECT and the settings alone, the CONNACK
//! that says so, made to fit the client's Maximum Packet Size [MQTT-3.1.2-24].

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wardgate_protocol::{
    ConnAck, ConnAckProperties, Connect, Packet, ProtocolVersion, QoS, ReasonCode, encode,
    encoded_len,
};

use crate::connection::inbound::reserved_for_the_broker;
use crate::connection::{ConnectionSettings, linger};

/// Refusals decided from CONNECT and the settings alone, with why (for the log line: the
/// reason code alone does not say it, 0x85 stands for two things in v3.1.1).
pub(super) fn refuse(
    connect: &Connect,
    settings: &ConnectionSettings,
    has_authn: bool,
) -> Option<(ReasonCode, String)> {
    if !connect.protocol.is_v5() && connect.client_id.is_empty() && !connect.clean_start {
        // [MQTT-3.1.3-8]: a v3.1.1 client with no identifier must ask for a clean session.
        return Some((
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "an empty client ID needs CleanSession 1 [MQTT-3.1.3-8]".to_owned(),
        ));
    }
    if let Some(max) = settings.max_keep_alive
        && !connect.protocol.is_v5()
        && (connect.keep_alive == 0 || connect.keep_alive > max)
    {
        // v3.1.1 has no Server Keep Alive to tell the client of the cap: refused with return
        // code 2, as Mosquitto's max_keepalive does.
        let asked = match connect.keep_alive {
            0 => "keep alive 0 (none)".to_owned(),
            k => format!("keep alive {k} s"),
        };
        return Some((
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            format!(
                "{asked} exceeds maxKeepAliveSeconds {max} (Broker advanced.clients); MQTT \
                 3.1.1 cannot be told a shorter one, so it is refused with return code 2: \
                 connect with a keep alive of 1 to {max} s"
            ),
        ));
    }
    if connect
        .will
        .as_ref()
        .is_some_and(|w| reserved_for_the_broker(w.topic.as_str()))
    {
        // A will is a publish the broker makes for the client later: refused as a PUBLISH to
        // `$SYS` would be, but at CONNECT, where a refusal can still be told.
        return Some((
            ReasonCode::NOT_AUTHORIZED,
            "the will topic is in `$SYS`, which only the broker publishes to".to_owned(),
        ));
    }
    if !has_authn && let Some(method) = &connect.properties.authentication_method {
        // No enhanced authentication method is configured on this port.
        return Some((
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            format!("authentication method {method} but this port has no authentication"),
        ));
    }
    None
}

/// Makes a CONNACK fit the client's Maximum Packet Size [MQTT-3.1.2-24]: without the
/// properties that only repeat their default value, then without Reason String and User
/// Properties [MQTT-3.1.2-25]. `None` when it still does not fit: the connection is closed
/// without CONNACK.
pub(super) fn fit_connack(
    mut ack: ConnAck,
    version: ProtocolVersion,
    max: Option<u32>,
) -> Option<ConnAck> {
    let Some(max) = max else { return Some(ack) };
    // Only for clients that state a maximum, once per connection.
    let fits = |ack: &ConnAck| encoded_len(&Packet::ConnAck(ack.clone()), version) <= max as usize;
    if fits(&ack) {
        return Some(ack);
    }
    let p = &mut ack.properties;
    // Absent means: Receive Maximum 65,535, Maximum QoS 2, Topic Alias Maximum 0, and every
    // "available" flag 1 (MQTT 5 §3.2.2.3).
    p.receive_maximum = p.receive_maximum.filter(|&m| m != u16::MAX);
    p.maximum_qos = p.maximum_qos.filter(|&q| q != QoS::ExactlyOnce);
    p.topic_alias_maximum = p.topic_alias_maximum.filter(|&m| m != 0);
    for flag in [
        &mut p.retain_available,
        &mut p.wildcard_subscription_available,
        &mut p.subscription_identifiers_available,
        &mut p.shared_subscription_available,
    ] {
        *flag = flag.filter(|&available| !available);
    }
    if fits(&ack) {
        return Some(ack);
    }
    ack.properties.reason_string = None;
    ack.properties.user_properties.clear();
    fits(&ack).then_some(ack)
}

/// Closes without a word (a CONNACK that may not be sent), within a second.
pub(super) async fn close_quietly<W: AsyncWrite + Unpin>(wr: &mut W) {
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Answers CONNECT with a refusal and closes; without the CONNACK when it would exceed the
/// client's Maximum Packet Size [MQTT-3.1.2-24].
pub(super) async fn refuse_connect<W: AsyncRead + AsyncWrite + Unpin>(
    wr: &mut W,
    version: ProtocolVersion,
    reason: ReasonCode,
    max_packet_size: Option<u32>,
) {
    let mut out = BytesMut::new();
    let ack = ConnAck {
        session_present: false,
        reason,
        properties: ConnAckProperties::default(),
    };
    let Some(ack) = fit_connack(ack, version, max_packet_size) else {
        return close_quietly(wr).await;
    };
    encode(&Packet::ConnAck(ack), version, &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
    })
    .await;
    linger(wr).await;
}
