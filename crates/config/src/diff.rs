//! The difference between two models, for live reload (SPEC.md §4.5): which ports start, stop or
//! change, and which authentication, authorization, Secret, ConfigMap and issuer resources changed.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Dependency, IssuerKind, ListenerPort, Model, ServiceType};

/// How a keyed item differs between the old and the new model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Only in the new model.
    Added,
    /// Only in the old model.
    Removed,
    /// In both, with different contents.
    Changed,
}

/// A port, identified by its listener and number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortKey {
    /// The listener's name.
    pub listener: String,
    /// The port number.
    pub port: u16,
}

/// What changed between two models. Each list is sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelDiff {
    /// The Broker's settings changed (they apply to new sessions).
    pub broker_changed: bool,
    /// Listeners added, removed, or with a changed Service name or type.
    pub listeners: Vec<(String, Change)>,
    /// Ports added, removed or changed. A port is changed when its own settings change or when
    /// its listener's serviceType (where it binds) changes.
    pub ports: Vec<(PortKey, Change)>,
    /// BrokerAuthentications.
    pub authentications: Vec<(String, Change)>,
    /// BrokerAuthorizations.
    pub authorizations: Vec<(String, Change)>,
    /// Secrets.
    pub secrets: Vec<(String, Change)>,
    /// ConfigMaps.
    pub config_maps: Vec<(String, Change)>,
    /// Issuers and ClusterIssuers.
    pub issuers: Vec<((IssuerKind, String), Change)>,
    /// Certificates.
    pub certificates: Vec<(String, Change)>,
}

fn diff_maps<K: Ord + Clone, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> Vec<(K, Change)> {
    let mut out = Vec::new();
    for (k, v) in old {
        match new.get(k) {
            None => out.push((k.clone(), Change::Removed)),
            Some(n) if n != v => out.push((k.clone(), Change::Changed)),
            Some(_) => {}
        }
    }
    for k in new.keys() {
        if !old.contains_key(k) {
            out.push((k.clone(), Change::Added));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn ports_of(m: &Model) -> BTreeMap<PortKey, (ServiceType, &ListenerPort)> {
    m.listeners
        .iter()
        .flat_map(|l| {
            l.ports.iter().map(move |p| {
                (
                    PortKey {
                        listener: l.name.clone(),
                        port: p.port,
                    },
                    (l.service_type, p),
                )
            })
        })
        .collect()
}

impl Model {
    /// What changed from `old` to `new`.
    pub fn diff(old: &Model, new: &Model) -> ModelDiff {
        let listener_map = |m: &Model| -> BTreeMap<String, (String, ServiceType)> {
            m.listeners
                .iter()
                .map(|l| (l.name.clone(), (l.service_name.clone(), l.service_type)))
                .collect()
        };
        ModelDiff {
            broker_changed: old.broker != new.broker,
            listeners: diff_maps(&listener_map(old), &listener_map(new)),
            ports: diff_maps(&ports_of(old), &ports_of(new)),
            authentications: diff_maps(&old.authentications, &new.authentications),
            authorizations: diff_maps(&old.authorizations, &new.authorizations),
            secrets: diff_maps(&old.secrets, &new.secrets),
            config_maps: diff_maps(&old.config_maps, &new.config_maps),
            issuers: diff_maps(&old.issuers, &new.issuers),
            certificates: diff_maps(&old.certificates, &new.certificates),
        }
    }
}

impl ModelDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self == &ModelDiff::default()
    }

    /// The ports of `new` that are neither added nor removed but whose TLS or authentication
    /// inputs changed (certificate Secret, issuer, ConfigMaps, authentication resource): the next
    /// handshake or CONNECT must use the new values.
    pub fn ports_with_changed_inputs(&self, new: &Model) -> BTreeSet<PortKey> {
        let changed_deps: BTreeSet<Dependency> = self
            .secrets
            .iter()
            .map(|(n, _)| Dependency::Secret(n.clone()))
            .chain(
                self.config_maps
                    .iter()
                    .map(|(n, _)| Dependency::ConfigMap(n.clone())),
            )
            .chain(
                self.issuers
                    .iter()
                    .map(|((k, n), _)| Dependency::Issuer(*k, n.clone())),
            )
            .collect();
        let changed_authn: BTreeSet<&str> = self
            .authentications
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut out = BTreeSet::new();
        for l in &new.listeners {
            for p in &l.ports {
                let key = PortKey {
                    listener: l.name.clone(),
                    port: p.port,
                };
                if self
                    .ports
                    .iter()
                    .any(|(k, c)| *k == key && *c == Change::Added)
                {
                    continue;
                }
                let deps = new.port_dependencies(p);
                let authn = p
                    .authentication_ref
                    .as_deref()
                    .is_some_and(|a| changed_authn.contains(a));
                if authn || deps.iter().any(|d| changed_deps.contains(d)) {
                    out.insert(key);
                }
            }
        }
        out
    }

    /// The ports of `new` whose effective authorization changed (a different reference, or the
    /// referenced BrokerAuthorization changed): their connected clients must be re-checked.
    pub fn ports_with_changed_authorization(&self, old: &Model, new: &Model) -> BTreeSet<PortKey> {
        let changed: BTreeSet<&str> = self
            .authorizations
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let old_ports = ports_of(old);
        let mut out = BTreeSet::new();
        for (key, (_, p)) in ports_of(new) {
            let now = p.effective_authorization_ref();
            let before = old_ports
                .get(&key)
                .and_then(|(_, op)| op.effective_authorization_ref());
            if now != before || now.is_some_and(|a| changed.contains(a)) {
                out.insert(key);
            }
        }
        out
    }
}
