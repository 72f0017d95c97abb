//! One MQTT 5 connection of a load client: a persistent session (Clean Start 0, a Session Expiry
//! Interval), on the load generator's own client (`wardgate_bench::wire`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use wardgate_bench::wire::{Client, mqtt_connect_with};
use wardgate_protocol::{Connect, ConnectProperties, ProtocolVersion};

use super::journal::{ClientRef, EventKind, Journal};
use crate::error::Result;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before trying the next node after a failed connection attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Why a client's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its work is done.
    Done,
    /// Its node failed: closed, or silent too long.
    Lost,
}

/// A client's walk over the nodes, as a client with several broker URLs does: it connects to
/// the current node, and after a failure to the next one; every connection made or lost goes
/// into the journal.
#[derive(Debug)]
pub struct Failover {
    nodes: Arc<[SocketAddr]>,
    node: usize,
    client_id: String,
    me: ClientRef,
    journal: Arc<Journal>,
    connected_before: bool,
}

impl Failover {
    /// Starts at node `home`.
    pub fn new(
        nodes: Arc<[SocketAddr]>,
        home: usize,
        client_id: &str,
        me: ClientRef,
        journal: Arc<Journal>,
    ) -> Failover {
        Failover {
            nodes,
            node: home,
            client_id: client_id.to_owned(),
            me,
            journal,
            connected_before: false,
        }
    }

    /// Connects to the current node, or the next ones in turn, until one accepts; `None` once
    /// `until` is cancelled. Returns the client and Session Present.
    pub async fn connect(&mut self, until: &CancellationToken) -> Option<(Client, bool)> {
        while !until.is_cancelled() {
            match connect(self.nodes[self.node], &self.client_id, CONNECT_TIMEOUT).await {
                Ok((client, present)) => {
                    self.journal.event(
                        self.me,
                        EventKind::Connected {
                            node: self.node,
                            session_present: present,
                            resumed: self.connected_before,
                        },
                    );
                    self.connected_before = true;
                    return Some((client, present));
                }
                Err(_) => {
                    self.next();
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        None
    }

    /// The connection failed: recorded, and the next attempt goes to the next node.
    pub fn lost(&mut self) {
        self.journal.event(self.me, EventKind::Lost);
        self.next();
    }

    fn next(&mut self) {
        self.node = (self.node + 1) % self.nodes.len();
    }
}

/// How long a session outlives its connection: longer than any fault.
const SESSION_EXPIRY_SECS: u32 = 600;
/// The keep alive the clients announce.
const KEEP_ALIVE_SECS: u16 = 10;

/// Connects to `addr` as `client_id`, resuming its session; returns the client and Session
/// Present.
async fn connect(addr: SocketAddr, client_id: &str, timeout: Duration) -> Result<(Client, bool)> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| wardgate_bench::error::Error::io(format!("connect to {addr}"), e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| wardgate_bench::error::Error::io("TCP_NODELAY", e))?;
        let mut rbuf = BytesMut::with_capacity(4096);
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: false,
            keep_alive: KEEP_ALIVE_SECS,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties {
                session_expiry_interval: Some(SESSION_EXPIRY_SECS),
                ..ConnectProperties::default()
            },
        };
        let ack = mqtt_connect_with(&mut stream, &mut rbuf, connect).await?;
        let client = Client {
            stream,
            version: ProtocolVersion::V5,
            rbuf,
            wbuf: BytesMut::with_capacity(4096),
            server_receive_maximum: ack.properties.receive_maximum.unwrap_or(u16::MAX),
        };
        Ok((client, ack.session_present))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(wardgate_bench::error::Error::Timeout(format!(
            "CONNECT of {client_id} to {addr}"
        ))
        .into()),
    }
}
