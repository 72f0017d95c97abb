//! Stage one: finds the files of `--config` paths, parses their YAML documents and turns each
//! document into a raw resource by its `apiVersion` and `kind`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::diag::Diagnostic;
use crate::raw::{self, RawResource};
use crate::yaml::{self, Node};

/// The largest file read. Kubernetes caps a Secret or ConfigMap at 1 MiB; a config file four
/// times that is a mistake, not a configuration.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A configuration text and the name it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file name shown in messages.
    pub name: PathBuf,
    /// The YAML text.
    pub text: String,
}

/// Where a document came from, for messages and line lookups.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) file: PathBuf,
    /// 1-based.
    pub(crate) index: usize,
    /// Whether the file holds more than one document.
    pub(crate) multi: bool,
    /// The document's tree.
    pub(crate) root: Rc<Node>,
    /// The path of the resource inside the document (`items[2]` in a List, else empty).
    pub(crate) base: String,
}

impl Origin {
    /// A diagnostic at `path` (relative to the resource) in this document.
    pub(crate) fn diag(&self, resource: Option<String>, path: &str, message: String) -> Diagnostic {
        let full = if self.base.is_empty() {
            path.to_owned()
        } else if path.is_empty() {
            self.base.clone()
        } else if path.starts_with('[') {
            format!("{}{path}", self.base)
        } else {
            format!("{}.{path}", self.base)
        };
        Diagnostic {
            file: Some(self.file.clone()),
            line: Some(self.root.line_of(&full)),
            document: self.multi.then_some(self.index),
            resource,
            path: (!full.is_empty()).then_some(full),
            message,
        }
    }
}

/// A resource read from a document.
#[derive(Debug, Clone)]
pub(crate) struct RawDocument {
    pub(crate) origin: Origin,
    pub(crate) resource: RawResource,
}

impl RawDocument {
    /// `Kind/name`.
    pub(crate) fn label(&self) -> String {
        format!("{}/{}", self.resource.kind(), self.resource.name())
    }
}

