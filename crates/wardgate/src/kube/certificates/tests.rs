//! The certificates of automatic ports written through the API, against testkit's fake API
//! server with the real kube client: the code under test is the production code, only the
//! server is fake. The port side is the real supervisor with a real TLS context, and real
//! clients (openssl, mosquitto) connect to it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};
use tokio_util::sync::{CancellationToken, DropGuard};
use wardgate_config::Source;
use wardgate_config::model::Model;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_security::pki::pem;
use wardgate_security::tls::{AutomaticIssuance, TlsContext, TlsOptions, TrustSettings};
use wardgate_server::plan::{Plan, ServeOptions};
use wardgate_server::{PortState, Supervisor};
use wardgate_testkit::kube::FakeKube;
use wardgate_testkit::pki::{Issued, LOCALHOST, TestCa};
use wardgate_testkit::process::{self, Running, free_port, run, wait_for_port};
use wardgate_testkit::resources;

use super::ClusterCertificates;
use crate::kube::trust::{TRUST_BUNDLE_CONFIG_MAP, TRUST_BUNDLE_KEY};

const NS: &str = "azure-iot-operations";
const WAIT: Duration = Duration::from_secs(30);

async fn client(fake: &FakeKube) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(fake.kubeconfig()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

fn dynamic(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn listeners(client: &Client) -> Api<DynamicObject> {
    let r = dynamic(
        "mqttbroker.iotoperations.azure.com",
        "v1",
        "BrokerListener",
        "brokerlisteners",
    );
    Api::namespaced_with(client.clone(), NS, &r)
}

fn certificates(client: &Client) -> Api<DynamicObject> {
    let r = dynamic("cert-manager.io", "v1", "Certificate", "certificates");
    Api::namespaced_with(client.clone(), NS, &r)
}

/// A fake cluster with the namespace, and `yaml`'s BrokerListener created in it; returns the
/// listener's uid.
async fn cluster_with_listener(fake: &FakeKube, yaml: &str) -> (Client, String) {
    let client = client(fake).await;
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    let object: DynamicObject =
        serde_json::from_value(serde_saphyr::from_str::<Value>(yaml).expect("YAML"))
            .expect("object");
    let created = listeners(&client)
        .create(&PostParams::default(), &object)
        .await
        .expect("listener created");
    (client, created.uid().expect("uid"))
}

/// The model of `listener` and the Secrets named, as read from the API (what the in-cluster
/// source feeds the configuration pipeline).
async fn model(client: &Client, listener: &str, secrets: &[&str]) -> Model {
    let mut sources = vec![Source {
        name: "listener.yaml".into(),
        text: listener.to_owned(),
    }];
    for name in secrets {
        if let Some(s) = Api::<Secret>::namespaced(client.clone(), NS)
            .get_opt(name)
            .await
            .expect("get secret")
        {
            let text = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "type": s.type_, "data": s.data,
            });
            sources.push(Source {
                name: format!("{name}.json").into(),
                text: text.to_string(),
            });
        }
    }
    wardgate_config::load_sources(&sources)
        .expect("valid configuration")
        .model
}

/// A supervisor serving with `tls`, and the guard that stops it.
fn supervisor(tls: &Arc<TlsContext>) -> (Supervisor, DropGuard) {
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::new(broker, shutdown.clone()).with_tls(tls.clone());
    (supervisor, shutdown.drop_guard())
}

fn port_state(supervisor: &Supervisor, port: u16) -> PortState {
    supervisor.status().read().ports[&port].state.clone()
}

/// The certificate `openssl s_client` is served on `port`.
fn served(port: u16) -> Vec<u8> {
    let out = run(
        std::process::Command::new("sh")
            .arg("-c")
            .arg("openssl s_client -connect \"127.0.0.1:$0\" </dev/null 2>/dev/null | openssl x509")
            .arg(port.to_string()),
        WAIT,
    )
    .expect("openssl runs");
    let certs = pem::certificates(out.stdout.as_bytes(), "served").expect("a certificate");
    certs[0].to_vec()
}

/// What cert-manager writes for a CA issuer: the leaf, its key and the CA.
fn cert_manager_secret(name: &str, ca: &TestCa, leaf: &Issued) -> Secret {
    let data = [
        ("tls.crt", leaf.pem()),
        ("tls.key", leaf.key_pem()),
        ("ca.crt", ca.pem()),
    ];
    Secret {
        metadata: kube::core::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NS.to_owned()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Default::default()
    }
}

