//! The server crate's integration tests, one test binary: [`mqtt`], the broker over real
//! sockets packet by packet, and [`admin`], the admin HTTP API in process.

mod admin;
mod mqtt;
