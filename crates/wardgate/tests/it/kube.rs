//! `wardgate kube manifests`: every object it prints is a valid Kubernetes object (it survives a
//! round trip through the `k8s-openapi` types unchanged, so no field is misspelt or misplaced),
//! and the real kubectl applies all of it to testkit's fake API server.

use std::io::Write as _;
use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde_json::Value;
use wardgate_testkit::kube::FakeKube;

fn manifests(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["kube", "manifests"])
        .args(args)
        .output()
        .expect("wardgate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 YAML")
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(yaml).expect("multi-document YAML")
}

/// Deserialises into `T` and back: a field `T` does not know would be dropped, so the object
/// must come back identical.
fn round_trips<T: DeserializeOwned + serde::Serialize>(object: &Value) {
    let typed: T =
        serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{e}: {object:#}"));
    let back = serde_json::to_value(typed).unwrap();
    assert_eq!(
        &back, object,
        "a field k8s-openapi does not know, or a wrong type"
    );
}

fn check_every_object(objects: &[Value]) -> Vec<String> {
    let mut kinds = Vec::new();
    for object in objects {
        let kind = object["kind"].as_str().unwrap().to_string();
        match kind.as_str() {
            "CustomResourceDefinition" => round_trips::<CustomResourceDefinition>(object),
            "Namespace" => round_trips::<Namespace>(object),
            "ServiceAccount" => round_trips::<ServiceAccount>(object),
            "Role" => round_trips::<Role>(object),
            "RoleBinding" => round_trips::<RoleBinding>(object),
            "ClusterRole" => round_trips::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(object),
            "Deployment" => round_trips::<Deployment>(object),
            "StatefulSet" => round_trips::<StatefulSet>(object),
            "Service" => round_trips::<Service>(object),
            other => panic!("unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    kinds
}

#[test]
fn every_manifest_round_trips_through_the_k8s_openapi_types() {
    let objects = documents(&manifests(&["--namespace", "mqtt", "--replicas", "2"]));
    let kinds = check_every_object(&objects);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "CustomResourceDefinition")
            .count(),
        12,
        "4 kinds in 3 groups"
    );
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "Deployment",
        "Service",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    assert_eq!(deployment["metadata"]["namespace"], "mqtt");
    assert_eq!(deployment["spec"]["replicas"], 2);

    let persistent = documents(&manifests(&[
        "--persistence",
        "1Gi",
        "--config-map",
        "wardgate-config",
    ]));
    let kinds = check_every_object(&persistent);
    assert!(
        kinds.contains(&"StatefulSet".to_string()) && !kinds.contains(&"Deployment".to_string())
    );
    let sts = persistent
        .iter()
        .find(|o| o["kind"] == "StatefulSet")
        .unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    let args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap();
    assert!(
        args.iter().any(|a| a == "--config=/etc/wardgate"),
        "{args:?}"
    );
}

#[test]
fn pods_that_join_a_nats_cluster_run_as_a_statefulset_named_after_their_pods() {
    let objects = documents(&manifests(&[
        "--replicas",
        "3",
        "--nats",
        "nats://nats-0.nats:4222,nats://nats-1.nats:4222",
    ]));
    let kinds = check_every_object(&objects);
    assert!(
        kinds.contains(&"StatefulSet".to_string()) && !kinds.contains(&"Deployment".to_string()),
        "{kinds:?}"
    );
    let sts = objects.iter().find(|o| o["kind"] == "StatefulSet").unwrap();
    assert_eq!(sts["spec"]["replicas"], 3);
    assert_eq!(sts["spec"]["volumeClaimTemplates"], serde_json::json!([]));
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"--cluster=nats://nats-0.nats:4222,nats://nats-1.nats:4222")
            && args.contains(&"--node-id=$(POD_NAME)"),
        "{args:?}"
    );
    assert_eq!(container["env"][0]["name"], "POD_NAME");
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
}

