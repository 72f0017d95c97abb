//! `explain` on the tutorial's configuration: the method, the attributes the chain yields, the
//! rule and topic that allow, or why nothing does.

use std::collections::BTreeMap;

use wardgate_security::authz::{ExplainAction, ExplainQuery, explain};

use super::common::*;

fn query(f: &Fabrikam, device: &str, action: ExplainAction) -> ExplainQuery {
    ExplainQuery {
        client_id: device.to_owned(),
        username: None,
        auth_method: None,
        client_chain: f.chain(device).to_vec(),
        attributes: BTreeMap::new(),
        port: Some(8883),
        action,
    }
}

fn model(f: &Fabrikam) -> wardgate_config::Model {
    load(&[
        TUTORIAL_AUTHN.to_owned(),
        TUTORIAL_AUTHZ.to_owned(),
        TUTORIAL_LISTENER.to_owned(),
        config_map("fabrikam-ca", "client_ca.pem", &f.root.pem()),
    ])
}

#[test]
fn explains_the_denied_and_the_allowed_publish() {
    let f = Fabrikam::new();
    let m = model(&f);
    let e = explain(
        &m,
        &query(
            &f,
            "thermostat",
            ExplainAction::Publish("telemetry/humidity".into()),
        ),
    );
    assert!(!e.allowed());
    let text = e.to_string();
    for want in [
        "Port 8883 (BrokerListener/mqtts-endpoint): publish on \"telemetry/humidity\" — DENIED",
        "methods[0] X509: relevant",
        "the chain leads to a CA in ConfigMap/fabrikam-ca",
        "certificate 0 (leaf): CN = thermostat  <- matches authorizationAttributes.thermostat",
        "certificate 1 (chain): CN = Fabrikam Intermediate CA 1",
        "attributes from the chain: group=thermostat_group",
        "rules[0] applies: grants Connect; Publish on telemetry/temperature",
        "=> denied: no rule of BrokerAuthorization/abac-authz grants Publish on \"telemetry/humidity\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!text.contains("manufacturer"), "{text}");

    let e = explain(
        &m,
        &query(
            &f,
            "thermostat",
            ExplainAction::Publish("telemetry/temperature".into()),
        ),
    );
    assert!(e.allowed(), "{e}");
    assert!(
        e.to_string()
            .contains("=> allowed by rules[0], topic \"telemetry/temperature\""),
        "{e}"
    );
}

#[test]
fn explains_the_intermediate_attribute_and_subscriptions() {
    let f = Fabrikam::new();
    let m = model(&f);
    let e = explain(
        &m,
        &query(
            &f,
            "lightbulb",
            ExplainAction::Publish("health/heartbeat".into()),
        ),
    );
    assert!(e.allowed(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("certificate 1 (chain): CN = Fabrikam Intermediate CA 1  <- matches authorizationAttributes.intermediate"),
        "{text}"
    );
    let e = explain(
        &m,
        &query(
            &f,
            "heater",
            ExplainAction::Subscribe("health/heartbeat".into()),
        ),
    );
    assert!(!e.allowed(), "{e}");
    let e = explain(
        &m,
        &query(
            &f,
            "heater",
            ExplainAction::Subscribe("telemetry/temperature".into()),
        ),
    );
    assert!(e.allowed(), "{e}");
    assert!(e.to_string().contains("rules[3]"), "{e}");
}

#[test]
fn explains_a_client_without_certificate_and_unknown_ports() {
    let f = Fabrikam::new();
    let m = model(&f);
    let mut q = query(&f, "thermostat", ExplainAction::Connect);
    q.client_chain.clear();
    let e = explain(&m, &q);
    assert!(!e.allowed());
    let text = e.to_string();
    assert!(
        text.contains("not relevant (no client certificate"),
        "{text}"
    );
    assert!(text.contains("DENIED at authentication"), "{text}");

    q.port = Some(1);
    let e = explain(&m, &q);
    assert!(!e.allowed());
    assert!(e.to_string().contains("No listener has port 1."), "{e}");
}
