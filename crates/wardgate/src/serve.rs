//! `wardgate serve`: build the broker from the configuration (or the quickstart), open the
//! ports, run until SIGINT/SIGTERM, then shut down gracefully.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};
use wardgate_config::model::Model;
use wardgate_config::model::NatsUrls;
use wardgate_security::authn::TokenVerifier;
use wardgate_security::authn::local_issuer::LocalIssuer;
use wardgate_security::tls::{TlsContext, TlsOptions, TrustSettings};
use wardgate_server::plan::{ClusterOptions, Plan, ServeOptions};
use wardgate_server::{PortProtocol, PortState, Status, Supervisor};

use crate::ServeArgs;
use crate::kube::in_cluster::InCluster;

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
    let shutdown = CancellationToken::new();
    // Every long-lived task runs here; shutdown awaits them before it flushes the store.
    let tasks = TaskTracker::new();
    // ---- In-cluster mode (issue 19): the resources come from the Kubernetes API. ----
    let mut kube = if args.kubernetes || (args.config.is_empty() && crate::kube::client::in_pod()) {
        let namespace = args.namespace.clone();
        Some(InCluster::start(namespace, &tasks, &shutdown).await?)
    } else {
        None
    };
    let (model, warnings) = load_model(&args, kube.as_ref())?;
    // Service-account tokens outside Kubernetes: the key `wardgate token create` signs with.
    let plan_options = serve_options(&args, kube.as_ref())?;
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
    // The console and admin API's token (issue 20): a bad file stops the start, loudly.
    let admin_token = args
        .admin_token_file
        .as_deref()
        .map(wardgate_server::admin::AdminToken::read_file)
        .transpose()?;
    let plan = Plan::from_model(model, &plan_options);
    // ---- Persistence (issue 8): the store in <data-dir>/store, restored into the broker. ----
    let (broker, store) = crate::persist::open(&args.data_dir, &plan)?;
    crate::persist::stop_on_failure(store.as_ref(), &shutdown);
    // ---- Cluster (issue 17): joined before any port opens. ----
    let node = match &plan.cluster {
        Some(cluster) => {
            let joined = crate::cluster::join(
                broker.clone(),
                cluster,
                plan.model(),
                &tasks,
                shutdown.clone(),
            );
            Some(joined.await?)
        }
        None => None,
    };
    let data_dir = args.data_dir.clone();
    let mut options = TlsOptions {
        trust_settings: trust_settings(&args)?.config_map,
        ..TlsOptions::default()
    };
    if let Some(kube) = &kube {
        // In a cluster: the namespace of the Services' names, and who issues (cert-manager or
        // the built-in issuer).
        options.namespace = kube.cluster.namespace.clone();
        options.issuance = kube.certificates.issuance();
    }
    let tls = tokio::task::spawn_blocking(move || TlsContext::open_with(&data_dir, options))
        .await
        .context("opening the certificate store")?
        .context("cannot open the certificate store in the data dir")?;
    let tls = Arc::new(tls);
    if let Some(kube) = &kube {
        // A previous pod's certificates, kept in Secrets, before the ports first resolve.
        kube.certificates.restore(plan.model(), &tls).await?;
    }
    let mut supervisor = Supervisor::new(broker.clone(), shutdown.clone())
        .with_tasks(tasks.clone())
        .with_tls(tls.clone());
    supervisor.apply(plan);
    if let Some(kube) = &mut kube {
        publish_services(kube, &supervisor);
        publish_certificates(kube, &supervisor, &tls).await;
        // The resources' status and Events follow the ports (and refused configurations).
        tasks.spawn(crate::kube::status::run(
            crate::kube::status::StatusReporter::new(
                kube.cluster.client.clone(),
                &kube.cluster.namespace,
            ),
            supervisor.status(),
            kube.refusals.clone(),
            shutdown.clone(),
        ));
    }
    let status = supervisor.status();
    if let Some(node) = &node {
        let status = status.clone();
        node.report_ports(move || listening_ports(&status.read()));
    }
    {
        let status = status.read();
        let serving = status
            .ports
            .values()
            .any(|p| p.state == PortState::Listening);
        if !serving && !supervisor.has_waiting_ports() {
            anyhow::bail!("no port could be opened; nothing to serve");
        }
        print_banner(&args, kube.is_some(), &status, &tls);
    }
    tasks.spawn(wardgate_server::run_ticker(
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
        let metrics = Metrics::for_node(
            broker.clone(),
            status.clone(),
            registry.clone(),
            supervisor.stats(),
            started,
            node.as_ref().map(|n| n.id()),
        );
        let certificates = ServedCertificates::new(status.clone(), Some(tls.clone()));
        let mut state = AdminState::new(broker.clone(), status.clone(), registry, metrics.clone())
            .with_started(started)
            .with_trust_bundle(tls.trust_bundle_path())
            .with_certificates(Arc::new(certificates));
        if let Some(node) = &node {
            let view = Arc::new(crate::cluster::NodeView(node.clone()));
            state = wardgate_server::admin::cluster::attach(state, view);
        }
        let config = supervisor.plan().map(|p| p.model().broker.clone());
        match config.as_ref().and_then(SelfCheckSettings::from_config) {
            Some(settings) => {
                let check =
                    SelfCheck::spawn(broker.clone(), metrics, settings, shutdown.clone(), &tasks);
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
                let access = wardgate_server::admin::Access::for_address(addr, admin_token);
                if let wardgate_server::admin::Access::Locked { .. } = access {
                    warn!(%addr, "the admin address is not loopback and no --admin-token-file is given: the console and /api/v1/ refuse every request (401); /metrics, /healthz and /readyz stay open");
                }
                let state = state.with_access(access);
                info!(%addr, "admin API listening: http://{addr}/metrics, /readyz, /api/v1/; console at http://{addr}/");
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    if let Err(e) = serve_admin(listener, state, shutdown).await {
                        error!(%addr, error = %e, "the admin API stopped");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => error!(
                %addr, error = %e,
                "the admin API and metrics cannot be opened: {addr} is already in use by another \
                 process, most likely another broker; `wardgate status` and /metrics at {addr} \
                 describe that one, not this one. MQTT is served without them: choose another \
                 address with --admin-addr (or the Broker's diagnostics prometheusPort)"
            ),
            Err(e) => warn!(
                %addr, error = %e,
                "cannot open the admin API and metrics port; MQTT is served without them (choose another with --admin-addr)"
            ),
        }
    }
    // ---- Diagnostics (issue 9). End. ----

    let mut seen = fingerprint(&args.config);
    let mut renewals = RenewalTimer::default();
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
                    reload(&args, kube.as_mut(), &plan_options, &mut supervisor);
                }
            },
            () = settled(kube.as_mut()) => {
                info!("resources changed in the Kubernetes API: reloading");
                reload(&args, kube.as_mut(), &plan_options, &mut supervisor);
                if let Some(kube) = &mut kube {
                    publish_certificates(kube, &supervisor, &tls).await;
                }
            }
            _ = sleep_until(renewals.wake(supervisor.next_renewal())) => {
                if renewals.is_due() {
                    info!("renewing certificates");
                    supervisor.refresh();
                    if let Some(kube) = &mut kube {
                        publish_certificates(kube, &supervisor, &tls).await;
                    }
                }
                renewals.attempted(supervisor.next_renewal());
            }
            _ = poll.tick(), if !args.config.is_empty() => {
                let now = fingerprint(&args.config);
                if now != seen {
                    seen = now;
                    info!("configuration files changed: reloading");
                    reload(&args, None, &plan_options, &mut supervisor);
                }
            }
        }
    }
    info!("shutting down");
    // Connection tasks send DISCONNECT 0x8B and close; the store is flushed after them.
    let grace = wardgate_server::SHUTDOWN_GRACE;
    if !wardgate_server::shut_down(&shutdown, &tasks, grace).await {
        warn!(
            tasks = tasks.len(),
            "tasks still running {grace:?} after shutdown began; flushing the store without them"
        );
    }
    crate::persist::close(store.as_ref()); // Persistence (issue 8): flush the store.
    Ok(())
}

