//! Ports: binding a listener port on the addresses its service type implies, and the accept loop
//! that hands each connection to its own task (the accept loop only accepts).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use wardgate_core::Broker;
use wardgate_protocol::ReasonCode;

use crate::ServerError;
use crate::connection::{self, ConnectionSettings, Transport};
use crate::registry::Registry;
use crate::security::PortSecurity;

/// What a port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortProtocol {
    /// MQTT over TCP.
    Mqtt,
    /// MQTT over WebSocket (path `/mqtt` or `/`, subprotocol `mqtt` or `mqttv3.1`).
    WebSockets,
}

/// One port to open, resolved from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// `Listener/port` label for logs.
    pub name: String,
    /// The port number shown to users (the listener port, or its nodePort).
    pub port: u16,
    /// The addresses to bind (loopback for ClusterIp, all interfaces for LoadBalancer/NodePort).
    pub addrs: Vec<SocketAddr>,
    /// Protocol spoken on it.
    pub protocol: PortProtocol,
}

/// A bound port, ready to accept.
#[derive(Debug)]
pub struct BoundPort {
    /// What was asked for.
    pub spec: PortSpec,
    listeners: Vec<TcpListener>,
    /// Where the accept loops and connections run; graceful shutdown awaits them there.
    tasks: TaskTracker,
}

impl BoundPort {
    /// Runs the port's accept loops and connections on `tasks` (the server's, which shutdown
    /// awaits), instead of a tracker of their own that nothing awaits.
    pub fn with_tasks(mut self, tasks: TaskTracker) -> BoundPort {
        self.tasks = tasks;
        self
    }

    /// The local addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Accepts connections until `shutdown`, spawning a task per connection. Each connection
    /// takes the settings current when it is accepted, and ends (v5: DISCONNECT 0x8B) when
    /// `shutdown` is cancelled: cancel a port's own token to close it alone. The accept loops
    /// and the connections run on the port's tasks ([`BoundPort::with_tasks`]).
    pub fn serve(
        self,
        broker: Arc<Broker>,
        settings: Arc<ArcSwap<ConnectionSettings>>,
        registry: Arc<Registry>,
        tls: Option<Arc<ArcSwap<ServerConfig>>>,
        security: Arc<ArcSwap<PortSecurity>>,
        shutdown: CancellationToken,
    ) {
        registry.watch_keep_alive();
        let shared = Arc::new(PortShared {
            spec: self.spec,
            broker,
            settings,
            registry,
            tls,
            security,
            shutdown,
            tasks: self.tasks,
        });
        for listener in self.listeners {
            shared.tasks.spawn(accept_loop(listener, shared.clone()));
        }
    }
}

/// What every connection of one port shares.
struct PortShared {
    spec: PortSpec,
    broker: Arc<Broker>,
    settings: Arc<ArcSwap<ConnectionSettings>>,
    registry: Arc<Registry>,
    /// The port's TLS configuration; swapped on certificate changes, read at each handshake.
    tls: Option<Arc<ArcSwap<ServerConfig>>>,
    /// The port's authentication and authorization, swapped on reload.
    security: Arc<ArcSwap<PortSecurity>>,
    shutdown: CancellationToken,
    /// Where the connection tasks run.
    tasks: TaskTracker,
}

