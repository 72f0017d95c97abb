//! The `wardgate` command: wiring, signals and the subcommands of SPEC.md §2. The only crate that
//! uses `anyhow`, reads the environment or exits the process.

mod create;
mod serve;

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
    /// Check configuration files: exit 0, or 1 with every error as file:line: message.
    Validate {
        /// Configuration file or folder; may repeat.
        #[arg(long = "config", value_name = "PATH", required = true)]
        config: Vec<PathBuf>,
    },
    /// Write Secret and ConfigMap YAML, as `kubectl create ... --dry-run=client -o yaml` does.
    #[command(subcommand)]
    Create(create::CreateCommand),
}

/// Arguments of `wardgate serve`.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file or folder (every *.yaml/*.yml in it); may repeat.
    #[arg(long = "config", value_name = "PATH")]
    config: Vec<PathBuf>,
    /// Where persistence, the quickstart CA and issued certificates live.
    #[arg(long, value_name = "DIR", default_value = "./wardgate-data")]
    data_dir: PathBuf,
    /// Address of the admin HTTP API and metrics (overrides the Broker's prometheusPort).
    #[arg(long, value_name = "ADDR")]
    admin_addr: Option<std::net::SocketAddr>,
    /// Add listener `default-insecure`: LoadBalancer, port 1883, no TLS, no authentication.
    #[arg(long)]
    add_insecure_listener: bool,
    /// Address for LoadBalancer and NodePort ports instead of all interfaces (ClusterIp ports
    /// are always loopback).
    #[arg(long, value_name = "IP")]
    bind: Option<std::net::IpAddr>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
            init_logging(args.log_format);
            match serve::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wardgate: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Validate { config } => match wardgate_config::load(&config) {
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    eprintln!("warning: {warning}");
                }
                let ports: usize = loaded.model.listeners.iter().map(|l| l.ports.len()).sum();
                println!(
                    "valid: {} listener(s), {} port(s), {} authentication(s), {} authorization(s)",
                    loaded.model.listeners.len(),
                    ports,
                    loaded.model.authentications.len(),
                    loaded.model.authorizations.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(1)
            }
        },
        Command::Create(cmd) => match create::run(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wardgate: {e:#}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