/// Expands `--config` paths into files: a file is read whatever its name; a folder contributes
/// its `*.yaml` and `*.yml` files (not recursively, skipping hidden entries such as Kubernetes'
/// `..data`), in name order. A file named twice is read once.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    for path in paths {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                errors.push(file_error(path, format!("cannot be read: {e}")));
                continue;
            }
        };
        let mut found = Vec::new();
        if meta.is_dir() {
            let entries = match fs::read_dir(path) {
                Ok(e) => e,
                Err(e) => {
                    errors.push(file_error(path, format!("cannot be listed: {e}")));
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
                let p = entry.path();
                // Follows symlinks, as a mounted ConfigMap's files are symlinks.
                if is_yaml && fs::metadata(&p).map(|m| m.is_file()).unwrap_or(true) {
                    found.push(p);
                }
            }
            found.sort();
        } else {
            found.push(path.clone());
        }
        for f in found {
            let key = fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
            if seen.insert(key) {
                files.push(f);
            }
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

fn file_error(path: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: Some(path.to_path_buf()),
        line: None,
        document: None,
        resource: None,
        path: None,
        message,
    }
}

/// Reads a file with the size limit; the text must be UTF-8.
pub(crate) fn read_file(path: &Path) -> Result<String, Box<Diagnostic>> {
    let file = fs::File::open(path)
        .map_err(|e| Box::new(file_error(path, format!("cannot be read: {e}"))))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Box::new(file_error(path, format!("cannot be read: {e}"))))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Box::new(file_error(
            path,
            format!(
                "is larger than {} MiB, the limit for a configuration file",
                MAX_FILE_BYTES / 1024 / 1024
            ),
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Box::new(file_error(
            path,
            format!(
                "is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        ))
    })
}

/// Parses one source into raw resources, appending problems to `errors`.
pub(crate) fn parse_source(
    source: &Source,
    docs_out: &mut Vec<RawDocument>,
    errors: &mut Vec<Diagnostic>,
    broken: &mut Vec<(String, String)>,
) {
    let docs = match yaml::parse_documents(&source.text) {
        Ok(d) => d,
        Err(e) => {
            errors.push(Diagnostic {
                file: Some(source.name.clone()),
                line: Some(e.line),
                document: None,
                resource: None,
                path: None,
                message: format!("invalid YAML: {}", e.message),
            });
            return;
        }
    };
    let multi = docs.len() > 1;
    for (i, root) in docs.into_iter().enumerate() {
        let root = Rc::new(root);
        let origin = Origin {
            file: source.name.clone(),
            index: i + 1,
            multi,
            root: Rc::clone(&root),
            base: String::new(),
        };
        parse_document(origin, &root, docs_out, errors, broken);
    }
}

/// Dispatches a document (or each item of a `List`) on `apiVersion` and `kind`.
fn parse_document(
    origin: Origin,
    node: &Node,
    docs_out: &mut Vec<RawDocument>,
    errors: &mut Vec<Diagnostic>,
    broken: &mut Vec<(String, String)>,
) {
    if !matches!(node.value, yaml::Value::Map(_)) {
        errors.push(origin.diag(
            None,
            "",
            "is not a resource: expected a mapping with apiVersion, kind and metadata".to_owned(),
        ));
        return;
    }
    let name = node
        .get("metadata")
        .and_then(|m| m.get_str("name"))
        .map(str::to_owned);
    let Some(kind) = node.get_str("kind").map(str::to_owned) else {
        let msg = if node.get("kind").is_some() {
            "must be a string"
        } else {
            "is required"
        };
        errors.push(origin.diag(None, "kind", msg.to_owned()));
        return;
    };
    let label = Some(format!("{kind}/{}", name.as_deref().unwrap_or("?")));
    let Some(api_version) = node.get_str("apiVersion").map(str::to_owned) else {
        errors.push(origin.diag(label, "apiVersion", "is required".to_owned()));
        return;
    };

    if kind == "List" && api_version == "v1" {
        let items = match node.get("items").map(|n| &n.value) {
            Some(yaml::Value::Seq(items)) => items,
            _ => {
                errors.push(origin.diag(label, "items", "must be a list".to_owned()));
                return;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let mut item_origin = origin.clone();
            item_origin.base = yaml::join_index(&yaml::join_key(&origin.base, "items"), i);
            parse_document(item_origin, item, docs_out, errors, broken);
        }
        return;
    }

    let accepted: &[&str] = match kind.as_str() {
        "Broker" | "BrokerListener" | "BrokerAuthentication" | "BrokerAuthorization" => &[
            raw::CURRENT_API_VERSIONS[0],
            raw::CURRENT_API_VERSIONS[1],
            raw::CURRENT_API_VERSIONS[2],
            raw::OLD_API_VERSION,
        ],
        "Secret" | "ConfigMap" | "ServiceAccount" => &["v1"],
        "Issuer" | "ClusterIssuer" | "Certificate" => &[raw::CERT_MANAGER_API_VERSION],
        _ => {
            errors.push(origin.diag(
                label,
                "kind",
                format!(
                    "\"{kind}\" is not a kind Wardgate reads (expected one of: {})",
                    raw::KINDS.join(", ")
                ),
            ));
            return;
        }
    };
    if !accepted.contains(&api_version.as_str()) {
        errors.push(origin.diag(
            label,
            "apiVersion",
            format!(
                "\"{api_version}\" is not accepted for {kind} (expected one of: {})",
                accepted.join(", ")
            ),
        ));
        return;
    }
    let old = api_version == raw::OLD_API_VERSION;
    let parse = |node: &Node| -> Result<RawResource, yaml::DeError> {
        let base = origin.base.as_str();
        match (kind.as_str(), old) {
            ("Broker", false) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::Broker),
            ("BrokerListener", false) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::BrokerListener),
            ("BrokerAuthentication", false) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::BrokerAuthentication),
            ("BrokerAuthorization", false) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::BrokerAuthorization),
            ("Broker", true) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::OldBroker),
            ("BrokerListener", true) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::OldBrokerListener),
            ("BrokerAuthentication", true) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::OldBrokerAuthentication),
            ("BrokerAuthorization", true) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::OldBrokerAuthorization),
            ("Secret", _) => yaml::from_node(node, base).map(RawResource::Secret),
            ("ConfigMap", _) => yaml::from_node(node, base).map(RawResource::ConfigMap),
            ("ServiceAccount", _) => yaml::from_node(node, base).map(RawResource::ServiceAccount),
            ("Issuer", _) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::Issuer),
            ("ClusterIssuer", _) => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::ClusterIssuer),
            _ => yaml::from_node(node, base)
                .map(Box::new)
                .map(RawResource::Certificate),
        }
    };
    let first = match parse(node) {
        Ok(resource) => {
            docs_out.push(RawDocument { origin, resource });
            return;
        }
        Err(e) => e,
    };
    // Serde stops at the first problem. To report every unknown field and every badly typed
    // optional field of the document, drop the offending field from a copy and parse again, until
    // the document parses or the problem cannot be dropped (a required field).
    let mut copy = node.clone();
    let mut error = first;
    let mut seen = Vec::new();
    for _ in 0..MAX_ERRORS_PER_DOCUMENT {
        let path = error.full_path();
        let line = error.line.unwrap_or(node.line);
        errors.push(Diagnostic {
            file: Some(origin.file.clone()),
            line: Some(line),
            document: origin.multi.then_some(origin.index),
            resource: label.clone(),
            path: (!path.is_empty()).then_some(path.clone()),
            message: error.problem(),
        });
        if error.is_missing_field() || seen.contains(&path) {
            break;
        }
        let relative = path
            .strip_prefix(origin.base.as_str())
            .unwrap_or(&path)
            .trim_start_matches('.');
        if !copy.remove(relative) {
            break;
        }
        seen.push(path);
        match parse(&copy) {
            Ok(_) => break,
            // The dropped field was required: its problem is already reported.
            Err(e) if e.is_missing_field() && seen.contains(&e.full_path()) => break,
            Err(e) => error = e,
        }
    }
    broken.push((kind.clone(), name.unwrap_or_default()));
}

/// How many problems are reported for one document before giving up on it.
const MAX_ERRORS_PER_DOCUMENT: usize = 50;
