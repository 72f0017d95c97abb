//! proptest strategies that generate every packet type as a valid packet of a given version: what
//! the version can't carry is left at its default, and the cross-field rules the decoder enforces
//! (QoS/packet id, alias/topic, format indicator/payload, ...) hold.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use wardgate_protocol::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, MAX_VARINT, Packet, PacketId, ProtocolVersion, PubAck,
    Publish, PublishProperties, PublishQos, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, UserProperties, Will,
    WillProperties,
};

/// A UTF-8 string without U+0000, mixing ASCII and multi-byte characters.
pub(crate) fn string() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => any::<char>().prop_filter("no U+0000", |c| *c != '\0'),
        ],
        0..8,
    )
    .prop_map(String::from_iter)
}

pub(crate) fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub(crate) fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

pub(crate) fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|n| PacketId::new(n).expect("non-zero"))
}

/// Topic levels from a small alphabet (so that matching tests hit often), '$' and non-ASCII.
fn level() -> impl Strategy<Value = String> {
    select(vec!["a", "b", "sensor", "", "é", "$SYS", "x y", "温度"]).prop_map(String::from)
}

pub(crate) fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter_map("non-empty", |s| TopicName::new(s).ok())
}

pub(crate) fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (vec(filter_level, 1..5), any::<bool>(), any::<bool>())
        .prop_map(|(mut levels, hash, share)| {
            if hash {
                levels.push("#".into());
            }
            let filter = levels.join("/");
            if share {
                format!("$share/g1/{filter}")
            } else {
                filter
            }
        })
        .prop_filter_map("valid filter", |s| TopicFilter::new(s).ok())
}

pub(crate) fn user_properties() -> impl Strategy<Value = UserProperties> {
    vec((string(), string()), 0..3)
}

fn nonzero_u16() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn nonzero_u32() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn subscription_identifier() -> impl Strategy<Value = u32> {
    1..=MAX_VARINT
}

/// Picks one of the reason codes a packet may carry.
fn reason(codes: &[u8]) -> impl Strategy<Value = ReasonCode> + use<> {
    select(codes.iter().map(|&c| ReasonCode(c)).collect::<Vec<_>>())
}

pub(crate) const CONNACK_REASONS: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
pub(crate) const PUBACK_REASONS: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub(crate) const PUBREL_REASONS: &[u8] = &[0x00, 0x92];
pub(crate) const SUBACK_REASONS: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
pub(crate) const UNSUBACK_REASONS: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
pub(crate) const DISCONNECT_REASONS: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
pub(crate) const AUTH_REASONS: &[u8] = &[0x00, 0x18, 0x19];

/// `strategy` in v5, the default value otherwise.
fn v5_only<T: Default + Clone + std::fmt::Debug + 'static>(
    v5: bool,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if v5 {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

/// Makes a payload UTF-8 when its format indicator says so.
fn fit_payload(indicator: Option<bool>, payload: Bytes) -> Bytes {
    if indicator == Some(true) {
        Bytes::from(String::from_utf8_lossy(&payload).into_owned())
    } else {
        payload
    }
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(nonzero_u32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        user_properties(),
        option::of(string()),
        option::of(binary()),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, user, method, data)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: user,
                // Authentication Data requires a method.
                authentication_method: if data.is_some() {
                    Some(method.unwrap_or_default())
                } else {
                    method
                },
                authentication_data: data,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        option::of(any::<u32>()),
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(|(delay, pfi, mei, ct, rt, cd, user)| WillProperties {
            will_delay_interval: delay,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: user,
        })
}

fn will(v5: bool) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        v5_only(v5, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload: fit_payload(properties.payload_format_indicator, payload),
            qos,
            retain,
            properties,
        })
}

pub(crate) fn connect(version: ProtocolVersion) -> impl Strategy<Value = Connect> {
    let v5 = version.is_v5();
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        option::of(will(v5)),
        option::of(string()),
        option::of(binary()),
        v5_only(v5, connect_properties()),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // 3.1.1 forbids a password without a user name.
                let username = if !v5 && password.is_some() && username.is_none() {
                    Some(String::new())
                } else {
                    username
                };
                Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let limits = (
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        option::of(any::<bool>()),
        option::of(nonzero_u32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
    );
    let texts = (
        option::of(string()),
        option::of(string()),
        user_properties(),
        option::of(string()),
        option::of(string()),
        option::of(string()),
        option::of(binary()),
    );
    (limits, texts).prop_map(
        |((sei, rm, mq, ra, mps, tam, wsa, sia, ssa, ska), (aci, rs, user, ri, sr, am, ad))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                user_properties: user,
                wildcard_subscription_available: wsa,
                subscription_identifiers_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
            }
        },
    )
}

pub(crate) fn connack(version: ProtocolVersion) -> impl Strategy<Value = ConnAck> {
    let v5 = version.is_v5();
    let reasons: &[u8] = if v5 {
        CONNACK_REASONS
    } else {
        &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87]
    };
    (
        any::<bool>(),
        reason(reasons),
        v5_only(v5, connack_properties()),
    )
        .prop_map(|(session_present, reason, properties)| ConnAck {
            session_present,
            reason,
            properties,
        })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
        vec(subscription_identifier(), 0..3),
        option::of(string()),
    )
        .prop_map(
            |(pfi, mei, alias, rt, cd, user, ids, ct)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: mei,
                topic_alias: alias,
                response_topic: rt,
                correlation_data: cd,
                user_properties: user,
                subscription_identifiers: ids,
                content_type: ct,
            },
        )
}

