//! Wardgate's security layer: certificates and TLS (SPEC.md §6), authentication (§7) and
//! authorization (§8).
//!
//! - [`pki`] reads, checks and makes certificates, and keeps the data dir's quickstart CA and
//!   issued certificates.
//! - [`tls`] turns a port's `tls` settings into a rustls `ServerConfig`
//!   ([`tls::TlsContext::resolve`]), with client-certificate verification when the port's
//!   authentication has an X509 method. One crypto provider, aws-lc-rs, is passed explicitly to
//!   every configuration; nothing depends on a process-wide default being installed.
//! - [`authn`] turns a CONNECT (and AUTH) into an identity; [`authz`] decides from it.

pub mod authn;
pub mod authz;
pub mod pki;
pub mod tls;

pub use pki::PkiError;
