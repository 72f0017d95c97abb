//! Stage two: turns raw resources into the typed [`Model`], converting old API shapes, filling
//! in defaults and collecting every error and warning (each naming file, line, resource and
//! field path).

mod authn;
mod authz;
mod broker;
mod cluster;
mod listener;
mod resources;
mod service_accounts;

use std::collections::BTreeMap;

use crate::defaults;
use crate::diag::Diagnostic;
use crate::load::RawDocument;
use crate::model::Model;
use crate::raw::RawResource;
use crate::units;

pub(crate) use listener::ListenerSource;

/// Collects diagnostics while lowering.
#[derive(Default)]
pub(crate) struct Ctx {
    pub(crate) errors: Vec<Diagnostic>,
    pub(crate) warnings: Vec<Diagnostic>,
}

impl Ctx {
    /// An error at `path` of `doc`'s resource.
    pub(crate) fn err(&mut self, doc: &RawDocument, path: &str, message: impl Into<String>) {
        self.errors
            .push(doc.origin.diag(Some(doc.label()), path, message.into()));
    }

    /// A warning at `path` of `doc`'s resource.
    pub(crate) fn warn(&mut self, doc: &RawDocument, path: &str, message: impl Into<String>) {
        self.warnings
            .push(doc.origin.diag(Some(doc.label()), path, message.into()));
    }

    /// Checks `value` against an inclusive range, reporting `"{value} is out of range"`.
    pub(crate) fn range<T: TryFrom<i64>>(
        &mut self,
        doc: &RawDocument,
        path: &str,
        value: i64,
        min: i64,
        max: i64,
    ) -> Option<T> {
        if value < min || value > max {
            self.err(doc, path, format!("{value} is out of range {min}–{max}"));
            return None;
        }
        T::try_from(value).ok()
    }

    /// An optional value with a range and a default.
    pub(crate) fn range_or<T: TryFrom<i64>>(
        &mut self,
        doc: &RawDocument,
        path: &str,
        value: Option<i64>,
        min: i64,
        max: i64,
        default: T,
    ) -> T {
        match value {
            Some(v) => self.range(doc, path, v, min, max).unwrap_or(default),
            None => default,
        }
    }

    /// Parses a Go duration, or reports it.
    pub(crate) fn duration(
        &mut self,
        doc: &RawDocument,
        path: &str,
        value: Option<&str>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match value.map(units::parse_duration) {
            None => default,
            Some(Ok(d)) => d,
            Some(Err(e)) => {
                self.err(doc, path, e);
                default
            }
        }
    }
}

/// The result of stage two.
pub(crate) struct Built {
    pub(crate) model: Model,
    pub(crate) listener_sources: Vec<ListenerSource>,
}

/// Builds the model from raw documents. Errors and warnings go to `ctx`; the model is only
/// meaningful when `ctx.errors` is empty.
pub(crate) fn build(docs: &[RawDocument], ctx: &mut Ctx) -> Built {
    let docs = dedupe(docs, ctx);
    check_names(&docs, ctx);

    let broker = broker::lower(&docs, ctx);
    let old_links = authn::old_links(&docs, ctx);
    let authz_links = authz::old_links(&docs, ctx);

    let mut authentications = BTreeMap::new();
    let mut authorizations = BTreeMap::new();
    for doc in &docs {
        match &doc.resource {
            RawResource::BrokerAuthentication(o) => {
                if let Some(a) = authn::lower(doc, o, ctx) {
                    authentications.insert(a.name.clone(), a);
                }
            }
            RawResource::OldBrokerAuthentication(o) => {
                if let Some(a) = authn::lower_old(doc, o, ctx) {
                    authentications.insert(a.name.clone(), a);
                }
            }
            RawResource::BrokerAuthorization(o) => {
                if let Some(a) = authz::lower(doc, o, ctx) {
                    authorizations.insert(a.name.clone(), a);
                }
            }
            RawResource::OldBrokerAuthorization(o) => {
                if let Some(a) = authz::lower_old(doc, o, ctx) {
                    authorizations.insert(a.name.clone(), a);
                }
            }
            _ => {}
        }
    }
    defaults::add_authentications(&mut authentications);

    let (secrets, config_maps, mut issuers, certificates) = resources::lower(&docs, ctx);
    defaults::add_issuers(&mut issuers);

    let mut listeners = Vec::new();
    let mut listener_sources = Vec::new();
    let any_old_listener = docs
        .iter()
        .any(|d| matches!(d.resource, RawResource::OldBrokerListener(_)));
    for doc in &docs {
        let lowered = match &doc.resource {
            RawResource::BrokerListener(o) => listener::lower(doc, o, &broker.name, ctx),
            RawResource::OldBrokerListener(o) => {
                listener::lower_old(doc, o, &broker.name, &old_links, &authz_links, ctx)
            }
            _ => None,
        };
        if let Some((l, src)) = lowered {
            listeners.push(l);
            listener_sources.push(src);
        }
    }
    if !any_old_listener
        && !listeners
            .iter()
            .any(|l| l.name == defaults::DEFAULT_LISTENER)
    {
        listeners.insert(0, defaults::default_listener());
        listener_sources.insert(0, ListenerSource::builtin(1));
    }

    let model = Model {
        broker,
        listeners,
        authentications,
        authorizations,
        secrets,
        config_maps,
        issuers,
        certificates,
        service_accounts: service_accounts::lower(&docs, ctx),
    };
    Built {
        model,
        listener_sources,
    }
}

/// Reports resources defined twice (same kind and name) and keeps the first.
fn dedupe<'a>(docs: &'a [RawDocument], ctx: &mut Ctx) -> Vec<&'a RawDocument> {
    let mut seen: BTreeMap<(&'static str, String), &RawDocument> = BTreeMap::new();
    let mut out = Vec::new();
    for doc in docs {
        let key = (doc.resource.kind(), doc.resource.name().to_owned());
        if let Some(first) = seen.get(&key) {
            let place = match first.origin.root.line_of(&first.origin.base) {
                0 => first.origin.file.display().to_string(),
                line => format!("{}:{line}", first.origin.file.display()),
            };
            ctx.err(
                doc,
                "metadata.name",
                format!("\"{}\" is already defined in {place}", key.1),
            );
            continue;
        }
        seen.insert(key, doc);
        out.push(doc);
    }
    out
}

/// Checks resource names: AIO resources are DNS-1123 labels, the others subdomains.
fn check_names(docs: &[&RawDocument], ctx: &mut Ctx) {
    for doc in docs {
        let name = doc.resource.name();
        let result = match doc.resource.generation() {
            Some(_) => units::check_label(name),
            None => units::check_subdomain(name),
        };
        if let Err(e) = result {
            ctx.err(doc, "metadata.name", e);
        }
    }
}
