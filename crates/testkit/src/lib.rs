//! Test support: an in-process broker on port 0, a raw-bytes MQTT client built on the protocol
//! crate, fixtures for driving the core without sockets, certificates made in-process
//! ([`pki`]), a real NATS cluster with JetStream ([`nats`]), a fake Kubernetes API server
//! ([`kube`]) for kubectl and kube-rs, and helpers that run real clients (mosquitto, Paho,
//! MQTT.js) against a broker process.

pub mod broker;
pub mod client;
pub mod fixtures;
pub mod kube;
pub mod nats;
pub mod pki;
pub mod process;
pub mod resources;