async fn trust_bundle(client: &Client) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(TRUST_BUNDLE_CONFIG_MAP)
        .await
        .expect("get configmap")?;
    cm.data?.get(TRUST_BUNDLE_KEY).cloned()
}

/// With cert-manager: the Certificate AIO creates, the port waiting for its Secret with AIO's
/// line, serving it once cert-manager (played by the test) writes it, and cert-manager's
/// renewal served to new handshakes while a connected subscriber stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cert_manager_a_port_gets_aios_certificate_and_serves_the_secret_it_fills() {
    let fake = FakeKube::start().await;
    let port = free_port().expect("port");
    let listener = resources::listener(&resources::automatic_tls_port(
        port,
        "Mqtt",
        "ClusterIssuer",
        "contoso-issuer",
        "        duration: 2160h\n        renewBefore: 90m\n        san:\n          dns: [\"n013edge.local\"]\n          ip: [\"10.13.100.11\"]\n",
    ));
    let (client, uid) = cluster_with_listener(&fake, &listener).await;
    let mut certs = ClusterCertificates::detect(client.clone(), NS)
        .await
        .expect("discovery");
    assert_eq!(certs.issuance(), AutomaticIssuance::CertManager);
    assert_eq!(
        certs
            .restore(&Model::defaults(), &context_dir_tls())
            .await
            .unwrap(),
        Vec::<String>::new()
    );

    let data = tempfile::tempdir().expect("tempdir");
    let options = TlsOptions {
        issuance: certs.issuance(),
        ..TlsOptions::default()
    };
    let tls = Arc::new(TlsContext::open_with(data.path(), options).expect("pki"));
    let (mut supervisor, _stop) = supervisor(&tls);
    let secret = format!("aio-broker-frontend-server-{port}");
    let without = model(&client, &listener, &[&secret]).await;
    supervisor.apply(Plan::from_model(without.clone(), &ServeOptions::default()));
    assert_eq!(
        port_state(&supervisor, port),
        PortState::AwaitingSecret(format!(
            "Server certificate {secret} not found. Awaiting creation of secret."
        ))
    );
    certs.publish(&without, &tls).await.expect("published");

    let certificate = certificates(&client)
        .get(&secret)
        .await
        .expect("the Certificate");
    let spec = &certificate.data["spec"];
    assert_eq!(spec["secretName"], json!(secret));
    assert_eq!(spec["commonName"], json!(secret));
    assert_eq!(
        spec["dnsNames"],
        json!([
            "aio-broker",
            "aio-broker.azure-iot-operations",
            "aio-broker.azure-iot-operations.svc",
            "aio-broker.azure-iot-operations.svc.cluster.local",
            "n013edge.local"
        ])
    );
    assert_eq!(spec["ipAddresses"], json!(["10.13.100.11"]));
    assert_eq!(spec["duration"], json!("2160h"));
    assert_eq!(spec["renewBefore"], json!("90m"));
    assert_eq!(
        spec["privateKey"],
        json!({"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"})
    );
    assert_eq!(
        spec["issuerRef"],
        json!({"name": "contoso-issuer", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert!(
        spec["usages"]
            .as_array()
            .unwrap()
            .contains(&json!("server auth"))
    );
    let owner = &certificate.owner_references()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("BrokerListener", "default", uid.as_str(), Some(true))
    );
    assert_eq!(trust_bundle(&client).await, None, "nothing to trust yet");

    // cert-manager issues: the Secret, then the Certificate's Ready condition.
    let ca = TestCa::new("Contoso Root CA");
    let first = ca.issue_server(&LOCALHOST);
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    secrets
        .create(
            &PostParams::default(),
            &cert_manager_secret(&secret, &ca, &first),
        )
        .await
        .expect("secret created");
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "reason": "Ready", "message": "Certificate is up to date and has not expired"}]}});
    certificates(&client)
        .patch_status(&secret, &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .expect("status written");
    let with = model(&client, &listener, &[&secret]).await;
    supervisor.apply(Plan::from_model(with.clone(), &ServeOptions::default()));
    assert_eq!(port_state(&supervisor, port), PortState::Listening);
    wait_for_port(port, WAIT).expect("the port opens");
    assert_eq!(served(port), first.der().to_vec());
    certs.publish(&with, &tls).await.expect("published");
    assert_eq!(
        trust_bundle(&client).await,
        Some(ca.pem()),
        "the Secret's ca.crt"
    );

    // A subscriber connected with the CA, before the renewal.
    let cafile = data.path().join("contoso.crt");
    std::fs::write(&cafile, ca.pem()).expect("write the CA");
    let mut subscriber = subscribe(port, &cafile);
    let connection = connection_of(&supervisor, "rotation-sub");
    publish(port, &cafile, "before");
    subscriber
        .wait_for_line("the message before", WAIT, |l| l == "rotation/x before")
        .expect("delivered");

    // cert-manager renews: it rewrites the Secret.
    let second = ca.issue_server(&LOCALHOST);
    secrets
        .replace(
            &secret,
            &PostParams::default(),
            &cert_manager_secret(&secret, &ca, &second),
        )
        .await
        .expect("secret replaced");
    let renewed = model(&client, &listener, &[&secret]).await;
    supervisor.apply(Plan::from_model(renewed, &ServeOptions::default()));
    assert_eq!(
        served(port),
        second.der().to_vec(),
        "new handshakes get the renewal"
    );
    publish(port, &cafile, "after");
    subscriber
        .wait_for_line("the message after", WAIT, |l| l == "rotation/x after")
        .expect("delivered over the connection made before the renewal");
    assert_eq!(
        connection_of(&supervisor, "rotation-sub"),
        connection,
        "never reconnected"
    );
    subscriber.kill();

    // What an operator sees.
    let out = fake
        .kubectl()
        .args(["describe", "certificate", &secret, "-n", NS])
        .output()
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |label: &str, value: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(label) && l.trim_end().ends_with(value))
    };
    assert!(line("Name:", &secret), "{text}");
    assert!(line("Secret Name:", &secret), "{text}");
    assert!(line("Kind:", "BrokerListener"), "{text}");
    assert!(line("Status:", "True"), "{text}");
    assert!(line("Type:", "Ready"), "{text}");
    assert!(
        line("Message:", "Certificate is up to date and has not expired"),
        "{text}"
    );
}

