//! The connect phase: the transport's handshake ([`handshake`]: TLS, WebSocket), CONNECT read
//! under the connect timeout, refused ([`refuse`]) or authenticated ([`authenticate`]) and
//! authorized, the session attached and the CONNACK made.
//! It runs in an allocation of its own, freed once the connection is attached: every idle
//! connection pays only for the attached state ([`super::live`]).

mod authenticate;
pub(super) mod handshake;
mod refuse;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tracing::{Instrument, info};
use wardgate_core::{Attached, Broker, ConnectParams, Disconnect};
use wardgate_protocol::{
    ConnAck, ConnAckProperties, Connect, DecodeError, DecodeLimits, Packet, ProtocolVersion,
    ReasonCode, decode, encode,
};
use wardgate_security::authz::Decision;

use self::authenticate::authenticate;
use self::refuse::{close_quietly, fit_connack, refuse, refuse_connect};
use super::durable;
use super::live::{Live, Settled};
use super::outbound::Outbound;
use super::{Conn, Context, ReadSizer, Transport, conn_span, linger};
use crate::registry::ConnectionInfo;
use crate::wake::Control;

/// Reads CONNECT, authenticates and attaches the session; `None` when the connection ended
/// before that.
pub(super) async fn attach<S: Transport>(mut stream: S, ctx: Context) -> Option<Live<S>> {
    let mut rbuf = BytesMut::with_capacity(ReadSizer::MIN);
    let limits = DecodeLimits {
        max_packet_size: ctx.settings.max_packet_size,
    };
    let connect = tokio::select! {
        _ = ctx.shutdown.cancelled() => return None,
        r = tokio::time::timeout(ctx.settings.connect_timeout, read_connect(&mut stream, &mut rbuf, &limits)) => r,
    };
    let connect = match connect {
        Err(_) => {
            info!(peer = %ctx.peer, port = ctx.port, "closed: no CONNECT within the connect timeout");
            return None;
        }
        Ok(Err(ConnectFailure::Io)) => return None,
        Ok(Err(ConnectFailure::Decode(e))) => {
            info!(peer = %ctx.peer, port = ctx.port, error = %e, "closed: bad CONNECT");
            let answer = connack_version_for(&e);
            if let Some(version) = answer {
                let mut out = BytesMut::new();
                let ack = ConnAck {
                    session_present: false,
                    reason: e.reason_code(),
                    properties: ConnAckProperties::default(),
                };
                encode(&Packet::ConnAck(ack), version, &mut out);
                let _ = stream.write_all(&out).await;
            }
            let _ = stream.shutdown().await;
            if answer.is_some() {
                linger(&mut stream).await;
            }
            return None;
        }
        Ok(Ok(connect)) => connect,
    };
    // The client ID is recorded once known (it may be assigned by the broker).
    let span = conn_span(ctx.peer, ctx.port);
    answer_connect(connect, stream, rbuf, limits, &ctx)
        .instrument(span)
        .await
}

enum ConnectFailure {
    Io,
    Decode(DecodeError),
}

async fn read_connect<R: AsyncRead + Unpin>(
    rd: &mut R,
    rbuf: &mut BytesMut,
    limits: &DecodeLimits,
) -> Result<Box<Connect>, ConnectFailure> {
    match read_packet(rd, rbuf, None, limits).await? {
        Packet::Connect(c) => Ok(c),
        _ => Err(ConnectFailure::Decode(DecodeError::ProtocolError(
            "the first packet must be CONNECT",
        ))),
    }
}

/// Reads one whole packet (before the main loop takes over the socket).
async fn read_packet<R: AsyncRead + Unpin>(
    rd: &mut R,
    rbuf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    limits: &DecodeLimits,
) -> Result<Packet, ConnectFailure> {
    loop {
        match decode(rbuf, version, limits) {
            Ok(Some(packet)) => return Ok(packet),
            Ok(None) => {}
            Err(e) => return Err(ConnectFailure::Decode(e)),
        }
        rbuf.reserve(ReadSizer::MIN);
        match rd.read_buf(rbuf).await {
            Ok(0) | Err(_) => return Err(ConnectFailure::Io),
            Ok(_) => {}
        }
    }
}