#[test]
fn the_crds_are_generated_from_the_config_types() {
    let objects = documents(&manifests(&[]));
    let listener = objects
        .iter()
        .find(|o| o["metadata"]["name"] == "brokerlisteners.mqttbroker.iotoperations.azure.com")
        .expect("the BrokerListener CRD");
    let versions: Vec<&str> = listener["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["v1", "v1beta1"]);
    let spec = &listener["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    // A field of the serde type, with its doc comment as description.
    assert_eq!(spec["properties"]["serviceName"]["type"], "string");
    assert!(
        spec["properties"]["serviceName"]["description"]
            .as_str()
            .unwrap()
            .contains("Service name")
    );
    // Enums match case-insensitively, as the loader does (seed 000 writes `loadBalancer`).
    assert_eq!(
        spec["properties"]["serviceType"]["pattern"],
        "^(?i:ClusterIp|LoadBalancer|NodePort)$"
    );
    let port = &spec["properties"]["ports"]["items"];
    assert_eq!(port["required"], serde_json::json!(["port"]));
    assert_eq!(port["properties"]["port"]["type"], "integer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_every_manifest_to_the_api_server() {
    let fake = FakeKube::start().await;
    for args in [
        &[][..],
        &["--persistence", "1Gi"][..],
        &["--nats", "nats://nats:4222"][..],
    ] {
        let yaml = manifests(args);
        let mut child = fake
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.lines().count(),
            documents(&yaml).len(),
            "one line per object: {stdout}"
        );
    }
    let crds = fake.kubectl().args(["get", "crd"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&crds.stdout)
            .contains("brokerlisteners.mqttbroker.iotoperations.azure.com")
    );
    let sts = fake
        .kubectl()
        .args([
            "get",
            "statefulset",
            "wardgate",
            "-n",
            "azure-iot-operations",
        ])
        .output()
        .unwrap();
    assert!(
        sts.status.success(),
        "{}",
        String::from_utf8_lossy(&sts.stderr)
    );
}

/// What the API server's structural validation would say of `value` under `schema`: unknown
/// fields, missing required ones, wrong types, enum values outside the case-insensitive set.
fn schema_problems(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
    {
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str);
    let type_ok = match (kind, value) {
        (None, _) | (_, Value::Null) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        problems.push(format!("{path}: not a {}", kind.unwrap_or("?")));
        return;
    }
    if let (Some(pattern), Value::String(s)) =
        (schema.get("pattern").and_then(Value::as_str), value)
    {
        let names = pattern.trim_start_matches("^(?i:").trim_end_matches(")$");
        if !names.split('|').any(|n| n.eq_ignore_ascii_case(s)) {
            problems.push(format!("{path}: {s:?} does not match {pattern}"));
        }
    }
    match value {
        Value::Object(map) => {
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !map.contains_key(required.as_str().unwrap()) {
                    problems.push(format!("{path}.{}: required", required.as_str().unwrap()));
                }
            }
            for (key, sub) in map {
                let sub_path = format!("{path}.{key}");
                match (
                    schema.get("properties").and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(sub_schema), _) => schema_problems(sub, sub_schema, &sub_path, problems),
                    (None, Some(extra)) if extra.is_object() => {
                        schema_problems(sub, extra, &sub_path, problems)
                    }
                    _ => problems.push(format!("{sub_path}: unknown field")),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                schema_problems(item, &schema["items"], &format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

/// The `spec` schema of `apiVersion`/`kind` among the CRDs.
fn spec_schema<'a>(crds: &'a [Value], api_version: &str, kind: &str) -> Option<&'a Value> {
    let (group, version) = api_version.split_once('/')?;
    let crd = crds
        .iter()
        .find(|c| c["spec"]["group"] == group && c["spec"]["names"]["kind"] == kind)?;
    let served = crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version)?;
    Some(&served["schema"]["openAPIV3Schema"]["properties"]["spec"])
}

#[test]
fn the_crds_accept_every_example_and_refuse_a_misspelt_field() {
    let crds = documents(&manifests(&[]));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            for doc in documents(&std::fs::read_to_string(&path).unwrap()) {
                let (api_version, kind) = (
                    doc["apiVersion"].as_str().unwrap(),
                    doc["kind"].as_str().unwrap(),
                );
                let Some(schema) = spec_schema(&crds, api_version, kind) else {
                    continue;
                };
                let mut problems = Vec::new();
                schema_problems(
                    &doc["spec"],
                    schema,
                    &format!("{}: {kind}.spec", path.display()),
                    &mut problems,
                );
                assert!(problems.is_empty(), "{problems:#?}");
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 5,
        "the examples hold Broker* resources ({checked} checked)"
    );

    let schema = spec_schema(
        &crds,
        "mqttbroker.iotoperations.azure.com/v1",
        "BrokerListener",
    )
    .unwrap();
    let misspelt = serde_json::json!({"serviceType": "loadBalancer", "ports": [{"port": 1883, "protocl": "Mqtt"}]});
    let mut problems = Vec::new();
    schema_problems(&misspelt, schema, "spec", &mut problems);
    assert_eq!(problems, ["spec.ports[0].protocl: unknown field"]);
}

/// The pod's probes reach the admin API the pod serves: liveness `GET /healthz` and readiness
/// `GET /readyz` on the container's `admin` port, which is where `--admin-addr` listens on
/// every interface (the kubelet probes the pod's IP), for the Deployment and the StatefulSet.
#[test]
fn the_workload_probes_healthz_and_readyz_on_the_admin_port_it_serves() {
    for args in [&[][..], &["--persistence", "1Gi"][..]] {
        let objects = documents(&manifests(args));
        let workload = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" || o["kind"] == "StatefulSet")
            .expect("a workload");
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        let port = container["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == "admin"))
            .unwrap_or_else(|| panic!("a port named admin: {container:#}"));
        let number = port["containerPort"].as_u64().expect("a number");
        let serve_args: Vec<&str> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            serve_args.contains(&format!("--admin-addr=0.0.0.0:{number}").as_str()),
            "the admin API listens where the probes look: {serve_args:?}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{probe}: {container:#}");
            assert_eq!(get["port"], "admin", "{probe}: {container:#}");
        }
    }
}
