//! Helpers shared by the integration tests.

use std::path::PathBuf;

use wardgate_config::{ConfigErrors, Loaded};

/// The fixtures folder.
pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Loads one YAML text named `name`, expecting success.
#[track_caller]
pub(crate) fn ok(name: &str, yaml: &str) -> Loaded {
    match wardgate_config::load_str(name, yaml) {
        Ok(l) => l,
        Err(e) => panic!("expected {name} to load, got:\n{e}"),
    }
}

/// Loads one YAML text named `name`, expecting errors; returns them rendered, one per line.
#[track_caller]
pub(crate) fn errors(name: &str, yaml: &str) -> Vec<String> {
    match wardgate_config::load_str(name, yaml) {
        Ok(_) => panic!("expected {name} to be rejected"),
        Err(ConfigErrors { errors, .. }) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// The warnings of a valid YAML text, rendered.
#[track_caller]
pub(crate) fn warnings(name: &str, yaml: &str) -> Vec<String> {
    ok(name, yaml)
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}