/// An unused TLS context (restore is a no-op with cert-manager).
fn context_dir_tls() -> TlsContext {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    TlsContext::open(&dir).expect("pki")
}

fn mosquitto_tls(command: &mut std::process::Command, port: u16, cafile: &std::path::Path) {
    command
        .args(["-h", "localhost", "-p", &port.to_string(), "--cafile"])
        .arg(cafile);
}

fn subscribe(port: u16, cafile: &std::path::Path) -> Running {
    let mut command = std::process::Command::new(process::mosquitto_sub().expect("mosquitto_sub"));
    mosquitto_tls(&mut command, port, cafile);
    command.args(["-i", "rotation-sub", "-t", "rotation/#", "-v", "-q", "1"]);
    let mut sub = Running::spawn(&mut command).expect("mosquitto_sub starts");
    // Subscribed once a retained probe comes back.
    publish_retained(port, cafile);
    sub.wait_for_line("the probe", WAIT, |l| l == "rotation/probe ready")
        .expect("subscribed");
    sub
}

fn publish_retained(port: u16, cafile: &std::path::Path) {
    let mut command = std::process::Command::new(process::mosquitto_pub().expect("mosquitto_pub"));
    mosquitto_tls(&mut command, port, cafile);
    command.args(["-t", "rotation/probe", "-m", "ready", "-r", "-q", "1"]);
    let out = run(&mut command, WAIT).expect("mosquitto_pub runs");
    assert!(out.success(), "{out}");
}

fn publish(port: u16, cafile: &std::path::Path, message: &str) {
    let mut command = std::process::Command::new(process::mosquitto_pub().expect("mosquitto_pub"));
    mosquitto_tls(&mut command, port, cafile);
    command.args(["-t", "rotation/x", "-m", message, "-q", "1"]);
    let out = run(&mut command, WAIT).expect("mosquitto_pub runs");
    assert!(out.success(), "{out}");
}

/// The number of `client_id`'s connection.
fn connection_of(supervisor: &Supervisor, client_id: &str) -> u64 {
    supervisor
        .registry()
        .snapshot()
        .iter()
        .find(|c| &**c.client_id() == client_id)
        .map(|c| c.id.0)
        .expect("connected")
}

