//! The listeners' Services of `wardgate serve --kubernetes`, seen with the real kubectl: a
//! seed's LoadBalancer listener with a missing manual-TLS Secret has its Service while it awaits
//! the Secret; `kubectl create secret tls` brings the port up; deleting the listener deletes the
//! Service (owner references and the fake's garbage collector). Old-API listeners sharing a
//! service name share one Service.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use wardgate_testkit::kube::FakeKube;
use wardgate_testkit::pki::TestCa;
use wardgate_testkit::process::{free_port, mosquitto_pub, run};
use wardgate_testkit::resources;

use crate::kube_serve::{NS, Served, WAIT, apply, fake_cluster, kubectl, state};

/// Seed 000's manual-TLS LoadBalancer listener (`seeds/000_172c2f34308ea915.txt`, as the config
/// crate's fixture holds it), on `port` instead of 8885.
fn manual_tls_listener(port: u16) -> String {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/tests/fixtures/seeds/000-loadbalancer-tls-manual.yaml");
    let yaml = std::fs::read_to_string(seed).expect("the seed fixture");
    assert!(yaml.contains("port: 8885"), "{yaml}");
    yaml.replace("port: 8885", &format!("port: {port}"))
}

/// `kubectl get service NAME -o json`, or `None` once it is not found.
async fn service(fake: &FakeKube, name: &str) -> Option<Value> {
    let mut command = fake.kubectl();
    command.args(["get", "service", name, "-n", NS, "-o", "json"]);
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("kubectl runs");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("a Service as JSON"))
}

