//! A reload is the difference between the running plan and the new one (SPEC.md §4.5): what
//! the supervisor opens, closes, reopens, and swaps in place on ports that keep their
//! connections.

use std::collections::BTreeMap;

use wardgate_security::authn::authentication_changed;
use wardgate_security::authz::authorization_changed;

use super::{Plan, PlannedPort};

/// What a reload changes, from the running plan to the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDiff {
    /// The Broker resource changed: new broker and connection settings (they apply to new
    /// sessions and connections).
    pub settings_changed: bool,
    /// Every port of either plan, by port number.
    pub ports: BTreeMap<u16, PortChange>,
}

/// How one port changes, and so what the supervisor does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChange {
    /// Only in the new plan: open it.
    Added,
    /// Only in the running plan: close it and its connections.
    Removed,
    /// Its addresses, protocol or name changed: close it, then open it anew.
    Moved,
    /// Its settings (TLS, authentication or authorization reference) changed: reopen it.
    Changed,
    /// The same port: it keeps its connections, new handshakes use its current certificate, and
    /// its security is rebuilt and swapped in place when its inputs changed.
    Kept {
        /// Its BrokerAuthentication, or a Secret or ConfigMap it reads, changed: new
        /// connections authenticate with the new one.
        authentication: bool,
        /// Its BrokerAuthorization changed: the connected clients are re-checked.
        authorization: bool,
    },
}

impl PortChange {
    /// Whether the port closes (and its connections with it) before the new plan opens its
    /// ports; a port that is logged as closed.
    pub fn closes(self) -> bool {
        matches!(self, PortChange::Removed | PortChange::Moved)
    }
}

impl Plan {
    /// What changes from `old` (the running plan, if any) to `new`.
    pub fn diff(old: Option<&Plan>, new: &Plan) -> PlanDiff {
        let Some(old) = old else {
            return PlanDiff {
                settings_changed: true,
                ports: new.ports.keys().map(|n| (*n, PortChange::Added)).collect(),
            };
        };
        let mut ports: BTreeMap<u16, PortChange> = old
            .ports
            .keys()
            .filter(|n| !new.ports.contains_key(n))
            .map(|n| (*n, PortChange::Removed))
            .collect();
        for (n, planned) in &new.ports {
            let change = match old.ports.get(n) {
                None => PortChange::Added,
                Some(before) if before.spec != planned.spec => PortChange::Moved,
                Some(before) if before != planned => PortChange::Changed,
                Some(_) => security_change(old, new, planned),
            };
            ports.insert(*n, change);
        }
        PlanDiff {
            settings_changed: old.model.broker != new.model.broker,
            ports,
        }
    }
}

