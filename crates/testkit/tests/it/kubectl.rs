//! The seeds' kubectl commands, run as written by the real kubectl against the fake API server:
//! apply a BrokerListener, get it, create a TLS Secret, get the Service, describe a
//! Certificate, delete the listener (its Service goes with it).

use std::process::Output;

use serde_json::{Value, json};
use wardgate_testkit::kube::FakeKube;
use wardgate_testkit::pki::TestCa;

const NS: &str = "azure-iot-operations";

/// Seed 000's load-balancer listener with automatic TLS (`howto-configure-brokerlistener`).
const LISTENER: &str = "\
apiVersion: mqttbroker.iotoperations.azure.com/v1beta1
kind: BrokerListener
metadata:
  name: loadbalancer-tls
  namespace: azure-iot-operations
spec:
  brokerRef: default
  serviceType: loadBalancer
  serviceName: aio-broker-loadbalancer-tls # Avoid conflicts with default service name 'aio-broker'
  ports:
  - port: 8884 # Avoid conflicts with default port 18883
    tls:
      mode: Automatic
      certManagerCertificateSpec:
        issuerRef:
          name: my-issuer
          kind: Issuer
";

fn kubectl(fake: &FakeKube, args: &[&str]) -> Output {
    fake.kubectl()
        .args(args)
        .output()
        .expect("kubectl runs (Debian kubernetes-client)")
}

/// Runs kubectl, asserts success, returns stdout.
fn ok(fake: &FakeKube, args: &[&str]) -> String {
    let out = kubectl(fake, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(fake: &FakeKube, dir: &std::path::Path, yaml: &str) -> String {
    let file = dir.join("listener.yaml");
    std::fs::write(&file, yaml).unwrap();
    ok(fake, &["apply", "-f", file.to_str().unwrap()])
}

/// Stores the Service the operator would create for `listener`, owned by it, with the
/// address a load balancer would have given it.
fn seed_service(fake: &FakeKube, listener: &Value) {
    let rt = fake.store().find_type("", "v1", "services").unwrap();
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "aio-broker-loadbalancer-tls", "ownerReferences": [{
            "apiVersion": "mqttbroker.iotoperations.azure.com/v1beta1", "kind": "BrokerListener",
            "name": "loadbalancer-tls", "uid": listener["metadata"]["uid"], "controller": true,
        }]},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.17", "ports": [{"port": 8884, "nodePort": 32457, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "172.18.0.2"}]}},
    });
    fake.store().create(&rt, NS, service).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_listener_journey_runs_with_the_real_kubectl() {
    let fake = FakeKube::start().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(
        ok(&fake, &["create", "namespace", NS]).contains("namespace/azure-iot-operations created")
    );

    let created = apply(&fake, dir.path(), LISTENER);
    assert!(
        created
            .contains("brokerlistener.mqttbroker.iotoperations.azure.com/loadbalancer-tls created"),
        "{created}"
    );
    let unchanged = apply(&fake, dir.path(), LISTENER);
    assert!(
        unchanged.contains("loadbalancer-tls unchanged"),
        "{unchanged}"
    );
    let configured = apply(
        &fake,
        dir.path(),
        &LISTENER.replace("port: 8884", "port: 8885"),
    );
    assert!(
        configured.contains("loadbalancer-tls configured"),
        "{configured}"
    );

    let listed = ok(&fake, &["get", "brokerlistener", "-n", NS]);
    assert!(
        listed.lines().next().unwrap().starts_with("NAME") && listed.contains("loadbalancer-tls"),
        "{listed}"
    );
    let args = [
        "get",
        "brokerlistener",
        "loadbalancer-tls",
        "-n",
        NS,
        "-o",
        "json",
    ];
    let listener: Value = serde_json::from_str(&ok(&fake, &args)).unwrap();
    assert_eq!(
        listener["spec"]["ports"][0]["port"], 8885,
        "the second apply reached the server"
    );

    // Seed 000's `kubectl patch --type='json'` adding a port (with the `-` that appends).
    let patch =
        r#"[{"op": "add", "path": "/spec/ports/-", "value": {"port": 1883, "protocol": "Mqtt"}}]"#;
    let patched = ok(
        &fake,
        &[
            "patch",
            "brokerlistener",
            "loadbalancer-tls",
            "-n",
            NS,
            "--type=json",
            "-p",
            patch,
        ],
    );
    assert!(patched.contains("loadbalancer-tls patched"), "{patched}");
    let yaml = ok(
        &fake,
        &[
            "get",
            "brokerlistener",
            "loadbalancer-tls",
            "-n",
            NS,
            "-o",
            "yaml",
        ],
    );
    assert!(
        yaml.contains("port: 1883") && yaml.contains("protocol: Mqtt"),
        "{yaml}"
    );

    seed_service(&fake, &listener);
    let services = ok(&fake, &["get", "service", "-n", NS]);
    let row = services
        .lines()
        .find(|l| l.starts_with("aio-broker-loadbalancer-tls"))
        .expect(&services);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[1..5],
        ["LoadBalancer", "10.43.0.17", "172.18.0.2", "8884:32457/TCP"],
        "{services}"
    );

    let deleted = ok(
        &fake,
        &["delete", "brokerlistener", "loadbalancer-tls", "-n", NS],
    );
    assert!(deleted.contains("deleted"), "{deleted}");
    let after = kubectl(
        &fake,
        &["get", "service", "aio-broker-loadbalancer-tls", "-n", NS],
    );
    assert!(!after.status.success());
    assert!(
        String::from_utf8_lossy(&after.stderr).contains(
            "Error from server (NotFound): services \"aio-broker-loadbalancer-tls\" not found"
        ),
        "the owned Service went with its listener: {}",
        String::from_utf8_lossy(&after.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_a_tls_secret_from_real_files() {
    let fake = FakeKube::start().await;
    ok(&fake, &["create", "namespace", NS]);
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Test CA");
    let server = ca.issue_server(&["localhost"]);
    let (cert, key) = (
        dir.path().join("server_chain.crt"),
        dir.path().join("mqtts-endpoint.key"),
    );
    std::fs::write(&cert, server.pem() + &ca.pem()).unwrap();
    std::fs::write(&key, server.key_pem()).unwrap();
    // Seed 000, word for word but for the paths.
    let out = ok(
        &fake,
        &[
            "create",
            "secret",
            "tls",
            "server-cert-secret",
            "-n",
            NS,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert!(out.contains("secret/server-cert-secret created"), "{out}");
    let rt = fake.store().find_type("", "v1", "secrets").unwrap();
    let secret = fake.store().get(&rt, NS, "server-cert-secret").unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    use base64::Engine as _;
    let stored = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["tls.crt"].as_str().unwrap())
        .unwrap();
    assert_eq!(String::from_utf8(stored).unwrap(), server.pem() + &ca.pem());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describes_a_certificate_with_its_events() {
    let fake = FakeKube::start().await;
    ok(&fake, &["create", "namespace", NS]);
    let certs = fake
        .store()
        .find_type("cert-manager.io", "v1", "certificates")
        .unwrap();
    let cert = fake.store().create(&certs, NS, json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "aio-broker-frontend-server-8884"},
        "spec": {"secretName": "aio-broker-frontend-server-8884", "issuerRef": {"name": "my-issuer", "kind": "Issuer"}, "dnsNames": ["aio-broker-loadbalancer-tls"]},
    })).unwrap();
    let events = fake.store().find_type("", "v1", "events").unwrap();
    fake.store().create(&events, NS, json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "aio-broker-frontend-server-8884.1"},
        "involvedObject": {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "namespace": NS,
            "name": "aio-broker-frontend-server-8884", "uid": cert["metadata"]["uid"]},
        "reason": "Issuing", "message": "Issuing certificate as Secret does not exist", "type": "Normal",
        "source": {"component": "cert-manager-certificates-trigger"}, "count": 1,
    })).unwrap();
    let described = ok(
        &fake,
        &[
            "describe",
            "certificate",
            "aio-broker-frontend-server-8884",
            "-n",
            NS,
        ],
    );
    assert!(
        described.contains("Name:") && described.contains("aio-broker-frontend-server-8884"),
        "{described}"
    );
    assert!(
        described.contains("Issuing certificate as Secret does not exist"),
        "the Events section: {described}"
    );
}

