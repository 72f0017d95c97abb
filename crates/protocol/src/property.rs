//! MQTT 5 properties (MQTT 5 §2.2.2): their identifiers, which packet accepts which, decoding
//! them into the named-field property structs and encoding them back.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, Subscribe, Unsubscribe, UserProperties, WillProperties,
};
use crate::topic::TopicName;
use crate::types::QoS;
use crate::wire::{Reader, Result, bin_len, put_bin, put_str, put_varint, str_len, varint_len};

/// Declares the property identifiers with the names the specification gives them, so that error
/// messages can name the property.
macro_rules! properties {
    ($($name:ident = $id:literal, $label:literal;)*) => {
        $(
            #[doc = concat!("Property identifier of ", $label, ".")]
            pub(crate) const $name: u8 = $id;
        )*

        /// The error for a property that appears twice but may appear only once.
        fn duplicate(id: u8) -> DecodeError {
            DecodeError::ProtocolError(match id {
                $($id => concat!("duplicate ", $label, " property"),)*
                _ => "duplicate property",
            })
        }

        /// Whether MQTT 5 defines this identifier at all.
        fn is_known(id: u8) -> bool {
            matches!(id, $($id)|*)
        }
    };
}

properties! {
    PAYLOAD_FORMAT_INDICATOR = 0x01, "Payload Format Indicator";
    MESSAGE_EXPIRY_INTERVAL = 0x02, "Message Expiry Interval";
    CONTENT_TYPE = 0x03, "Content Type";
    RESPONSE_TOPIC = 0x08, "Response Topic";
    CORRELATION_DATA = 0x09, "Correlation Data";
    SUBSCRIPTION_IDENTIFIER = 0x0B, "Subscription Identifier";
    SESSION_EXPIRY_INTERVAL = 0x11, "Session Expiry Interval";
    ASSIGNED_CLIENT_IDENTIFIER = 0x12, "Assigned Client Identifier";
    SERVER_KEEP_ALIVE = 0x13, "Server Keep Alive";
    AUTHENTICATION_METHOD = 0x15, "Authentication Method";
    AUTHENTICATION_DATA = 0x16, "Authentication Data";
    REQUEST_PROBLEM_INFORMATION = 0x17, "Request Problem Information";
    WILL_DELAY_INTERVAL = 0x18, "Will Delay Interval";
    REQUEST_RESPONSE_INFORMATION = 0x19, "Request Response Information";
    RESPONSE_INFORMATION = 0x1A, "Response Information";
    SERVER_REFERENCE = 0x1C, "Server Reference";
    REASON_STRING = 0x1F, "Reason String";
    RECEIVE_MAXIMUM = 0x21, "Receive Maximum";
    TOPIC_ALIAS_MAXIMUM = 0x22, "Topic Alias Maximum";
    TOPIC_ALIAS = 0x23, "Topic Alias";
    MAXIMUM_QOS = 0x24, "Maximum QoS";
    RETAIN_AVAILABLE = 0x25, "Retain Available";
    USER_PROPERTY = 0x26, "User Property";
    MAXIMUM_PACKET_SIZE = 0x27, "Maximum Packet Size";
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28, "Wildcard Subscription Available";
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29, "Subscription Identifier Available";
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A, "Shared Subscription Available";
}

// ---- decoding ----------------------------------------------------------------------------------

/// Reads the Property Length and returns a reader over exactly the properties.
fn section<'a>(r: &mut Reader<'a>) -> Result<Reader<'a>> {
    let len = r.varint("truncated property length")?;
    r.sub(len as usize, "property length exceeds the remaining packet")
}

/// Reads a property identifier. It is a Variable Byte Integer, though every defined one is a
/// single byte (MQTT 5 §2.2.2.2).
fn identifier(r: &mut Reader<'_>) -> Result<u8> {
    let id = r.varint("truncated property identifier")?;
    u8::try_from(id)
        .ok()
        .filter(|&id| is_known(id))
        .ok_or(DecodeError::MalformedPacket("unknown property identifier"))
}

