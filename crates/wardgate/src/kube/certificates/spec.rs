//! The cert-manager `Certificate` AIO's operator creates for an automatic port: named after the
//! Secret it writes (`secretName`, by default `<serviceName>-frontend-server-<port>`, as
//! cert-manager's own ingress-shim names a Certificate after its Secret), with the listener's
//! Service names and `san` as subject alternative names, the spec's duration, renewBefore,
//! private key and issuerRef, and owned by the BrokerListener.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Value, json};
use wardgate_config::KeyAlgorithm;
use wardgate_config::model::{AutomaticTls, Listener};

use super::labels;

/// The Certificate object for `a`, a port of `listener`, in `namespace`.
pub(super) fn certificate(
    listener: &Listener,
    a: &AutomaticTls,
    namespace: &str,
    owner: Option<&OwnerReference>,
) -> Value {
    let (algorithm, size) = key_algorithm(a.private_key.algorithm);
    let mut private_key = json!({
        "algorithm": algorithm,
        "rotationPolicy": a.private_key.rotation_policy.to_string(),
    });
    if let Some(size) = size {
        private_key["size"] = json!(size);
    }
    let mut metadata = json!({
        "name": a.secret_name,
        "namespace": namespace,
        "labels": labels(&listener.name),
    });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    let ips: Vec<String> = a.san_ip.iter().map(ToString::to_string).collect();
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": metadata,
        "spec": {
            "secretName": a.secret_name,
            // The leaf's CN is the Secret's name, as on AIO (at most 64 characters, RFC 5280).
            "commonName": a.secret_name.chars().take(64).collect::<String>(),
            "dnsNames": dns_names(listener, a, namespace),
            "ipAddresses": ips,
            "duration": go_duration(a.duration),
            "renewBefore": go_duration(a.renew_before),
            "privateKey": private_key,
            "usages": ["digital signature", "key encipherment", "server auth"],
            "issuerRef": {
                "name": a.issuer_ref.name,
                "kind": a.issuer_ref.kind.to_string(),
                "group": a.issuer_ref.group,
            },
        },
    })
}

/// The Service's names in the cluster (`<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`,
/// `<svc>.<ns>.svc.cluster.local`), then `san.dns`, each once, lower case.
fn dns_names(listener: &Listener, a: &AutomaticTls, namespace: &str) -> Vec<String> {
    let svc = listener.service_name.to_ascii_lowercase();
    let mut names = vec![
        svc.clone(),
        format!("{svc}.{namespace}"),
        format!("{svc}.{namespace}.svc"),
        format!("{svc}.{namespace}.svc.cluster.local"),
    ];
    for d in &a.san_dns {
        let d = d.trim().to_ascii_lowercase();
        if !d.is_empty() && !names.contains(&d) {
            names.push(d);
        }
    }
    names
}

/// cert-manager's spelling of a key algorithm: `ECDSA`/`RSA` with a size, or `Ed25519`.
fn key_algorithm(algorithm: KeyAlgorithm) -> (&'static str, Option<u32>) {
    match algorithm {
        KeyAlgorithm::Ec256 => ("ECDSA", Some(256)),
        KeyAlgorithm::Ec384 => ("ECDSA", Some(384)),
        KeyAlgorithm::Ec521 => ("ECDSA", Some(521)),
        KeyAlgorithm::Ed25519 => ("Ed25519", None),
        KeyAlgorithm::Rsa2048 => ("RSA", Some(2048)),
        KeyAlgorithm::Rsa4096 => ("RSA", Some(4096)),
        KeyAlgorithm::Rsa8192 => ("RSA", Some(8192)),
    }
}

/// A Go duration as cert-manager reads it, in the largest whole unit: `720h`, `90m`, `25s`.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}
