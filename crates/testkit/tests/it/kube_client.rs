//! The fake API server against the real kube-rs client: CRUD, patch kinds, the status
//! subresource, the garbage collector, namespaces and TokenReview.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use wardgate_testkit::kube::{FakeKube, ServiceAccountToken};

/// A kube-rs client configured from the fake's kubeconfig, as a user's would be.
pub(crate) async fn client(fake: &FakeKube) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(fake.kubeconfig()).expect("kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// The BrokerListener type in `version` of the current AIO group.
pub(crate) fn listeners(client: kube::Client, version: &str, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        "mqttbroker.iotoperations.azure.com",
        version,
        "BrokerListener",
    );
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "brokerlisteners"),
    )
}

pub(crate) fn listener(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "mqttbroker.iotoperations.azure.com/v1",
        "kind": "BrokerListener",
        "metadata": {"name": name},
        "spec": {"brokerRef": "default", "serviceName": name, "ports": [{"port": 1883}]},
    }))
    .expect("a listener object")
}

fn config_map(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": value}}))
        .expect("ConfigMap")
}

#[tokio::test]
async fn create_get_list_and_stale_update_behave_as_a_real_server() {
    let fake = FakeKube::start().await;
    let api: Api<ConfigMap> = Api::namespaced(client(&fake).await, "default");
    let created = api
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let again = api
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{again}"
    );

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= rv.parse::<u64>().unwrap()
    );

    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), "2".to_string())].into());
    let replaced = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(replaced.metadata.resource_version.as_ref(), Some(&rv));
    // `changed` still carries the old resourceVersion: optimistic concurrency refuses it.
    let stale = api
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{stale}"
    );

    let missing = api.get("nope").await.unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing}"
    );
}

#[tokio::test]
async fn one_object_is_served_in_every_version_of_its_group() {
    let fake = FakeKube::start().await;
    let v1 = listeners(client(&fake).await, "v1", "default");
    v1.create(&PostParams::default(), &listener("l"))
        .await
        .unwrap();
    let beta = listeners(client(&fake).await, "v1beta1", "default");
    let read = beta.get("l").await.unwrap();
    assert_eq!(
        read.types.unwrap().api_version,
        "mqttbroker.iotoperations.azure.com/v1beta1"
    );
}

#[tokio::test]
async fn merge_and_server_side_apply_patches() {
    let fake = FakeKube::start().await;
    let api = listeners(client(&fake).await, "v1", "default");
    let applied = json!({
        "apiVersion": "mqttbroker.iotoperations.azure.com/v1",
        "kind": "BrokerListener",
        "metadata": {"name": "ssa"},
        "spec": {"brokerRef": "default", "ports": [{"port": 1883}]},
    });
    let params = PatchParams::apply("wardgate").force();
    let created = api
        .patch("ssa", &params, &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let merged = api
        .patch(
            "ssa",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"serviceType": "LoadBalancer"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data["spec"]["serviceType"], "LoadBalancer");
    assert_eq!(
        merged.data["spec"]["brokerRef"], "default",
        "a merge patch keeps untouched fields"
    );
    assert_eq!(
        merged.metadata.generation,
        Some(2),
        "a spec change bumps the generation"
    );
    // Seed 000's `kubectl patch --type=json` adding a port.
    let add_port: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/spec/ports/-", "value": {"port": 18883}}]),
    )
    .unwrap();
    let added = api
        .patch("ssa", &PatchParams::default(), &Patch::<()>::Json(add_port))
        .await
        .unwrap();
    assert_eq!(added.data["spec"]["ports"][1]["port"], 18883);
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "remove", "path": "/spec/nope"}])).unwrap();
    let refused = api
        .patch("ssa", &PatchParams::default(), &Patch::<()>::Json(bad))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, kube::Error::Api(ref s) if s.code == 422),
        "{refused}"
    );
}

