//! Live reload of `wardgate serve --kubernetes`: `kubectl apply -f dir/` (one event per object)
//! is one reload, not a refused reload per half-applied state; an invalid object is refused with
//! its name while the running configuration (and its clients) stay.

use std::net::SocketAddr;

use wardgate_protocol::{ProtocolVersion, QoS};
use wardgate_testkit::client::RawClient;
use wardgate_testkit::process::free_port;
use wardgate_testkit::resources;

use crate::kube_serve::{NS, Served, apply, fake_cluster, kubectl, state};

/// A ServiceAccountToken BrokerAuthentication: valid with nothing else in the namespace.
fn token_authentication(name: &str) -> String {
    resources::authentication(
        name,
        "  - method: ServiceAccountToken\n    serviceAccountTokenSettings:\n      audiences: [aio-internal]\n",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_of_a_folder_is_one_reload_once_the_burst_settles() {
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    let listener = |ports: &str| resources::named_listener("default", "ClusterIp", ports);
    apply(&fake, root.path(), &listener(&resources::mqtt_port(a))).await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served
        .wait_ports("port a", |l| state(l, a).as_deref() == Some("Listening"))
        .await;

    // kubectl applies a folder's files in name order: the listener names an authentication
    // that only the next file creates. Reloaded at the first event, it would be refused.
    let dir = root.path().join("manifests");
    std::fs::create_dir(&dir).expect("mkdir");
    let ports = resources::mqtt_port(a) + &resources::authenticated_port(b, "tokens", None);
    std::fs::write(dir.join("1-listener.yaml"), listener(&ports)).expect("write");
    std::fs::write(
        dir.join("2-authentication.yaml"),
        token_authentication("tokens"),
    )
    .expect("write");
    kubectl(
        &fake,
        &["apply", "-n", NS, "-f", &dir.display().to_string()],
    )
    .await;
    let listeners = served
        .wait_ports("port b with its authentication", |l| {
            state(l, b).as_deref() == Some("Listening")
        })
        .await;
    assert_eq!(
        (listeners.reloads, listeners.reload_failures),
        (1, 0),
        "one reload, none refused: {listeners:#?}"
    );
    served.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_object_is_refused_by_name_and_the_running_configuration_stays() {
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let a = free_port().expect("port");
    apply(
        &fake,
        root.path(),
        &resources::named_listener("default", "ClusterIp", &resources::mqtt_port(a)),
    )
    .await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served
        .wait_ports("port a", |l| state(l, a).as_deref() == Some("Listening"))
        .await;
    let addr = SocketAddr::from(([127, 0, 0, 1], a));
    let (mut client, _) = RawClient::connect(addr, ProtocolVersion::V5, "stays").await;

    // The API server does not check the CRD's rules here (nor does a real one check this):
    // a second listener on the same port.
    apply(
        &fake,
        root.path(),
        &resources::named_listener("clash", "LoadBalancer", &resources::mqtt_port(a)),
    )
    .await;
    let listeners = served
        .wait_ports("the reload refused", |l| l.reload_failures == 1)
        .await;
    let error = listeners.last_reload_error.clone().unwrap_or_default();
    // Named like a file's error: source:line: resource: field message.
    assert!(
        error.contains(&format!("kube:{NS}/BrokerListener/"))
            && error.contains("BrokerListener/clash")
            && error.contains(&format!("spec.ports[0].port {a} is already used by")),
        "{error}"
    );
    assert_eq!(state(&listeners, a).as_deref(), Some("Listening"));
    client.subscribe("still/#", QoS::AtMostOnce).await;
    let out = served.stop();
    assert!(
        out.stdout
            .contains("configuration reload refused, the running configuration stays")
            && out.stdout.contains("BrokerListener/clash"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_only_cert_manager_runs_does_not_stop_the_broker() {
    // A cluster's Let's Encrypt ClusterIssuer: cert-manager's to run, not Wardgate's to refuse.
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let port = free_port().expect("port");
    let yaml = resources::named_listener("default", "ClusterIp", &resources::mqtt_port(port))
        + "---\napiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: letsencrypt\nspec:\n  acme:\n    server: https://acme-v02.api.letsencrypt.org/directory\n    privateKeySecretRef: {name: letsencrypt-key}\n    solvers: [{http01: {ingress: {ingressClassName: nginx}}}]\n";
    apply(&fake, root.path(), &yaml).await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served
        .wait_ports("the listener serves beside the ACME issuer", |l| {
            state(l, port).as_deref() == Some("Listening")
        })
        .await;
    served.stop();
}
