//! One MQTT 5 connection of a load client: a persistent session (Clean Start 0, a Session Expiry
//! Interval), on the load generator's own client (`wardgate_bench::wire`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use wardgate_bench::wire::{Client, mqtt_connect_with};
use wardgate_protocol::{Connect, ConnectProperties, ProtocolVersion};

use crate::error::Result;

/// How long a session outlives its connection: longer than any fault.
const SESSION_EXPIRY_SECS: u32 = 600;
/// The keep alive the clients announce.
const KEEP_ALIVE_SECS: u16 = 10;

/// Connects to `addr` as `client_id`, resuming its session; returns the client and Session
/// Present.
pub async fn connect(
    addr: SocketAddr,
    client_id: &str,
    timeout: Duration,
) -> Result<(Client, bool)> {
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
