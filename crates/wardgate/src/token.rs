//! `wardgate token create`: what `kubectl create token` does, for a box without Kubernetes. It
//! prints a service-account token signed by the data dir's local issuer key (made on first use),
//! which the ServiceAccountToken method of `wardgate serve` with the same data dir verifies
//! (SPEC.md §7.3).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use wardgate_security::authn::local_issuer::{LocalIssuer, TokenRequest};

/// Service-account tokens.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Print a token for SERVICEACCOUNT (as `kubectl create token`), signed by the data dir's
    /// key, for MQTT v5 enhanced authentication `K8S-SAT`.
    Create(CreateArgs),
}

/// Arguments of `wardgate token create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The service account's name: the token's subject is
    /// `system:serviceaccount:<namespace>:<name>`.
    #[arg(value_name = "SERVICEACCOUNT")]
    service_account: String,
    /// An audience of the token (the BrokerAuthentication's `audiences`); may repeat.
    #[arg(long = "audience", value_name = "AUDIENCE", default_value = wardgate_config::DEFAULT_AUDIENCE)]
    audiences: Vec<String>,
    /// How long the token is valid, as a Go duration (`1h`, `10m`, `24h`).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_lifetime)]
    duration: Duration,
    /// The service account's namespace.
    #[arg(long, short = 'n', value_name = "NS", default_value = "default")]
    namespace: String,
    /// The data dir of the broker that verifies the token (`serve --data-dir`).
    #[arg(long, value_name = "DIR", default_value = "./wardgate-data")]
    data_dir: PathBuf,
}

/// Parses `--duration`: a positive Go duration of whole seconds or more.
fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let d = wardgate_config::parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("\"{s}\" is too short: a token lives at least 1s"));
    }
    Ok(d)
}

pub(crate) fn run(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<()> {
    wardgate_config::check_subdomain(&args.service_account)
        .map_err(|e| anyhow::anyhow!("SERVICEACCOUNT {e}"))?;
    wardgate_config::check_label(&args.namespace)
        .map_err(|e| anyhow::anyhow!("--namespace {e}"))?;
    if let Some(empty) = args.audiences.iter().find(|a| a.trim().is_empty()) {
        anyhow::bail!("--audience \"{empty}\" is empty");
    }
    let issuer = LocalIssuer::open_or_create(&args.data_dir).with_context(|| {
        format!(
            "cannot open the token issuer key in the data dir {}",
            args.data_dir.display()
        )
    })?;
    let request = TokenRequest {
        namespace: args.namespace,
        service_account: args.service_account,
        audiences: args.audiences,
        lifetime: args.duration,
    };
    let token = issuer.issue(&request, SystemTime::now())?;
    println!("{token}");
    Ok(())
}