/// When to act on the next certificate renewal. The wake-up is kept across turns of the serve
/// loop, which the config poll turns every second: a wait recomputed at each turn (with a floor)
/// would never end.
#[derive(Debug, Default)]
struct RenewalTimer {
    /// The renewal deadline the wake-up was planned for.
    due: Option<SystemTime>,
    /// When to wake up.
    wake: Option<tokio::time::Instant>,
}

impl RenewalTimer {
    /// A renewal that keeps failing is retried this often, not in a busy loop.
    const RETRY: Duration = Duration::from_secs(30);
    /// Deadlines far ahead are re-checked this often, so that a clock change cannot strand them.
    const RECHECK: Duration = Duration::from_secs(3600);

    /// The wake-up for the supervisor's next renewal `due`: planned anew when `due` changed
    /// (a reload, a renewal), else kept.
    fn wake(&mut self, due: Option<SystemTime>) -> Option<tokio::time::Instant> {
        if due != self.due {
            self.plan(due, Duration::ZERO);
        }
        self.wake
    }

    /// Whether the planned deadline has come (else the wake-up was a re-check).
    fn is_due(&self) -> bool {
        self.due.is_some_and(|due| due <= SystemTime::now())
    }

    /// After waking, with the supervisor's next renewal `due`: a deadline that is still past
    /// failed to renew and is retried later.
    fn attempted(&mut self, due: Option<SystemTime>) {
        self.plan(due, Self::RETRY);
    }