/// The error for a known property in a packet that doesn't accept it (MQTT 5 §2.2.2.2: malformed).
fn misplaced(id: u8, packet: &'static str) -> DecodeError {
    debug_assert!(is_known(id));
    DecodeError::MalformedPacket(packet)
}

/// Stores a property that may appear at most once.
#[inline]
fn once<T>(slot: &mut Option<T>, value: T, id: u8) -> Result<()> {
    if slot.is_some() {
        return Err(duplicate(id));
    }
    *slot = Some(value);
    Ok(())
}

/// A Byte property whose only values are 0 and 1.
fn flag(r: &mut Reader<'_>, err: &'static str) -> Result<bool> {
    match r.u8("truncated byte property")? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::ProtocolError(err)),
    }
}

fn u16_prop(r: &mut Reader<'_>) -> Result<u16> {
    r.u16("truncated two byte integer property")
}

fn u32_prop(r: &mut Reader<'_>) -> Result<u32> {
    r.u32("truncated four byte integer property")
}

/// A Two Byte Integer property for which 0 is a protocol error.
fn nonzero_u16(r: &mut Reader<'_>, err: &'static str) -> Result<u16> {
    match u16_prop(r)? {
        0 => Err(DecodeError::ProtocolError(err)),
        v => Ok(v),
    }
}

/// The most User Properties one property set may carry. Each costs two heap strings and a
/// vector slot (about 80 bytes) beyond its bytes on the wire, where it can take 5: without a
/// bound, a 14 MB CONNECT of a million tiny will properties held 86 MB for the connection's
/// life. The specification sets no number; real applications use a handful.
pub const MAX_USER_PROPERTIES: usize = 1024;

/// Appends one User Property (a UTF-8 string pair) to `list`, refusing more than
/// [`MAX_USER_PROPERTIES`] before allocating anything for it.
fn push_user(list: &mut UserProperties, r: &mut Reader<'_>) -> Result<()> {
    if list.len() >= MAX_USER_PROPERTIES {
        return Err(DecodeError::TooManyUserProperties {
            max: MAX_USER_PROPERTIES,
        });
    }
    list.push((r.string()?, r.string()?));
    Ok(())
}

/// A Response Topic: a topic name without wildcards [MQTT-3.3.2-14].
fn response_topic(r: &mut Reader<'_>) -> Result<TopicName> {
    TopicName::new(r.str()?)
        .map_err(|_| DecodeError::ProtocolError("Response Topic is empty or contains a wildcard"))
}

/// A Subscription Identifier: 1..=268,435,455; 0 is a protocol error.
fn subscription_identifier(r: &mut Reader<'_>) -> Result<u32> {
    match r.varint("truncated Subscription Identifier")? {
        0 => Err(DecodeError::ProtocolError("Subscription Identifier of 0")),
        v => Ok(v),
    }
}

/// CONNECT properties (MQTT 5 §3.1.2.11).
pub(crate) fn decode_connect(r: &mut Reader<'_>) -> Result<ConnectProperties> {
    let mut p = ConnectProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, u32_prop(&mut r)?, id)?,
            RECEIVE_MAXIMUM => {
                let v = nonzero_u16(&mut r, "Receive Maximum of 0")?;
                once(&mut p.receive_maximum, v, id)?;
            }
            MAXIMUM_PACKET_SIZE => {
                let v = u32_prop(&mut r)?;
                if v == 0 {
                    return Err(DecodeError::ProtocolError("Maximum Packet Size of 0"));
                }
                once(&mut p.maximum_packet_size, v, id)?;
            }
            TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, u16_prop(&mut r)?, id)?,
            REQUEST_RESPONSE_INFORMATION => {
                let v = flag(&mut r, "Request Response Information other than 0 or 1")?;
                once(&mut p.request_response_information, v, id)?;
            }
            REQUEST_PROBLEM_INFORMATION => {
                let v = flag(&mut r, "Request Problem Information other than 0 or 1")?;
                once(&mut p.request_problem_information, v, id)?;
            }
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            AUTHENTICATION_METHOD => once(&mut p.authentication_method, r.string()?, id)?,
            AUTHENTICATION_DATA => once(&mut p.authentication_data, r.binary()?, id)?,
            _ => return Err(misplaced(id, "property not allowed in CONNECT")),
        }
    }
    if p.authentication_data.is_some() && p.authentication_method.is_none() {
        return Err(DecodeError::ProtocolError(
            "Authentication Data without Authentication Method",
        ));
    }
    Ok(p)
}