pub(crate) fn publish(version: ProtocolVersion) -> impl Strategy<Value = Publish> {
    let v5 = version.is_v5();
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        packet_id(),
        v5_only(v5, publish_properties()),
        vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    )
        .prop_map(
            |(qos, dup, retain, topic, drop_topic, id, properties, payload)| {
                let aliased = properties.topic_alias.is_some();
                Publish {
                    dup: dup && qos != QoS::AtMostOnce,
                    qos: PublishQos::new(qos, id),
                    retain,
                    topic: if drop_topic && aliased {
                        None
                    } else {
                        Some(topic)
                    },
                    payload: fit_payload(properties.payload_format_indicator, payload),
                    properties,
                }
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(string()), user_properties()).prop_map(|(reason_string, user_properties)| {
        AckProperties {
            reason_string,
            user_properties,
        }
    })
}

pub(crate) fn puback(
    version: ProtocolVersion,
    reasons: &'static [u8],
) -> impl Strategy<Value = PubAck> {
    let v5 = version.is_v5();
    let reason = if v5 {
        reason(reasons).boxed()
    } else {
        Just(ReasonCode::SUCCESS).boxed()
    };
    (packet_id(), reason, v5_only(v5, ack_properties())).prop_map(
        |(packet_id, reason, properties)| PubAck {
            packet_id,
            reason,
            properties,
        },
    )
}

fn subscription_options(v5: bool) -> impl Strategy<Value = SubscriptionOptions> {
    let retain_handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendIfNew,
        RetainHandling::DontSend,
    ]);
    (qos(), any::<bool>(), any::<bool>(), retain_handling).prop_map(move |(qos, nl, rap, rh)| {
        if v5 {
            SubscriptionOptions {
                qos,
                no_local: nl,
                retain_as_published: rap,
                retain_handling: rh,
            }
        } else {
            SubscriptionOptions::new(qos)
        }
    })
}

pub(crate) fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Subscribe> {
    let v5 = version.is_v5();
    (
        packet_id(),
        v5_only(v5, option::of(subscription_identifier())),
        v5_only(v5, user_properties()),
        vec((topic_filter(), subscription_options(v5)), 1..4),
    )
        .prop_map(
            |(packet_id, subscription_identifier, user_properties, mut filters)| {
                // No Local is a protocol error on a shared subscription [MQTT-3.8.3-4].
                for (filter, options) in &mut filters {
                    if filter.is_shared() {
                        options.no_local = false;
                    }
                }
                Subscribe {
                    packet_id,
                    subscription_identifier,
                    user_properties,
                    filters,
                }
            },
        )
}

pub(crate) fn suback(version: ProtocolVersion) -> impl Strategy<Value = SubAck> {
    let v5 = version.is_v5();
    let codes: &'static [u8] = if v5 {
        SUBACK_REASONS
    } else {
        &[0x00, 0x01, 0x02, 0x80]
    };
    (
        packet_id(),
        v5_only(v5, ack_properties()),
        vec(reason(codes), 1..4),
    )
        .prop_map(|(packet_id, properties, reasons)| SubAck {
            packet_id,
            properties,
            reasons,
        })
}

pub(crate) fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Unsubscribe> {
    let v5 = version.is_v5();
    (
        packet_id(),
        v5_only(v5, user_properties()),
        vec(topic_filter(), 1..4),
    )
        .prop_map(|(packet_id, user_properties, filters)| Unsubscribe {
            packet_id,
            user_properties,
            filters,
        })
}

pub(crate) fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = UnsubAck> {
    let v5 = version.is_v5();
    (
        packet_id(),
        v5_only(v5, ack_properties()),
        v5_only(v5, vec(reason(UNSUBACK_REASONS), 1..4)),
    )
        .prop_map(|(packet_id, properties, reasons)| UnsubAck {
            packet_id,
            properties,
            reasons,
        })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(string()),
        user_properties(),
        option::of(string()),
    )
        .prop_map(|(sei, rs, user, sr)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: user,
            server_reference: sr,
        })
}

pub(crate) fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Disconnect> {
    let v5 = version.is_v5();
    let reason = if v5 {
        reason(DISCONNECT_REASONS).boxed()
    } else {
        Just(ReasonCode::NORMAL_DISCONNECTION).boxed()
    };
    (reason, v5_only(v5, disconnect_properties()))
        .prop_map(|(reason, properties)| Disconnect { reason, properties })
}

pub(crate) fn auth() -> impl Strategy<Value = Auth> {
    let properties = (
        option::of(string()),
        option::of(binary()),
        option::of(string()),
        user_properties(),
    )
        .prop_map(|(am, ad, rs, user)| AuthProperties {
            authentication_method: am,
            authentication_data: ad,
            reason_string: rs,
            user_properties: user,
        });
    (reason(AUTH_REASONS), properties).prop_map(|(reason, properties)| Auth { reason, properties })
}

/// Any packet valid in `version` (AUTH only in v5).
pub(crate) fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(version).prop_map(|c| Packet::Connect(Box::new(c))),
        connack(version).prop_map(Packet::ConnAck),
        publish(version).prop_map(Packet::Publish),
        puback(version, PUBACK_REASONS).prop_map(Packet::PubAck),
        puback(version, PUBACK_REASONS).prop_map(Packet::PubRec),
        puback(version, PUBREL_REASONS).prop_map(Packet::PubRel),
        puback(version, PUBREL_REASONS).prop_map(Packet::PubComp),
        subscribe(version).prop_map(Packet::Subscribe),
        suback(version).prop_map(Packet::SubAck),
        unsubscribe(version).prop_map(Packet::Unsubscribe),
        unsuback(version).prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version).prop_map(Packet::Disconnect),
    ];
    if version.is_v5() {
        prop_oneof![14 => common, 1 => auth().prop_map(Packet::Auth)].boxed()
    } else {
        common.boxed()
    }
}
