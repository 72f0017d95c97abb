//! `spec.cluster` of the Broker (Wardgate extension, issue 17): accepted under `wardgate.io/v1`
//! with its defaults, refused under the AIO apiVersion, each field's rule with its exact message.

use wardgate_config::model::{Replicas, SubjectPrefix};

use crate::common::{errors, ok};

/// A Broker under `api_version` with `cluster` (YAML flow mapping) as `spec.cluster`.
fn broker(api_version: &str, cluster: &str) -> String {
    format!(
        "apiVersion: {api_version}\nkind: Broker\nmetadata:\n  name: default\nspec:\n  cluster: {cluster}\n"
    )
}

#[test]
fn a_cluster_under_wardgate_io_is_lowered_with_its_defaults() {
    let loaded = ok(
        "cluster.yaml",
        &broker(
            "wardgate.io/v1",
            "{nats: {urls: [nats://127.0.0.1:4222, 'tls://nats.example.com']}}",
        ),
    );
    let cluster = loaded.model.broker.cluster.expect("a cluster");
    let urls: Vec<&str> = cluster
        .nats_urls
        .as_slice()
        .iter()
        .map(|u| u.as_str())
        .collect();
    assert_eq!(urls, ["nats://127.0.0.1:4222", "tls://nats.example.com"]);
    assert_eq!(cluster.replicas, Replicas::Three);
    assert_eq!(cluster.subject_prefix, SubjectPrefix::default());
    assert_eq!(cluster.credentials_secret_ref, None);
}

#[test]
fn every_cluster_field_is_read() {
    let loaded = ok(
        "cluster.yaml",
        &broker(
            "wardgate.io/v1",
            "{nats: {urls: ['nats://n1:4222'], credentialsSecretRef: nats-creds}, replicas: 5, subjectPrefix: site1.wg}",
        ),
    );
    let cluster = loaded.model.broker.cluster.expect("a cluster");
    assert_eq!(cluster.replicas, Replicas::Five);
    assert_eq!(cluster.subject_prefix.as_str(), "site1.wg");
    assert_eq!(
        cluster.credentials_secret_ref.as_deref(),
        Some("nats-creds")
    );
}

#[test]
fn without_spec_cluster_the_broker_is_a_single_node() {
    let loaded = ok(
        "single.yaml",
        "apiVersion: wardgate.io/v1\nkind: Broker\nmetadata:\n  name: default\nspec: {}\n",
    );
    assert_eq!(loaded.model.broker.cluster, None);
}

/// Each rule: the cluster written, and the exact errors.
#[test]
fn cluster_rules_have_file_field_errors() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "mqttbroker.iotoperations.azure.com/v1",
            "{nats: {urls: ['nats://n1:4222']}}",
            &[
                "c.yaml:6: Broker/default: spec.cluster is a Wardgate extension: AIO does not accept it under apiVersion mqttbroker.iotoperations.azure.com/v1; use apiVersion wardgate.io/v1 for a Broker with a cluster",
            ],
        ),
        (
            "wardgate.io/v1",
            "{nats: {urls: ['http://n1:4222', 'nats://u:p@n2', 'nats://n3:70000']}}",
            &[
                r#"c.yaml:6: Broker/default: spec.cluster.nats.urls[0] "http://n1:4222" has scheme "http": expected one of nats, tls, ws, wss"#,
                r#"c.yaml:6: Broker/default: spec.cluster.nats.urls[1] "nats://u:p@n2" carries credentials: put them in the Secret of nats.credentialsSecretRef"#,
                r#"c.yaml:6: Broker/default: spec.cluster.nats.urls[2] "nats://n3:70000" has port "70000": expected 1–65535"#,
            ],
        ),
        (
            "wardgate.io/v1",
            "{replicas: 3}",
            &[
                "c.yaml:6: Broker/default: spec.cluster.nats.urls is required: the NATS servers the nodes join (serve --cluster overrides them)",
            ],
        ),
        (
            "wardgate.io/v1",
            "{nats: {urls: ['nats://n1']}, replicas: 2}",
            &[
                "c.yaml:6: Broker/default: spec.cluster.replicas 2 is not 1, 3 or 5: JetStream's Raft groups need an odd count of at most 5",
            ],
        ),
        (
            "wardgate.io/v1",
            "{nats: {urls: ['nats://n1']}, subjectPrefix: 'wg.>'}",
            &[
                r#"c.yaml:6: Broker/default: spec.cluster.subjectPrefix "wg.>" is not a NATS subject prefix: expected tokens of A-Z, a-z, 0-9, '_' and '-' joined by '.'"#,
            ],
        ),
        (
            "wardgate.io/v1",
            "{nats: {urls: ['nats://n1'], credentialsSecretRef: Bad_Name}}",
            &[
                r#"c.yaml:6: Broker/default: spec.cluster.nats.credentialsSecretRef "Bad_Name" is not a valid name: use up to 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"#,
            ],
        ),
    ];
    for (api_version, cluster, expected) in cases {
        assert_eq!(
            errors("c.yaml", &broker(api_version, cluster)),
            *expected,
            "{cluster}"
        );
    }
}
