//! The codec's integration tests: byte tables for each version and for every malformed class,
//! property-based round trips, robustness against arbitrary input, and topic matching.

mod malformed;
mod robustness;
mod roundtrip;
mod strategies;
mod support;
mod table_v311;
mod table_v5;
mod topics;
