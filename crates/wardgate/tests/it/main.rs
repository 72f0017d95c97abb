//! The binary crate's integration tests, one test binary split by topic: each module drives the
//! real `wardgate` executable (`CARGO_BIN_EXE_wardgate`) and real clients; [`support`] holds
//! what they share.
//!
//! One binary links once: fourteen separate binaries each linked the whole dependency tree.

mod authn;
mod cli;
mod cluster;
mod cluster_auth;
mod cluster_config;
mod cluster_principal;
mod cluster_shared;
mod cluster_status;
mod console;
mod diagnostics;
mod examples;
mod kube;
mod kube_reload;
mod kube_serve;
mod kube_services;
mod limits;
mod persistence;
mod policy;
mod real_clients;
mod reload;
mod status;
mod support;
mod tidy;
mod tls;
mod tls_live;
mod tutorial;
