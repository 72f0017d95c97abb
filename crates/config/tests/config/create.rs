//! `wardgate create secret tls` and `wardgate create configmap` against `kubectl create …
//! --dry-run=client -o yaml`. The inputs in `fixtures/create/` are a throw-away self-signed EC
//! certificate and key (test data only), text files with and without trailing newlines, a file
//! that starts with spaces, one with a tab, and a binary file.
//!
//! These tests need `kubectl` on the PATH (`scripts/test` installs Debian's `kubernetes-client`);
//! without it they fail rather than skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::fixtures;
use wardgate_config::create::{self, CreateError};
use wardgate_config::load_str;

fn input(name: &str) -> PathBuf {
    fixtures().join("create").join(name)
}

fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .args(["--dry-run=client", "-o", "yaml"])
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap_or_else(|e| {
            panic!("kubectl is required for this test (install Debian's kubernetes-client): {e}")
        });
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn secret_tls_is_byte_identical_to_kubectl() {
    let (crt, key) = (input("server.crt"), input("server.key"));
    let ours = create::secret_tls_from_files("broker-server-cert", None, &crt, &key).unwrap();
    let theirs = kubectl(&[
        "create",
        "secret",
        "tls",
        "broker-server-cert",
        "--cert",
        s(&crt),
        "--key",
        s(&key),
    ]);
    assert_eq!(ours, theirs);

    let ours =
        create::secret_tls_from_files("x", Some("azure-iot-operations"), &crt, &key).unwrap();
    let theirs = kubectl(&[
        "create",
        "secret",
        "tls",
        "x",
        "-n",
        "azure-iot-operations",
        "--cert",
        s(&crt),
        "--key",
        s(&key),
    ]);
    assert_eq!(ours, theirs);
}

#[test]
fn configmap_is_byte_identical_to_kubectl() {
    let specs = [
        format!("client_ca.pem={}", s(&input("server.crt"))),
        s(&input("notes.txt")).to_owned(),
        s(&input("oneline.txt")).to_owned(),
        s(&input("trailing.txt")).to_owned(),
        s(&input("indented.txt")).to_owned(),
        s(&input("blob.bin")).to_owned(),
    ];
    let ours = create::config_map_from_files("clients42-ca", None, &specs).unwrap();
    let mut args = vec!["create", "configmap", "clients42-ca"];
    let flags: Vec<String> = specs.iter().map(|s| format!("--from-file={s}")).collect();
    args.extend(flags.iter().map(String::as_str));
    assert_eq!(ours, kubectl(&args));
}

#[test]
fn configmap_from_a_folder_matches_kubectl_after_parsing() {
    let dir = fixtures().join("create");
    let ours = create::config_map_from_files("all", Some("ns"), &[s(&dir).to_owned()]).unwrap();
    let theirs = kubectl(&[
        "create",
        "configmap",
        "all",
        "-n",
        "ns",
        &format!("--from-file={}", s(&dir)),
    ]);
    // The tab file is double-quoted by both; kubectl may fold long quoted lines, so compare the
    // loaded resources, which is what matters to Wardgate.
    let a = load_str("ours.yaml", &ours).unwrap().model.config_maps;
    let b = load_str("kubectl.yaml", &theirs).unwrap().model.config_maps;
    assert_eq!(a, b);
    assert_eq!(a["all"].get("tabs.txt"), Some(&b"key\tvalue\n"[..]));
    assert_eq!(a["all"].get("blob.bin"), Some(&[0u8, 1, 0xfe, 0xff][..]));
}

#[test]
fn wardgate_loads_kubectl_output_as_it_loads_its_own() {
    let (crt, key) = (input("server.crt"), input("server.key"));
    let theirs = kubectl(&[
        "create",
        "secret",
        "tls",
        "server-cert-secret",
        "--cert",
        s(&crt),
        "--key",
        s(&key),
    ]);
    let ours = create::secret_tls_from_files("server-cert-secret", None, &crt, &key).unwrap();
    let a = load_str("kubectl.yaml", &theirs).unwrap().model.secrets;
    let b = load_str("ours.yaml", &ours).unwrap().model.secrets;
    assert_eq!(a, b);
    assert_eq!(a["server-cert-secret"].type_, "kubernetes.io/tls");
    assert_eq!(
        a["server-cert-secret"].get("tls.crt"),
        Some(std::fs::read(&crt).unwrap().as_slice())
    );
}

#[test]
fn create_errors() {
    let crt = input("server.crt");
    let notes = input("notes.txt");
    assert!(matches!(
        create::secret_tls_from_files("x", None, &notes, &crt),
        Err(CreateError::NotACertificate { .. })
    ));
    assert!(matches!(
        create::secret_tls_from_files("x", None, &crt, &notes),
        Err(CreateError::NotAKey { .. })
    ));
    assert!(matches!(
        create::secret_tls_from_files("Bad_Name", None, &crt, &input("server.key")),
        Err(CreateError::InvalidName { .. })
    ));
    let dup = [s(&notes).to_owned(), s(&notes).to_owned()];
    assert_eq!(
        create::config_map_from_files("x", None, &dup)
            .unwrap_err()
            .to_string(),
        "cannot add key \"notes.txt\", another key by that name already exists in ConfigMap \"x\""
    );
    let missing = ["nope/missing.pem".to_owned()];
    assert!(matches!(
        create::config_map_from_files("x", None, &missing),
        Err(CreateError::Read { .. })
    ));
    let bad_key = [format!("a/b={}", s(&notes))];
    assert!(matches!(
        create::config_map_from_files("x", None, &bad_key),
        Err(CreateError::InvalidKey { .. })
    ));
}