/// Will properties (MQTT 5 §3.1.3.2).
pub(crate) fn decode_will(r: &mut Reader<'_>) -> Result<WillProperties> {
    let mut p = WillProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, u32_prop(&mut r)?, id)?,
            PAYLOAD_FORMAT_INDICATOR => {
                let v = flag(&mut r, "Payload Format Indicator other than 0 or 1")?;
                once(&mut p.payload_format_indicator, v, id)?;
            }
            MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, u32_prop(&mut r)?, id)?,
            CONTENT_TYPE => once(&mut p.content_type, r.string()?, id)?,
            RESPONSE_TOPIC => once(&mut p.response_topic, response_topic(&mut r)?, id)?,
            CORRELATION_DATA => once(&mut p.correlation_data, r.binary()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            _ => return Err(misplaced(id, "property not allowed in Will Properties")),
        }
    }
    Ok(p)
}

/// CONNACK properties (MQTT 5 §3.2.2.3).
pub(crate) fn decode_connack(r: &mut Reader<'_>) -> Result<ConnAckProperties> {
    let mut p = ConnAckProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, u32_prop(&mut r)?, id)?,
            RECEIVE_MAXIMUM => {
                let v = nonzero_u16(&mut r, "Receive Maximum of 0")?;
                once(&mut p.receive_maximum, v, id)?;
            }
            MAXIMUM_QOS => {
                let v = match r.u8("truncated byte property")? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(DecodeError::ProtocolError("Maximum QoS other than 0 or 1")),
                };
                once(&mut p.maximum_qos, v, id)?;
            }
            RETAIN_AVAILABLE => {
                let v = flag(&mut r, "Retain Available other than 0 or 1")?;
                once(&mut p.retain_available, v, id)?;
            }
            MAXIMUM_PACKET_SIZE => {
                let v = u32_prop(&mut r)?;
                if v == 0 {
                    return Err(DecodeError::ProtocolError("Maximum Packet Size of 0"));
                }
                once(&mut p.maximum_packet_size, v, id)?;
            }
            ASSIGNED_CLIENT_IDENTIFIER => {
                once(&mut p.assigned_client_identifier, r.string()?, id)?;
            }
            TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, u16_prop(&mut r)?, id)?,
            REASON_STRING => once(&mut p.reason_string, r.string()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = flag(&mut r, "Wildcard Subscription Available other than 0 or 1")?;
                once(&mut p.wildcard_subscription_available, v, id)?;
            }
            SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = flag(
                    &mut r,
                    "Subscription Identifier Available other than 0 or 1",
                )?;
                once(&mut p.subscription_identifiers_available, v, id)?;
            }
            SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = flag(&mut r, "Shared Subscription Available other than 0 or 1")?;
                once(&mut p.shared_subscription_available, v, id)?;
            }
            SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, u16_prop(&mut r)?, id)?,
            RESPONSE_INFORMATION => once(&mut p.response_information, r.string()?, id)?,
            SERVER_REFERENCE => once(&mut p.server_reference, r.string()?, id)?,
            AUTHENTICATION_METHOD => once(&mut p.authentication_method, r.string()?, id)?,
            AUTHENTICATION_DATA => once(&mut p.authentication_data, r.binary()?, id)?,
            _ => return Err(misplaced(id, "property not allowed in CONNACK")),
        }
    }
    Ok(p)
}

