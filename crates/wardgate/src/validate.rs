//! `wardgate validate`: the configuration checks of `wardgate_config::load`, then what `serve`
//! would find when it opens each port: the certificate material (chains, keys, CA Secrets,
//! trusted client CAs) with the same checks and messages (`tls::check_port`), and each port's
//! authentication and authorization built as `serve` builds them (password files, ...).

use std::path::PathBuf;
use std::process::ExitCode;

use wardgate_config::model::Model;
use wardgate_security::tls::{TlsOutcome, check_port};
use wardgate_server::security::{PortSecurity, SecurityProblem};

pub(crate) fn run(config: &[PathBuf]) -> ExitCode {
    let loaded = match wardgate_config::load(config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(1);
        }
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let (errors, warnings) = port_material(&loaded.model);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("{error}");
        }
        eprintln!(
            "{} port(s) would fail to start: `wardgate serve` reports the same",
            errors.len()
        );
        return ExitCode::from(1);
    }
    let model = &loaded.model;
    let ports: usize = model.listeners.iter().map(|l| l.ports.len()).sum();
    println!(
        "valid: {} listener(s), {} port(s), {} authentication(s), {} authorization(s)",
        model.listeners.len(),
        ports,
        model.authentications.len(),
        model.authorizations.len()
    );
    ExitCode::SUCCESS
}

/// For every port: the reason `serve` would give it the state `Failed` (errors), and the
/// warnings it would serve with. A port that waits for a Secret, ConfigMap or Issuer is not an
/// error; the configuration's own warnings already name what it waits for.
fn port_material(model: &Model) -> (Vec<String>, Vec<String>) {
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    for listener in &model.listeners {
        for port in &listener.ports {
            let at = format!("BrokerListener/{} port {}", listener.name, port.port);
            // serve builds the security first, then the TLS; the first failure is the state.
            match PortSecurity::for_port(model, port, None) {
                Ok(_) => {}
                Err(SecurityProblem::Failed(reason)) => {
                    errors.push(format!("{at}: {reason}"));
                    continue;
                }
                Err(_) => {}
            }
            match check_port(model, port) {
                Ok(w) => warnings.extend(w.into_iter().map(|w| format!("{at}: {w}"))),
                Err(TlsOutcome::Failed { reason }) => errors.push(format!("{at}: {reason}")),
                Err(_) => {}
            }
        }
    }
    (errors, warnings)
}
