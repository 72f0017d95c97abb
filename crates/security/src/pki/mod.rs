//! Certificates and keys: reading PEM with precise errors ([`pem`]), what a certificate says
//! ([`cert`]), the load-time chain checks of SPEC.md §6.1/§6.3 ([`chain`]), making keys, CAs and
//! leaves ([`issue`]), the data dir's quickstart CA and issued certificates ([`store`]), and what
//! `wardgate cert inspect` reports ([`inspect`]).

pub mod cert;
pub mod chain;
pub mod inspect;
pub mod issue;
pub mod pem;
pub mod store;

mod error;

pub use cert::{
    CertificateInfo, DistinguishedName, ExtendedKeyUsage, KeyType, SubjectAltName, Validity,
};
pub use error::PkiError;
pub use issue::{CertRequest, Key, Profile, Signer};
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer};