/// Certificates follow the ports: one per automatic port, the one of a removed port deleted, and
/// the listener's deletion takes the rest along (owner references, the garbage collector).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_port_loses_its_certificate_and_a_deleted_listener_takes_the_rest() {
    let fake = FakeKube::start().await;
    let both = resources::listener(
        &(resources::quickstart_tls_port(8883, "Mqtt", "")
            + &resources::quickstart_tls_port(9883, "Mqtt", "")),
    );
    let (client, _) = cluster_with_listener(&fake, &both).await;
    let mut certs = ClusterCertificates::detect(client.clone(), NS)
        .await
        .expect("discovery");
    let data = tempfile::tempdir().expect("tempdir");
    let tls = TlsContext::open(data.path()).expect("pki");
    certs
        .publish(&model(&client, &both, &[]).await, &tls)
        .await
        .expect("published");
    let api = certificates(&client);
    for name in [
        "aio-broker-frontend-server-8883",
        "aio-broker-frontend-server-9883",
    ] {
        let c = api.get(name).await.expect("created");
        assert_eq!(
            c.data["spec"]["issuerRef"]["name"],
            json!("azure-iot-operations-aio-certificate-issuer")
        );
    }
    // Nothing changed: nothing is written again.
    let writes = |fake: &FakeKube| {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("PATCH") && r.contains("/certificates/"))
            .count()
    };
    let before = writes(&fake);
    certs
        .publish(&model(&client, &both, &[]).await, &tls)
        .await
        .expect("published");
    assert_eq!(writes(&fake), before);

    let one = resources::listener(&resources::quickstart_tls_port(8883, "Mqtt", ""));
    certs
        .publish(&model(&client, &one, &[]).await, &tls)
        .await
        .expect("published");
    assert!(
        api.get_opt("aio-broker-frontend-server-9883")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        api.get_opt("aio-broker-frontend-server-8883")
            .await
            .unwrap()
            .is_some()
    );

    listeners(&client)
        .delete("default", &DeleteParams::default())
        .await
        .expect("listener deleted");
    let deadline = std::time::Instant::now() + WAIT;
    while api
        .get_opt("aio-broker-frontend-server-8883")
        .await
        .unwrap()
        .is_some()
    {
        assert!(std::time::Instant::now() < deadline, "not collected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without cert-manager: the built-in issuer's certificate and the quickstart CA are written to
/// Secrets (and the trust bundle to AIO's ConfigMap); a new pod with an empty data dir reads them
/// back and serves the same certificate from the same CA instead of issuing new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cert_manager_issued_certificates_live_in_secrets_and_survive_a_new_pod() {
    let fake = FakeKube::start().await;
    fake.store().remove_group("cert-manager.io");
    let port = free_port().expect("port");
    let listener = resources::listener(&resources::quickstart_tls_port(port, "Mqtt", ""));
    let (client, uid) = cluster_with_listener(&fake, &listener).await;
    let mut certs = ClusterCertificates::detect(client.clone(), NS)
        .await
        .expect("discovery");
    assert_eq!(certs.issuance(), AutomaticIssuance::BuiltIn);
    let model = model(&client, &listener, &[]).await;
    let name = format!("aio-broker-frontend-server-{port}");

    let first_pod = tempfile::tempdir().expect("tempdir");
    let tls = Arc::new(TlsContext::open(first_pod.path()).expect("pki"));
    assert!(
        certs
            .restore(&model, &tls)
            .await
            .expect("restore")
            .is_empty()
    );
    let (mut supervisor, stop) = supervisor(&tls);
    supervisor.apply(Plan::from_model(model.clone(), &ServeOptions::default()));
    assert_eq!(port_state(&supervisor, port), PortState::Listening);
    certs.publish(&model, &tls).await.expect("published");

    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    let secret = secrets.get(&name).await.expect("the certificate's Secret");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.clone().expect("data");
    let issued_dir = first_pod.path().join("pki/issued").join(&name);
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert_eq!(
            data[key].0,
            std::fs::read(issued_dir.join(key)).expect("issued file"),
            "{key}"
        );
    }
    let leaf = pem::certificates(&data["tls.crt"].0, "tls.crt").expect("PEM");
    wait_for_port(port, WAIT).expect("the port opens");
    assert_eq!(
        served(port),
        leaf[0].to_vec(),
        "the Secret holds what is served"
    );
    assert_eq!(secret.owner_references()[0].uid, uid);
    let ca_secret = secrets
        .get("azure-iot-operations-aio-ca-certificate")
        .await
        .expect("the quickstart CA's Secret");
    assert!(ca_secret.data.expect("data").contains_key("tls.key"));
    let bundle_file = std::fs::read_to_string(tls.trust_bundle_path()).expect("bundle");
    assert_eq!(trust_bundle(&client).await, Some(bundle_file.clone()));
    drop(stop);

    // A new pod: an empty data dir.
    let second_pod = tempfile::tempdir().expect("tempdir");
    let again = TlsContext::open(second_pod.path()).expect("pki");
    assert_ne!(again.quickstart_ca().sha256, tls.quickstart_ca().sha256);
    let restored = certs.restore(&model, &again).await.expect("restore");
    assert_eq!(
        restored,
        ["azure-iot-operations-aio-ca-certificate", name.as_str()]
    );
    assert_eq!(
        again.quickstart_ca().sha256,
        tls.quickstart_ca().sha256,
        "the same CA"
    );
    let l = model.listener("default").expect("listener");
    match again.resolve(&model, l, &l.ports[0]) {
        wardgate_security::tls::TlsOutcome::Ready(p) => assert_eq!(
            p.certificates[0].sha256,
            wardgate_security::pki::CertificateInfo::from_der(&leaf[0], "leaf")
                .expect("leaf")
                .sha256,
            "the certificate from the Secret is served, not a new one"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(again.trust_bundle_path()).expect("bundle"),
        bundle_file,
        "clients keep their trust bundle"
    );
}

/// Seed 004, bring your own issuer: the trust bundle ConfigMap holds the CA of the issuer the
/// ports use and the trust settings' ConfigMap, and follows the issuer's CA when it changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_bundle_config_map_follows_a_bring_your_own_issuer() {
    let fake = FakeKube::start().await;
    fake.store().remove_group("cert-manager.io");
    let listener = resources::listener(&resources::automatic_tls_port(
        8883,
        "Mqtt",
        "ClusterIssuer",
        "contoso-issuer",
        "",
    ));
    let (client, _) = cluster_with_listener(&fake, &listener).await;
    let mut certs = ClusterCertificates::detect(client.clone(), NS)
        .await
        .expect("discovery");
    let dir = tempfile::tempdir().expect("tempdir");
    let enterprise = TestCa::new("Contoso Enterprise Root");
    let trust = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: my-trust\n  namespace: {NS}\ndata:\n  ca.crt: |\n{}",
        enterprise
            .pem()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let with_issuer_ca = |ca: &TestCa, name: &str| {
        ca.write(dir.path(), name);
        let key = std::fs::read(dir.path().join(format!("{name}.key"))).expect("key");
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "contoso-ca", "namespace": NS},
            "data": {"tls.crt": ByteString(ca.pem().into_bytes()), "tls.key": ByteString(key)},
        });
        let issuer = "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata:\n  name: contoso-issuer\nspec:\n  ca:\n    secretName: contoso-ca\n";
        let sources = [&listener, &trust, issuer, &secret.to_string()]
            .iter()
            .enumerate()
            .map(|(i, text)| Source {
                name: format!("{i}.yaml").into(),
                text: (*text).to_owned(),
            })
            .collect::<Vec<_>>();
        wardgate_config::load_sources(&sources)
            .expect("valid")
            .model
    };
    let options = TlsOptions {
        trust_settings: Some(TrustSettings {
            config_map: "my-trust".into(),
            key: Some("ca.crt".into()),
        }),
        issuance: certs.issuance(),
        ..TlsOptions::default()
    };
    let tls = TlsContext::open_with(&dir.path().join("data"), options).expect("pki");
    let published = async |certs: &mut ClusterCertificates, model: &Model| {
        let l = model.listener("default").expect("listener");
        assert!(matches!(
            tls.resolve(model, l, &l.ports[0]),
            wardgate_security::tls::TlsOutcome::Ready(_)
        ));
        certs.publish(model, &tls).await.expect("published");
        let pem = trust_bundle(&client).await.expect("the ConfigMap");
        pem::certificates(pem.as_bytes(), "ca.crt").expect("PEM")
    };

    let contoso = TestCa::new("Contoso Issuing CA 1");
    let bundle = published(&mut certs, &with_issuer_ca(&contoso, "contoso1")).await;
    assert_eq!(
        bundle,
        vec![contoso.der().clone(), enterprise.der().clone()]
    );

    // The issuer's CA is replaced: the ConfigMap follows.
    let successor = TestCa::new("Contoso Issuing CA 2");
    let bundle = published(&mut certs, &with_issuer_ca(&successor, "contoso2")).await;
    assert_eq!(
        bundle,
        vec![successor.der().clone(), enterprise.der().clone()]
    );
}
