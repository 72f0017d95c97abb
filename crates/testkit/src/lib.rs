//! Test support: an in-process broker on port 0, a raw-bytes MQTT client built on the protocol
//! crate, and helpers that run real clients (mosquitto, Paho, MQTT.js) against a broker process.

pub mod broker;
pub mod client;
pub mod process;
