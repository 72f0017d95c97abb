//! The trust bundle as AIO publishes it: the ConfigMap `azure-iot-operations-aio-ca-trust-bundle`,
//! key `ca.crt`, in the broker's namespace — the same certificates as the data dir's
//! `trust-bundle/ca.crt` (the CA of every issuer that signs a served certificate, a bring-your-own
//! issuer's included, and the trust settings' ConfigMap), rewritten when they change.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

/// The field manager of Wardgate's server-side applies.
pub(crate) const FIELD_MANAGER: &str = "wardgate";

/// The ConfigMap's name, as AIO's.
pub(crate) const TRUST_BUNDLE_CONFIG_MAP: &str = "azure-iot-operations-aio-ca-trust-bundle";
/// The key of the PEM bundle in it, as AIO's.
pub(crate) const TRUST_BUNDLE_KEY: &str = "ca.crt";

/// The published trust bundle ConfigMap.
pub(crate) struct TrustBundle {
    api: Api<ConfigMap>,
    /// The bundle last published.
    published: Option<String>,
}

impl TrustBundle {
    /// The bundle of `namespace`, not published yet.
    pub(crate) fn new(client: Client, namespace: &str) -> TrustBundle {
        TrustBundle {
            api: Api::namespaced(client, namespace),
            published: None,
        }
    }

    /// Publishes the bundle file at `path` (the TLS context's `trust_bundle_path`) if it
    /// changed since the last call.
    pub(crate) async fn publish(&mut self, path: &Path) -> anyhow::Result<()> {
        let bundle = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if self.published == bundle {
            return Ok(());
        }
        // Nothing left to trust: the ConfigMap keeps the last bundle (the RBAC grants no
        // `delete` on ConfigMaps; clients holding it lose nothing).
        let Some(pem) = bundle else {
            return Ok(());
        };
        self.write(&pem).await?;
        self.published = Some(pem);
        Ok(())
    }

    async fn write(&self, pem: &str) -> anyhow::Result<()> {
        let config_map = ConfigMap {
            metadata: ObjectMeta {
                name: Some(TRUST_BUNDLE_CONFIG_MAP.to_owned()),
                namespace: self.api.namespace().map(str::to_owned),
                labels: Some(BTreeMap::from([
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "wardgate".to_owned(),
                    ),
                    ("wardgate.io/role".to_owned(), "trust-bundle".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                TRUST_BUNDLE_KEY.to_owned(),
                pem.to_owned(),
            )])),
            ..ConfigMap::default()
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api
            .patch(TRUST_BUNDLE_CONFIG_MAP, &params, &Patch::Apply(&config_map))
            .await
            .with_context(|| format!("writing ConfigMap/{TRUST_BUNDLE_CONFIG_MAP}"))?;
        tracing::info!(
            config_map = TRUST_BUNDLE_CONFIG_MAP,
            "trust bundle published"
        );
        Ok(())
    }
}
