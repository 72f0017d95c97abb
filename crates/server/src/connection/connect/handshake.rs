//! The transport's own handshake, before CONNECT: TLS (with a log line that says why a
//! handshake failed) and the WebSocket upgrade, each under the connect timeout, in the
//! connection's own task (a slow or broken client never holds up the accept loop).

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info};

use crate::connection::{self, Context, Transport};

/// The TLS handshake under the connect timeout; the client's verified certificate chain goes
/// into `ctx`. `None` (said in the log) when it failed.
pub(crate) async fn tls_handshake(
    stream: TcpStream,
    ctx: &mut Context,
    acceptor: TlsAcceptor,
) -> Option<TlsStream<TcpStream>> {
    let peer = ctx.peer;
    let timeout = ctx.settings.connect_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // The first bytes, left in the socket for the handshake, tell a client that does not
    // speak TLS (plain MQTT, HTTP) from a broken TLS client in the log line, and which TLS
    // versions its ClientHello offers. On the heap: kept only during the handshake.
    let mut first = vec![0u8; CLIENT_HELLO_PEEK];
    let first = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(n)) => {
            first.truncate(n);
            first
        }
        Ok(Err(e)) => {
            debug!(%peer, port = ctx.port, error = %e, "connection lost before the TLS handshake");
            return None;
        }
        Err(_) => {
            info!(%peer, port = ctx.port, timeout_s = timeout.as_secs(),
                "TLS handshake timed out: the client sent nothing; the connection is closed");
            return None;
        }
    };
    if first.is_empty() {
        // Port probes end here; not worth an info line each.
        debug!(%peer, port = ctx.port, "connection closed before the TLS handshake");
        return None;
    }
    // In a span with the peer: what the client certificate verifier logs names the client.
    let span = tracing::info_span!("tls", %peer, port = ctx.port);
    let handshake = Box::pin(tracing::Instrument::instrument(
        acceptor.accept(stream),
        span,
    ));
    let stream = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let why = handshake_failure(&first, &e);
            info!(%peer, port = ctx.port, error = %e, "TLS handshake failed: {why}");
            return None;
        }
        Err(_) => {
            info!(%peer, port = ctx.port, timeout_s = timeout.as_secs(),
                "TLS handshake timed out: the client started it and stalled; the connection is closed");
            return None;
        }
    };
    if let Some(chain) = stream.get_ref().1.peer_certificates() {
        ctx.client_chain = chain.iter().map(|c| c.clone().into_owned()).collect();
    }
    Some(stream)
}

/// The WebSocket upgrade (path `/mqtt` or `/`) under the connect timeout, then the connection.
pub(crate) async fn upgrade_then_run<S: Transport>(stream: S, ctx: Context) {
    let peer = ctx.peer;
    let upgrade = tokio::time::timeout(
        ctx.settings.connect_timeout,
        Box::pin(crate::ws::accept(stream)),
    );
    match upgrade.await {
        Ok(Ok(ws)) => connection::run(ws, ctx).await,
        // Port probes and plain HTTP requests end here; not worth an info line each.
        Ok(Err(e)) => {
            debug!(%peer, port = ctx.port, error = %e, "WebSocket upgrade failed")
        }
        Err(_) => info!(%peer, port = ctx.port, "WebSocket upgrade timed out"),
    }
}

/// How much of a TLS client's first flight is peeked at for the log line of a failed handshake
/// (a ClientHello with post-quantum key shares is about 1.8 KB).
const CLIENT_HELLO_PEEK: usize = 4096;

