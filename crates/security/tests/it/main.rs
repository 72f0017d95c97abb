//! The security crate's integration tests, one test binary: [`authn`] and [`authz`] with real
//! credentials and identities, [`tls`] with real certificates and handshakes.

mod authn;
mod authz;
mod tls;
