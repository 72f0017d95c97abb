//! The cluster part of the plan (issue 17): `spec.cluster` of the Broker completed and
//! overridden by `serve --cluster` and `--node-id`. Nothing here connects to NATS.

use wardgate_config::model::{Cluster, NatsUrls, NodeId};

/// What `serve --cluster` and `--node-id` say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `--cluster URL[,URL...]`: joins a cluster at these NATS servers, replacing
    /// `spec.cluster.nats.urls` (with the defaults of `spec.cluster` when there is none).
    pub urls: Option<NatsUrls>,
    /// `--node-id ID`: this node's id; `None` = from the host name ([`NodeId::from_host_name`]).
    pub node_id: Option<NodeId>,
}

/// The cluster this node joins, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPlan {
    /// This node's id in the cluster.
    pub node_id: NodeId,
    /// The NATS connection, replication and subject prefix (the flags' URLs applied).
    pub cluster: Cluster,
}

impl ClusterPlan {
    /// The cluster of `resource` (`spec.cluster`) with `options` applied; `None` when neither
    /// the resource nor `--cluster` asks for one (a single node, exactly as before).
    pub(super) fn new(resource: Option<&Cluster>, options: &ClusterOptions) -> Option<ClusterPlan> {
        let cluster = match (resource, &options.urls) {
            (None, None) => return None,
            (None, Some(urls)) => Cluster::with_urls(urls.clone()),
            (Some(resource), urls) => {
                let mut cluster = resource.clone();
                if let Some(urls) = urls {
                    cluster.nats_urls = urls.clone();
                }
                cluster
            }
        };
        let node_id = options
            .node_id
            .clone()
            .unwrap_or_else(NodeId::from_host_name);
        Some(ClusterPlan { node_id, cluster })
    }
}

#[cfg(test)]
mod tests {
    use wardgate_config::model::{NatsUrl, Replicas, SubjectPrefix};

    use super::*;

    fn urls(list: &[&str]) -> NatsUrls {
        let parsed = list
            .iter()
            .map(|u| NatsUrl::parse(u).expect("url"))
            .collect();
        NatsUrls::new(parsed).expect("some urls")
    }

    #[test]
    fn without_resource_or_flag_there_is_no_cluster() {
        let only_id = ClusterOptions {
            urls: None,
            node_id: Some(NodeId::new("a").expect("id")),
        };
        assert_eq!(ClusterPlan::new(None, &only_id), None);
        assert_eq!(ClusterPlan::new(None, &ClusterOptions::default()), None);
    }

    #[test]
    fn the_flags_complete_and_override_the_resource() {
        let resource = Cluster {
            nats_urls: urls(&["nats://a:4222"]),
            credentials_secret_ref: Some("nats".into()),
            replicas: Replicas::Five,
            subject_prefix: SubjectPrefix::new("x").expect("prefix"),
        };
        let options = ClusterOptions {
            urls: Some(urls(&["nats://b:4222", "nats://c:4222"])),
            node_id: Some(NodeId::new("n1").expect("id")),
        };
        let plan = ClusterPlan::new(Some(&resource), &options).expect("a cluster");
        assert_eq!(plan.node_id.as_str(), "n1");
        assert_eq!(
            plan.cluster.nats_urls,
            urls(&["nats://b:4222", "nats://c:4222"])
        );
        assert_eq!(plan.cluster.replicas, Replicas::Five);
        assert_eq!(plan.cluster.credentials_secret_ref.as_deref(), Some("nats"));

        let kept =
            ClusterPlan::new(Some(&resource), &ClusterOptions::default()).expect("a cluster");
        assert_eq!(kept.cluster, resource);
        assert_eq!(kept.node_id, NodeId::from_host_name());

        let flags_only = ClusterPlan::new(None, &options).expect("a cluster");
        assert_eq!(flags_only.cluster.replicas, Replicas::Three);
        assert_eq!(flags_only.cluster.subject_prefix.as_str(), "wg");
    }
}
