//! Wardgate's configuration: the AIO resource model of SPEC.md §3–§5, read in two stages.
//!
//! Stage one ([`raw`]) deserializes every YAML document into serde types close to the YAML, for
//! each accepted kind and apiVersion, rejecting unknown fields with their path and line. Stage two
//! converts old API shapes, fills in the defaults of SPEC.md §4.1 and checks every rule, collecting
//! all errors, into a [`Model`] of typed values. [`load`] runs both; [`create`] writes the YAML of
//! `wardgate create`.
//!
//! ```no_run
//! let loaded = wardgate_config::load(&["config/".into()]).unwrap();
//! for listener in &loaded.model.listeners {
//!     println!("{} ({}): {} ports", listener.name, listener.service_type, listener.ports.len());
//! }
//! ```

pub mod create;
pub mod diag;
pub mod enums;
pub mod model;
pub mod raw;

mod defaults;
mod load;
mod lower;
mod topic;
mod units;
mod validate;
mod yaml;

use std::path::PathBuf;

pub use defaults::{
    CERT_DURATION, CERT_MANAGER_GROUP, CERT_RENEW_BEFORE, DEFAULT_AUDIENCE, DEFAULT_AUTHENTICATION,
    DEFAULT_BROKER, DEFAULT_LISTENER, DEFAULT_PORT, DEFAULT_SERVICE_NAME, INSECURE_LISTENER,
    OLD_DEFAULT_ISSUER, QUICKSTART_ISSUER, QUICKSTART_PERSISTENCE_BYTES, QUICKSTART_PORT,
    automatic_secret_name,
};
pub use diag::{ConfigErrors, Diagnostic};
pub use load::{MAX_FILE_BYTES, Source, discover};
pub use model::*;
pub use topic::TopicSegment;
pub use units::{check_label, check_subdomain, parse_duration};

/// A valid configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated model.
    pub model: Model,
    /// Warnings (the configuration is valid, but something deserves a look).
    pub warnings: Vec<Diagnostic>,
    /// The files read, in order (what a reload watches).
    pub files: Vec<PathBuf>,
}

/// Reads `--config` paths (files and folders) and validates them into a [`Model`].
///
/// With no paths, the model is the defaults of SPEC.md §4.1 ([`Model::defaults`]). On failure,
/// every error found is returned, each naming file, line, document, resource and field.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ConfigErrors> {
    let files = load::discover(paths).map_err(|errors| ConfigErrors {
        errors,
        warnings: Vec::new(),
    })?;
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for dir in paths.iter().filter(|p| p.is_dir()) {
        if !files.iter().any(|f| f.starts_with(dir)) {
            warnings.push(Diagnostic {
                file: Some(dir.clone()),
                line: None,
                document: None,
                resource: None,
                path: None,
                message: "contains no *.yaml or *.yml files".to_owned(),
            });
        }
    }
    for f in &files {
        match load::read_file(f) {
            Ok(text) => sources.push(Source {
                name: f.clone(),
                text,
            }),
            Err(e) => errors.push(*e),
        }
    }
    let mut result = load_sources_inner(&sources, errors);
    match &mut result {
        Ok(loaded) => {
            loaded.files = files;
            warnings.append(&mut loaded.warnings);
            loaded.warnings = warnings;
        }
        Err(e) => {
            warnings.append(&mut e.warnings);
            e.warnings = warnings;
        }
    }
    result
}

/// Validates in-memory sources, as [`load`] does files.
pub fn load_sources(sources: &[Source]) -> Result<Loaded, ConfigErrors> {
    load_sources_inner(sources, Vec::new())
}

/// Validates one YAML text reported under `name`.
pub fn load_str(name: &str, yaml: &str) -> Result<Loaded, ConfigErrors> {
    load_sources(&[Source {
        name: PathBuf::from(name),
        text: yaml.to_owned(),
    }])
}

fn load_sources_inner(
    sources: &[Source],
    mut errors: Vec<Diagnostic>,
) -> Result<Loaded, ConfigErrors> {
    let mut docs = Vec::new();
    let mut broken = Vec::new();
    for s in sources {
        load::parse_source(s, &mut docs, &mut errors, &mut broken);
    }
    let mut ctx = lower::Ctx {
        errors,
        warnings: Vec::new(),
    };
    let built = lower::build(&docs, &mut ctx);
    let mut model = built.model;
    validate::validate(&model, &built.listener_sources, &broken, &mut ctx);
    model.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    let lower::Ctx {
        mut errors,
        mut warnings,
    } = ctx;
    diag::sort(&mut errors);
    diag::sort(&mut warnings);
    errors.dedup();
    warnings.dedup();
    if errors.is_empty() {
        Ok(Loaded {
            model,
            warnings,
            files: sources.iter().map(|s| s.name.clone()).collect(),
        })
    } else {
        Err(ConfigErrors { errors, warnings })
    }
}