    fn plan(&mut self, due: Option<SystemTime>, past_due: Duration) {
        self.due = due;
        self.wake = due.map(|at| {
            let wait = match at.duration_since(SystemTime::now()) {
                Ok(left) => left.min(Self::RECHECK),
                Err(_) => past_due,
            };
            tokio::time::Instant::now() + wait
        });
    }
}

/// The MQTT ports that listen now (what this node tells the cluster).
fn listening_ports(status: &Status) -> Vec<u16> {
    status
        .ports
        .iter()
        .filter(|(_, p)| p.state == PortState::Listening)
        .map(|(n, _)| *n)
        .collect()
}

/// Sleeps until `wake` (never, without one).
async fn sleep_until(wake: Option<tokio::time::Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How often the `--config` files are checked for changes.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Resolves when the in-cluster mode's resources changed and settled (never outside it).
async fn settled(kube: Option<&mut InCluster>) {
    match kube {
        Some(kube) => kube.settled().await,
        None => std::future::pending().await,
    }
}

/// The in-cluster mode's Services follow the configuration being served.
fn publish_services(kube: &mut InCluster, supervisor: &Supervisor) {
    if let Some(plan) = supervisor.plan() {
        kube.publish(plan.model());
    }
}

/// The in-cluster mode's certificates (cert-manager Certificates, or the built-in issuer's
/// Secrets) and trust bundle follow the configuration being served and every renewal. A
/// failure is logged and tried again at the next change or renewal; the ports keep serving.
/// Bounded by [`PUBLISH_PATIENCE`]: an API server that does not answer must not hold the serve
/// loop (signals, reloads) with it.
async fn publish_certificates(kube: &mut InCluster, supervisor: &Supervisor, tls: &TlsContext) {
    let Some(plan) = supervisor.plan() else {
        return;
    };
    let published = kube.certificates.publish(plan.model(), tls);
    match tokio::time::timeout(PUBLISH_PATIENCE, published).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("certificates not published to the Kubernetes API: {e:#}"),
        Err(_) => warn!(
            "certificates not published to the Kubernetes API: no answer within {PUBLISH_PATIENCE:?}"
        ),
    }
}

/// How long the serve loop waits for the API server to take the certificates.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(15);

/// Re-reads the configuration (files, or the in-cluster mode's resources) and applies it, or
/// keeps the running one if it is invalid. In the in-cluster mode the Services then follow what
/// is served (their owners, the listeners' uids, may change while the configuration does not).
fn reload(
    args: &ServeArgs,
    kube: Option<&mut InCluster>,
    options: &ServeOptions,
    supervisor: &mut Supervisor,
) {
    apply_reload(load_model(args, kube.as_deref()), options, supervisor);
    if let Some(kube) = kube {
        publish_services(kube, supervisor);
    }
}

fn apply_reload(
    loaded: anyhow::Result<(Model, Vec<String>)>,
    options: &ServeOptions,
    supervisor: &mut Supervisor,
) {
    match loaded {
        Ok((model, warnings)) => {
            for warning in &warnings {
                warn!("{warning}");
            }
            if supervisor.plan().is_some_and(|p| **p.model() == model) {
                info!("configuration unchanged");
                supervisor.reload_unchanged();
                return;
            }
            let plan = Plan::from_model(model, options);
            if let Some(running) = supervisor.plan() {
                crate::cluster::warn_if_changed(running, &plan);
            }
            supervisor.apply(plan);
            info!("configuration reloaded");
        }
        Err(e) => {
            error!("configuration reload refused, the running configuration stays: {e:#}");
            supervisor.reload_refused(format!("{e:#}"));
        }
    }
}

