//! Certificates on a Kubernetes cluster (issue 19 item 3), written through the API:
//!
//! - with cert-manager (discovery serves `cert-manager.io/v1` `certificates`), every automatic
//!   port gets the cert-manager `Certificate` AIO's operator creates ([`spec`]); the port serves
//!   the Secret cert-manager writes (`security::tls::AutomaticIssuance::CertManager`);
//! - without it, the built-in issuer's certificates are written to `kubernetes.io/tls` Secrets
//!   of the same names ([`builtin`]), and read back into an empty data dir when a pod starts;
//! - either way the trust bundle is published as AIO's ConfigMap ([`super::trust`]).
//!
//! Everything written is labelled `app.kubernetes.io/managed-by: wardgate` and owned by its
//! BrokerListener (when the listener is an API object), so deleting the listener deletes it.

mod builtin;
mod spec;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use wardgate_config::model::{AutomaticTls, Listener, Model, Tls};
use wardgate_security::tls::{AutomaticIssuance, IssuedFiles, TlsContext};

use super::trust::{FIELD_MANAGER, TrustBundle};

/// The label selecting what this module writes for ports (Certificates, built-in Secrets).
const ROLE_SELECTOR: &str =
    "app.kubernetes.io/managed-by=wardgate,wardgate.io/role=server-certificate";

/// The labels of a Certificate or Secret written for a port of `listener`.
fn labels(listener: &str) -> Value {
    json!({
        "app.kubernetes.io/managed-by": "wardgate",
        "wardgate.io/role": "server-certificate",
        "wardgate.io/listener": listener,
    })
}

/// The labels of the quickstart CA's Secret.
fn ca_labels() -> Value {
    json!({
        "app.kubernetes.io/managed-by": "wardgate",
        "wardgate.io/role": "quickstart-ca",
    })
}

/// The certificates of automatic ports and the trust bundle, kept in the cluster.
pub(crate) struct ClusterCertificates {
    client: Client,
    namespace: String,
    issuance: AutomaticIssuance,
    /// What was last applied, by object name (Certificate specs or Secret files), so that an
    /// unchanged configuration costs no API call.
    applied: BTreeMap<String, Applied>,
    trust: TrustBundle,
}

/// What was last applied under one name.
#[derive(Debug, Clone, PartialEq)]
enum Applied {
    /// A cert-manager Certificate.
    Certificate(Value),
    /// A Secret of the built-in issuer.
    Secret(IssuedFiles),
}

impl ClusterCertificates {
    /// Asks the API whether cert-manager runs (its `certificates` resource is served): the
    /// answer decides who issues automatic certificates for the life of the process.
    pub(crate) async fn detect(
        client: Client,
        namespace: &str,
    ) -> anyhow::Result<ClusterCertificates> {
        let issuance = match client.list_api_group_resources("cert-manager.io/v1").await {
            Ok(list) if list.resources.iter().any(|r| r.name == "certificates") => {
                AutomaticIssuance::CertManager
            }
            Ok(_) => AutomaticIssuance::BuiltIn,
            Err(kube::Error::Api(status)) if status.is_not_found() => AutomaticIssuance::BuiltIn,
            Err(e) => return Err(e).context("discovering whether cert-manager is installed"),
        };
        match issuance {
            AutomaticIssuance::CertManager => tracing::info!(
                "cert-manager is installed: automatic ports get cert-manager Certificates"
            ),
            AutomaticIssuance::BuiltIn => tracing::info!(
                "cert-manager is not installed: the built-in issuer writes its certificates to Secrets"
            ),
        }
        Ok(ClusterCertificates {
            trust: TrustBundle::new(client.clone(), namespace),
            client,
            namespace: namespace.to_owned(),
            issuance,
            applied: BTreeMap::new(),
        })
    }

    /// Who issues automatic certificates: what `TlsOptions::issuance` must say.
    pub(crate) fn issuance(&self) -> AutomaticIssuance {
        self.issuance
    }

    /// Before the ports first resolve, without cert-manager: copies each automatic port's
    /// Secret (written by a previous pod) into an empty data dir, so that a still valid
    /// certificate is reused rather than re-issued. Returns the Secrets restored.
    pub(crate) async fn restore(
        &self,
        model: &Model,
        tls: &TlsContext,
    ) -> anyhow::Result<Vec<String>> {
        if self.issuance == AutomaticIssuance::CertManager {
            return Ok(Vec::new());
        }
        builtin::restore(&self.client, &self.namespace, model, tls).await
    }

