//! Diagnostics: where a configuration problem is (file, line, document, resource, field path) and
//! what it is; the error list returned when a configuration is rejected.

use std::fmt;
use std::path::PathBuf;

/// One error or warning about the configuration.
///
/// Displayed as `file:line: [document N: ]Kind/name: field.path problem`, the format of
/// `wardgate validate`, e.g.
/// `listeners.yaml:14: BrokerListener/lb: spec.ports[0].port 18883 is already used by BrokerListener/default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, or `None` for the built-in defaults.
    pub file: Option<PathBuf>,
    /// The 1-based line in `file`, when known.
    pub line: Option<u64>,
    /// The 1-based document index in `file`, set when the file holds more than one document.
    pub document: Option<usize>,
    /// The resource as `Kind/name`, when known.
    pub resource: Option<String>,
    /// The field path inside the resource, e.g. `spec.ports[1].port`.
    pub path: Option<String>,
    /// What is wrong, worded to follow the path.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic that is not tied to a file.
    pub fn general(message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            line: None,
            document: None,
            resource: None,
            path: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) if line > 0 => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), _) => write!(f, "{}: ", file.display())?,
            (None, _) => f.write_str("(built-in defaults): ")?,
        }
        if let Some(doc) = self.document {
            write!(f, "document {doc}: ")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        match &self.path {
            Some(path) if !path.is_empty() => write!(f, "{path} {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Every error found in a configuration, and the warnings found with them; `Display` prints the
/// errors, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.errors))]
pub struct ConfigErrors {
    /// The errors, in file and line order (never empty).
    pub errors: Vec<Diagnostic>,
    /// Warnings found in the same pass.
    pub warnings: Vec<Diagnostic>,
}

impl ConfigErrors {
    /// One error, no warnings.
    pub fn single(error: Diagnostic) -> Self {
        ConfigErrors {
            errors: vec![error],
            warnings: Vec::new(),
        }
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Sorts diagnostics by file and line (built-in defaults first), keeping the order of
/// diagnostics on the same line.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
}