/// PUBLISH properties (MQTT 5 §3.3.2.3). Most PUBLISH packets carry none, which costs one byte.
pub(crate) fn decode_publish(r: &mut Reader<'_>) -> Result<PublishProperties> {
    let mut p = PublishProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            PAYLOAD_FORMAT_INDICATOR => {
                let v = flag(&mut r, "Payload Format Indicator other than 0 or 1")?;
                once(&mut p.payload_format_indicator, v, id)?;
            }
            MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, u32_prop(&mut r)?, id)?,
            TOPIC_ALIAS => {
                let v = nonzero_u16(&mut r, "Topic Alias of 0")?;
                once(&mut p.topic_alias, v, id)?;
            }
            RESPONSE_TOPIC => once(&mut p.response_topic, response_topic(&mut r)?, id)?,
            CORRELATION_DATA => once(&mut p.correlation_data, r.binary()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            SUBSCRIPTION_IDENTIFIER => {
                p.subscription_identifiers
                    .push(subscription_identifier(&mut r)?);
            }
            CONTENT_TYPE => once(&mut p.content_type, r.string()?, id)?,
            _ => return Err(misplaced(id, "property not allowed in PUBLISH")),
        }
    }
    Ok(p)
}

/// The properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK: Reason String and
/// User Properties. `misplaced_err` names the packet.
pub(crate) fn decode_ack(r: &mut Reader<'_>, misplaced_err: &'static str) -> Result<AckProperties> {
    let mut p = AckProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            REASON_STRING => once(&mut p.reason_string, r.string()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            _ => return Err(misplaced(id, misplaced_err)),
        }
    }
    Ok(p)
}

/// SUBSCRIBE properties (MQTT 5 §3.8.2.1): the Subscription Identifier and User Properties.
pub(crate) fn decode_subscribe(r: &mut Reader<'_>) -> Result<(Option<u32>, UserProperties)> {
    let mut identifier_slot = None;
    let mut user = UserProperties::new();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            SUBSCRIPTION_IDENTIFIER => {
                once(&mut identifier_slot, subscription_identifier(&mut r)?, id)?;
            }
            USER_PROPERTY => push_user(&mut user, &mut r)?,
            _ => return Err(misplaced(id, "property not allowed in SUBSCRIBE")),
        }
    }
    Ok((identifier_slot, user))
}

/// UNSUBSCRIBE properties (MQTT 5 §3.10.2.1): User Properties only.
pub(crate) fn decode_unsubscribe(r: &mut Reader<'_>) -> Result<UserProperties> {
    let mut user = UserProperties::new();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            USER_PROPERTY => push_user(&mut user, &mut r)?,
            _ => return Err(misplaced(id, "property not allowed in UNSUBSCRIBE")),
        }
    }
    Ok(user)
}

/// DISCONNECT properties (MQTT 5 §3.14.2.2).
pub(crate) fn decode_disconnect(r: &mut Reader<'_>) -> Result<DisconnectProperties> {
    let mut p = DisconnectProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, u32_prop(&mut r)?, id)?,
            REASON_STRING => once(&mut p.reason_string, r.string()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            SERVER_REFERENCE => once(&mut p.server_reference, r.string()?, id)?,
            _ => return Err(misplaced(id, "property not allowed in DISCONNECT")),
        }
    }
    Ok(p)
}

