//! The `wardgate` command: wiring, signals and the subcommands of SPEC.md §2. The only crate that
//! uses `anyhow`, reads the environment or exits the process.

mod cert;
mod cluster;
mod create;
mod explain;
mod kube;
mod passwd;
mod persist;
mod serve;
mod status;
mod token;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Wardgate: an MQTT 3.1.1/5.0 broker for the edge, configured with the Azure IoT Operations
/// resources (Broker, BrokerListener, BrokerAuthentication, BrokerAuthorization).
#[derive(Debug, Parser)]
#[command(name = "wardgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker. With no --config, runs the embedded quickstart.
    Serve(ServeArgs),
    /// Check configuration files and the certificate material they name, as `serve` would: exit
    /// 0, or 1 with every error as file:line: message (or the port and what it would fail with).
    Validate {
        /// Configuration file or folder; may repeat.
        #[arg(long = "config", value_name = "PATH", required = true)]
        config: Vec<PathBuf>,
    },
    /// Write Secret and ConfigMap YAML, as `kubectl create ... --dry-run=client -o yaml` does.
    #[command(subcommand)]
    Create(create::CreateCommand),
    /// Make CAs, intermediates, server and client certificates; inspect certificate files.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Make password hashes for the UsernamePassword method (passwords.toml entries).
    Passwd(passwd::PasswdArgs),
    /// Explain whether a client may connect, publish or subscribe, and why.
    Explain(explain::ExplainArgs),
    /// Show a running broker's ports and their states, certificates and clients (admin API).
    Status(status::StatusArgs),
    /// Make service-account tokens for the ServiceAccountToken method outside Kubernetes.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Kubernetes: `wardgate kube manifests | kubectl apply -f -` installs Wardgate.
    #[command(subcommand)]
    Kube(kube::KubeCommand),
}

/// Arguments of `wardgate serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file or folder (every *.yaml/*.yml in it); may repeat.
    #[arg(long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Read the resources from the Kubernetes API (watched) instead of files, and make each
    /// listener's Service. Automatic in a pod with a service account and no --config; outside
    /// one, the API is the one KUBECONFIG names.
    #[arg(long, conflicts_with = "config")]
    kubernetes: bool,
    /// The namespace of the resources in the in-cluster mode (default: the pod's, else
    /// azure-iot-operations).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Where persistence, the quickstart CA and issued certificates live.
    #[arg(long, value_name = "DIR", default_value = "./wardgate-data")]
    data_dir: PathBuf,
    /// Address of the admin HTTP API and metrics (overrides the Broker's prometheusPort).
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
    /// File holding the token the console and admin API require (a Secret's key mounted as a
    /// file); required to use them when --admin-addr is not loopback (docs/console.md).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Add listener `default-insecure`: LoadBalancer, port 1883, no TLS, no authentication.
    #[arg(long)]
    add_insecure_listener: bool,
    /// Address for LoadBalancer and NodePort ports instead of all interfaces (ClusterIp ports
    /// are always loopback).
    #[arg(long, value_name = "IP")]
    bind: Option<std::net::IpAddr>,
    /// As `az iot ops create --trust-settings` (bring your own issuer, seeds/004):
    /// `configMapName=NAME [configMapKey=KEY]` adds that ConfigMap's CA certificates to the
    /// trust bundle; `issuerKind=Issuer|ClusterIssuer issuerName=NAME` issues what the built-in
    /// quickstart ClusterIssuer would (the default listener's certificate) from that issuer.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1.., value_delimiter = ',')]
    trust_settings: Vec<String>,
    /// Log format (overrides the Broker's diagnostics.logs.format; default text).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// Join a cluster at these NATS servers (nats://HOST:PORT, tls://, ws://, wss://); replaces
    /// the Broker's spec.cluster.nats.urls, with its defaults when it has no spec.cluster.
    #[arg(long = "cluster", value_name = "URL", num_args = 1.., value_delimiter = ',',
          value_parser = wardgate_config::model::NatsUrl::parse)]
    cluster: Vec<wardgate_config::model::NatsUrl>,
    /// This node's id in the cluster (A-Z, a-z, 0-9, '_', '-'; default: the host name).
    #[arg(long, value_name = "ID", value_parser = wardgate_config::model::NodeId::new)]
    node_id: Option<wardgate_config::model::NodeId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            // Logging starts once the configuration is read (serve.rs): its format and level
            // come from the Broker resource.
            match serve::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wardgate: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Validate { config } => validate::run(&config),
        Command::Status(args) => status::run(args),
        Command::Passwd(args) => passwd::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Create(cmd) => match create::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardgate: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Token(cmd) => match token::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardgate token: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Kube(cmd) => match kube::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardgate: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::Cert(cmd) => match cert::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardgate: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

/// Logs to stderr in `format` at `level` (filter syntax, from the Broker's
/// `diagnostics.logs.level`), or at `WARDGATE_LOG` when set. Called once, by `serve`.
fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let (filter, invalid) = match EnvFilter::try_from_env("WARDGATE_LOG") {
        Ok(filter) => (filter, None),
        Err(_) => match EnvFilter::try_new(quiet_dependencies(level)) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(quiet_dependencies("info")), Some(e)),
        },
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry.with(fmt).init(),
        LogFormat::Json => registry.with(fmt.json()).init(),
    }
    if let Some(e) = invalid {
        tracing::warn!(level, error = %e, "diagnostics.logs.level is not a valid filter; logging at info");
    }
}

/// Dependencies kept quieter than the level unless it names them: the store engine logs routine
/// work at info on every start; rustls warns about every client that sends an IP address as SNI
/// (mosquitto dialling an IP does), and the broker logs why a handshake failed itself.
fn quiet_dependencies(level: &str) -> String {
    let mut filter = level.to_owned();
    for (target, quiet) in [("fjall", "warn"), ("lsm_tree", "warn"), ("rustls", "error")] {
        if !level.contains(target) {
            filter.push_str(&format!(",{target}={quiet}"));
        }
    }
    filter
}
