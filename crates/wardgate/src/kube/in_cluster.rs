//! `serve --kubernetes`: what the serve loop holds in the in-cluster mode — the API connection,
//! the watched resources (the configuration's second source), the debounce of their changes,
//! the listeners' Services, the automatic ports' certificates and the trust bundle, and the
//! configurations refused (which the resources' status reports).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wardgate_config::Source;
use wardgate_config::model::Model;

use super::certificates::ClusterCertificates;
use super::client::Cluster;
use super::services::{self, WantedServices};
use super::source::{Debounce, KubeSource};
use super::status::Refusals;

/// How long the first list of every watched kind may take at start.
const FIRST_LIST: Duration = Duration::from_secs(60);

/// The in-cluster mode's state in the serve loop.
pub(crate) struct InCluster {
    /// The client and namespace (what certificates, status and events also use).
    pub(crate) cluster: Cluster,
    source: KubeSource,
    debounce: Debounce,
    /// The Services task's input; started at the first [`InCluster::publish`], so that a
    /// restart does not delete the Services before the configuration is known.
    services: Option<tokio::sync::watch::Sender<WantedServices>>,
    /// cert-manager Certificates or the built-in issuer's Secrets, and the trust bundle.
    pub(crate) certificates: ClusterCertificates,
    /// The configuration last refused, for the resources' status.
    pub(crate) refusals: Refusals,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl InCluster {
    /// Connects, starts the watches and waits for their first lists.
    pub(crate) async fn start(
        namespace: Option<String>,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<InCluster> {
        let cluster = Cluster::connect(namespace).await?;
        let mut source = KubeSource::start(&cluster, tasks, shutdown);
        source.synced(FIRST_LIST).await?;
        let certificates =
            ClusterCertificates::detect(cluster.client.clone(), &cluster.namespace).await?;
        Ok(InCluster {
            cluster,
            source,
            debounce: Debounce::default(),
            services: None,
            certificates,
            refusals: Refusals::default(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        })
    }

    /// The watched objects as configuration sources.
    pub(crate) fn sources(&self) -> Vec<Source> {
        self.source.sources()
    }

    /// Resolves once the watched objects changed and the burst of changes settled: time to
    /// reload. Cancel-safe (the serve loop selects on it).
    pub(crate) async fn settled(&mut self) {
        loop {
            let due = self.debounce.due();
            tokio::select! {
                () = self.source.changed() => self.debounce.changed(),
                () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.debounce.clear();
                    return;
                }
            }
        }
    }

    /// Makes the Services what `model`'s listeners want.
    pub(crate) fn publish(&mut self, model: &Model) {
        let wanted = WantedServices::of(model, &self.source);
        match &self.services {
            Some(sender) => {
                sender.send_if_modified(|current| {
                    let changed = *current != wanted;
                    *current = wanted;
                    changed
                });
            }
            None => {
                let (sender, receiver) = tokio::sync::watch::channel(wanted);
                self.tasks.spawn(services::run(
                    self.cluster.clone(),
                    receiver,
                    self.shutdown.clone(),
                ));
                self.services = Some(sender);
            }
        }
    }
}
