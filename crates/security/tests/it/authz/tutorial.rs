//! The tutorial's outcomes, exactly: thermostat → `telemetry/humidity` denied (PUBACK 135),
//! → `telemetry/temperature` allowed; heater's subscribe to `health/heartbeat` denied (SUBACK
//! 135), to `telemetry/temperature` allowed; lightbulb publishes to `health/heartbeat` through
//! the intermediate's attribute, which heater's subscription does not receive.

use wardgate_config::Model;
use wardgate_security::authn::{Authenticator, AuthnOutcome, ConnectRequest, Identity};
use wardgate_security::authz::{Authorizer, Decision, Recheck};

use super::common::*;

fn tutorial(f: &Fabrikam, cache: bool) -> Model {
    let authz = if cache {
        TUTORIAL_AUTHZ.to_owned()
    } else {
        TUTORIAL_AUTHZ.replace("    rules:", "    cache: Disabled\n    rules:")
    };
    load(&[
        TUTORIAL_AUTHN.to_owned(),
        authz,
        TUTORIAL_LISTENER.to_owned(),
        config_map("fabrikam-ca", "client_ca.pem", &f.root.pem()),
    ])
}

async fn identity(a: &Authenticator, f: &Fabrikam, device: &str) -> Identity {
    match a
        .connect(&ConnectRequest {
            client_chain: f.chain(device),
            ..connect(device)
        })
        .await
    {
        AuthnOutcome::Allowed(id) => id,
        other => panic!("{device}: {other:?}"),
    }
}

#[tokio::test]
async fn the_tutorial_outcomes() {
    let f = Fabrikam::new();
    for cache in [true, false] {
        let model = tutorial(&f, cache);
        let port = &model.listener("mqtts-endpoint").unwrap().ports[0];
        let authn =
            Authenticator::new(&model, port.authentication_ref.as_deref().unwrap()).unwrap();
        let authz = Authorizer::new(&model, port.effective_authorization_ref().unwrap()).unwrap();

        let thermostat = identity(&authn, &f, "thermostat").await;
        let heater = identity(&authn, &f, "heater").await;
        let lightbulb = identity(&authn, &f, "lightbulb").await;
        let hygrometer = identity(&authn, &f, "hygrometer").await;

        // Every device may connect (CONNACK 0).
        for id in [&thermostat, &heater, &lightbulb, &hygrometer] {
            assert!(authz.connect(id).is_allowed(), "{}", id.client_id());
        }

        // thermostat → telemetry/humidity: PUBACK 135.
        let Decision::Deny { why } = authz.publish(&thermostat, "telemetry/humidity") else {
            panic!("thermostat must not publish humidity");
        };
        assert!(why.contains("telemetry/humidity"), "{why}");
        // thermostat → telemetry/temperature: allowed by the first rule.
        assert_eq!(
            authz.publish(&thermostat, "telemetry/temperature"),
            Decision::Allow {
                rule: 0,
                topic: Some("telemetry/temperature".into())
            }
        );
        // The intermediate's attribute is not the thermostat's: no heartbeat for it.
        assert!(!authz.publish(&thermostat, "health/heartbeat").is_allowed());

        // heater → subscribe health/heartbeat: SUBACK 135; telemetry/temperature: allowed by
        // its username.
        assert!(!authz.subscribe(&heater, "health/heartbeat").is_allowed());
        assert_eq!(
            authz.subscribe(&heater, "telemetry/temperature"),
            Decision::Allow {
                rule: 3,
                topic: Some("telemetry/temperature".into())
            }
        );

        // lightbulb → health/heartbeat: allowed through the intermediate's manufacturer=fabrikam.
        assert_eq!(
            authz.publish(&lightbulb, "health/heartbeat"),
            Decision::Allow {
                rule: 2,
                topic: Some("health/heartbeat".into())
            }
        );
        // …and heater receives none of it: its only subscription does not match the topic,
        // and it may not subscribe to the heartbeat.
        assert!(!wardgate_protocol::topic_matches(
            "telemetry/temperature",
            "health/heartbeat"
        ));

        // hygrometer publishes humidity, not temperature.
        assert!(
            authz
                .publish(&hygrometer, "telemetry/humidity")
                .is_allowed()
        );
        assert!(
            !authz
                .publish(&hygrometer, "telemetry/temperature")
                .is_allowed()
        );

        // A live policy edit that keeps the heater's subscription keeps it connected.
        assert_eq!(
            authz.recheck(&heater, ["telemetry/temperature"]),
            Recheck::Keep
        );
        assert!(matches!(
            authz.recheck(&heater, ["health/heartbeat"]),
            Recheck::Disconnect { .. }
        ));
    }
}

#[tokio::test]
async fn a_client_of_another_ca_is_not_the_tutorials_device() {
    // A thermostat certificate from an unrelated CA still names itself `thermostat`; the TLS
    // handshake is what refuses it. Authorization decides only from what authentication gives.
    let f = Fabrikam::new();
    let model = tutorial(&f, true);
    let authn = Authenticator::new(&model, "x509-auth").unwrap();
    let authz = Authorizer::new(&model, "abac-authz").unwrap();
    let heater = identity(&authn, &f, "heater").await;
    // heater has manufacturer=fabrikam (from the intermediate) and so may publish heartbeats.
    assert!(authz.publish(&heater, "health/heartbeat").is_allowed());
    assert!(!authz.publish(&heater, "telemetry/temperature").is_allowed());
    // A `$share` subscription is authorized on its inner filter.
    assert!(
        authz
            .subscribe(&heater, "$share/g/telemetry/humidity")
            .is_allowed()
    );
    assert!(
        !authz
            .subscribe(&heater, "$share/g/telemetry/#")
            .is_allowed()
    );
    assert!(!authz.subscribe(&heater, "#").is_allowed());
}

#[tokio::test]
async fn a_policy_edit_disconnects_only_those_who_lost_something() {
    let f = Fabrikam::new();
    let before = tutorial(&f, true);
    // The edit: heater may no longer subscribe to humidity.
    let edited = TUTORIAL_AUTHZ.replace(
        "topics: [\"telemetry/temperature\", \"telemetry/humidity\"]",
        "topics: [\"telemetry/temperature\"]",
    );
    let after = load(&[
        TUTORIAL_AUTHN.to_owned(),
        edited,
        TUTORIAL_LISTENER.to_owned(),
        config_map("fabrikam-ca", "client_ca.pem", &f.root.pem()),
    ]);
    assert!(!wardgate_security::authz::authorization_changed(
        &before,
        &before.clone(),
        "abac-authz"
    ));
    assert!(wardgate_security::authz::authorization_changed(
        &before,
        &after,
        "abac-authz"
    ));

    let authn = Authenticator::new(&after, "x509-auth").unwrap();
    let authz = Authorizer::new(&after, "abac-authz").unwrap();
    let heater = identity(&authn, &f, "heater").await;
    let thermostat = identity(&authn, &f, "thermostat").await;
    // A heater subscribed to temperature keeps receiving; one subscribed to humidity goes.
    assert_eq!(
        authz.recheck(&heater, ["telemetry/temperature"]),
        Recheck::Keep
    );
    let Recheck::Disconnect { why } =
        authz.recheck(&heater, ["telemetry/temperature", "telemetry/humidity"])
    else {
        panic!("lost humidity")
    };
    assert!(why.contains("telemetry/humidity"), "{why}");
    // Publishers without subscriptions keep their connection.
    assert_eq!(authz.recheck(&thermostat, []), Recheck::Keep);
}
