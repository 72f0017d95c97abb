//! `wardgate serve`: build the broker from the configuration (or the quickstart), open the
//! ports, run until SIGINT/SIGTERM, then shut down gracefully.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use wardgate_config::model::Model;
use wardgate_security::tls::TlsContext;
use wardgate_server::{PortProtocol, PortState, Status, Supervisor};

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
    // Handlers first: a signal that arrives while ports open must not kill the process abruptly.
    let mut signals = Signals::install()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let (model, warnings) = load_model(&args)?;
    // diagnostics.logs (issue 9): `--log-format` wins over the Broker's format. Both apply at
    // start only; a reload does not change them.
    let format = args
        .log_format
        .unwrap_or(match model.broker.diagnostics.log_format {
            wardgate_config::model::enums::LogFormat::Text => crate::LogFormat::Text,
            wardgate_config::model::enums::LogFormat::Json => crate::LogFormat::Json,
        });
    crate::init_logging(format, &model.broker.diagnostics.log_level);
    for warning in &warnings {
        warn!("{warning}");
    }
    // ---- Persistence (issue 8): the store in <data-dir>/store, restored into the broker. ----
    let (broker, store) = crate::persist::open(&args.data_dir, &model.broker)?;
    let shutdown = CancellationToken::new();
    crate::persist::stop_on_failure(store.as_ref(), &shutdown);
    let data_dir = args.data_dir.clone();
    let tls = tokio::task::spawn_blocking(move || TlsContext::open(&data_dir))
        .await
        .context("opening the certificate store")?
        .context("cannot open the certificate store in the data dir")?;
    let tls = Arc::new(tls);
    let mut supervisor = Supervisor::new(broker.clone(), shutdown.clone())
        .with_public_address(args.bind)
        .with_tls(tls.clone());
    supervisor.apply(model);
    let status = supervisor.status();
    {
        let status = status.read();
        let serving = status
            .ports
            .values()
            .any(|p| p.state == PortState::Listening);
        if !serving && !supervisor.has_waiting_ports() {
            anyhow::bail!("no port could be opened; nothing to serve");
        }
        print_banner(&args, &status, &tls.trust_bundle_path());
    }
    tokio::spawn(wardgate_server::run_ticker(
        broker.clone(),
        shutdown.clone(),
    ));

    // ---- Diagnostics (issue 9): metrics, admin HTTP API, self-check. Begin. ----
    // Loopback unless --admin-addr says otherwise. A busy admin port is not fatal: MQTT matters
    // more than its dashboard. Reloads change neither the admin address nor the self-check.
    {
        use wardgate_server::admin::{AdminState, ServedCertificates, serve_admin};
        use wardgate_server::metrics::Metrics;
        use wardgate_server::selfcheck::{SelfCheck, SelfCheckSettings};
        let started = std::time::SystemTime::now();
        let registry = supervisor.registry();
        let metrics =
            Metrics::for_broker(broker.clone(), status.clone(), registry.clone(), started);
        let certificates = ServedCertificates::new(status.clone(), Some(tls.clone()));
        let mut state = AdminState::new(broker.clone(), status.clone(), registry, metrics.clone())
            .with_started(started)
            .with_trust_bundle(tls.trust_bundle_path())
            .with_certificates(Arc::new(certificates));
        let config = supervisor.model().map(|m| m.broker.clone());
        match config.as_ref().and_then(SelfCheckSettings::from_config) {
            Some(settings) => {
                let check = SelfCheck::spawn(broker.clone(), metrics, settings, shutdown.clone());
                state = state.with_check(Arc::new(check));
            }
            None => info!("self-check disabled (diagnostics.selfCheck.mode)"),
        }
        let port = config.map_or(9600, |b| b.diagnostics.prometheus_port);
        let addr = args
            .admin_addr
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let addr = listener.local_addr().unwrap_or(addr);
                info!(%addr, "admin API listening: http://{addr}/metrics, /readyz, /api/v1/");
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve_admin(listener, state, shutdown).await {
                        error!(%addr, error = %e, "the admin API stopped");
                    }
                });
            }
            Err(e) => warn!(
                %addr, error = %e,
                "cannot open the admin API and metrics port; MQTT is served without them (choose another with --admin-addr)"
            ),
        }
    }
    // ---- Diagnostics (issue 9). End. ----

    let mut seen = fingerprint(&args.config);
    let mut poll = tokio::time::interval(CONFIG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Persistence (issue 8): a failed store cancels the token; stop serving.
            _ = shutdown.cancelled() => break,
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Reload => {
                    info!("SIGHUP: reloading the configuration");
                    seen = fingerprint(&args.config);
                    reload(&args, &mut supervisor);
                }
            },
            _ = renewal(supervisor.next_renewal()) => {
                info!("renewing certificates");
                supervisor.refresh();
            }
            _ = poll.tick(), if !args.config.is_empty() => {
                let now = fingerprint(&args.config);
                if now != seen {
                    seen = now;
                    info!("configuration files changed: reloading");
                    reload(&args, &mut supervisor);
                }
            }
        }
    }
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
    crate::persist::close(store.as_ref()); // Persistence (issue 8): flush the store.
    Ok(())
}

