//! Integration tests of `wardgate-config`: the seeds' manifests, every validation rule with its
//! exact message, old-API conversion, defaults, loading of files and folders, diffs and
//! `wardgate create`.

mod cluster;
mod common;
mod create;
mod defaults;
mod loading;
mod old_api;
mod seeds;
mod service_accounts;
mod validation;