/// AUTH properties (MQTT 5 §3.15.2.2).
pub(crate) fn decode_auth(r: &mut Reader<'_>) -> Result<AuthProperties> {
    let mut p = AuthProperties::default();
    let mut r = section(r)?;
    while !r.is_empty() {
        let id = identifier(&mut r)?;
        match id {
            AUTHENTICATION_METHOD => once(&mut p.authentication_method, r.string()?, id)?,
            AUTHENTICATION_DATA => once(&mut p.authentication_data, r.binary()?, id)?,
            REASON_STRING => once(&mut p.reason_string, r.string()?, id)?,
            USER_PROPERTY => push_user(&mut p.user_properties, &mut r)?,
            _ => return Err(misplaced(id, "property not allowed in AUTH")),
        }
    }
    Ok(p)
}

// ---- encoding ----------------------------------------------------------------------------------

/// Where encoded properties go: a counter (for lengths) or the output buffer. Each property set
/// describes itself once, through [`EncodeProperties::visit`], so its length and its bytes can't
/// disagree.
pub(crate) trait Sink {
    /// A Byte property.
    fn byte(&mut self, id: u8, value: u8);
    /// A Two Byte Integer property.
    fn u16(&mut self, id: u8, value: u16);
    /// A Four Byte Integer property.
    fn u32(&mut self, id: u8, value: u32);
    /// A Variable Byte Integer property.
    fn varint(&mut self, id: u8, value: u32);
    /// A UTF-8 Encoded String property.
    fn str(&mut self, id: u8, value: &str);
    /// A Binary Data property.
    fn bin(&mut self, id: u8, value: &[u8]);
    /// A UTF-8 String Pair property.
    fn pair(&mut self, id: u8, key: &str, value: &str);
}

/// Counts encoded bytes.
struct Counter(usize);

impl Sink for Counter {
    fn byte(&mut self, _: u8, _: u8) {
        self.0 += 2;
    }
    fn u16(&mut self, _: u8, _: u16) {
        self.0 += 3;
    }
    fn u32(&mut self, _: u8, _: u32) {
        self.0 += 5;
    }
    fn varint(&mut self, _: u8, value: u32) {
        self.0 += 1 + varint_len(value as usize);
    }
    fn str(&mut self, _: u8, value: &str) {
        self.0 += 1 + str_len(value);
    }
    fn bin(&mut self, _: u8, value: &[u8]) {
        self.0 += 1 + bin_len(value);
    }
    fn pair(&mut self, _: u8, key: &str, value: &str) {
        self.0 += 1 + str_len(key) + str_len(value);
    }
}

impl Sink for BytesMut {
    fn byte(&mut self, id: u8, value: u8) {
        self.put_u8(id);
        self.put_u8(value);
    }
    fn u16(&mut self, id: u8, value: u16) {
        self.put_u8(id);
        self.put_u16(value);
    }
    fn u32(&mut self, id: u8, value: u32) {
        self.put_u8(id);
        self.put_u32(value);
    }
    fn varint(&mut self, id: u8, value: u32) {
        self.put_u8(id);
        put_varint(self, value as usize);
    }
    fn str(&mut self, id: u8, value: &str) {
        self.put_u8(id);
        put_str(self, value);
    }
    fn bin(&mut self, id: u8, value: &[u8]) {
        self.put_u8(id);
        put_bin(self, value);
    }
    fn pair(&mut self, id: u8, key: &str, value: &str) {
        self.put_u8(id);
        put_str(self, key);
        put_str(self, value);
    }
}

/// A set of properties that can be encoded.
pub(crate) trait EncodeProperties {
    /// Feeds every present property to `sink`, in identifier order.
    fn visit<S: Sink>(&self, sink: &mut S);

    /// The encoded size of the properties, without the Property Length.
    fn encoded_len(&self) -> usize {
        let mut counter = Counter(0);
        self.visit(&mut counter);
        counter.0
    }
}

/// The Property Length followed by the properties, whose size `len` the caller computed.
pub(crate) fn put_properties<P: EncodeProperties>(out: &mut BytesMut, properties: &P, len: usize) {
    put_varint(out, len);
    properties.visit(out);
}