/// Which CONNACK layout answers a bad CONNECT, if any: an unsupported protocol version gets the
/// v3.1.1 return code 1 [MQTT-3.1.2-2]; other errors are closes without CONNACK in v3.1.1, and
/// without CONNACK for v5 too since the version may not be known.
fn connack_version_for(e: &DecodeError) -> Option<ProtocolVersion> {
    match e {
        DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
            Some(ProtocolVersion::V311)
        }
        _ => None,
    }
}

/// Answers a CONNECT: refuses it, or authenticates, authorizes, attaches the session and makes
/// the CONNACK; the attached connection, or `None` when it ended here.
async fn answer_connect<S: Transport>(
    connect: Box<Connect>,
    mut stream: S,
    mut rbuf: BytesMut,
    limits: DecodeLimits,
    ctx: &Context,
) -> Option<Live<S>> {
    let mut connect = connect;
    let version = connect.protocol;
    let settings = &ctx.settings;
    let mut wbuf = BytesMut::with_capacity(256);
    let security = ctx.security.load_full();
    let client_max_packet = connect.properties.maximum_packet_size;

    // An empty v5 client ID is assigned before authentication, so that authentication and
    // authorization see the identifier the client will have.
    let mut assigned = None;
    if connect.client_id.is_empty() && version.is_v5() {
        let id = ctx.broker.assign_client_id();
        connect.client_id.clone_from(&id);
        assigned = Some(id);
    }
    // Recorded once: a field recorded twice shows twice in text logs. An empty v3.1.1 client ID
    // is recorded once the broker has assigned one (below).
    let recorded = !connect.client_id.is_empty();
    if recorded {
        tracing::Span::current().record("client_id", connect.client_id.as_str());
    }

    if let Some((reason, why)) = refuse(&connect, settings, security.authn.is_some()) {
        info!(reason = reason.0, %why, "connection refused");
        refuse_connect(&mut stream, version, reason, client_max_packet).await;
        return None;
    }
    if let Some(will) = &connect.will
        && !ctx.broker.admit_will(will)
    {
        let reason = ReasonCode::QUOTA_EXCEEDED;
        info!(
            reason = reason.0,
            "connection refused: the will takes more memory than a session may hold"
        );
        refuse_connect(&mut stream, version, reason, client_max_packet).await;
        return None;
    }
    // Boxed: authentication's future (webhook calls included) is needed only while connecting,
    // and must not make every connection's task larger for its whole life.
    let identity = match Box::pin(authenticate(
        &security,
        &connect,
        ctx,
        &mut stream,
        &mut rbuf,
        &limits,
    ))
    .await
    {
        Ok(identity) => {
            if security.authn.is_some() {
                ctx.stats.count_authentication(true);
            }
            // Shared from here on (registry, connection), and not kept twice in this future.
            Arc::new(identity)
        }
        Err((reason, why)) => {
            ctx.stats.count_authentication(false);
            info!(reason = reason.0, %why, username = connect.username.as_deref().unwrap_or(""), "authentication failed");
            refuse_connect(&mut stream, version, reason, client_max_packet).await;
            return None;
        }
    };
    if let Some(authz) = &security.authz {
        let will_topic = connect.will.as_ref().map(|w| w.topic.as_str());
        let denied = match authz.connect(&identity) {
            Decision::Deny { why } => Some(why),
            Decision::Allow { .. } => {
                will_topic.and_then(|topic| match authz.publish(&identity, topic) {
                    Decision::Deny { why } => Some(format!("will topic {topic}: {why}")),
                    Decision::Allow { .. } => None,
                })
            }
        };
        ctx.stats.count_authorization(denied.is_none());
        if let Some(why) = denied {
            info!(username = identity.username().unwrap_or(""), %why, action = "connect", "authorization denied");
            refuse_connect(
                &mut stream,
                version,
                ReasonCode::NOT_AUTHORIZED,
                client_max_packet,
            )
            .await;
            return None;
        }
    }

    let control = Arc::new(Control::default());
    let session_expiry = match (version.is_v5(), connect.clean_start) {
        (true, _) => connect.properties.session_expiry_interval.unwrap_or(0),
        (false, true) => 0,
        (false, false) => u32::MAX,
    };
    let server_keep_alive = match settings.max_keep_alive {
        Some(max) if connect.keep_alive == 0 || connect.keep_alive > max => Some(max),
        _ => None,
    };
    let keep_alive = server_keep_alive.unwrap_or(connect.keep_alive);
    // A v3.1.1 client states no Receive Maximum; the server's own (1024) bounds its window
    // rather than 65,535 unacknowledged messages (docs/mqtt.md).
    let default_receive_maximum = if version.is_v5() {
        u16::MAX
    } else {
        settings.receive_maximum
    };
    let client_receive_maximum = connect
        .properties
        .receive_maximum
        .unwrap_or(default_receive_maximum)
        .min(settings.max_receive_maximum);
    let outbound = Outbound::new(
        version,
        connect.properties.maximum_packet_size,
        connect.properties.topic_alias_maximum.unwrap_or(0),
    );
    let request_response = connect
        .properties
        .request_response_information
        .unwrap_or(false);
    // The CONNACK is made before attaching: a client that could not receive it [MQTT-3.1.2-24]
    // takes no session over. Nothing in it depends on the attachment but Session Present and,
    // should a reload lower the cap meanwhile, the granted Session Expiry Interval.
    let granted_expiry = session_expiry.min(ctx.broker.settings().max_session_expiry);
    let ack = ConnAck {
        session_present: false,
        reason: ReasonCode::SUCCESS,
        properties: if version.is_v5() {
            ConnAckProperties {
                assigned_client_identifier: assigned,
                receive_maximum: Some(settings.receive_maximum),
                maximum_packet_size: Some(settings.max_packet_size),
                topic_alias_maximum: Some(settings.topic_alias_maximum),
                retain_available: Some(true),
                wildcard_subscription_available: Some(true),
                subscription_identifiers_available: Some(true),
                shared_subscription_available: Some(true),
                server_keep_alive,
                session_expiry_interval: (granted_expiry != session_expiry)
                    .then_some(granted_expiry),
                response_information: request_response
                    .then(|| format!("response/{}", connect.client_id)),
                ..ConnAckProperties::default()
            }
        } else {
            ConnAckProperties::default()
        },
    };
    let Some(mut ack) = fit_connack(ack, version, client_max_packet) else {
        info!(
            maximum_packet_size = client_max_packet,
            "connection refused: even the smallest CONNACK exceeds the client's Maximum Packet Size"
        );
        close_quietly(&mut stream).await;
        return None;
    };
    let principal = identity.principal();
    claim(
        &ctx.broker,
        &connect.client_id,
        !connect.clean_start,
        &principal,
    )
    .await;
    hand_over(&ctx.broker, &connect.client_id).await;
    // In a block: what is left of the CONNECT is not kept in this future for the connection's
    // life (every idle connection pays for what this future holds).
    let (attached, clean_start, (category, category_stats)) = {
        let Connect {
            client_id,
            clean_start,
            will,
            properties: connect_properties,
            ..
        } = unbox(connect);
        // Persistence: the user property `aio-persistence: true` may ask for the queue to be
        // stored.
        let attached: Attached = ctx.broker.connect_with_properties(
            ConnectParams {
                client_id,
                clean_start,
                session_expiry,
                protocol: version,
                receive_maximum: client_receive_maximum,
                will,
                principal: Some(Arc::from(identity.principal())),
                waker: control.clone(),
            },
            &connect_properties.user_properties,
            Instant::now(),
        );
        let category = ctx.stats.category(&connect_properties.user_properties);
        (attached, clean_start, category)
    };
    let client_id = attached.session.client_id().clone();
    if !recorded {
        tracing::Span::current().record("client_id", &*client_id);
    }
    info!(version = ?version, clean_start, session_present = attached.session_present, keep_alive, "client connected");

    // Session Present is reserved (0) in MQTT 3.1, which has no such flag.
    ack.session_present = attached.session_present && version != ProtocolVersion::V31;
    if version.is_v5() && attached.session_expiry != granted_expiry {
        // A reload lowered the cap between the two reads.
        ack.properties.session_expiry_interval = Some(attached.session_expiry);
        ack = match fit_connack(ack, version, client_max_packet) {
            Some(ack) => ack,
            None => {
                info!("closed: the CONNACK no longer fits the client's Maximum Packet Size");
                let how = Disconnect::Lost;
                let now = Instant::now();
                ctx.broker
                    .disconnect(&attached.session, attached.generation, how, now);
                close_quietly(&mut stream).await;
                return None;
            }
        };
    }
    encode(&Packet::ConnAck(ack), version, &mut wbuf);

    let id = ctx.registry.next_id();
    ctx.registry.insert(ConnectionInfo {
        id,
        port: ctx.port,
        peer: ctx.peer,
        protocol: version,
        connected_at: std::time::SystemTime::now(),
        session: attached.session.clone(),
        identity: identity.clone(),
        control: control.clone(),
        category,
    });
    if ctx.shutdown.is_cancelled() {
        // The port closed while this client connected; its accept loop has ended the others.
        control.kick(ReasonCode::SERVER_SHUTTING_DOWN);
    }
    let mut conn = Conn::new(ctx, version, &attached, outbound, session_expiry, identity)
        .with_category(category_stats);
    if attached.session_present {
        // After the registry knows the connection: a policy change from now on re-checks it.
        conn.reauthorize_resumed();
    }
    let mut pending = Vec::new();
    attached.session.resend_inflight(&mut pending);
    conn.write_outgoing(&mut pending, &mut wbuf);
    // Persistence: the CONNACK (and resent flows) wait until the session's record is durable
    // (and, in a cluster, what the session's client published is durable there).
    let mut gate = durable::Gate::new(&attached.session, ctx.broker.fabric());
    gate.hold(&mut wbuf, 0);
    Some(Live::new(
        stream,
        conn,
        Settled {
            rbuf,
            wbuf,
            gate,
            limits,
            keep_alive,
            control,
            id,
        },
    ))
}

