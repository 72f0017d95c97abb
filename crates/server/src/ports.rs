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
use crate::stats::ConnectionStats;

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
    /// `shutdown` is cancelled: cancel a port's own token to close it alone. The connections
    /// register in `registry` and count in `stats`. The accept loops and the connections run
    /// on the port's tasks ([`BoundPort::with_tasks`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "what a port shares with its connections, each from its own owner"
    )]
    pub fn serve(
        self,
        broker: Arc<Broker>,
        settings: Arc<ArcSwap<ConnectionSettings>>,
        registry: Arc<Registry>,
        stats: Arc<ConnectionStats>,
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
            stats,
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
    stats: Arc<ConnectionStats>,
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
                port.stats.count_accept_failure(shed);
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
        stats: port.stats.clone(),
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
    // Built in a block, so nothing of the handshake is kept in this future while it serves.
    let serve = {
        let Some(stream) = connection::tls_handshake(stream, &mut ctx, acceptor).await else {
            return;
        };
        Box::pin(serve_protocol(stream, ctx, protocol))
    };
    serve.await;
}

async fn serve_protocol<S: Transport>(stream: S, ctx: connection::Context, protocol: PortProtocol) {
    match protocol {
        PortProtocol::Mqtt => connection::run(stream, ctx).await,
        PortProtocol::WebSockets => connection::upgrade_then_run(stream, ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            stats: Default::default(),
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
}