#[tokio::test]
async fn the_status_subresource_and_the_main_resource_write_separate_parts() {
    let fake = FakeKube::start().await;
    let api = listeners(client(&fake).await, "v1", "default");
    api.create(&PostParams::default(), &listener("s"))
        .await
        .unwrap();
    let status =
        json!({"status": {"provisioningState": "Succeeded"}, "spec": {"brokerRef": "ignored"}});
    let patched = api
        .patch_status("s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["provisioningState"], "Succeeded");
    assert_eq!(
        patched.data["spec"]["brokerRef"], "default",
        "a status write leaves spec alone"
    );
    assert_eq!(patched.metadata.generation, Some(1));

    let mut main = patched.clone();
    main.data["status"] = json!({"provisioningState": "Failed"});
    main.data["spec"]["serviceType"] = json!("NodePort");
    let replaced = api
        .replace("s", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(
        replaced.data["status"]["provisioningState"], "Succeeded",
        "a main write leaves status alone"
    );
    assert_eq!(replaced.data["spec"]["serviceType"], "NodePort");
}

#[tokio::test]
async fn deleting_an_owner_deletes_what_it_owns_unless_orphaned() {
    let fake = FakeKube::start().await;
    let c = client(&fake).await;
    let api = listeners(c.clone(), "v1", "default");
    let services: Api<Service> = Api::namespaced(c, "default");
    for name in ["owner", "orphaner"] {
        let owner = api
            .create(&PostParams::default(), &listener(name))
            .await
            .unwrap();
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "mqttbroker.iotoperations.azure.com/v1", "kind": "BrokerListener",
                "name": name, "uid": owner.metadata.uid.unwrap(), "controller": true,
            }]},
            "spec": {"ports": [{"port": 1883}]},
        }))
        .unwrap();
        services
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }
    api.delete("owner", &DeleteParams::default()).await.unwrap();
    let gone = services.get("owner").await.unwrap_err();
    assert!(
        matches!(gone, kube::Error::Api(ref s) if s.code == 404),
        "{gone}"
    );
    api.delete("orphaner", &DeleteParams::orphan())
        .await
        .unwrap();
    services
        .get("orphaner")
        .await
        .expect("an orphaned Service stays");
}

#[tokio::test]
async fn namespaces_must_exist_and_take_their_objects_with_them() {
    let fake = FakeKube::start().await;
    let c = client(&fake).await;
    let in_aio: Api<ConfigMap> = Api::namespaced(c.clone(), "azure-iot-operations");
    let missing = in_aio
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing}"
    );
    let namespaces: Api<Namespace> = Api::all(c);
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "azure-iot-operations"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    in_aio
        .create(&PostParams::default(), &config_map("a", "1"))
        .await
        .unwrap();
    namespaces
        .delete("azure-iot-operations", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        in_aio.get("a").await.is_err(),
        "the namespace's objects went with it"
    );
}

#[tokio::test]
async fn token_review_allows_registered_tokens_for_their_audiences_only() {
    let fake = FakeKube::start().await;
    fake.add_token(ServiceAccountToken {
        token: "good".into(),
        namespace: "azure-iot-operations".into(),
        name: "mqtt-client".into(),
        audiences: vec!["aio-internal".into()],
    });
    let api: Api<TokenReview> = Api::all(client(&fake).await);
    let review = |token: &str, audience: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.into()),
            audiences: Some(vec![audience.into()]),
        },
        ..Default::default()
    };
    let allowed = api
        .create(&PostParams::default(), &review("good", "aio-internal"))
        .await
        .unwrap();
    let status = allowed.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.unwrap().username.as_deref(),
        Some("system:serviceaccount:azure-iot-operations:mqtt-client")
    );
    assert_eq!(status.audiences, Some(vec!["aio-internal".to_string()]));
    for (token, audience) in [("good", "other"), ("forged", "aio-internal")] {
        let denied = api
            .create(&PostParams::default(), &review(token, audience))
            .await
            .unwrap();
        let status = denied.status.unwrap();
        assert_eq!(status.authenticated, Some(false), "{token} for {audience}");
        assert!(status.error.unwrap().contains("invalid bearer token"));
    }
}

#[tokio::test]
async fn a_new_service_gets_a_cluster_ip_and_node_ports_as_a_real_server_allocates() {
    let fake = FakeKube::start().await;
    let services: Api<Service> = Api::namespaced(client(&fake).await, "default");
    let service = |name: &str, kind: &str| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name},
            "spec": {"type": kind, "ports": [{"port": 8884}, {"port": 1883, "nodePort": 31883}]}}))
        .unwrap()
    };
    let lb = services
        .create(&PostParams::default(), &service("lb", "LoadBalancer"))
        .await
        .unwrap();
    let spec = lb.spec.unwrap();
    assert!(spec.cluster_ip.unwrap().starts_with("10.96."));
    let ports = spec.ports.unwrap();
    assert!((30000..=32767).contains(&ports[0].node_port.unwrap()));
    assert_eq!(ports[1].node_port, Some(31883), "a given node port is kept");
    let internal = services
        .create(&PostParams::default(), &service("internal", "ClusterIP"))
        .await
        .unwrap();
    assert_eq!(internal.spec.unwrap().ports.unwrap()[0].node_port, None);
}