/// The TLS versions a ClientHello offers, by name (its `supported_versions` extension, else its
/// legacy version), GREASE values left out; `None` when `hello` does not start with a
/// ClientHello record or is cut before its version.
fn offered_tls_versions(hello: &[u8]) -> Option<Vec<String>> {
    let u16_at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    // Record header (type 0x16, version, length), then the handshake header (type 1, length).
    if hello.first() != Some(&0x16) || hello.get(5) != Some(&1) {
        return None;
    }
    let body = hello.get(9..)?;
    let legacy = u16_at(body, 0)?;
    let name = |v: u16| match v {
        0x0300 => "SSL 3.0".to_owned(),
        0x0301 => "TLS 1.0".to_owned(),
        0x0302 => "TLS 1.1".to_owned(),
        0x0303 => "TLS 1.2".to_owned(),
        0x0304 => "TLS 1.3".to_owned(),
        v => format!("0x{v:04x}"),
    };
    let grease = |v: u16| v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff;
    // Skip version, random, session id, cipher suites and compression methods.
    let mut i = 2 + 32;
    i += 1 + usize::from(*body.get(i)?);
    i += 2 + usize::from(u16_at(body, i).unwrap_or(0));
    i += 1 + usize::from(body.get(i).copied().unwrap_or(0));
    let mut offered = None;
    if let Some(len) = u16_at(body, i) {
        let end = (i + 2 + usize::from(len)).min(body.len());
        i += 2;
        while let (Some(kind), Some(len)) = (u16_at(body, i), u16_at(body, i + 2)) {
            let data = body.get(i + 4..(i + 4 + usize::from(len)).min(end));
            if kind == 0x002b {
                // supported_versions: a one-byte length, then two bytes per version.
                offered = data.and_then(|d| {
                    let list = d.get(1..1 + usize::from(*d.first()?))?;
                    Some(
                        list.chunks_exact(2)
                            .map(|c| u16::from_be_bytes([c[0], c[1]]))
                            .filter(|v| !grease(*v))
                            .collect::<Vec<u16>>(),
                    )
                });
                break;
            }
            i += 4 + usize::from(len);
            if i >= end {
                break;
            }
        }
    }
    let versions = offered.unwrap_or_else(|| vec![legacy]);
    Some(versions.into_iter().map(name).collect())
}

