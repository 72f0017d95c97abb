//! The broker over real sockets, driven by the raw test client for exact packet-level
//! assertions. Files are split by topic and MQTT version.

mod durable;
mod limits;
mod malformed;
mod transport;
mod v311;
mod v5;
