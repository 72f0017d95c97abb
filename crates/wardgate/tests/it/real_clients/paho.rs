//! Eclipse Paho (Python `paho-mqtt` 2.x) journeys, mostly MQTT 5 features: topic aliases,
//! subscription identifiers, shared subscriptions, message expiry, request/response and the
//! PUBLISH properties forwarded unchanged; plus plain publish/subscribe in 3.1.1 and 5.

use std::process::Command;

use serde_json::{Value, json};
use wardgate_testkit::process::{self, Broker};

use super::{Journey, OrFail, start_broker};

/// `python tests/clients/paho_journeys.py --port <first MQTT port> <journey> <args>`.
fn paho(broker: &Broker, journey: &str, args: &[&str]) -> Command {
    let mut cmd = process::python_command().or_fail();
    cmd.arg(process::clients_dir().join("paho_journeys.py"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &broker.ports().mqtt.to_string(),
            journey,
        ])
        .args(args);
    cmd
}

fn payloads(received: &Value) -> Vec<&str> {
    received
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["payload"].as_str())
        .collect()
}

#[test]
fn basic_qos_0_1_2_v311() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "basic", &["--mqtt-version", "3.1.1"]));
    assert_eq!(journey.observed("received"), &json!(15));
}

#[test]
fn basic_qos_0_1_2_v5() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "basic", &["--mqtt-version", "5"]));
    assert_eq!(journey.observed("received"), &json!(15));
}

/// The publisher sets alias 1 with the topic, then sends the topic-less PUBLISH with alias 1.
#[test]
fn topic_alias_from_the_publisher() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "topic-alias", &["--count", "5"]));
    assert!(journey.observed("broker_topic_alias_maximum").as_u64() >= Some(1));
    let received = journey.observed("received");
    assert_eq!(
        payloads(received),
        ["alias-0", "alias-1", "alias-2", "alias-3", "alias-4"]
    );
}

/// Same, with a subscriber that allows the broker to use aliases towards it (it resolves them).
/// Wardgate uses them (SPEC §9: topic aliases both ways); Mosquitto never does.
#[test]
fn topic_alias_towards_the_subscriber() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(
        &broker,
        "topic-alias",
        &["--count", "5", "--subscriber-alias-max", "5"],
    ));
    let received = journey.observed("received");
    assert_eq!(
        payloads(received),
        ["alias-0", "alias-1", "alias-2", "alias-3", "alias-4"]
    );
    if !broker.kind().is_mosquitto() {
        let alias_only = journey
            .observed("received_alias_only")
            .as_u64()
            .unwrap_or(0);
        assert!(
            alias_only >= 1,
            "the broker never sent a topic-less aliased PUBLISH"
        );
    }
}

#[test]
fn subscription_identifiers_come_back() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "subscription-identifiers", &[]));
    let ids: Vec<&Value> = journey
        .observed("received")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["payload"] == "hash-only")
        .map(|m| &m["properties"]["SubscriptionIdentifier"])
        .collect();
    assert_eq!(ids, [&json!([300])]);
}

#[test]
fn shared_subscription_round_robin() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(
        &broker,
        "shared-subscription",
        &["--subscribers", "3", "--count", "30"],
    ));
    let per_member = journey
        .observed("per_member")
        .as_object()
        .or_fail_none("per_member");
    assert_eq!(per_member.len(), 3);
    let counts: Vec<u64> = per_member.values().filter_map(Value::as_u64).collect();
    assert!(
        counts.iter().all(|&n| n > 0),
        "a member got nothing: {per_member:?}"
    );
    assert_eq!(counts.iter().sum::<u64>(), 30);
    assert_eq!(journey.observed("watcher"), &json!(30));
}

/// The shared-subscription check has teeth: members subscribed to the plain topic each get
/// every message, and the journey must report that as a failure.
#[test]
fn shared_subscription_check_fails_on_plain_subscriptions() {
    let broker = start_broker();
    let journey = Journey::run(&mut paho(
        &broker,
        "shared-subscription",
        &["--subscribers", "2", "--count", "4", "--share-prefix", ""],
    ));
    assert_eq!(journey.output.status.code(), Some(1), "{}", journey.output);
    assert_eq!(journey.result["ok"], json!(false));
    assert_eq!(
        journey.observed("per_member"),
        &json!({"member0": 4, "member1": 4})
    );
}

#[test]
fn message_expiry_while_offline() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(
        &broker,
        "message-expiry",
        &[
            "--short-expiry",
            "1",
            "--long-expiry",
            "60",
            "--offline-wait",
            "2.5",
        ],
    ));
    let received = journey.observed("received");
    let mut got = payloads(received);
    got.sort_unstable();
    assert_eq!(got, ["forever", "long"]);
    let long = received
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["payload"] == "long");
    let left = long.and_then(|m| m["properties"]["MessageExpiryInterval"].as_u64());
    assert!(
        left.is_some_and(|s| s <= 58),
        "remaining expiry {left:?} after 2.5 s offline"
    );
}

#[test]
fn request_response_properties_forwarded() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "request-response", &[]));
    // Response Information answers Request Response Information = 1; optional in MQTT 5, given
    // by Wardgate (SPEC §9), not by Mosquitto.
    if !broker.kind().is_mosquitto() {
        let info = journey.observed("response_information");
        assert!(
            info.as_str().is_some_and(|s| !s.is_empty()),
            "no Response Information: {info}"
        );
    }
    let request = &journey.observed("request")[0]["properties"];
    assert!(
        request["ResponseTopic"]
            .as_str()
            .is_some_and(|t| t.ends_with("/response"))
    );
    assert_eq!(
        request["CorrelationData"],
        journey.observed("response")[0]["properties"]["CorrelationData"]
    );
}

#[test]
fn user_properties_content_type_and_format_forwarded() {
    let broker = start_broker();
    let journey = Journey::pass(&mut paho(&broker, "properties", &[]));
    let first = &journey.observed("received")[0]["properties"];
    assert_eq!(
        first["UserProperty"],
        json!([
            ["region", "eu"],
            ["trace", "a1"],
            ["region", "us"],
            ["ünï", "çødé"]
        ])
    );
    assert_eq!(first["ContentType"], json!("application/json"));
    assert_eq!(first["PayloadFormatIndicator"], json!(1));
}

trait OrFailNone<T> {
    fn or_fail_none(self, what: &str) -> T;
}

impl<T> OrFailNone<T> for Option<T> {
    #[track_caller]
    fn or_fail_none(self, what: &str) -> T {
        self.unwrap_or_else(|| panic!("{what} is missing or has the wrong type"))
    }
}
