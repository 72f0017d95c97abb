//! Tidy: the crate dependency arrows of ARCHITECTURE.md's code map hold in the Cargo manifests,
//! and the layering invariants that manifests can show (no tokio or serde in `protocol`/`core`,
//! `anyhow` only in binaries, `testkit` only as a dev-dependency, no `ring`-only crates we banned).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The `[dependencies]` (normal) and `[dev-dependencies]` names of a manifest.
fn dependencies(manifest: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut normal, mut dev) = (BTreeSet::new(), BTreeSet::new());
    let mut section = String::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let Some((name, _)) = line.split_once(['=', '.']) else {
            continue;
        };
        let name = name.trim().to_string();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        match section.as_str() {
            "dependencies" => {
                normal.insert(name);
            }
            "dev-dependencies" => {
                dev.insert(name);
            }
            _ => {}
        }
    }
    (normal, dev)
}

/// The code map: crate → internal crates it may depend on, read from ARCHITECTURE.md.
fn code_map(root: &Path) -> BTreeMap<String, Option<BTreeSet<String>>> {
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut map = BTreeMap::new();
    let mut seen = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].split('`').nth(1).unwrap_or_default().to_string();
        let allowed_text = cells[cells.len() - 2];
        let allowed = if allowed_text.starts_with("(dev only)") {
            None
        } else if allowed_text.starts_with("all above") {
            Some(seen.iter().cloned().collect())
        } else if allowed_text.starts_with("none") {
            Some(BTreeSet::new())
        } else {
            Some(
                allowed_text
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect(),
            )
        };
        seen.push(name.clone());
        map.insert(name, allowed);
    }
    assert!(map.len() >= 5, "ARCHITECTURE.md code map not found");
    map
}

fn package_to_crate(dep: &str) -> Option<String> {
    match dep {
        "wardgate" => Some("wardgate".into()),
        d => d.strip_prefix("wardgate-").map(str::to_string),
    }
}

#[test]
fn crate_dependencies_follow_the_code_map() {
    let root = repo_root();
    let map = code_map(&root);
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let dir = entry.expect("entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let (normal, dev) = dependencies(&manifest);
        let Some(allowed) = map.get(&name) else {
            problems.push(format!(
                "crates/{name} is not in ARCHITECTURE.md's code map"
            ));
            continue;
        };
        for dep in normal.iter().filter_map(|d| package_to_crate(d)) {
            if dep == "testkit" {
                problems.push(format!(
                    "{name} depends on testkit outside dev-dependencies"
                ));
            }
            if let Some(allowed) = allowed
                && !allowed.contains(&dep)
            {
                problems.push(format!(
                    "{name} depends on {dep}, which ARCHITECTURE.md does not allow"
                ));
            }
        }
        let external = |banned: &[&str], why: &str, problems: &mut Vec<String>| {
            for b in banned {
                if normal.contains(*b) {
                    problems.push(format!("{name} depends on {b}: {why}"));
                }
            }
        };
        if name == "protocol" || name == "core" {
            external(
                &["tokio", "tokio-util", "serde", "serde_json"],
                "protocol and core do no I/O and no serialization",
                &mut problems,
            );
        }
        if name != "wardgate" && name != "bench" {
            external(&["anyhow"], "only the binaries use anyhow", &mut problems);
        }
        external(
            &["serde_yaml", "serde_yml", "rustls-pemfile", "ring"],
            "banned (deny.toml)",
            &mut problems,
        );
        let _ = dev;
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

#[test]
fn the_dependency_parser_reads_sections() {
    let (normal, dev) = dependencies(
        "[package]\nname = \"x\"\n[dependencies]\nfoo.workspace = true\nbar = { version = \"1\" }\n[dev-dependencies]\nbaz = \"1\"\n",
    );
    assert_eq!(normal.into_iter().collect::<Vec<_>>(), vec!["bar", "foo"]);
    assert_eq!(dev.into_iter().collect::<Vec<_>>(), vec!["baz"]);
}
