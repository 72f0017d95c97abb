//! Loading files and folders: multi-document YAML, repeated `--config` paths, Kubernetes-style
//! mounts, Lists, and bad input (malformed YAML, huge files, symlink loops, unrelated files).

use std::fs;
use std::path::{Path, PathBuf};

use wardgate_config::{Model, load};

const LB: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: lb
spec:
  serviceType: LoadBalancer
  ports:
  - port: 1883
";

const NP: &str = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: np
spec:
  serviceType: NodePort
  ports:
  - port: 1884
    nodePort: 31884
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p
}

fn names(m: &Model) -> Vec<&str> {
    m.listeners.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn a_folder_contributes_its_yaml_files_only() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", LB);
    write(dir.path(), "b.yml", NP);
    write(dir.path(), "README.md", "# not config: kind: Nope\n");
    write(dir.path(), "notes.txt", "kind: Nope\n");
    write(dir.path(), ".hidden.yaml", "kind: Nope\n");
    fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    let loaded = load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(names(&loaded.model), ["default", "lb", "np"]);
    assert_eq!(
        loaded.files,
        [dir.path().join("a.yaml"), dir.path().join("b.yml")]
    );
}

#[test]
fn an_empty_folder_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(loaded.model, Model::defaults());
    assert_eq!(
        loaded.warnings[0].to_string(),
        format!(
            "{}: contains no *.yaml or *.yml files",
            dir.path().display()
        )
    );
}

#[test]
fn no_paths_give_the_defaults() {
    assert_eq!(load(&[]).unwrap().model, Model::defaults());
}

#[test]
fn repeated_paths_and_explicit_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", LB);
    let other = tempfile::tempdir().unwrap();
    // A file given explicitly is read whatever its extension.
    let b = write(other.path(), "np.conf", NP);
    let loaded = load(&[dir.path().to_path_buf(), a.clone(), b.clone()]).unwrap();
    assert_eq!(names(&loaded.model), ["default", "lb", "np"]);
    // `a.yaml` was named twice and read once.
    assert_eq!(loaded.files, [a, b]);
}

#[test]
fn multi_document_files_number_their_documents() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "---\n{LB}---\n# only a comment\n---\n{}",
        NP.replace("31884", "40000")
    );
    let f = write(dir.path(), "all.yaml", &text);
    let e = load(std::slice::from_ref(&f)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:21: document 2: BrokerListener/np: spec.ports[0].nodePort 40000 is out of range 30000–32767",
            f.display()
        )
    );
}

#[test]
fn the_same_resource_in_two_files_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", LB);
    let b = write(dir.path(), "b.yaml", LB);
    let e = load(&[dir.path().to_path_buf()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:4: BrokerListener/lb: metadata.name \"lb\" is already defined in {}:1",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn a_kubectl_list_is_read_item_by_item() {
    let text = "apiVersion: v1
kind: List
items:
- apiVersion: mqttbroker.iotoperations.azure.com/v1
  kind: BrokerListener
  metadata:
    name: lb
  spec:
    serviceType: LoadBalancer
    ports:
    - port: 1883
- apiVersion: mqttbroker.iotoperations.azure.com/v1
  kind: BrokerListener
  metadata:
    name: np
  spec:
    serviceType: NodePort
    ports:
    - port: 1884
      nodePrt: 31884
";
    let e = wardgate_config::load_str("list.yaml", text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "list.yaml:20: BrokerListener/np: items[1].spec.ports[0].nodePrt is not a known field (expected one of: port, nodePort, protocol, authenticationRef, authorizationRef, tls)"
    );
    let fixed = text.replace("nodePrt", "nodePort");
    let m = wardgate_config::load_str("list.yaml", &fixed)
        .unwrap()
        .model;
    assert_eq!(names(&m), ["default", "lb", "np"]);
}

#[test]
fn malformed_yaml_names_the_line() {
    let e = wardgate_config::load_str("bad.yaml", "kind: BrokerListener\nspec:\n  ports: [1, 2\n")
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("bad.yaml:3: invalid YAML: "), "{msg}");

    let e = wardgate_config::load_str("tabs.yaml", "a:\n\tb: 1\n").unwrap_err();
    assert!(
        e.to_string().starts_with("tabs.yaml:2: invalid YAML: "),
        "{e}"
    );

    let e = wardgate_config::load_str("dup.yaml", "kind: Secret\nkind: Secret\n").unwrap_err();
    assert!(
        e.to_string().starts_with("dup.yaml:2: invalid YAML: "),
        "{e}"
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text = "apiVersion: v1
kind: ConfigMap
metadata:
  name: c
data:
  a: [1, 2]
";
    assert_eq!(
        wardgate_config::load_str("t.yaml", text)
            .unwrap_err()
            .to_string(),
        "t.yaml:6: ConfigMap/c: data.a must be a string, found a list"
    );
    let text = "apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: lb}
spec:
  serviceType: LoadBalancer
  ports: {port: 1883}
";
    assert_eq!(
        wardgate_config::load_str("t.yaml", text)
            .unwrap_err()
            .to_string(),
        "t.yaml:6: BrokerListener/lb: spec.ports must be a sequence, found a mapping"
    );
}

#[test]
fn a_huge_file_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    fs::write(&f, line.repeat(10 * 1024 * 1024 / line.len() + 1)).unwrap();
    let e = load(std::slice::from_ref(&f)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: is larger than 4 MiB, the limit for a configuration file",
            f.display()
        )
    );
}

#[test]
fn binary_files_and_missing_paths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bin.yaml");
    fs::write(&f, [0x61, 0x3a, 0x20, 0xff, 0xfe]).unwrap();
    let e = load(std::slice::from_ref(&f)).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: is not UTF-8 text (invalid byte at offset 3)",
            f.display()
        )
    );
    let missing = dir.path().join("nope");
    let e = load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot be read: ", missing.display())),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_errors_not_hangs() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", LB);
    symlink(dir.path().join("loop1.yaml"), dir.path().join("loop2.yaml")).unwrap();
    symlink(dir.path().join("loop2.yaml"), dir.path().join("loop1.yaml")).unwrap();
    // A folder that links to itself is not descended into.
    symlink(dir.path(), dir.path().join("self")).unwrap();
    let e = load(&[dir.path().to_path_buf()]).unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, name) in lines.iter().zip(["loop1.yaml", "loop2.yaml"]) {
        assert!(
            line.starts_with(&format!(
                "{}: cannot be read: ",
                dir.path().join(name).display()
            )),
            "{line}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_kubernetes_configmap_mount_is_read_once() {
    use std::os::unix::fs::symlink;
    // The layout kubelet writes: files are symlinks into `..data`, itself a symlink to a
    // timestamped folder.
    let dir = tempfile::tempdir().unwrap();
    let stamp = dir.path().join("..2026_01_01_00_00_00.000000001");
    fs::create_dir(&stamp).unwrap();
    write(&stamp, "listeners.yaml", LB);
    symlink("..2026_01_01_00_00_00.000000001", dir.path().join("..data")).unwrap();
    symlink("..data/listeners.yaml", dir.path().join("listeners.yaml")).unwrap();
    let loaded = load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(names(&loaded.model), ["default", "lb"]);
    assert_eq!(loaded.files, [dir.path().join("listeners.yaml")]);
}
