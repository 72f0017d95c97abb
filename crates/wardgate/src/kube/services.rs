//! The Service of each listener in the in-cluster mode, as AIO's operator makes it: named by
//! `serviceName` (listeners that share one — the old API's rule — share the Service and its
//! ports), of type `serviceType`, with every port (and `nodePort`), owned by its
//! BrokerListener(s) so that deleting a listener deletes its Service (the garbage collector),
//! and labelled as Wardgate's so that a Service no listener names any more is deleted here.
//!
//! Services follow the configuration, not the ports' states: a port awaiting its secret keeps
//! its Service (so a LoadBalancer's address exists before the certificate that names it).
//!
//! Written with server-side apply (field manager `wardgate`, forced): one idempotent request
//! per Service whether it exists or not, and the fields Wardgate does not set (the cluster IP,
//! allocated node ports, a load balancer's status) stay the API server's.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wardgate_config::model::Model;
use wardgate_config::{PortProtocol, ServiceType};

use super::client::Cluster;
use super::source::KubeSource;

/// The label that marks the Services Wardgate manages.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "wardgate");

/// The field manager of server-side apply.
const FIELD_MANAGER: &str = "wardgate";

/// How long a failed reconciliation waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// The BrokerListener that owns a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    api_version: String,
    name: String,
    uid: String,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServicePort {
    port: u16,
    node_port: Option<u16>,
    protocol: PortProtocol,
}

/// A Service as the configuration wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WantedService {
    service_type: ServiceType,
    ports: Vec<ServicePort>,
    owners: Vec<Owner>,
}

/// Every Service the configuration wants, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WantedServices(BTreeMap<String, WantedService>);

impl WantedServices {
    /// The Services of `model`'s listeners; owners are the listeners `source` holds (a listener
    /// of the built-in defaults has none, and its Service is deleted here when it goes).
    pub(crate) fn of(model: &Model, source: &KubeSource) -> WantedServices {
        let mut wanted: BTreeMap<String, WantedService> = BTreeMap::new();
        for listener in &model.listeners {
            let service = wanted
                .entry(listener.service_name.clone())
                .or_insert_with(|| WantedService {
                    service_type: listener.service_type,
                    ports: Vec::new(),
                    owners: Vec::new(),
                });
            service
                .ports
                .extend(listener.ports.iter().map(|p| ServicePort {
                    port: p.port,
                    node_port: p.node_port,
                    protocol: p.protocol,
                }));
            if let Some((api_version, uid)) = source.listener(&listener.name) {
                service.owners.push(Owner {
                    api_version,
                    name: listener.name.clone(),
                    uid,
                });
            }
        }
        for service in wanted.values_mut() {
            service.ports.sort_by_key(|p| p.port);
        }
        WantedServices(wanted)
    }
}

/// The Service object to apply.
fn manifest(name: &str, namespace: &str, wanted: &WantedService) -> Value {
    let ports: Vec<Value> = wanted
        .ports
        .iter()
        .map(|p| {
            let prefix = match p.protocol {
                PortProtocol::Mqtt => "mqtt",
                PortProtocol::WebSockets => "ws",
            };
            let mut port = json!({
                "name": format!("{prefix}-{}", p.port),
                "port": p.port,
                "targetPort": p.port,
                "protocol": "TCP",
            });
            if let (ServiceType::NodePort, Some(node_port)) = (wanted.service_type, p.node_port) {
                port["nodePort"] = json!(node_port);
            }
            port
        })
        .collect();
    let owners: Vec<Value> = wanted
        .owners
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "apiVersion": o.api_version,
                "kind": "BrokerListener",
                "name": o.name,
                "uid": o.uid,
                // One controller at most; listeners sharing a Service all own it.
                "controller": i == 0,
                "blockOwnerDeletion": true,
            })
        })
        .collect();
    let service_type = match wanted.service_type {
        ServiceType::ClusterIp => "ClusterIP",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::NodePort => "NodePort",
    };
    let mut labels = super::labels();
    labels[MANAGED_BY.0] = json!(MANAGED_BY.1);
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owners,
        },
        "spec": {
            "type": service_type,
            "selector": {"app.kubernetes.io/name": "wardgate"},
            "ports": ports,
        },
    })
}

/// Keeps the Services as wanted until `shutdown`: each new wanted set is applied, and retried
/// every [`RETRY`] while the API refuses.
pub(crate) async fn run(
    cluster: Cluster,
    mut wanted: tokio::sync::watch::Receiver<WantedServices>,
    shutdown: CancellationToken,
) {
    let api: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    loop {
        let current = wanted.borrow_and_update().clone();
        let done = match reconcile(&api, &cluster.namespace, &current).await {
            Ok(()) => true,
            Err(e) => {
                warn!(error = %e, "cannot update the listeners' Services; retrying in {RETRY:?}");
                false
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = wanted.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(RETRY), if !done => {}
        }
    }
}

/// Applies every wanted Service and deletes Wardgate's Services no listener wants.
async fn reconcile(
    api: &Api<Service>,
    namespace: &str,
    wanted: &WantedServices,
) -> Result<(), kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for (name, service) in &wanted.0 {
        api.patch(
            name,
            &params,
            &Patch::Apply(manifest(name, namespace, service)),
        )
        .await?;
    }
    let managed = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    for existing in api.list(&managed).await? {
        let Some(name) = existing.metadata.name else {
            continue;
        };
        if !wanted.0.contains_key(&name) {
            info!(service = %name, "deleting the Service of a listener that is gone");
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                // Already gone (the garbage collector, with its listener).
                Err(kube::Error::Api(status)) if status.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_port_service_names_its_ports_and_owners() {
        let wanted = WantedService {
            service_type: ServiceType::NodePort,
            ports: vec![
                ServicePort {
                    port: 1883,
                    node_port: Some(31883),
                    protocol: PortProtocol::Mqtt,
                },
                ServicePort {
                    port: 8080,
                    node_port: None,
                    protocol: PortProtocol::WebSockets,
                },
            ],
            owners: vec![Owner {
                api_version: "mqttbroker.iotoperations.azure.com/v1".into(),
                name: "l".into(),
                uid: "u-1".into(),
            }],
        };
        let service = manifest("svc", "ns", &wanted);
        assert_eq!(service["spec"]["type"], "NodePort");
        assert_eq!(
            service["spec"]["ports"],
            json!([
                {"name": "mqtt-1883", "port": 1883, "targetPort": 1883, "protocol": "TCP", "nodePort": 31883},
                {"name": "ws-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
            ])
        );
        assert_eq!(
            service["metadata"]["ownerReferences"][0],
            json!({"apiVersion": "mqttbroker.iotoperations.azure.com/v1", "kind": "BrokerListener",
                   "name": "l", "uid": "u-1", "controller": true, "blockOwnerDeletion": true})
        );
        // The result is a Service k8s-openapi reads.
        let typed: Service = serde_json::from_value(service).expect("a Service");
        assert_eq!(
            typed.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
            "wardgate"
        );
    }
}
