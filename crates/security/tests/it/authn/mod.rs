//! Authentication with real inputs: certificate chains made with rcgen, PBKDF2 hashes (one from
//! the AIO sample), JWTs signed with freshly generated RS256/ES256 keys, and HTTPS to the
//! example custom authentication server.

pub(super) mod common;
mod custom;
mod local_issuer;
mod order;
mod password;
mod sat;
mod x509;
