//! Integration tests of `wardgate_security::tls` and `pki` with real certificates and real
//! handshakes: manual Secrets, automatic issuance, client certificates, and certificates made
//! by OpenSSL.

mod automatic;
mod common;
mod manual;