/// A controller records events with kube-runtime's `Recorder` (`events.k8s.io/v1`);
/// `kubectl describe` finds them through the core Events, as on a real cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_describe_shows_what_a_kube_runtime_recorder_published() {
    use kube::Resource as _;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let fake = FakeKube::start().await;
    let client = crate::kube_client::client(&fake).await;
    let listeners = crate::kube_client::listeners(client.clone(), "v1", "default");
    let listener = listeners
        .create(&Default::default(), &crate::kube_client::listener("l"))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "wardgate".into(),
            instance: None,
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "AwaitingSecret".into(),
        note: Some("Server certificate l-8883 not found. Awaiting creation of secret.".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    let gvk = kube::core::GroupVersionKind::gvk(
        "mqttbroker.iotoperations.azure.com",
        "v1",
        "BrokerListener",
    );
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, "brokerlisteners");
    let reference = listener.object_ref(&resource);
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();
    let described = ok(
        &fake,
        &[
            "describe",
            "brokerlisteners.v1.mqttbroker.iotoperations.azure.com",
            "l",
        ],
    );
    let line = described
        .lines()
        .find(|l| l.contains("Awaiting creation of secret"))
        .unwrap_or_else(|| panic!("the event is in the Events section: {described}"));
    assert!(
        line.contains("Warning") && line.contains("AwaitingSecret") && line.contains("wardgate"),
        "{line}"
    );
    assert!(
        line.contains("(x2 over"),
        "the second publish counted the series: {line}"
    );
}