/// Why a TLS handshake failed, in words a user can act on. `first` holds the first bytes the
/// client sent: a TLS client starts with a handshake record (0x16).
fn handshake_failure(first: &[u8], error: &std::io::Error) -> String {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    const MQTT_CONNECT: u8 = 0x10;
    match first.first() {
        Some(&MQTT_CONNECT) => {
            return "the client sent a plain MQTT CONNECT to a TLS port; it must connect with TLS \
                    (mosquitto: --cafile CA_FILE; MQTT.js: mqtts:// or wss://)"
                .to_owned();
        }
        Some(&TLS_HANDSHAKE_RECORD) => {
            if let Some(versions) = offered_tls_versions(first)
                && !versions.iter().any(|v| v == "TLS 1.2" || v == "TLS 1.3")
            {
                return format!(
                    "the client offers only {}; Wardgate serves TLS 1.2 and 1.3: update the \
                     client or its TLS settings (mosquitto: --tls-version tlsv1.2)",
                    versions.join(", ")
                );
            }
        }
        _ if first.starts_with(b"GET ") => {
            return "the client sent a plain HTTP request to a TLS port; it must connect with TLS \
                    (wss:// instead of ws://)"
                .to_owned();
        }
        _ => {
            let hex: Vec<String> = first.iter().map(|b| format!("{b:02x}")).collect();
            return format!(
                "the client does not speak TLS (it sent {} first, not a TLS handshake)",
                hex.join(" ")
            );
        }
    }
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => {
            use rustls::AlertDescription as A;
            match alert {
                A::CertificateExpired => format!(
                    "the client rejected the server certificate as expired or not yet valid \
                     (alert {alert:?}): renew it, or check the clocks"
                ),
                // Clients say UnknownCA or BadCertificate, but OpenSSL-based ones (mosquitto)
                // end a hostname mismatch with InternalError: name the usual causes for all.
                _ => format!(
                    "the client ended the handshake (alert {alert:?}), most often because it \
                     rejects the server certificate: check that it trusts the issuing CA \
                     (--cafile) and dials a name or address among the certificate's SANs \
                     (`wardgate cert inspect FILE --host NAME`)"
                ),
            }
        }
        Some(rustls::Error::InvalidCertificate(e)) => {
            format!("the client certificate was rejected ({e:?})")
        }
        Some(rustls::Error::PeerIncompatible(e)) => match offered_tls_versions(first) {
            Some(versions) => format!(
                "the client offers {} but nothing else in common: no cipher suite, signature \
                 scheme or key exchange Wardgate supports ({e:?})",
                versions.join(", ")
            ),
            None => format!("the client offers no TLS version or cipher suite in common ({e:?})"),
        },
        Some(e) => e.to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    fn tls_error(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn a_failed_handshake_is_explained_from_the_first_bytes_and_the_error() {
        let corrupt = || {
            tls_error(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType,
            ))
        };
        let cases: [(&[u8], std::io::Error, &str); 6] = [
            (
                b"\x10\x10\x00\x04MQTT",
                corrupt(),
                "plain MQTT CONNECT to a TLS port",
            ),
            (b"GET /mqtt", corrupt(), "plain HTTP request to a TLS port"),
            (
                b"\x9b\x01",
                corrupt(),
                "does not speak TLS (it sent 9b 01 first",
            ),
            (
                b"\x16\x03\x01",
                tls_error(rustls::Error::AlertReceived(
                    AlertDescription::CertificateExpired,
                )),
                "rejected the server certificate as expired",
            ),
            (
                b"\x16\x03\x01",
                tls_error(rustls::Error::AlertReceived(
                    AlertDescription::InternalError,
                )),
                "alert InternalError), most often because it rejects the server certificate",
            ),
            (
                b"\x16\x03\x01",
                tls_error(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer,
                )),
                "the client certificate was rejected (UnknownIssuer)",
            ),
        ];
        for (first, error, want) in cases {
            let why = handshake_failure(first, &error);
            assert!(why.contains(want), "{first:?}: {why}");
        }
    }

    /// A ClientHello record with `legacy` as its version and `extensions`.
    fn client_hello(legacy: u16, extensions: &[u8]) -> Vec<u8> {
        let mut body = legacy.to_be_bytes().to_vec();
        body.extend([0u8; 32]); // random
        body.push(0); // session id
        body.extend([0, 2, 0x13, 0x01]); // one cipher suite
        body.extend([1, 0]); // compression: null
        if !extensions.is_empty() {
            body.extend(u16::try_from(extensions.len()).unwrap().to_be_bytes());
            body.extend(extensions);
        }
        let mut hs = vec![1, 0];
        hs.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        hs.extend(body);
        let mut record = vec![0x16, 3, 1];
        record.extend(u16::try_from(hs.len()).unwrap().to_be_bytes());
        record.extend(hs);
        record
    }

    #[test]
    fn the_tls_versions_a_client_hello_offers_are_named() {
        let tls11 = client_hello(0x0302, &[]);
        assert_eq!(offered_tls_versions(&tls11).unwrap(), ["TLS 1.1"]);
        // server_name (empty), then supported_versions with a GREASE value, 1.3 and 1.2.
        let ext = [0, 0, 0, 0, 0, 0x2b, 0, 7, 6, 0x0a, 0x0a, 3, 4, 3, 3];
        let modern = client_hello(0x0303, &ext);
        assert_eq!(
            offered_tls_versions(&modern).unwrap(),
            ["TLS 1.3", "TLS 1.2"]
        );
        let old = [0, 0x2b, 0, 5, 4, 3, 2, 3, 1];
        assert_eq!(
            offered_tls_versions(&client_hello(0x0303, &old)).unwrap(),
            ["TLS 1.1", "TLS 1.0"]
        );
        // Cut short, or not a ClientHello: nothing to say; never a panic.
        for n in 0..modern.len() {
            let _ = offered_tls_versions(&modern[..n]);
        }
        assert!(offered_tls_versions(b"\x16\x03\x01").is_none());
        assert!(offered_tls_versions(b"\x10\x10\x00\x04MQTT").is_none());
        let any = tls_error(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::SupportedVersionsExtensionRequired,
        ));
        let why = handshake_failure(&tls11, &any);
        assert!(why.contains("offers only TLS 1.1"), "{why}");
        let why = handshake_failure(&modern, &any);
        assert!(why.contains("offers TLS 1.3, TLS 1.2 but"), "{why}");
    }
}
