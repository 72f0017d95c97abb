//! The objects that run Wardgate: its ServiceAccount and least-privilege RBAC, the Deployment
//! (a StatefulSet with a volume claim when persistence is asked for, or with stable pod names
//! as node ids when the pods join a NATS cluster), and the admin Service.

use serde_json::{Value, json};

use super::{ManifestsArgs, labels};

/// The name of every namespaced object here.
const NAME: &str = "wardgate";
/// The admin API's port (the Broker's default `prometheusPort`).
const ADMIN_PORT: u16 = 9600;
/// Where the data directory is mounted.
const DATA_DIR: &str = "/var/lib/wardgate";
/// Where `--config-map`'s files are mounted.
const CONFIG_DIR: &str = "/etc/wardgate";

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// The ServiceAccount, a Role for what lives in the namespace, a ClusterRole for the
/// cluster-scoped reads and TokenReview, and their bindings.
pub(crate) fn rbac(args: &ManifestsArgs, crd_groups: &[&str]) -> Vec<Value> {
    let ns = &args.namespace;
    let kinds = [
        "brokers",
        "brokerlisteners",
        "brokerauthentications",
        "brokerauthorizations",
    ];
    let statuses: Vec<String> = kinds.iter().map(|k| format!("{k}/status")).collect();
    let statuses: Vec<&str> = statuses.iter().map(String::as_str).collect();
    let role_rules = vec![
        // The configuration: watched, never written (but for its status).
        rule(crd_groups, &kinds, READ),
        rule(crd_groups, &statuses, &["get", "update", "patch"]),
        rule(&["cert-manager.io"], &["issuers"], READ),
        // Listeners' Services and cert-manager Certificates are created, owned and deleted.
        rule(&[""], &["services"], WRITE),
        rule(&["cert-manager.io"], &["certificates"], WRITE),
        // Certificates of the built-in issuer go to Secrets; the trust bundle is a ConfigMap.
        rule(
            &[""],
            &["secrets", "configmaps"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(&["", "events.k8s.io"], &["events"], &["create", "patch"]),
    ];
    let cluster_rules = vec![
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(&["cert-manager.io"], &["clusterissuers"], READ),
        // Clients' service accounts carry `aio-broker-auth/*` attributes, in any namespace.
        rule(&[""], &["serviceaccounts"], &["get"]),
    ];
    let cluster_name = format!("{NAME}-{ns}");
    let subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]);
    vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": ns, "labels": labels()}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()}, "rules": role_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": subject}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": cluster_name, "labels": labels()}, "rules": cluster_rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_name, "labels": labels()},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            "subjects": subject}),
    ]
}

/// The pod: `wardgate serve` as a non-root user on a read-only root file system, the admin
/// API on all interfaces for the probes and the admin Service.
fn pod_template(args: &ManifestsArgs) -> Value {
    let mut command = vec![
        "serve".to_string(),
        format!("--data-dir={DATA_DIR}"),
        format!("--admin-addr=0.0.0.0:{ADMIN_PORT}"),
    ];
    let mut mounts = vec![json!({"name": "data", "mountPath": DATA_DIR})];
    let mut volumes = Vec::new();
    if let Some(config_map) = &args.config_map {
        command.push(format!("--config={CONFIG_DIR}"));
        mounts.push(json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}));
        volumes.push(json!({"name": "config", "configMap": {"name": config_map}}));
    }
    if args.persistence.is_none() {
        volumes.push(json!({"name": "data", "emptyDir": {}}));
    }
    let mut env = Vec::new();
    if let Some(urls) = &args.nats {
        // A StatefulSet's pod names are stable: each is its node's id across restarts.
        command.push(format!("--cluster={urls}"));
        command.push("--node-id=$(POD_NAME)".to_owned());
        env.push(
            json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        );
    }
    let probe =
        |path: &str| json!({"httpGet": {"path": path, "port": "admin"}, "periodSeconds": 10});
    json!({
        "metadata": {"labels": labels()},
        "spec": {
            "serviceAccountName": NAME,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": NAME,
                "image": args.image,
                "args": command,
                "env": env,
                "ports": [{"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}],
                "livenessProbe": probe("/healthz"),
                "readinessProbe": probe("/readyz"),
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    })
}

/// The Deployment, or a StatefulSet (and the headless Service it needs) when the pods keep
/// state — with `--persistence SIZE` each claims a volume of that size — or join a NATS
/// cluster with `--nats` (stable pod names are the node ids).
pub(crate) fn workload(args: &ManifestsArgs) -> Vec<Value> {
    let ns = &args.namespace;
    let selector = json!({"matchLabels": {"app.kubernetes.io/name": NAME}});
    if args.persistence.is_none() && args.nats.is_none() {
        return vec![json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "spec": {"replicas": args.replicas, "selector": selector, "template": pod_template(args)},
        })];
    }
    let claims: Vec<Value> = args
        .persistence
        .iter()
        .map(|size| {
            json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
            })
        })
        .collect();
    vec![
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{NAME}-headless"), "namespace": ns, "labels": labels()},
            "spec": {"clusterIP": "None", "selector": {"app.kubernetes.io/name": NAME},
                "ports": [{"name": "admin", "port": ADMIN_PORT, "targetPort": "admin"}]},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": NAME, "namespace": ns, "labels": labels()},
            "spec": {
                "replicas": args.replicas, "selector": selector, "serviceName": format!("{NAME}-headless"),
                "template": pod_template(args),
                "volumeClaimTemplates": claims,
            },
        }),
    ]
}

/// The admin API (metrics, probes, status) as a ClusterIP Service.
pub(crate) fn admin_service(args: &ManifestsArgs) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": format!("{NAME}-admin"), "namespace": args.namespace, "labels": labels()},
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": NAME},
            "ports": [{"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"}]},
    })
}
