//! The YAML of `wardgate create secret tls` and `wardgate create configmap`, identical to
//! `kubectl create … --dry-run=client -o yaml`.
