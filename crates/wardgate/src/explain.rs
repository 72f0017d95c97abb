//! `wardgate explain` (SPEC.md §8.6): loads the configuration, describes a client (client ID,
//! username, certificate chain, attributes, port) and one action, and prints whether it is
//! allowed and why: the authentication method that applies, the attributes the certificate
//! chain yields, the rule and topic that allow it, or why nothing does.
//!
//! The exit code is 0 whenever an answer is printed, allowed or denied; 1 when the
//! configuration or the certificate cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use wardgate_security::authz::{ExplainAction, ExplainQuery, explain};

use crate::passwd::parse_attr;

/// Arguments of `wardgate explain`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// Configuration file or folder; may repeat.
    #[arg(long = "config", value_name = "PATH", required = true)]
    config: Vec<PathBuf>,
    /// The client ID.
    #[arg(long, value_name = "ID", default_value = "client")]
    client_id: String,
    /// The CONNECT username (for ServiceAccountToken: the token's sub).
    #[arg(long)]
    username: Option<String>,
    /// The client certificate, PEM, leaf first, with its intermediates (as mosquitto's
    /// --cert with a --bundle certificate).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// An attribute to assume (as a token or a custom server would give); may repeat.
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    attrs: Vec<(String, String)>,
    /// Only this port (`port` or `nodePort`); default: every port.
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// The CONNECT authentication method (`K8S-SAT` assumes a valid service-account token).
    #[arg(long, value_name = "METHOD")]
    auth_method: Option<String>,
    #[command(flatten)]
    action: ActionArgs,
}

/// Exactly one action.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct ActionArgs {
    /// May the client connect?
    #[arg(long)]
    connect: bool,
    /// May the client publish on TOPIC?
    #[arg(long, value_name = "TOPIC")]
    publish: Option<String>,
    /// May the client subscribe to FILTER?
    #[arg(long, value_name = "FILTER")]
    subscribe: Option<String>,
}

pub(crate) fn run(args: ExplainArgs) -> ExitCode {
    match explain_cmd(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("wardgate explain: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn explain_cmd(args: ExplainArgs) -> anyhow::Result<String> {
    let loaded = wardgate_config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client_chain = match &args.cert {
        None => Vec::new(),
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            wardgate_security::pki::pem::certificates(&pem, &path.display().to_string())?
        }
    };
    let action = match (
        args.action.connect,
        args.action.publish,
        args.action.subscribe,
    ) {
        (_, Some(t), _) => ExplainAction::Publish(t),
        (_, _, Some(f)) => ExplainAction::Subscribe(f),
        _ => ExplainAction::Connect,
    };
    let query = ExplainQuery {
        client_id: args.client_id,
        username: args.username,
        auth_method: args.auth_method,
        client_chain,
        attributes: args.attrs.into_iter().collect(),
        port: args.port,
        action,
    };
    Ok(explain(&loaded.model, &query).to_string())
}
