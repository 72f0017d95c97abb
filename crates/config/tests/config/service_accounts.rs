//! ServiceAccounts: their `aio-broker-auth/*` annotations are the attributes of service-account
//! tokens outside Kubernetes.

use crate::common::{errors, ok};

const SENSOR: &str = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: sensor
  namespace: azure-iot-operations
  labels: {app: sensor}
  annotations:
    aio-broker-auth/group: sensors
    aio-mq-broker-auth/floor: '3'
    kubectl.kubernetes.io/last-applied-configuration: '{}'
automountServiceAccountToken: false
";

#[test]
fn annotations_with_the_aio_prefixes_become_attributes() {
    let model = ok("sa.yaml", SENSOR).model;
    let sa = model
        .service_account("azure-iot-operations", "sensor")
        .expect("the ServiceAccount is read");
    let attributes: Vec<(&str, &str)> = sa
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(attributes, [("floor", "3"), ("group", "sensors")]);
}

#[test]
fn a_written_namespace_must_match_the_token_s() {
    let model = ok("sa.yaml", SENSOR).model;
    assert!(model.service_account("default", "sensor").is_none());
    assert!(
        model
            .service_account("azure-iot-operations", "other")
            .is_none()
    );
    let anywhere = ok(
        "sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sensor}\n",
    )
    .model;
    assert!(anywhere.service_account("default", "sensor").is_some());
    assert!(anywhere.service_account("team-a", "sensor").is_some());
}

#[test]
fn an_annotation_that_names_no_attribute_is_an_error() {
    let e = errors(
        "sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: s\n  annotations: {aio-broker-auth/: x}\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("ServiceAccount/s")
            && e[0].contains("metadata.annotations[\"aio-broker-auth/\"]")
            && e[0].contains("names no attribute"),
        "{e:?}"
    );
}

#[test]
fn only_v1_and_known_fields_are_accepted() {
    let e = errors(
        "sa.yaml",
        "apiVersion: v2\nkind: ServiceAccount\nmetadata: {name: s}\n",
    );
    assert!(
        e[0].contains("\"v2\" is not accepted for ServiceAccount"),
        "{e:?}"
    );
    let e = errors(
        "sa.yaml",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\nspec: {}\n",
    );
    assert!(e[0].contains("spec"), "{e:?}");
}