/// Waits until `kubectl get service NAME` finds it (`present`) or not.
async fn wait_service(fake: &FakeKube, name: &str, present: bool) -> Option<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = service(fake, name).await;
        if found.is_some() == present {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "Service {name} present={present}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_awaiting_its_secret_has_its_service_and_deleting_the_listener_deletes_it() {
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (port, default) = (free_port().expect("port"), free_port().expect("port"));
    // The default listener (Service aio-broker) on a free port: tests run in parallel.
    apply(
        &fake,
        root.path(),
        &resources::listener(&resources::mqtt_port(default)),
    )
    .await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served.ports().await.expect("serving the default listener");
    apply(&fake, root.path(), &manual_tls_listener(port)).await;
    served
        .wait_ports("the port awaits its secret", |l| {
            state(l, port).as_deref() == Some("AwaitingSecret")
        })
        .await;

    // The Service exists before the certificate (the LoadBalancer address comes first).
    let svc = wait_service(&fake, "aio-broker-loadbalancer-tls", true)
        .await
        .expect("the Service");
    let listener: Value = serde_json::from_str(
        &kubectl(
            &fake,
            &[
                "get",
                "brokerlistener",
                "loadbalancer-tls",
                "-n",
                NS,
                "-o",
                "json",
            ],
        )
        .await,
    )
    .expect("listener JSON");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], port);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], port);
    let owner = &svc["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "BrokerListener");
    assert_eq!(owner["name"], "loadbalancer-tls");
    assert_eq!(owner["uid"], listener["metadata"]["uid"]);
    let table = kubectl(&fake, &["get", "service", "-n", NS]).await;
    let row = table
        .lines()
        .find(|l| l.starts_with("aio-broker-loadbalancer-tls "))
        .unwrap_or_else(|| panic!("kubectl get service lists it:\n{table}"));
    assert!(
        row.contains("LoadBalancer") && row.contains(&format!("{port}:")),
        "{row}"
    );
    // The default listener's Service, as AIO names it.
    assert!(
        table.lines().any(|l| l.starts_with("aio-broker ")),
        "{table}"
    );
    // serve --kubernetes reports the waiting port on the listener: status and an Event.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let described = loop {
        let described = kubectl(
            &fake,
            &["describe", "brokerlistener", "loadbalancer-tls", "-n", NS],
        )
        .await;
        if (described.contains("Provisioning") && described.contains("Awaiting creation of secret"))
            || std::time::Instant::now() > deadline
        {
            break described;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert!(
        described.contains("Provisioning")
            && described.contains("AwaitingSecret")
            && described.contains("Awaiting creation of secret"),
        "kubectl describe shows the waiting port's status and Event:\n{described}"
    );

    // The seeds' next step: a certificate for the Service's name, as a TLS Secret.
    let ca = TestCa::new("Kube Test CA");
    let server = ca.issue_server(&["localhost", "aio-broker-loadbalancer-tls"]);
    server.write(root.path(), "server", &[]);
    std::fs::write(root.path().join("ca.crt"), ca.pem()).expect("write CA");
    let (crt, key) = (
        root.path().join("server.crt"),
        root.path().join("server.key"),
    );
    kubectl(
        &fake,
        &[
            "create",
            "secret",
            "tls",
            "server-cert-secret",
            "-n",
            NS,
            &format!("--cert={}", crt.display()),
            &format!("--key={}", key.display()),
        ],
    )
    .await;
    served
        .wait_ports("the Secret brings the port up", |l| {
            state(l, port).as_deref() == Some("Listening")
        })
        .await;
    let cafile = root.path().join("ca.crt").display().to_string();
    let port_arg = port.to_string();
    let published = tokio::task::spawn_blocking(move || {
        run(
            Command::new(mosquitto_pub().expect("mosquitto_pub")).args([
                "-h",
                "localhost",
                "-p",
                &port_arg,
                "--cafile",
                &cafile,
                "-t",
                "kube/hello",
                "-m",
                "hi",
                "-q",
                "1",
            ]),
            Duration::from_secs(20),
        )
        .expect("mosquitto_pub runs")
    })
    .await
    .expect("join");
    assert!(published.success(), "{published}");
    assert!(
        service(&fake, "aio-broker-loadbalancer-tls")
            .await
            .is_some(),
        "still there"
    );

    // `kubectl delete brokerlistener`: the garbage collector takes its Service, the port closes.
    kubectl(
        &fake,
        &["delete", "brokerlistener", "loadbalancer-tls", "-n", NS],
    )
    .await;
    wait_service(&fake, "aio-broker-loadbalancer-tls", false).await;
    served
        .wait_ports("the port is gone", |l| state(l, port).is_none())
        .await;
    assert!(
        service(&fake, "aio-broker").await.is_some(),
        "the default listener's Service stays"
    );
    served.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn old_api_listeners_of_one_service_name_share_one_service_that_a_rename_moves() {
    let fake = fake_cluster().await;
    let root = tempfile::tempdir().expect("tempdir");
    let (a, b) = (free_port().expect("port"), free_port().expect("port"));
    let listener = |name: &str, port: u16, service: &str| {
        format!(
            "apiVersion: mq.iotoperations.azure.com/v1beta1\nkind: BrokerListener\n\
             metadata:\n  name: {name}\n  namespace: {NS}\n\
             spec:\n  brokerRef: broker\n  port: {port}\n{service}"
        )
    };
    // Seed 001: two clusterIp listeners, both on the old default aio-mq-dmqtt-frontend.
    let both = format!(
        "{}---\n{}",
        listener("my-test-listener", a, ""),
        listener("my-other-listener", b, "")
    );
    apply(&fake, root.path(), &both).await;
    let mut served = Served::kubernetes(root.path(), &fake);
    served
        .wait_ports("both ports", |l| {
            state(l, a).as_deref() == Some("Listening")
                && state(l, b).as_deref() == Some("Listening")
        })
        .await;
    let listeners = served.ports().await.expect("running");
    assert_eq!(
        listeners.ports.len(),
        2,
        "the old API's listeners only (no default listener on 18883): {listeners:#?}"
    );
    let svc = wait_service(&fake, "aio-mq-dmqtt-frontend", true)
        .await
        .expect("the shared Service");
    let ports: Vec<u64> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    let mut expected = vec![u64::from(a), u64::from(b)];
    expected.sort();
    assert_eq!(ports, expected, "one Service with both listeners' ports");
    let owners: Vec<&str> = svc["metadata"]["ownerReferences"]
        .as_array()
        .expect("owners")
        .iter()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(owners.len(), 2, "both listeners own it: {owners:?}");
    assert_eq!(svc["spec"]["type"], "ClusterIP");

    // Both listeners renamed to another shared name: the new Service, and the old one deleted.
    let renamed = format!(
        "{}---\n{}",
        listener("my-test-listener", a, "  serviceName: frontend\n"),
        listener("my-other-listener", b, "  serviceName: frontend\n")
    );
    apply(&fake, root.path(), &renamed).await;
    wait_service(&fake, "frontend", true).await;
    wait_service(&fake, "aio-mq-dmqtt-frontend", false).await;
    served.stop();
}