/// Takes the CONNECT out of its box, freeing the box now: the box of a value moved out of it in an
/// async fn is freed only when the fn ends, which kept ~370 B per idle connection.
fn unbox(connect: Box<Connect>) -> Connect {
    *connect
}

/// In a cluster, makes this node the owner of `client_id` before its connection attaches: a
/// connection of it on another node ends there (DISCONNECT 0x8E), and its session, when this
/// connection resumes it (`resume`: Clean Start 0) and `principal` made it, moves here. Nothing
/// without a cluster.
async fn claim(broker: &Broker, client_id: &str, resume: bool, principal: &str) {
    if client_id.is_empty() {
        return;
    }
    let Some(fabric) = broker.fabric() else {
        return;
    };
    if let Some(state) = fabric.claim(client_id, resume, Some(principal)).await {
        broker.adopt(state, Instant::now());
    }
}

/// How long a new connection waits for the connection already attached to its client ID's
/// session to process what its client sent before and end ([`hand_over`]); past it, it is
/// told to go at once (DISCONNECT 0x8E).
const HANDOVER_WAIT: Duration = Duration::from_secs(3);

/// Wakes the connection waiting in [`hand_over`].
#[derive(Default)]
struct HandedOver(tokio::sync::Notify);

impl wardgate_core::Wake for HandedOver {
    fn wake(&self) {
        self.0.notify_one();
    }
}

/// Lets the connection attached to `client_id`'s session, if any, process what its client sent
/// before this connection came (a PUBLISH, a DISCONNECT that discards the will or ends the
/// session: [MQTT-3.14.4-3], [MQTT-3.2.2-3]) and end, before this one attaches; at most
/// [`HANDOVER_WAIT`].
async fn hand_over(broker: &Broker, client_id: &str) {
    if client_id.is_empty() {
        return;
    }
    let Some(session) = broker.session(client_id) else {
        return;
    };
    let done = Arc::new(HandedOver::default());
    if session.request_handover(done.clone()) {
        drop(session);
        let _ = tokio::time::timeout(HANDOVER_WAIT, done.0.notified()).await;
    }
}
