//! Wardgate's load generator: drives any MQTT broker over raw sockets built on the protocol
//! crate, and compares Wardgate with Mosquitto and rumqttd on the scenarios of issue 3.
//!
//! The generator runs on a tokio runtime with a few worker threads. Publishers write batches of
//! pre-encoded PUBLISH packets (a template patched with the packet id and a stamp: publisher,
//! sequence number, send time); subscribers read whatever has arrived, parse every PUBLISH in the
//! buffer and answer all acknowledgements in one write. Every message is counted end to end:
//! per-publisher sequence sets on both sides give losses and duplicates, the stamp gives latency,
//! and `/proc` gives the broker's and the generator's own CPU time and memory.

pub mod chart;
pub mod cli;
pub mod conns;
pub mod error;
pub mod histogram;
pub mod load;
pub mod peers;
pub mod procfs;
pub mod report;
pub mod scenario;
pub mod seq;
pub mod tls;
pub mod wire;
