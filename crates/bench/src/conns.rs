//! The idle-connections scenarios: open many connections (plain, or TLS with full handshakes) as
//! fast as the broker accepts them, hold them, and measure the connect rate and the broker's
//! resident memory per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use std::net::{Ipv4Addr, SocketAddr};

use bytes::BytesMut;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use wardgate_protocol::ProtocolVersion;

use crate::error::{Error, Result};
use crate::load::Target;
use crate::procfs;
use crate::wire::{mqtt_connect, tcp_connect};

/// A connection being held open.
#[expect(
    dead_code,
    reason = "the streams are only held, to keep the connections open"
)]
enum Held {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// How to reach the broker: plain TCP, or TLS with a client configuration.
#[derive(Clone)]
pub enum Transport {
    /// MQTT over TCP at the target's address for the version.
    Plain,
    /// MQTT over TLS at this address.
    Tls(SocketAddr, Arc<ClientConfig>),
}

async fn open(
    addr: SocketAddr,
    transport: &Transport,
    client_id: &str,
    version: ProtocolVersion,
) -> Result<Held> {
    let mut rbuf = BytesMut::with_capacity(256);
    match transport {
        Transport::Plain => {
            let mut stream = tcp_connect(addr).await?;
            mqtt_connect(&mut stream, &mut rbuf, client_id, version).await?;
            Ok(Held::Plain(stream))
        }
        Transport::Tls(tls_addr, config) => {
            let tcp = tcp_connect(*tls_addr).await?;
            let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
            let mut stream = TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Error::io("TLS handshake", e))?;
            mqtt_connect(&mut stream, &mut rbuf, client_id, version).await?;
            Ok(Held::Tls(Box::new(stream)))
        }
    }
}

/// Connections in flight at once.
const CONCURRENCY: usize = 64;

/// What the idle-connections scenario measured.
#[derive(Debug, Clone, Default)]
pub struct ConnOutcome {
    /// Connections opened (each got a CONNACK).
    pub opened: usize,
    /// Seconds from the first connect to the last CONNACK.
    pub elapsed_s: f64,
    /// Broker RSS before the first connection.
    pub rss_before: Option<u64>,
    /// Broker RSS with every connection open.
    pub rss_after: Option<u64>,
    /// Broker CPU seconds spent accepting them.
    pub broker_cpu_s: Option<f64>,
    /// This process's CPU seconds meanwhile.
    pub tool_cpu_s: f64,
    /// Broker peak RSS.
    pub broker_peak_rss: Option<u64>,
}

impl ConnOutcome {
    /// Connections per second.
    pub fn rate(&self) -> f64 {
        self.opened as f64 / self.elapsed_s.max(1e-9)
    }

    /// Broker RSS bytes per connection above the idle baseline.
    pub fn bytes_per_connection(&self) -> Option<f64> {
        let (before, after) = (self.rss_before?, self.rss_after?);
        Some((after as f64 - before as f64) / self.opened.max(1) as f64)
    }
}

/// Opens `count` connections to `target` over `transport`, holds them, then closes them.
pub async fn run(
    count: usize,
    version: ProtocolVersion,
    target: &Target,
    transport: Transport,
    nonce: &str,
    connect_timeout: Duration,
) -> Result<ConnOutcome> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    target.reset_peaks();
    let rss_before = target.memory().map(|(rss, _)| rss);
    let cpu0 = target.cpu_seconds();
    let tool0 = procfs::self_cpu_seconds();
    let next = Arc::new(AtomicUsize::new(0));
    let addr = target.addr(version);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY.min(count) {
        let next = next.clone();
        let nonce = nonce.to_owned();
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            let mut held: Vec<Held> = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, Error>(held);
                }
                let client_id = format!("{nonce}-c{i}");
                let c = tokio::time::timeout(
                    connect_timeout,
                    open(addr, &transport, &client_id, version),
                )
                .await
                .map_err(|_| Error::Timeout(format!("connecting {client_id}")))??;
                held.push(c);
            }
        }));
    }
    let mut held = Vec::with_capacity(count);
    let mut error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(streams)) => held.extend(streams),
            Ok(Err(e)) => {
                error.get_or_insert(e);
            }
            Err(e) => {
                error.get_or_insert(Error::Protocol(format!("connect task: {e}")));
            }
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let cpu1 = target.cpu_seconds();
    let tool1 = procfs::self_cpu_seconds();
    if let Some(e) = error {
        return Err(Error::Protocol(format!(
            "after {} of {count} connections: {e}",
            held.len()
        )));
    }
    // Let the broker finish its per-connection setup before reading its memory.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mem = target.memory();
    let outcome = ConnOutcome {
        opened: held.len(),
        elapsed_s,
        rss_before,
        rss_after: mem.map(|(rss, _)| rss),
        broker_cpu_s: cpu0.zip(cpu1).map(|(a, b)| b - a),
        tool_cpu_s: tool1 - tool0,
        broker_peak_rss: mem.map(|(_, hwm)| hwm),
    };
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(outcome)
}