/// Binds every address of `spec`. Binding `[::]` also covers IPv4 where the OS allows it, so an
/// IPv4 wildcard that then fails with "address in use" is not an error.
pub fn bind(spec: PortSpec) -> Result<BoundPort, ServerError> {
    let mut listeners = Vec::new();
    for addr in &spec.addrs {
        match bind_one(*addr) {
            Ok(l) => listeners.push(l),
            Err(e) if addr.ip().is_ipv6() && !listeners.is_empty() => {
                // IPv6 may be unavailable on this host; IPv4 already listens.
                warn!(port = spec.port, %addr, error = %e, "IPv6 address not bound");
            }
            Err(source) => {
                return Err(ServerError::Bind {
                    name: spec.name.clone(),
                    port: spec.port,
                    addr: *addr,
                    source,
                });
            }
        }
    }
    Ok(BoundPort {
        spec,
        listeners,
        tasks: TaskTracker::new(),
    })
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, port: Arc<PortShared>) {
    let spec = &port.spec;
    if let Ok(addr) = listener.local_addr() {
        debug!(port = spec.port, %addr, protocol = ?spec.protocol, listener = %spec.name, "accepting");
    }
    // The port as connections know it (for port 0, in tests, the one the OS chose).
    let number = match spec.port {
        0 => listener.local_addr().map_or(0, |a| a.port()),
        p => p,
    };
    let mut trouble = AcceptTrouble::default();
    loop {
        let accepted = tokio::select! {
            _ = port.shutdown.cancelled() => {
                // Attached connections wait for no token of their own (every idle connection
                // would keep one): the port ends them. One that attaches after this sees the
                // token cancelled itself.
                port.registry.kick_port(number, ReasonCode::SERVER_SHUTTING_DOWN);
                return;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                trouble.recovered(number);
                pair
            }
            Err(e) => {
                // Out of file descriptors, most often: the pending connection stays in the
                // backlog and accept fails again at once. Shed it (and what else is pending)
                // with the reserve descriptor, else back off; either way counted, logged once
                // per interval.
                let shed = trouble.shed(&listener);
                port.registry.count_accept_failure(shed);
                trouble.failed(number, &e, shed);
                if shed == 0 {
                    tokio::select! {
                        _ = port.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(trouble.backoff()) => {}
                    }
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ctx = context(peer, number, &port);
        match (&port.tls, spec.protocol) {
            // The task is the connection itself: nothing else lives as long as it does.
            (None, PortProtocol::Mqtt) => port.tasks.spawn(connection::run(stream, ctx)),
            (None, protocol) => port.tasks.spawn(serve_protocol(stream, ctx, protocol)),
            (Some(tls), protocol) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls.load_full());
                port.tasks
                    .spawn(handshake_then_serve(stream, ctx, acceptor, protocol))
            }
        };
    }
}

/// The accept loop's answer to failing accepts (EMFILE/ENFILE: the process or the system is out
/// of file descriptors). Without one, a connection waiting in the backlog makes every accept fail
/// at once, and the client hangs there until a descriptor frees up. As libuv does, a descriptor
/// kept in reserve is given up to accept the waiting connections and close them at once (the
/// client sees the connection closed, not a hang), then taken again; when that is not possible,
/// the loop waits, from 10 ms doubling to 1 s. Each failure is counted
/// (`wardgate_accept_failures_total`, `wardgate_connections_shed_total`). The log says so at
/// most once per [`AcceptTrouble::LOG_EVERY`], with the counts since its last line, and once
/// when accepting works again after such a line: at the limit, descriptors come and go, and
/// accepts that fail and succeed in turn must not make a line each.
struct AcceptTrouble {
    /// Held to be given up when accepting fails for want of a descriptor (`/dev/null`).
    reserve: Option<std::fs::File>,
    backoff: Duration,
    /// Failures and connections shed since the last log line.
    failures: u64,
    shed: u64,
    /// When the last "accept failed" line was written.
    logged: Option<tokio::time::Instant>,
    /// An "accept failed" line was written and no "accepting again" since.
    told: bool,
}

impl Default for AcceptTrouble {
    fn default() -> Self {
        Self {
            reserve: open_reserve(),
            backoff: Self::BACKOFF_MIN,
            failures: 0,
            shed: 0,
            logged: None,
            told: false,
        }
    }
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

impl AcceptTrouble {
    const BACKOFF_MIN: Duration = Duration::from_millis(10);
    const BACKOFF_MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);
    /// Most connections shed at one failure (the rest wait for the next turn).
    const SHED_MAX: u64 = 64;

    /// Gives up the reserve descriptor to accept and close the connections waiting in the
    /// backlog, then takes it again. Returns how many were shed.
    fn shed(&mut self, listener: &TcpListener) -> u64 {
        if self.reserve.take().is_none() {
            self.reserve = open_reserve();
            return 0;
        }
        let mut shed = 0;
        // Accepts only what is ready now (a closed, not a waiting, accept).
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        while shed < Self::SHED_MAX {
            match listener.poll_accept(&mut cx) {
                std::task::Poll::Ready(Ok((stream, _))) => {
                    drop(stream);
                    shed += 1;
                }
                _ => break,
            }
        }
        self.reserve = open_reserve();
        shed
    }

    /// How long to wait before accepting again: doubles at each call, up to a second.
    fn backoff(&mut self) -> Duration {
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(Self::BACKOFF_MAX);
        wait
    }

    fn failed(&mut self, port: u16, error: &std::io::Error, shed: u64) {
        self.failures += 1;
        self.shed += shed;
        let now = tokio::time::Instant::now();
        if self.logged.is_some_and(|at| now < at + Self::LOG_EVERY) {
            return;
        }
        warn!(
            port,
            error = %error,
            failures = self.failures,
            shed = self.shed,
            interval_s = Self::LOG_EVERY.as_secs(),
            "accept failed: new connections are closed at once (shed) or wait in the \
             backlog; at the file-descriptor limit, raise it (ulimit -n, LimitNOFILE). \
             Said again at most once per interval, with the counts since the last line"
        );
        self.failures = 0;
        self.shed = 0;
        self.logged = Some(now);
        self.told = true;
    }

    /// An accept succeeded.
    fn recovered(&mut self, port: u16) {
        self.backoff = Self::BACKOFF_MIN;
        if self.reserve.is_none() {
            self.reserve = open_reserve();
        }
        if !self.told {
            return;
        }
        info!(
            port,
            failures = self.failures,
            shed = self.shed,
            "accepting connections again (failures and connections shed since the last line)"
        );
        self.failures = 0;
        self.shed = 0;
        self.told = false;
    }
}

/// What a new connection of `port` (numbered `number`) is given.
fn context(peer: SocketAddr, number: u16, port: &Arc<PortShared>) -> connection::Context {
    connection::Context {
        broker: port.broker.clone(),
        settings: port.settings.load_full(),
        port: number,
        peer,
        shutdown: port.shutdown.clone(),
        registry: port.registry.clone(),
        client_chain: Vec::new(),
        security: port.security.clone(),
    }
}

/// The TLS handshake, in the connection's own task under the connect timeout (a slow or broken
/// client never holds up the accept loop), then the connection.
async fn handshake_then_serve(
    stream: TcpStream,
    mut ctx: connection::Context,
    acceptor: tokio_rustls::TlsAcceptor,
    protocol: PortProtocol,
) {
    let peer = ctx.peer;
    let timeout = ctx.settings.connect_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    // Built in a block, so nothing of the handshake is kept in this future while it serves.
    let serve = {
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
                return debug!(%peer, port = ctx.port, error = %e, "connection lost before the TLS handshake");
            }
            Err(_) => {
                return info!(%peer, port = ctx.port, timeout_s = timeout.as_secs(),
                    "TLS handshake timed out: the client sent nothing; the connection is closed");
            }
        };
        if first.is_empty() {
            // Port probes end here; not worth an info line each.
            return debug!(%peer, port = ctx.port, "connection closed before the TLS handshake");
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
                return info!(%peer, port = ctx.port, error = %e, "TLS handshake failed: {why}");
            }
            Err(_) => {
                return info!(%peer, port = ctx.port, timeout_s = timeout.as_secs(),
                    "TLS handshake timed out: the client started it and stalled; the connection is closed");
            }
        };
        if let Some(chain) = stream.get_ref().1.peer_certificates() {
            ctx.client_chain = chain.iter().map(|c| c.clone().into_owned()).collect();
        }
        Box::pin(serve_protocol(stream, ctx, protocol))
    };
    serve.await;
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

