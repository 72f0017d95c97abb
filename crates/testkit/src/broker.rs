//! A broker in this process on loopback port 0, for integration tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_server::{ConnectionSettings, PortProtocol, PortSpec};

/// A running in-process broker; shuts down when dropped.
pub struct TestBroker {
    /// The broker core, for assertions on its state.
    pub broker: Arc<Broker>,
    /// The live connections.
    pub registry: Arc<wardgate_server::registry::Registry>,
    /// The MQTT-over-TCP port.
    pub tcp: SocketAddr,
    /// The MQTT-over-WebSocket port.
    pub ws: SocketAddr,
    shutdown: CancellationToken,
}

impl TestBroker {
    /// Starts a broker with default settings.
    pub async fn start() -> TestBroker {
        TestBroker::with(BrokerSettings::default(), ConnectionSettings::default()).await
    }

    /// Starts a broker with the given settings.
    pub async fn with(settings: BrokerSettings, conn: ConnectionSettings) -> TestBroker {
        TestBroker::with_broker(Arc::new(Broker::new(settings)), conn).await
    }

    /// Serves `broker` (one with a store, say).
    pub async fn with_broker(broker: Arc<Broker>, conn: ConnectionSettings) -> TestBroker {
        let conn = Arc::new(arc_swap::ArcSwap::from_pointee(conn));
        let shutdown = CancellationToken::new();
        let registry = Arc::new(wardgate_server::registry::Registry::default());
        let mut addrs = Vec::new();
        for (name, protocol) in [
            ("test/tcp", PortProtocol::Mqtt),
            ("test/ws", PortProtocol::WebSockets),
        ] {
            let spec = PortSpec {
                name: name.into(),
                port: 0,
                addrs: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
                protocol,
            };
            let bound = wardgate_server::bind(spec).expect("bind loopback port 0");
            addrs.push(bound.local_addrs()[0]);
            bound.serve(
                broker.clone(),
                conn.clone(),
                registry.clone(),
                Default::default(),
                None,
                Default::default(),
                shutdown.clone(),
            );
        }
        tokio::spawn(wardgate_server::run_ticker(
            broker.clone(),
            shutdown.clone(),
        ));
        TestBroker {
            broker,
            registry,
            tcp: addrs[0],
            ws: addrs[1],
            shutdown,
        }
    }

    /// Starts graceful shutdown (v5 clients get DISCONNECT 0x8B).
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