/// The size of the Property Length plus properties of `len` bytes.
#[inline]
pub(crate) fn section_len(len: usize) -> usize {
    varint_len(len) + len
}

fn opt_u32<S: Sink>(sink: &mut S, id: u8, value: Option<u32>) {
    if let Some(v) = value {
        sink.u32(id, v);
    }
}

fn opt_u16<S: Sink>(sink: &mut S, id: u8, value: Option<u16>) {
    if let Some(v) = value {
        sink.u16(id, v);
    }
}

fn opt_flag<S: Sink>(sink: &mut S, id: u8, value: Option<bool>) {
    if let Some(v) = value {
        sink.byte(id, u8::from(v));
    }
}

fn opt_str<S: Sink>(sink: &mut S, id: u8, value: Option<&str>) {
    if let Some(v) = value {
        sink.str(id, v);
    }
}

fn opt_bin<S: Sink>(sink: &mut S, id: u8, value: Option<&Bytes>) {
    if let Some(v) = value {
        sink.bin(id, v);
    }
}

fn users<S: Sink>(sink: &mut S, user: &UserProperties) {
    for (k, v) in user {
        sink.pair(USER_PROPERTY, k, v);
    }
}

impl EncodeProperties for ConnectProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_u32(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        opt_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        opt_flag(
            s,
            REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        opt_flag(
            s,
            REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        opt_u16(s, RECEIVE_MAXIMUM, self.receive_maximum);
        opt_u16(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        users(s, &self.user_properties);
        opt_u32(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
    }
}

impl EncodeProperties for WillProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_flag(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        opt_u32(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        opt_str(s, CONTENT_TYPE, self.content_type.as_deref());
        opt_str(s, RESPONSE_TOPIC, self.response_topic.as_deref());
        opt_bin(s, CORRELATION_DATA, self.correlation_data.as_ref());
        opt_u32(s, WILL_DELAY_INTERVAL, self.will_delay_interval);
        users(s, &self.user_properties);
    }
}

impl EncodeProperties for ConnAckProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_u32(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(
            s,
            ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_deref(),
        );
        opt_u16(s, SERVER_KEEP_ALIVE, self.server_keep_alive);
        opt_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        opt_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        opt_str(
            s,
            RESPONSE_INFORMATION,
            self.response_information.as_deref(),
        );
        opt_str(s, SERVER_REFERENCE, self.server_reference.as_deref());
        opt_str(s, REASON_STRING, self.reason_string.as_deref());
        opt_u16(s, RECEIVE_MAXIMUM, self.receive_maximum);
        opt_u16(s, TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        if let Some(q) = self.maximum_qos {
            s.byte(MAXIMUM_QOS, q.as_u8());
        }
        opt_flag(s, RETAIN_AVAILABLE, self.retain_available);
        users(s, &self.user_properties);
        opt_u32(s, MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        opt_flag(
            s,
            WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        opt_flag(
            s,
            SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        opt_flag(
            s,
            SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
    }
}

impl EncodeProperties for PublishProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_flag(s, PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        opt_u32(s, MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        opt_str(s, CONTENT_TYPE, self.content_type.as_deref());
        opt_str(s, RESPONSE_TOPIC, self.response_topic.as_deref());
        opt_bin(s, CORRELATION_DATA, self.correlation_data.as_ref());
        for &id in &self.subscription_identifiers {
            s.varint(SUBSCRIPTION_IDENTIFIER, id);
        }
        opt_u16(s, TOPIC_ALIAS, self.topic_alias);
        users(s, &self.user_properties);
    }

    fn encoded_len(&self) -> usize {
        // The hot path: most messages carry no property at all.
        if self.is_empty() {
            return 0;
        }
        let mut counter = Counter(0);
        self.visit(&mut counter);
        counter.0
    }
}

impl EncodeProperties for AckProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_str(s, REASON_STRING, self.reason_string.as_deref());
        users(s, &self.user_properties);
    }
}

impl EncodeProperties for Subscribe {
    fn visit<S: Sink>(&self, s: &mut S) {
        if let Some(id) = self.subscription_identifier {
            s.varint(SUBSCRIPTION_IDENTIFIER, id);
        }
        users(s, &self.user_properties);
    }
}

impl EncodeProperties for Unsubscribe {
    fn visit<S: Sink>(&self, s: &mut S) {
        users(s, &self.user_properties);
    }
}

impl EncodeProperties for DisconnectProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_u32(s, SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        opt_str(s, SERVER_REFERENCE, self.server_reference.as_deref());
        opt_str(s, REASON_STRING, self.reason_string.as_deref());
        users(s, &self.user_properties);
    }
}

impl EncodeProperties for AuthProperties {
    fn visit<S: Sink>(&self, s: &mut S) {
        opt_str(
            s,
            AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        );
        opt_bin(s, AUTHENTICATION_DATA, self.authentication_data.as_ref());
        opt_str(s, REASON_STRING, self.reason_string.as_deref());
        users(s, &self.user_properties);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_with<T>(bytes: &[u8], f: fn(&mut Reader<'_>) -> Result<T>) -> Result<T> {
        let buf = Bytes::copy_from_slice(bytes);
        let mut r = Reader::new(&buf, 0, buf.len());
        let value = f(&mut r)?;
        r.expect_end("trailing")?;
        Ok(value)
    }

    #[test]
    fn duplicate_single_properties_are_protocol_errors() {
        let bytes = [6, 0x23, 0, 1, 0x23, 0, 2];
        assert_eq!(
            decode_with(&bytes, decode_publish),
            Err(DecodeError::ProtocolError("duplicate Topic Alias property"))
        );
    }

    #[test]
    fn repeatable_properties_accumulate_in_order() {
        let bytes = [4, 0x0B, 1, 0x0B, 2];
        let p = decode_with(&bytes, decode_publish).expect("valid");
        assert_eq!(p.subscription_identifiers, vec![1, 2]);
    }

    #[test]
    fn properties_outside_their_packet_are_malformed() {
        // Topic Alias is a PUBLISH property, not a CONNECT one.
        let bytes = [3, 0x23, 0, 1];
        assert_eq!(
            decode_with(&bytes, decode_connect),
            Err(DecodeError::MalformedPacket(
                "property not allowed in CONNECT"
            ))
        );
        let bytes = [2, 0x7F, 0];
        assert_eq!(
            decode_with(&bytes, decode_connect),
            Err(DecodeError::MalformedPacket("unknown property identifier"))
        );
    }

    #[test]
    fn zero_limits_are_protocol_errors() {
        for (bytes, msg) in [
            (&[3u8, 0x21, 0, 0][..], "Receive Maximum of 0"),
            (&[5, 0x27, 0, 0, 0, 0][..], "Maximum Packet Size of 0"),
        ] {
            assert_eq!(
                decode_with(bytes, decode_connect),
                Err(DecodeError::ProtocolError(msg))
            );
        }
    }

    #[test]
    fn counted_length_matches_written_bytes() {
        let p = ConnAckProperties {
            session_expiry_interval: Some(7),
            maximum_qos: Some(QoS::AtLeastOnce),
            assigned_client_identifier: Some("auto-1".into()),
            user_properties: vec![("k".into(), "v".into())],
            authentication_data: Some(Bytes::from_static(b"\x01\x02")),
            ..ConnAckProperties::default()
        };
        let mut out = BytesMut::new();
        p.visit(&mut out);
        assert_eq!(out.len(), p.encoded_len());
        let mut framed = BytesMut::new();
        put_properties(&mut framed, &p, p.encoded_len());
        let decoded = decode_with(&framed, decode_connack).expect("round trip");
        assert_eq!(decoded, p);
    }
}
