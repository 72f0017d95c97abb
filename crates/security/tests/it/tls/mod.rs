//! Integration tests of `wardgate_security::tls` and `pki` with real certificates and real
//! handshakes: manual Secrets, automatic issuance, client certificates, and certificates made
//! and checked by Debian's OpenSSL.

mod automatic;
mod cert_manager;
mod client_auth;
mod common;
mod manual;
mod openssl;
