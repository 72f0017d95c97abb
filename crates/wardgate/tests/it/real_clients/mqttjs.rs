//! MQTT.js (npm `mqtt` v5, the client in MQTTX and Node-RED) journeys over WebSocket
//! (`ws://…/mqtt`) and TCP, MQTT 5 and 3.1.1: publish/subscribe at QoS 0/1/2, retained messages,
//! and messages crossing from the WebSocket port to a TCP port and back.

use std::process::Command;

use serde_json::json;
use wardgate_testkit::process::{self, BrokerPorts};

use super::{Journey, OrFail, start_broker};

/// `node tests/clients/mqttjs_journeys.js <journey> <args>`.
fn mqttjs(journey: &str, args: &[&str]) -> Command {
    let mut cmd = process::node_command().or_fail();
    cmd.arg(process::clients_dir().join("mqttjs_journeys.js"))
        .arg(journey)
        .args(args);
    cmd
}

fn pubsub(pub_url: &str, sub_url: &str, protocol_version: &str) {
    let journey = Journey::pass(&mut mqttjs(
        "pubsub",
        &[
            "--pub-url",
            pub_url,
            "--sub-url",
            sub_url,
            "--protocol-version",
            protocol_version,
            "--qos",
            "0,1,2",
            "--count",
            "3",
        ],
    ));
    assert_eq!(journey.observed("received"), &json!(9));
}

#[test]
fn websocket_pubsub_v5() {
    let broker = start_broker();
    let url = broker.ports().ws_url();
    pubsub(&url, &url, "5");
}

#[test]
fn websocket_pubsub_v311() {
    let broker = start_broker();
    let url = broker.ports().ws_url();
    pubsub(&url, &url, "4");
}

#[test]
fn tcp_pubsub_v5() {
    let broker = start_broker();
    let url = BrokerPorts::tcp_url(broker.ports().mqtt);
    pubsub(&url, &url, "5");
}

#[test]
fn tcp_pubsub_v311() {
    let broker = start_broker();
    let url = BrokerPorts::tcp_url(broker.ports().mqtt);
    pubsub(&url, &url, "4");
}

/// Published over WebSocket, received on a TCP port.
#[test]
fn websocket_to_tcp() {
    let broker = start_broker();
    let ports = broker.ports();
    pubsub(&ports.ws_url(), &BrokerPorts::tcp_url(ports.mqtt), "5");
}

/// Published on the second TCP port, received over WebSocket, in MQTT 3.1.1.
#[test]
fn tcp_to_websocket_v311() {
    let broker = start_broker();
    let ports = broker.ports();
    pubsub(&BrokerPorts::tcp_url(ports.mqtt2), &ports.ws_url(), "4");
}

fn retained(url: &str, protocol_version: &str) {
    let journey = Journey::pass(&mut mqttjs(
        "retained",
        &["--url", url, "--protocol-version", protocol_version],
    ));
    assert_eq!(journey.observed("late/0/payload"), &json!("kept"));
    assert_eq!(journey.observed("late/0/retain"), &json!(true));
    assert_eq!(journey.observed("after_clear"), &json!([]));
}

#[test]
fn websocket_retained_v5() {
    let broker = start_broker();
    retained(&broker.ports().ws_url(), "5");
}

#[test]
fn tcp_retained_v311() {
    let broker = start_broker();
    retained(&BrokerPorts::tcp_url(broker.ports().mqtt), "4");
}