async fn serve_protocol<S: Transport>(stream: S, ctx: connection::Context, protocol: PortProtocol) {
    let peer = ctx.peer;
    match protocol {
        PortProtocol::Mqtt => connection::run(stream, ctx).await,
        PortProtocol::WebSockets => {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    /// A connection's task lives as long as the connection, so its size is paid by every idle
    /// client (issue 3's target is 2 KB per connection in all): a plain connection's task is the
    /// attached connection itself, with the connect phase, the TLS handshake and the WebSocket
    /// upgrade in allocations of their own.
    #[tokio::test]
    async fn a_plain_connection_task_is_the_attached_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stream, _) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let stream = stream.expect("connect");
        let port = Arc::new(PortShared {
            spec: PortSpec {
                name: "test".into(),
                port: addr.port(),
                addrs: vec![addr],
                protocol: PortProtocol::Mqtt,
            },
            broker: Arc::new(Broker::new(Default::default())),
            settings: Default::default(),
            registry: Default::default(),
            tls: None,
            security: Default::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let ctx = context(addr, addr.port(), &port);
        let size = std::mem::size_of_val(&connection::run(stream, ctx));
        // 2,656 bytes in three allocations when the connection was an `async fn` with a
        // `select!` (task, protocol dispatch, connection future).
        assert!(size <= 768, "a plain connection's task is {size} bytes");
    }

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
