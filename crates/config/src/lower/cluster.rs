//! Lowers `spec.cluster` of the Broker (Wardgate extension) into [`Cluster`]: refused under the
//! AIO apiVersion, every field checked with its path.

use super::Ctx;
use crate::load::RawDocument;
use crate::model::{Cluster, NatsUrl, NatsUrls, Replicas, SubjectPrefix};
use crate::raw::cluster::ClusterSettings;
use crate::units;

/// The apiVersion under which Wardgate extensions are explicit.
const WARDGATE_API_VERSION: &str = "wardgate.io/v1";

/// The cluster of `spec.cluster`, or `None` with the errors in `ctx`.
pub(super) fn lower(
    doc: &RawDocument,
    api_version: &str,
    c: &ClusterSettings,
    ctx: &mut Ctx,
) -> Option<Cluster> {
    let errors = ctx.errors.len();
    if api_version != WARDGATE_API_VERSION {
        ctx.err(
            doc,
            "spec.cluster",
            format!(
                "is a Wardgate extension: AIO does not accept it under apiVersion {api_version}; use apiVersion {WARDGATE_API_VERSION} for a Broker with a cluster"
            ),
        );
    }
    let before_urls = ctx.errors.len();
    let nats = c.nats.as_ref();
    let urls: Vec<NatsUrl> = nats
        .and_then(|n| n.urls.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, url)| {
            NatsUrl::parse(url)
                .map_err(|e| ctx.err(doc, &format!("spec.cluster.nats.urls[{i}]"), e))
                .ok()
        })
        .collect();
    let nats_urls = NatsUrls::new(urls);
    if nats_urls.is_none() && ctx.errors.len() == before_urls {
        ctx.err(
            doc,
            "spec.cluster.nats.urls",
            "is required: the NATS servers the nodes join (serve --cluster overrides them)",
        );
    }
    let credentials_secret_ref = nats.and_then(|n| n.credentials_secret_ref.clone());
    if let Some(name) = &credentials_secret_ref
        && let Err(e) = units::check_subdomain(name)
    {
        ctx.err(doc, "spec.cluster.nats.credentialsSecretRef", e);
    }
    let replicas = match c.replicas.map(Replicas::from_count) {
        None => Replicas::default(),
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            ctx.err(doc, "spec.cluster.replicas", e);
            Replicas::default()
        }
    };
    let subject_prefix = match c.subject_prefix.as_deref().map(SubjectPrefix::new) {
        None => SubjectPrefix::default(),
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            ctx.err(doc, "spec.cluster.subjectPrefix", e);
            SubjectPrefix::default()
        }
    };
    if ctx.errors.len() > errors {
        return None;
    }
    Some(Cluster {
        nats_urls: nats_urls?,
        credentials_secret_ref,
        replicas,
        subject_prefix,
    })
}
