//! Without cert-manager: the built-in issuer's certificate of each automatic port is written to
//! the `kubernetes.io/tls` Secret AIO would have (its `secretName`), so that operators see it
//! (`kubectl get secret aio-broker-frontend-server-18883`) and a new pod, whose data dir is
//! empty, reuses it instead of issuing another. The quickstart CA is kept in the Secret
//! `azure-iot-operations-aio-ca-certificate` (AIO's name for its quickstart CA's Secret), so that
//! a new pod signs with the CA clients already trust.

use anyhow::Context as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;
use wardgate_config::model::Model;
use wardgate_security::tls::{IssuedFiles, TlsContext};

use super::automatic_ports;
use crate::kube::trust::FIELD_MANAGER;

/// The Secret of the quickstart CA, as AIO names its own.
pub(super) const QUICKSTART_CA_SECRET: &str = "azure-iot-operations-aio-ca-certificate";

/// The Secrets of `namespace`.
pub(super) fn secrets(client: &Client, namespace: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), namespace)
}

/// Writes (server-side apply) the `kubernetes.io/tls` Secret `name` from the issuer's `files`.
pub(super) async fn write(
    client: &Client,
    namespace: &str,
    name: &str,
    labels: Value,
    files: &IssuedFiles,
    owner: Option<OwnerReference>,
) -> anyhow::Result<()> {
    let labels = serde_json::from_value(labels).context("the labels")?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            [
                ("tls.crt", &files.tls_crt),
                ("tls.key", &files.tls_key),
                ("ca.crt", &files.ca_crt),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.clone())))
            .collect(),
        ),
        ..Secret::default()
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    secrets(client, namespace)
        .patch(name, &params, &Patch::Apply(&secret))
        .await
        .with_context(|| format!("writing Secret/{name}"))?;
    tracing::info!(secret = %name, %namespace, "issued certificate written to its Secret");
    Ok(())
}

/// The files of the `kubernetes.io/tls` Secret `name`, if it exists with a certificate and key.
async fn read(api: &Api<Secret>, name: &str) -> anyhow::Result<Option<IssuedFiles>> {
    let Some(secret) = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading Secret/{name}"))?
    else {
        return Ok(None);
    };
    let data = secret.data.unwrap_or_default();
    let file = |key: &str| data.get(key).map(|b| b.0.clone());
    let (Some(tls_crt), Some(tls_key)) = (file("tls.crt"), file("tls.key")) else {
        return Ok(None);
    };
    Ok(Some(IssuedFiles {
        tls_crt,
        tls_key,
        ca_crt: file("ca.crt").unwrap_or_default(),
    }))
}

/// The quickstart CA from its Secret, then, for each automatic port whose Secret exists with a
/// certificate and key, puts them in the data dir unless it holds one already. Returns the
/// Secrets restored.
pub(super) async fn restore(
    client: &Client,
    namespace: &str,
    model: &Model,
    tls: &TlsContext,
) -> anyhow::Result<Vec<String>> {
    let api = secrets(client, namespace);
    let mut restored = Vec::new();
    if let Some(files) = read(&api, QUICKSTART_CA_SECRET).await? {
        match tls.restore_quickstart_ca(&files) {
            Ok(true) => {
                tracing::info!(
                    secret = QUICKSTART_CA_SECRET,
                    "quickstart CA restored from its Secret"
                );
                restored.push(QUICKSTART_CA_SECRET.to_owned());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(secret = QUICKSTART_CA_SECRET, error = %e, "the Secret's quickstart CA is not usable; the data dir's is kept")
            }
        }
    }
    for (_, a) in automatic_ports(model) {
        let name = &a.secret_name;
        let Some(files) = read(&api, name).await? else {
            continue;
        };
        match tls.restore_issued(name, &files) {
            Ok(true) => {
                tracing::info!(secret = %name, "certificate restored from its Secret into the data dir");
                restored.push(name.clone());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(secret = %name, error = %e, "the Secret's certificate is not usable; a new one is issued")
            }
        }
    }
    Ok(restored)
}
