//! Authorization with real identities: the seed tutorial (`seeds/003_…`) end to end through
//! X509 authentication of rcgen-made Fabrikam chains, and `explain` on the same configuration.

mod explain;
mod perf;
mod tutorial;

use super::authn::common;