/// Sleeps until `at` (never, without one). Renewal deadlines far ahead are re-checked hourly, so
/// a clock change cannot strand them.
async fn renewal(at: Option<std::time::SystemTime>) {
    match at {
        None => std::future::pending().await,
        Some(at) => {
            // A renewal that keeps failing is retried every 30 s, not in a busy loop.
            let wait = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::time::sleep(wait.clamp(Duration::from_secs(30), Duration::from_secs(3600)))
                .await;
        }
    }
}

/// How often the `--config` files are checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Re-reads the configuration and applies it, or keeps the running one if it is invalid.
fn reload(args: &ServeArgs, supervisor: &mut Supervisor) {
    match load_model(args) {
        Ok((model, warnings)) => {
            for warning in &warnings {
                warn!("{warning}");
            }
            if supervisor.model() == Some(&model) {
                info!("configuration unchanged");
                supervisor.reload_unchanged();
                return;
            }
            supervisor.apply(model);
            info!("configuration reloaded");
        }
        Err(e) => {
            error!("configuration reload refused, the running configuration stays: {e:#}");
            supervisor.reload_refused(format!("{e:#}"));
        }
    }
}

/// A cheap identity of the configuration files' names and contents. Reading them again every
/// second also follows Kubernetes' `..data` symlink swaps, which file watches on paths miss.
fn fingerprint(paths: &[std::path::PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match wardgate_config::discover(paths) {
        Ok(files) => {
            for file in files {
                file.hash(&mut hasher);
                std::fs::read(&file).ok().hash(&mut hasher);
            }
        }
        // An unreadable path is a state too: when it becomes readable, the hash changes.
        Err(errors) => errors.len().hash(&mut hasher),
    }
    hasher.finish()
}

/// The configuration to serve (the files given, or the quickstart) and its warnings.
fn load_model(args: &ServeArgs) -> anyhow::Result<(Model, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut model = if args.config.is_empty() {
        Model::quickstart()
    } else {
        let loaded = wardgate_config::load(&args.config)
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
        warnings.extend(loaded.warnings.iter().map(|w| w.to_string()));
        loaded.model
    };
    if args.add_insecure_listener {
        model
            .add_insecure_listener()
            .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    }
    Ok((model, warnings))
}

fn print_banner(args: &ServeArgs, status: &Status, trust_bundle: &std::path::Path) {
    println!("Wardgate {} is serving MQTT:", env!("CARGO_PKG_VERSION"));
    for port in status.ports.values() {
        let (spec, addrs) = (&port.spec, &port.local_addrs);
        if port.state != PortState::Listening {
            println!("  {:<40} {}", spec.name, port.state);
            continue;
        }
        let scheme = match spec.protocol {
            PortProtocol::Mqtt => "mqtt",
            PortProtocol::WebSockets => "ws",
        };
        let shown: Vec<String> = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
        println!("  {:<40} {}", spec.name, shown.join("  "));
    }
    let mut listening = status
        .ports
        .values()
        .filter(|p| p.state == PortState::Listening);
    if let Some(spec) = listening
        .find(|p| p.spec.protocol == PortProtocol::Mqtt)
        .map(|p| &p.spec)
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
    println!();
    println!(
        "Trust bundle (the quickstart CA, for --cafile): {}",
        trust_bundle.display()
    );
    if args.config.is_empty() {
        println!();
        println!("This is the embedded quickstart (loopback only). To configure listeners, write");
        println!(
            "BrokerListener/BrokerAuthentication/BrokerAuthorization YAML into a folder and run"
        );
        println!("  wardgate serve --config <folder>     (see docs/configuration.md)");
    }
}

/// What a signal asks for.
enum Signal {
    /// SIGINT or SIGTERM: shut down gracefully.
    Stop,
    /// SIGHUP: reload the configuration.
    Reload,
}

/// SIGINT/SIGTERM end the process gracefully; SIGHUP reloads.
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

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
