//! Authentication at CONNECT (SPEC.md §7), MQTT 5 enhanced authentication exchanges included.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wardgate_protocol::{Auth, AuthProperties, Connect, DecodeLimits, Packet, ReasonCode, encode};
use wardgate_security::authn::{self, AuthRequest, AuthnOutcome, ConnectRequest, Identity};

use super::read_packet;
use crate::connection::Context;
use crate::security::PortSecurity;

/// Runs the port's authentication for CONNECT (SPEC.md §7), including MQTT 5 enhanced
/// authentication exchanges (AUTH 0x18), each answer awaited under the connect timeout. Without
/// an authenticator every client is anonymous.
pub(super) async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    security: &PortSecurity,
    connect: &Connect,
    ctx: &Context,
    stream: &mut S,
    rbuf: &mut BytesMut,
    limits: &DecodeLimits,
) -> Result<Identity, (ReasonCode, String)> {
    let Some(authn) = &security.authn else {
        return Ok(authn::anonymous(
            &connect.client_id,
            connect.username.as_deref(),
        ));
    };
    let request = ConnectRequest {
        client_id: &connect.client_id,
        username: connect.username.as_deref(),
        password: connect.password.as_deref(),
        auth_method: connect.properties.authentication_method.as_deref(),
        auth_data: connect.properties.authentication_data.as_deref(),
        client_chain: &ctx.client_chain,
        peer: ctx.peer,
        port: ctx.port,
        protocol_v5: connect.protocol.is_v5(),
    };
    let mut outcome = authn.connect(&request).await;
    loop {
        let (method, data) = match outcome {
            AuthnOutcome::Allowed(identity) => return Ok(identity),
            AuthnOutcome::Denied { reason, why } => return Err((reason, why)),
            AuthnOutcome::Continue { method, data } => (method, data),
        };
        if !connect.protocol.is_v5() {
            return Err((
                ReasonCode::NOT_AUTHORIZED,
                "enhanced authentication needs MQTT 5".into(),
            ));
        }
        let properties = AuthProperties {
            authentication_method: Some(method),
            authentication_data: data,
            ..Default::default()
        };
        let mut out = BytesMut::new();
        let challenge = Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties,
        };
        encode(&Packet::Auth(challenge), connect.protocol, &mut out);
        if stream.write_all(&out).await.is_err() {
            return Err((
                ReasonCode::UNSPECIFIED_ERROR,
                "connection lost during authentication".into(),
            ));
        }
        let read = read_packet(stream, rbuf, Some(connect.protocol), limits);
        let answer = match tokio::time::timeout(ctx.settings.connect_timeout, read).await {
            Ok(Ok(Packet::Auth(answer))) => answer,
            Ok(Ok(_)) => {
                return Err((
                    ReasonCode::PROTOCOL_ERROR,
                    "expected AUTH during authentication".into(),
                ));
            }
            Ok(Err(_)) => {
                return Err((
                    ReasonCode::MALFORMED_PACKET,
                    "bad packet during authentication".into(),
                ));
            }
            Err(_) => {
                return Err((
                    ReasonCode::NOT_AUTHORIZED,
                    "authentication timed out".into(),
                ));
            }
        };
        let request = AuthRequest {
            client_id: &connect.client_id,
            username: connect.username.as_deref(),
            auth_method: answer
                .properties
                .authentication_method
                .as_deref()
                .unwrap_or(""),
            auth_data: answer.properties.authentication_data.as_deref(),
            reason: answer.reason,
            current: None,
            client_chain: &ctx.client_chain,
            peer: ctx.peer,
            port: ctx.port,
        };
        outcome = authn.auth(&request).await;
    }
}