/// What `serve`'s arguments add to the configuration's plan: `--bind`, `--cluster` and
/// `--node-id`, and the default verifier of service-account tokens: TokenReview in the
/// in-cluster mode, else the data dir's local token issuer (made on first start).
fn serve_options(args: &ServeArgs, kube: Option<&InCluster>) -> anyhow::Result<ServeOptions> {
    let verifier: Arc<dyn TokenVerifier> = match kube {
        // In a cluster, the API server verifies tokens (TokenReview).
        Some(kube) => Arc::new(crate::kube::tokenreview::TokenReviewVerifier::new(
            kube.cluster.client.clone(),
        )),
        None => {
            let issuer = LocalIssuer::open_or_create(&args.data_dir)
                .context("cannot open the local service-account token issuer")?;
            Arc::new(
                issuer
                    .verifier()
                    .context("cannot use the local service-account token issuer")?,
            )
        }
    };
    Ok(ServeOptions {
        public: args.bind,
        in_cluster: kube.is_some(),
        cluster: ClusterOptions {
            urls: NatsUrls::new(args.cluster.clone()),
            node_id: args.node_id.clone(),
        },
        token_verifier: Some(verifier),
    })
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

/// The configuration to serve (the in-cluster mode's resources, the files given, or the
/// quickstart) and its warnings.
fn load_model(args: &ServeArgs, kube: Option<&InCluster>) -> anyhow::Result<(Model, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut model = if let Some(kube) = kube {
        // A refused configuration is reported on the objects it names (their status).
        let loaded = wardgate_config::load_sources(&kube.sources()).map_err(|errors| {
            kube.refusals.set(Some(&errors));
            anyhow::anyhow!("invalid resources in the Kubernetes API:\n{errors}")
        })?;
        kube.refusals.set(None);
        warnings.extend(loaded.warnings.iter().map(|w| w.to_string()));
        loaded.model
    } else if args.config.is_empty() {
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
    if let Some(issuer) = trust_settings(args)?.issuer {
        // What the built-in quickstart issuers would sign, this issuer signs.
        let issuers = model.issuers.clone();
        let quickstart = |r: &wardgate_config::model::IssuerRef| {
            issuers
                .get(&(r.kind, r.name.clone()))
                .is_some_and(|i| i.source == wardgate_config::model::IssuerSource::Quickstart)
        };
        for port in model.listeners.iter_mut().flat_map(|l| l.ports.iter_mut()) {
            if let Some(wardgate_config::model::Tls::Automatic(a)) = &mut port.tls
                && quickstart(&a.issuer_ref)
            {
                a.issuer_ref = issuer.clone();
            }
        }
    }
    Ok((model, warnings))
}

/// `--trust-settings`, parsed.
#[derive(Debug, Default)]
struct TrustSettingsArgs {
    config_map: Option<TrustSettings>,
    issuer: Option<wardgate_config::model::IssuerRef>,
}

/// Parses `--trust-settings configMapName=… configMapKey=… issuerKind=… issuerName=…` (the
/// pairs of `az iot ops create --trust-settings`).
fn trust_settings(args: &ServeArgs) -> anyhow::Result<TrustSettingsArgs> {
    use wardgate_config::model::{IssuerKind, IssuerRef};
    let mut pairs = std::collections::BTreeMap::new();
    for item in &args.trust_settings {
        let (k, v) = crate::passwd::parse_attr(item)
            .map_err(|e| anyhow::anyhow!("--trust-settings: {e}"))?;
        let known = ["configMapName", "configMapKey", "issuerKind", "issuerName"];
        if !known.contains(&k.as_str()) {
            anyhow::bail!(
                "--trust-settings: unknown setting {k} (expected {})",
                known.join(", ")
            );
        }
        pairs.insert(k, v);
    }
    let get = |k: &str| pairs.get(k).cloned();
    let config_map = match (get("configMapName"), get("configMapKey")) {
        (Some(name), key) => Some(TrustSettings {
            config_map: name,
            key,
        }),
        (None, Some(_)) => anyhow::bail!("--trust-settings: configMapKey needs configMapName"),
        (None, None) => None,
    };
    let issuer = match (get("issuerKind"), get("issuerName")) {
        (Some(kind), Some(name)) => {
            let kind = if kind.eq_ignore_ascii_case("Issuer") {
                IssuerKind::Issuer
            } else if kind.eq_ignore_ascii_case("ClusterIssuer") {
                IssuerKind::ClusterIssuer
            } else {
                anyhow::bail!("--trust-settings: issuerKind {kind} is not Issuer or ClusterIssuer");
            };
            Some(IssuerRef {
                name,
                kind,
                group: "cert-manager.io".to_owned(),
            })
        }
        (None, None) => None,
        _ => anyhow::bail!("--trust-settings: issuerKind and issuerName go together"),
    };
    Ok(TrustSettingsArgs { config_map, issuer })
}

fn print_banner(args: &ServeArgs, in_cluster: bool, status: &Status, tls: &TlsContext) {
    let (path, bundle) = (tls.trust_bundle_path(), tls.trust_bundle());
    println!("Wardgate {} is serving MQTT:", env!("CARGO_PKG_VERSION"));
    for port in status.ports.values() {
        let (spec, addrs) = (&port.spec, &port.local_addrs);
        if let PortState::Failed(_) = port.state {
            println!("  {:<40} NOT SERVED: {}", spec.name, port.state);
            continue;
        }
        if port.state != PortState::Listening {
            println!("  {:<40} {}", spec.name, port.state);
            continue;
        }
        let scheme = match (spec.protocol, port.tls) {
            (PortProtocol::Mqtt, false) => "mqtt",
            (PortProtocol::Mqtt, true) => "mqtts",
            (PortProtocol::WebSockets, false) => "ws",
            (PortProtocol::WebSockets, true) => "wss",
        };
        let shown: Vec<String> = addrs.iter().map(|a| format!("{scheme}://{a}")).collect();
        println!("  {:<40} {}", spec.name, shown.join("  "));
    }
    // A plain MQTT port if there is one; else a TLS one, with the CA clients need.
    let mqtt = || {
        status
            .ports
            .values()
            .filter(|p| p.state == PortState::Listening && p.spec.protocol == PortProtocol::Mqtt)
    };
    if let Some(port) = mqtt().find(|p| !p.tls).or_else(|| mqtt().next()) {
        let target = if port.tls {
            // The bundle has the chain's top certificate, or the CA that issued it.
            let trusted = port.certificates.last().is_some_and(|top| {
                bundle
                    .iter()
                    .any(|b| b.sha256 == top.sha256 || b.subject == top.issuer)
            });
            let ca = if trusted {
                path.display().to_string()
            } else {
                "YOUR_CA.crt".to_owned()
            };
            format!("-h localhost -p {} --cafile {ca}", port.spec.port)
        } else {
            format!("-h 127.0.0.1 -p {}", port.spec.port)
        };
        println!();
        println!("Try it:");
        println!("  mosquitto_sub {target} -t 'demo/#' -v");
        println!("  mosquitto_pub {target} -t demo/hello -m 'hi'");
    }
    println!();
    if bundle.is_empty() {
        println!(
            "Trust bundle: none (no served certificate comes from a CA known here; clients \
             trust the CA that issued your certificates)"
        );
    } else {
        println!("Trust bundle (for --cafile): {}", path.display());
        for ca in &bundle {
            println!("  {}  ({})", ca.subject, ca.source);
        }
    }
    if args.config.is_empty() && !in_cluster {
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

#[cfg(test)]
mod tests {
    use super::RenewalTimer;
    use std::time::{Duration, SystemTime};
    use tokio::time::Instant;

    /// How far ahead `wake` is, rounded to seconds.
    fn secs_ahead(wake: Option<Instant>) -> Option<u64> {
        wake.map(|w| {
            (w.saturating_duration_since(Instant::now()) + Duration::from_millis(500)).as_secs()
        })
    }

    #[test]
    fn renewals_wake_when_due_keep_their_wake_up_and_retry_failures_every_30_s() {
        let mut timer = RenewalTimer::default();
        assert_eq!(timer.wake(None), None, "nothing automatic: never");
        let due = SystemTime::now() + Duration::from_secs(10);
        let wake = timer.wake(Some(due));
        assert_eq!(secs_ahead(wake), Some(10));
        assert!(!timer.is_due());
        // The serve loop turns every second: the wake-up stays where it was.
        assert_eq!(timer.wake(Some(due)), wake);
        // Past due and still the next renewal after an attempt: it failed, retry in 30 s.
        let past = SystemTime::now() - Duration::from_secs(1);
        timer.attempted(Some(past));
        assert_eq!(secs_ahead(timer.wake(Some(past))), Some(30));
        assert!(timer.is_due());
        // A deadline that changed (renewed, reloaded) is planned anew; a past one at once.
        let later = SystemTime::now() + Duration::from_secs(100);
        assert_eq!(secs_ahead(timer.wake(Some(later))), Some(100));
        let overdue = SystemTime::now() - Duration::from_secs(5);
        assert_eq!(secs_ahead(timer.wake(Some(overdue))), Some(0));
        // Far ahead: re-checked within the hour.
        let far = SystemTime::now() + Duration::from_secs(10 * 3600);
        assert_eq!(secs_ahead(timer.wake(Some(far))), Some(3600));
    }
}
