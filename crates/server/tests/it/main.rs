//! The server crate's integration tests, one test binary: [`mqtt`], the broker over real
//! sockets packet by packet, [`admin`], the admin HTTP API in process, and [`console`], the web
//! console's access rules and its disconnect action.

mod admin;
mod console;
mod mqtt;
