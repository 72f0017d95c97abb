//! `wardgate kube manifests`: everything needed to run Wardgate on a Kubernetes cluster, as
//! multi-document YAML for `kubectl apply -f -` — the CRDs generated from the configuration
//! types ([`crds`]), the Namespace, least-privilege RBAC, the workload and the admin Service
//! ([`workload`]).
//!
//! `wardgate serve --kubernetes` ([`in_cluster`]): the resources come from the API
//! ([`source`]), each listener gets its Service ([`services`]); [`client`] is the connection.
//! Service-account tokens are verified by TokenReview ([`tokenreview`]); the resources' status
//! ([`status`]) and Events ([`events`]) follow the ports; automatic TLS makes cert-manager
//! Certificates or writes the built-in issuer's to Secrets ([`certificates`]), and the trust
//! bundle is a ConfigMap ([`trust`]).

pub(crate) mod certificates;
pub(crate) mod client;
mod crds;
mod events;
pub(crate) mod in_cluster;
mod services;
mod source;
pub(crate) mod status;
pub(crate) mod tokenreview;
mod trust;
mod workload;

use std::num::NonZeroU16;

use clap::Subcommand;
use serde_json::{Value, json};

/// `wardgate kube ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum KubeCommand {
    /// Print the manifests that install Wardgate: CRDs, RBAC, the Deployment (a StatefulSet
    /// with --persistence) and the admin Service. Use: `wardgate kube manifests | kubectl apply -f -`.
    Manifests(ManifestsArgs),
}

/// Arguments of `wardgate kube manifests`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManifestsArgs {
    /// The namespace to install into (created by the manifests).
    #[arg(long, value_name = "NS", default_value = "azure-iot-operations")]
    pub(crate) namespace: String,
    /// Pods to run. Each replica is an independent broker, unless --nats joins them into one
    /// cluster.
    #[arg(long, value_name = "N", default_value = "1")]
    pub(crate) replicas: NonZeroU16,
    /// NATS JetStream servers the pods join as one cluster (docs/cluster.md): runs a
    /// StatefulSet whose pod names are the node ids (`serve --cluster URLS --node-id POD`).
    #[arg(long, value_name = "URL[,URL...]")]
    pub(crate) nats: Option<String>,
    /// The container image (see Containerfile).
    #[arg(long, value_name = "IMG", default_value = concat!("localhost/wardgate:", env!("CARGO_PKG_VERSION")))]
    pub(crate) image: String,
    /// Keep the data directory on a volume of this size (a Kubernetes quantity, e.g. 1Gi):
    /// runs a StatefulSet instead of a Deployment.
    #[arg(long, value_name = "SIZE")]
    pub(crate) persistence: Option<String>,
    /// A ConfigMap holding configuration files to serve (mounted as --config).
    #[arg(long, value_name = "NAME")]
    pub(crate) config_map: Option<String>,
}

/// The labels on every object.
pub(crate) fn labels() -> Value {
    json!({"app.kubernetes.io/name": "wardgate", "app.kubernetes.io/part-of": "wardgate"})
}

/// Every object, in the order `kubectl apply` needs them (CRDs and the Namespace first).
pub(crate) fn manifests(args: &ManifestsArgs) -> Vec<Value> {
    let mut objects = crds::all();
    objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace, "labels": labels()}}));
    objects.extend(workload::rbac(args, &crds::groups()));
    objects.extend(workload::workload(args));
    objects.push(workload::admin_service(args));
    objects
}

/// Runs a `kube` subcommand.
pub(crate) fn run(command: KubeCommand) -> anyhow::Result<()> {
    match command {
        KubeCommand::Manifests(args) => {
            let mut out = String::new();
            for object in manifests(&args) {
                out.push_str("---\n");
                out.push_str(&serde_saphyr::to_string(&object)?);
            }
            print!("{out}");
            Ok(())
        }
    }
}
