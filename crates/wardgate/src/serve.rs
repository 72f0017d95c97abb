//! `wardgate serve`: build the broker from the configuration (or the quickstart), open the
//! ports, run until SIGINT/SIGTERM, then shut down gracefully.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wardgate_config::model::Model;
use wardgate_core::Broker;
use wardgate_server::{PortProtocol, PortSpec, plan};

use crate::ServeArgs;

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wardgate")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    if let Some(addr) = args.admin_addr {
        warn!(%addr, "the admin API is not available in this version yet; --admin-addr is ignored");
    }
    // Handlers first: a signal that arrives while ports open must not kill the process abruptly.
    let signals = Signals::install()?;
    let model = load_model(&args)?;
    let broker = Arc::new(Broker::new(plan::broker_settings(&model.broker)));
    let settings = Arc::new(plan::connection_settings(&model.broker));
    let shutdown = CancellationToken::new();

    let mut opened = Vec::new();
    for planned in plan::ports(&model) {
        if let Some(reason) = &planned.blocked {
            warn!(port = planned.spec.port, listener = %planned.spec.name, state = "Failed", %reason, "port not opened");
            continue;
        }
        let port = wardgate_server::bind(planned.spec)?;
        info!(port = port.spec.port, addrs = ?port.local_addrs(), listener = %port.spec.name, state = "Listening", "port listening");
        opened.push((port.spec.clone(), port.local_addrs()));
        port.serve(broker.clone(), settings.clone(), shutdown.clone());
    }
    if opened.is_empty() {
        anyhow::bail!("no port could be opened; nothing to serve");
    }
    print_banner(&args, &opened);
    tokio::spawn(wardgate_server::run_ticker(
        broker.clone(),
        shutdown.clone(),
    ));

    signals.wait().await;
    info!("shutting down");
    shutdown.cancel();
    // Connection tasks send DISCONNECT 0x8B and close; give them a moment.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while broker
        .stats()
        .clients_connected
        .load(std::sync::atomic::Ordering::Relaxed)
        > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The configuration to serve: the files given, or the quickstart.
fn load_model(args: &ServeArgs) -> anyhow::Result<Model> {
    let mut model = if args.config.is_empty() {
        Model::quickstart()
    } else {
        let loaded = wardgate_config::load(&args.config)
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        loaded.model
    };
    if args.add_insecure_listener {
        model
            .add_insecure_listener()
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    }
    Ok(model)
}

fn print_banner(args: &ServeArgs, opened: &[(PortSpec, Vec<std::net::SocketAddr>)]) {
    println!("Wardgate {} is serving MQTT:", env!("CARGO_PKG_VERSION"));
    for (spec, addrs) in opened {
        let scheme = match spec.protocol {
            PortProtocol::Mqtt => "mqtt",
            PortProtocol::WebSockets => "ws",
        };
        let shown: Vec<String> = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
        println!("  {:<40} {}", spec.name, shown.join("  "));
    }
    if let Some((spec, _)) = opened
        .iter()
        .find(|(s, _)| s.protocol == PortProtocol::Mqtt)
    {
        println!();
        println!("Try it:");
        println!(
            "  mosquitto_sub -h 127.0.0.1 -p {} -t 'demo/#' -v",
            spec.port
        );
        println!(
            "  mosquitto_pub -h 127.0.0.1 -p {} -t demo/hello -m 'hi'",
            spec.port
        );
    }
    if args.config.is_empty() {
        println!();
        println!("This is the embedded quickstart (loopback only). To configure listeners, write");
        println!(
            "BrokerListener/BrokerAuthentication/BrokerAuthorization YAML into a folder and run"
        );
        println!("  wardgate serve --config <folder>     (see docs/configuration.md)");
    }
}

/// SIGINT/SIGTERM end the process gracefully; SIGHUP must not kill it.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    async fn wait(mut self) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => warn!("SIGHUP: live reload is not available in this version yet; configuration unchanged"),
            }
        }
    }
}