    /// After every configuration applied and every renewal: the Certificates (cert-manager)
    /// or Secrets (built-in issuer) of the automatic ports of `model`, those of ports gone
    /// deleted, then the trust bundle ConfigMap. Only what changed is written.
    pub(crate) async fn publish(&mut self, model: &Model, tls: &TlsContext) -> anyhow::Result<()> {
        let mut owners = Owners::default();
        let mut wanted = Vec::new();
        if self.issuance == AutomaticIssuance::BuiltIn {
            let ca = Applied::Secret(tls.quickstart_files());
            let name = builtin::QUICKSTART_CA_SECRET;
            if self.applied.get(name) != Some(&ca) {
                if let Applied::Secret(files) = &ca {
                    builtin::write(
                        &self.client,
                        &self.namespace,
                        name,
                        ca_labels(),
                        files,
                        None,
                    )
                    .await?;
                }
                self.applied.insert(name.to_owned(), ca);
            }
        }
        for (listener, a) in automatic_ports(model) {
            wanted.push(a.secret_name.clone());
            let applied = match self.issuance {
                AutomaticIssuance::CertManager => {
                    let owner = owners
                        .get(&self.client, &self.namespace, &listener.name)
                        .await?;
                    let object = spec::certificate(listener, a, &self.namespace, owner.as_ref());
                    Applied::Certificate(object)
                }
                AutomaticIssuance::BuiltIn => match tls.issued_files(&a.secret_name) {
                    Some(files) => Applied::Secret(files),
                    // Not issued (yet): the port waits for its issuer.
                    None => continue,
                },
            };
            if self.applied.get(&a.secret_name) == Some(&applied) {
                continue;
            }
            let owner = owners
                .get(&self.client, &self.namespace, &listener.name)
                .await?;
            match &applied {
                Applied::Certificate(object) => {
                    self.apply_certificate(&a.secret_name, object).await?
                }
                Applied::Secret(files) => {
                    let labels = labels(&listener.name);
                    builtin::write(
                        &self.client,
                        &self.namespace,
                        &a.secret_name,
                        labels,
                        files,
                        owner,
                    )
                    .await?;
                }
            }
            self.applied.insert(a.secret_name.clone(), applied);
        }
        self.remove_unwanted(&wanted).await?;
        self.trust.publish(&tls.trust_bundle_path()).await
    }

    /// Creates or updates a Certificate (server-side apply).
    async fn apply_certificate(&self, name: &str, object: &Value) -> anyhow::Result<()> {
        let api = self.certificates();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("applying cert-manager Certificate {name}"))?;
        tracing::info!(certificate = %name, namespace = %self.namespace, "cert-manager Certificate applied");
        Ok(())
    }

    /// Deletes the Certificates written for ports that are gone (a listener that is deleted
    /// takes its own along through the owner references). Secrets are not deleted, as
    /// cert-manager leaves a deleted Certificate's Secret: the RBAC grants no `delete` on them.
    async fn remove_unwanted(&mut self, wanted: &[String]) -> anyhow::Result<()> {
        if self.issuance != AutomaticIssuance::CertManager {
            return Ok(());
        }
        let api = self.certificates();
        let params = ListParams::default().labels(ROLE_SELECTOR);
        let listed = api.list(&params).await.context("listing Certificates")?;
        for name in listed.items.iter().map(|o| o.name_any()) {
            if wanted.contains(&name) {
                continue;
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(certificate = %name, "Certificate of a removed port deleted")
                }
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => return Err(e).with_context(|| format!("deleting Certificate {name}")),
            }
            self.applied.remove(&name);
        }
        Ok(())
    }

    fn certificates(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "certificates");
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }
}

/// Every automatic port of `model`, with its listener.
fn automatic_ports(model: &Model) -> impl Iterator<Item = (&Listener, &AutomaticTls)> {
    model.listeners.iter().flat_map(|l| {
        l.ports.iter().filter_map(move |p| match &p.tls {
            Some(Tls::Automatic(a)) => Some((l, a)),
            _ => None,
        })
    })
}

/// The groups and versions a BrokerListener may be stored under, newest first.
const LISTENER_APIS: [(&str, &str); 3] = [
    ("mqttbroker.iotoperations.azure.com", "v1"),
    ("wardgate.io", "v1"),
    ("mq.iotoperations.azure.com", "v1beta1"),
];

/// The owner references of BrokerListeners, looked up once per publish.
#[derive(Default)]
struct Owners(BTreeMap<String, Option<OwnerReference>>);

impl Owners {
    /// The owner reference to `listener` (its uid from the API), or `None` when it is not an
    /// API object (a listener from `--config` files).
    async fn get(
        &mut self,
        client: &Client,
        namespace: &str,
        listener: &str,
    ) -> anyhow::Result<Option<OwnerReference>> {
        if let Some(known) = self.0.get(listener) {
            return Ok(known.clone());
        }
        let mut found = None;
        for (group, version) in LISTENER_APIS {
            let gvk = GroupVersionKind::gvk(group, version, "BrokerListener");
            let resource = ApiResource::from_gvk_with_plural(&gvk, "brokerlisteners");
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            match api.get_opt(listener).await {
                Ok(Some(object)) => {
                    if let Some(uid) = object.uid() {
                        found = Some(OwnerReference {
                            api_version: resource.api_version.clone(),
                            kind: "BrokerListener".to_owned(),
                            name: listener.to_owned(),
                            uid,
                            controller: Some(true),
                            block_owner_deletion: Some(true),
                        });
                        break;
                    }
                }
                Ok(None) => {}
                // A group whose CRD is not installed.
                Err(kube::Error::Api(s)) if s.is_not_found() => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("reading BrokerListener/{listener}"));
                }
            }
        }
        self.0.insert(listener.to_owned(), found.clone());
        Ok(found)
    }
}
