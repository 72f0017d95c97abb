//! Integration tests of testkit's fakes, driven by real clients: the fake Kubernetes API server
//! against kube-rs and kubectl.

mod kube_client;
mod kube_watch;
mod kubectl;
