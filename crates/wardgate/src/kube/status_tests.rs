//! Status and Events against testkit's fake API server: a supervisor serving a listener in
//! process, [`super::run`] reporting its states to the BrokerListener created through the API,
//! and the real kubectl describing it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wardgate_core::{Broker, BrokerSettings};
use wardgate_server::Supervisor;
use wardgate_server::plan::{Plan, ServeOptions};
use wardgate_testkit::kube::FakeKube;
use wardgate_testkit::process::free_port;
use wardgate_testkit::resources;

use super::{Refusals, StatusReporter, run};
use crate::kube::tokenreview::tests::{NS, fake_with_namespace};

const WAIT: Duration = Duration::from_secs(30);

/// The `kind` (plural `plural`) of the current AIO group.
fn aio_api(client: kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("mqttbroker.iotoperations.azure.com", "v1", kind);
    Api::namespaced_with(client, NS, &ApiResource::from_gvk_with_plural(&gvk, plural))
}

/// Polls the object `name` until its status satisfies `done`; returns the status.
async fn status_until(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = api.get(name).await.expect("get").data["status"].clone();
        if done(&status) {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn describe(fake: &FakeKube) -> String {
    let out = fake
        .kubectl()
        .args([
            "describe",
            "brokerlisteners.v1.mqttbroker.iotoperations.azure.com",
            "default",
            "-n",
            NS,
        ])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_states_refusals_and_events_reach_the_listener_in_the_api() {
    let (fake, client) = fake_with_namespace().await;
    let api = aio_api(client.clone(), "BrokerListener", "brokerlisteners");
    let authentications = aio_api(
        client.clone(),
        "BrokerAuthentication",
        "brokerauthentications",
    );
    for (api, kind, spec) in [
        (
            &api,
            "BrokerListener",
            json!({"brokerRef": "default", "ports": []}),
        ),
        (
            &authentications,
            "BrokerAuthentication",
            json!({"authenticationMethods": []}),
        ),
    ] {
        let name = if kind == "BrokerListener" {
            "default"
        } else {
            "users"
        };
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "mqttbroker.iotoperations.azure.com/v1", "kind": kind,
            "metadata": {"name": name, "namespace": NS}, "spec": spec,
        }))
        .expect("object");
        api.create(&PostParams::default(), &object)
            .await
            .expect("create the object");
    }

    // One port serves, one waits for its certificate's Secret, one for its BrokerAuthentication's.
    let (plain, tls, users) = (
        free_port().expect("port"),
        free_port().expect("port"),
        free_port().expect("port"),
    );
    let config = |ports: &str| {
        let yaml = resources::listener(ports)
            + "---\n"
            + &resources::authentication("users", &resources::password_method("pw"));
        wardgate_config::load_str("listener.yaml", &yaml)
            .expect("valid")
            .model
    };
    let data = tempfile::tempdir().expect("tempdir");
    let pki = wardgate_security::tls::TlsContext::open(data.path()).expect("pki");
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let broker = Arc::new(Broker::new(BrokerSettings::default()));
    let mut supervisor = Supervisor::new(broker, shutdown.clone()).with_tls(Arc::new(pki));
    let options = ServeOptions::default();
    supervisor.apply(Plan::from_model(
        config(
            &(resources::mqtt_port(plain)
                + &resources::manual_tls_port(tls, "srv")
                + &resources::authenticated_port(users, "users", None)),
        ),
        &options,
    ));
    let refusals = Refusals::default();
    tokio::spawn(run(
        StatusReporter::new(client.clone(), NS),
        supervisor.status(),
        refusals.clone(),
        shutdown.clone(),
    ));

    let status = status_until(&api, "default", "one port awaits its Secret", |s| {
        s["healthState"]["status"] == "Degraded"
    })
    .await;
    assert_eq!(status["provisioningState"], "Provisioning", "{status:#}");
    assert_eq!(
        status["healthState"]["reasonCode"], "AwaitingSecret",
        "{status:#}"
    );
    assert_eq!(
        status["ports"][0],
        json!({"port": plain, "state": "Listening"})
    );
    assert_eq!(status["ports"][1]["state"], "AwaitingSecret", "{status:#}");
    assert_eq!(status["ports"][2]["state"], "AwaitingSecret", "{status:#}");
    // The BrokerAuthentication whose Secret is missing says so too.
    let authn = status_until(
        &authentications,
        "users",
        "the missing password Secret",
        |s| s["provisioningState"] == "Provisioning",
    )
    .await;
    assert_eq!(
        authn["healthState"]["reasonCode"], "AwaitingSecret",
        "{authn:#}"
    );
    assert!(
        authn["healthState"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Secret pw not found. Awaiting creation of secret.")),
        "{authn:#}"
    );
    let awaiting = "Server certificate srv not found. Awaiting creation of secret.";
    assert!(
        status["ports"][1]["message"]
            .as_str()
            .is_some_and(|m| m.contains(awaiting)),
        "the log's line: {status:#}"
    );

    // The Events: one per port state; neither they nor the status are written again while
    // the states stay.
    let status_writes = || {
        fake.requests()
            .iter()
            .filter(|r| r.starts_with("PATCH") && r.contains("/brokerlisteners/default/status"))
            .count()
    };
    let written = status_writes();
    tokio::time::sleep(3 * super::POLL).await;
    assert_eq!(
        status_writes(),
        written,
        "an unchanged status is not written again"
    );
    // The Broker (the built-in default) is not in the API: looked for once in each group, then
    // not again for a while.
    let broker_reads = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET") && r.contains("/brokers/default"))
        .count();
    assert_eq!(broker_reads, 3, "{:#?}", fake.requests());
    let described = describe(&fake);
    let (_, events_section) = described
        .split_once("\nEvents:")
        .unwrap_or_else(|| panic!("an Events section: {described}"));
    let line = events_section
        .lines()
        .find(|l| l.contains(awaiting))
        .unwrap_or_else(|| panic!("the Events section: {described}"));
    assert!(
        line.contains("Warning") && line.contains("AwaitingSecret"),
        "{line}"
    );
    assert!(
        !line.contains("(x2"),
        "an unchanged state is not recorded again: {line}"
    );
    assert!(
        events_section.contains(&format!("Port {plain} is listening.")),
        "{described}"
    );
    assert!(
        events_section.contains("Secret pw not found. Awaiting creation of secret."),
        "each port's line, not one series for both waiting ports: {described}"
    );
    let events = Api::<Event>::namespaced(client.clone(), NS);
    let kinds: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|e| e.involved_object.kind)
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| *k == kind).count();
    assert_eq!(count("BrokerListener"), 3, "one per port: {kinds:?}");
    assert_eq!(count("BrokerAuthentication"), 1, "{kinds:?}");

    // A refused configuration is reported on the object it names, while the old one runs.
    let refused = wardgate_config::load_str(
        "listener.yaml",
        &resources::listener("  - port: 70000\n    protocol: Mqtt\n"),
    )
    .expect_err("an invalid port");
    refusals.set(Some(&refused));
    let status = status_until(&api, "default", "the refusal", |s| {
        s["provisioningState"] == "Failed"
    })
    .await;
    assert_eq!(
        status["healthState"]["reasonCode"], "InvalidConfiguration",
        "{status:#}"
    );
    assert!(
        status["healthState"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("70000")),
        "{status:#}"
    );
    assert!(describe(&fake).contains("InvalidConfiguration"));

    // Fixed (the TLS port removed): every port listens.
    supervisor.apply(Plan::from_model(
        config(&resources::mqtt_port(plain)),
        &options,
    ));
    refusals.set(None);
    let status = status_until(&api, "default", "all listening", |s| {
        s["healthState"]["status"] == "Available"
    })
    .await;
    assert_eq!(status["provisioningState"], "Succeeded", "{status:#}");
    assert_eq!(
        status["ports"],
        json!([{"port": plain, "state": "Listening"}])
    );
}
