//! The connection to the Kubernetes API of the in-cluster mode (`serve --kubernetes`): the
//! client and the namespace Wardgate's resources live in, shared by every part that reads or
//! writes them (the resource source, Services, certificates, status).

use std::path::Path;

use anyhow::Context as _;

/// Where a pod's service account is mounted.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The namespace when neither `--namespace` nor the pod's namespace file says one (AIO's).
pub(crate) const DEFAULT_NAMESPACE: &str = "azure-iot-operations";

/// A Kubernetes API client and the namespace Wardgate serves.
#[derive(Clone)]
pub(crate) struct Cluster {
    /// The client: in a pod, its service account; outside, `KUBECONFIG` (or `~/.kube/config`),
    /// as kube-rs's `Client::try_default` finds them.
    pub(crate) client: kube::Client,
    /// The namespace of the Broker resources, Secrets, ConfigMaps and Services.
    pub(crate) namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects as kube-rs's `Client::try_default` does (the kubeconfig first, else the pod's
    /// service account), in `namespace`, else the pod's namespace, else `azure-iot-operations`.
    pub(crate) async fn connect(namespace: Option<String>) -> anyhow::Result<Cluster> {
        let client = kube::Client::try_default().await.context(
            "cannot reach the Kubernetes API: no usable KUBECONFIG, ~/.kube/config or in-cluster \
             service account",
        )?;
        let namespace = namespace
            .or_else(pod_namespace)
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Ok(Cluster { client, namespace })
    }
}

/// Whether this process runs in a Kubernetes pod with a service account: the API's address is
/// in the environment and the account's token is mounted.
pub(crate) fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        && Path::new(SERVICE_ACCOUNT_DIR).join("token").is_file()
}

/// The pod's namespace, from its service-account mount.
fn pod_namespace() -> Option<String> {
    let text = std::fs::read_to_string(Path::new(SERVICE_ACCOUNT_DIR).join("namespace")).ok()?;
    let namespace = text.trim();
    (!namespace.is_empty()).then(|| namespace.to_owned())
}