/// A port in both plans with the same settings: whether its BrokerAuthentication and
/// BrokerAuthorization (with the Secrets and ConfigMaps they read) changed.
fn security_change(old: &Plan, new: &Plan, port: &PlannedPort) -> PortChange {
    let authentication = port
        .config
        .authentication_ref
        .as_deref()
        .is_some_and(|name| authentication_changed(&old.model, &new.model, name));
    let authorization = port
        .config
        .effective_authorization_ref()
        .is_some_and(|name| authorization_changed(&old.model, &new.model, name));
    PortChange::Kept {
        authentication,
        authorization,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::PortChange::{self, Added, Changed, Kept, Moved, Removed};
    use super::{Plan, PlanDiff};
    use crate::plan::ServeOptions;

    /// A LoadBalancer listener with a plain port and a TLS port that authenticates with X509
    /// (a ConfigMap) and is authorized by rules.
    const BASE: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
  - port: 8883
    authenticationRef: certs
    authorizationRef: rules
    tls:
      mode: Manual
      manual: {secretRef: server}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: certs
spec:
  authenticationMethods:
  - method: X509
    x509Settings: {trustedClientCaCert: client-ca}
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthorization
metadata:
  name: rules
spec:
  authorizationPolicies:
    rules:
    - principals: {usernames: [a]}
      brokerResources:
      - method: Connect
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: client-ca
data:
  ca.pem: one
";

    const KEEP: PortChange = Kept {
        authentication: false,
        authorization: false,
    };

    /// The diff of the test listener's ports: the default listener (on `DEFAULT_PORT`, loopback)
    /// is in every plan and changes only from no plan to the first.
    fn diff(old: Option<&Plan>, new: &Plan) -> PlanDiff {
        let mut diff = Plan::diff(old, new);
        let default = diff.ports.remove(&wardgate_config::DEFAULT_PORT);
        let expected = if old.is_some() { KEEP } else { Added };
        assert_eq!(default, Some(expected), "the default listener");
        diff
    }

    fn plan(yaml: &str, options: ServeOptions) -> Plan {
        let loaded = wardgate_config::load_str("test.yaml", yaml)
            .unwrap_or_else(|e| panic!("invalid test config:\n{e}\n{yaml}"));
        Plan::from_model(loaded.model, &options)
    }

    /// BASE edited by `edits` (each `(from, to)` must apply).
    fn edited(edits: &[(&str, &str)]) -> String {
        edits.iter().fold(BASE.to_owned(), |yaml, (from, to)| {
            assert!(yaml.contains(from), "{from:?} is not in the test YAML");
            yaml.replacen(from, to, 1)
        })
    }

    const SECRET: &str = "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: server\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: c\n  tls.key: k\n";
    const BROKER: &str = "---\napiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: Broker\nmetadata: {name: default}\nspec:\n  advanced:\n    clients: {maxKeepAliveSeconds: 60}\n";

    #[test]
    fn each_change_of_the_configuration_maps_to_what_the_supervisor_does() {
        let base = edited(&[]);
        let (authentication, authorization) = (
            Kept {
                authentication: true,
                authorization: false,
            },
            Kept {
                authentication: false,
                authorization: true,
            },
        );
        // What changed, the new configuration, whether the settings changed, and the change of
        // port 8883 (port 1883 is kept in every case).
        let cases: Vec<(&str, String, bool, PortChange)> = vec![
            ("nothing", base.clone(), false, KEEP),
            ("the Broker's limits", format!("{base}{BROKER}"), true, KEEP),
            (
                "the TLS port's protocol",
                edited(&[("    tls:\n", "    protocol: WebSockets\n    tls:\n")]),
                false,
                Moved,
            ),
            (
                "the TLS port's authorization reference",
                edited(&[("    authorizationRef: rules\n", "")]),
                false,
                Changed,
            ),
            (
                "the ConfigMap the X509 method reads",
                edited(&[("ca.pem: one", "ca.pem: two")]),
                false,
                authentication,
            ),
            (
                "the authorization rules",
                edited(&[("usernames: [a]", "usernames: [b]")]),
                false,
                authorization,
            ),
            // TLS material is re-resolved on every kept port, changed or not.
            (
                "the certificate Secret",
                format!("{base}{SECRET}"),
                false,
                KEEP,
            ),
        ];
        let old = plan(&base, ServeOptions::default());
        for (what, yaml, settings_changed, tls_port) in cases {
            let new = plan(&yaml, ServeOptions::default());
            let expected = PlanDiff {
                settings_changed,
                ports: [(1883, KEEP), (8883, tls_port)].into(),
            };
            assert_eq!(diff(Some(&old), &new), expected, "changed: {what}");
        }
    }

    #[test]
    fn ports_are_added_removed_and_moved_with_their_address() {
        let old = plan(BASE, ServeOptions::default());
        let renumbered = plan(
            &edited(&[("  - port: 1883\n", "  - port: 1884\n")]),
            ServeOptions::default(),
        );
        assert_eq!(
            diff(Some(&old), &renumbered).ports,
            [(1883, Removed), (1884, Added), (8883, KEEP)].into()
        );
        // `serve --bind` moves every LoadBalancer port to the new address.
        let public = ServeOptions {
            public: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ..ServeOptions::default()
        };
        assert_eq!(
            diff(Some(&old), &plan(BASE, public)).ports,
            [(1883, Moved), (8883, Moved)].into()
        );
        assert!(Removed.closes() && Moved.closes());
        assert!(!Added.closes() && !Changed.closes() && !KEEP.closes());
    }

    #[test]
    fn the_first_plan_opens_every_port_and_sets_the_settings() {
        let new = plan(BASE, ServeOptions::default());
        let first = diff(None, &new);
        assert!(first.settings_changed);
        assert_eq!(first.ports, [(1883, Added), (8883, Added)].into());
    }
}
