//! Tidy: the architecture ARCHITECTURE.md describes holds in the tree. The crate arrows of its
//! code map are exactly the manifests' internal dependencies; the layering invariants manifests
//! can show hold (no tokio or serde in `protocol`/`core`, `testkit` only as a dev-dependency, no
//! crates we banned); only `crates/wardgate` uses `anyhow`; every source file keeps within the
//! size budget; and no crate has an import circle between its modules (`tidy/imports.rs`).

mod imports;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use imports::{code_only, words};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// Every file under `dir` (recursively, skipping `target/`) whose name ends with `ext`.
fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    pending.push(path);
                }
            } else if path.to_str().is_some_and(|p| p.ends_with(ext)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .expect("crate directory name")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Crate arrows: the code map's "may depend on" column is exactly what the manifests use.
// ---------------------------------------------------------------------------------------------

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

/// One row of the code map: the internal crates a crate depends on, and whether the crate may
/// only be a dev-dependency of others.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    depends_on: BTreeSet<String>,
    dev_only: bool,
}

/// The code map: crate → its row, read from the table of ARCHITECTURE.md. The last column lists
/// the internal crates exactly ("none" for none); a parenthesis after the list is a remark, and
/// a remark starting with "dev only" marks a crate others use only as a dev-dependency.
fn code_map(doc: &str) -> BTreeMap<String, Row> {
    let mut map = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].split('`').nth(1).unwrap_or_default().to_string();
        let column = cells[cells.len() - 2];
        let (list, remark) = column.split_once('(').unwrap_or((column, ""));
        let list = list.trim();
        let depends_on = if list == "none" {
            BTreeSet::new()
        } else {
            list.split(',').map(|s| s.trim().to_string()).collect()
        };
        let dev_only = remark.starts_with("dev only");
        map.insert(
            name,
            Row {
                depends_on,
                dev_only,
            },
        );
    }
    map
}

fn package_to_crate(dep: &str) -> Option<String> {
    match dep {
        "wardgate" => Some("wardgate".into()),
        d => d.strip_prefix("wardgate-").map(str::to_string),
    }
}

/// What is wrong between one crate's manifest and its row of the code map.
fn arrow_problems(name: &str, manifest: &str, map: &BTreeMap<String, Row>) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(row) = map.get(name) else {
        return vec![format!(
            "crates/{name} is not in ARCHITECTURE.md's code map"
        )];
    };
    let (normal, _) = dependencies(manifest);
    let used: BTreeSet<String> = normal.iter().filter_map(|d| package_to_crate(d)).collect();
    for dep in used.difference(&row.depends_on) {
        problems.push(format!(
            "{name} depends on {dep}, which ARCHITECTURE.md's code map does not list"
        ));
    }
    for dep in row.depends_on.difference(&used) {
        problems.push(format!(
            "ARCHITECTURE.md's code map lets {name} depend on {dep}, but its manifest does not"
        ));
    }
    for dep in &used {
        if map.get(dep).is_some_and(|r| r.dev_only) {
            problems.push(format!(
                "{name} depends on {dep} outside dev-dependencies (dev only)"
            ));
        }
    }
    let mut banned = |crates: &[&str], why: &str| {
        for b in crates {
            if normal.contains(*b) {
                problems.push(format!("{name} depends on {b}: {why}"));
            }
        }
    };
    if name == "protocol" || name == "core" {
        banned(
            &["tokio", "tokio-util", "serde", "serde_json"],
            "protocol and core do no I/O and no serialization",
        );
    }
    if name != "wardgate" {
        banned(&["anyhow"], "only the binary crate uses anyhow");
    }
    banned(
        &["serde_yaml", "serde_yml", "rustls-pemfile", "ring"],
        "banned (deny.toml)",
    );
    problems
}

#[test]
fn crate_dependencies_are_the_code_maps_arrows() {
    let root = repo_root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let map = code_map(&doc);
    assert!(map.len() >= 5, "ARCHITECTURE.md code map not found");
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for dir in crate_dirs(&root) {
        let name = dir_name(&dir);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        problems.extend(arrow_problems(&name, &manifest, &map));
        seen.insert(name);
    }
    for name in map.keys().filter(|n| !seen.contains(*n)) {
        problems.push(format!(
            "ARCHITECTURE.md's code map lists {name}, which crates/ lacks"
        ));
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

#[test]
fn an_arrow_nobody_uses_and_an_unlisted_one_both_fail() {
    let map = code_map(
        "| crate | owns | may depend on |\n|---|---|---|\n\
         | `protocol` | codec | none (no tokio) |\n\
         | `core` | broker | protocol |\n\
         | `server` | runtime | protocol, core |\n\
         | `testkit` | support | protocol (dev only) |\n",
    );
    assert_eq!(map["protocol"].depends_on, BTreeSet::new());
    assert!(map["testkit"].dev_only && !map["core"].dev_only);
    let manifest = |deps: &str| format!("[package]\nname = \"x\"\n[dependencies]\n{deps}");
    let exact = manifest("wardgate-protocol.workspace = true\nwardgate-core.workspace = true\n");
    assert!(arrow_problems("server", &exact, &map).is_empty());
    let unused = arrow_problems(
        "server",
        &manifest("wardgate-core.workspace = true\n"),
        &map,
    );
    assert_eq!(
        unused,
        ["ARCHITECTURE.md's code map lets server depend on protocol, but its manifest does not"]
    );
    let unlisted =
        manifest("wardgate-protocol.workspace = true\nwardgate-server.workspace = true\n");
    assert_eq!(
        arrow_problems("core", &unlisted, &map),
        ["core depends on server, which ARCHITECTURE.md's code map does not list"]
    );
    let testkit = manifest(
        "wardgate-protocol.workspace = true\nwardgate-core.workspace = true\nwardgate-testkit.workspace = true\nanyhow = \"1\"\n",
    );
    assert_eq!(
        arrow_problems("server", &testkit, &map),
        [
            "server depends on testkit, which ARCHITECTURE.md's code map does not list",
            "server depends on testkit outside dev-dependencies (dev only)",
            "server depends on anyhow: only the binary crate uses anyhow",
        ]
    );
    assert_eq!(
        arrow_problems("store", &exact, &map),
        ["crates/store is not in ARCHITECTURE.md's code map"]
    );
}

// ---------------------------------------------------------------------------------------------
// File-size budget.
// ---------------------------------------------------------------------------------------------

/// The most lines a `.rs` file may have (STYLE.md: split a file by flow before it grows past).
const LINE_BUDGET: usize = 1_000;

/// Files over the budget while someone splits them. Each must still be over: a file that
/// shrank comes off the list, so the list never hides a new one.
const OVER_BUDGET: &[&str] = &[];

/// What is wrong with `files` (path relative to the root, lines) under the budget and the
/// allowance.
fn budget_problems(files: &[(String, usize)], allowed: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, lines) in files {
        let listed = allowed.contains(&path.as_str());
        if *lines > LINE_BUDGET && !listed {
            problems.push(format!(
                "{path} has {lines} lines, over the budget of {LINE_BUDGET}: split it by flow"
            ));
        }
        if *lines <= LINE_BUDGET && listed {
            problems.push(format!(
                "{path} has {lines} lines, within the budget: take it off OVER_BUDGET"
            ));
        }
    }
    for listed in allowed {
        if !files.iter().any(|(path, _)| path == listed) {
            problems.push(format!("{listed} is on OVER_BUDGET but does not exist"));
        }
    }
    problems
}

#[test]
fn every_source_file_keeps_within_the_line_budget() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in ["crates", "fuzz"] {
        for path in files_with_extension(&root.join(dir), ".rs") {
            let text = std::fs::read_to_string(&path).expect("source file");
            files.push((relative(&root, &path), text.lines().count()));
        }
    }
    assert!(
        files.len() > 50,
        "no sources found under {}",
        root.display()
    );
    let problems = budget_problems(&files, OVER_BUDGET);
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

#[test]
fn the_budget_fails_a_long_file_and_a_stale_allowance() {
    let files = [
        ("a.rs".to_string(), 1_000),
        ("b.rs".to_string(), 1_001),
        ("c.rs".to_string(), 1_200),
        ("d.rs".to_string(), 999),
    ];
    assert!(budget_problems(&files, &["b.rs", "c.rs"]).is_empty());
    assert_eq!(
        budget_problems(&files, &["c.rs", "d.rs", "gone.rs"]),
        [
            "b.rs has 1001 lines, over the budget of 1000: split it by flow",
            "d.rs has 999 lines, within the budget: take it off OVER_BUDGET",
            "gone.rs is on OVER_BUDGET but does not exist",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// `anyhow` is the binary's: no source outside crates/wardgate names it.
// ---------------------------------------------------------------------------------------------

/// The lines of `text` whose code (comments and literals aside) names `anyhow`.
fn lines_naming_anyhow(text: &str) -> Vec<usize> {
    code_only(text)
        .lines()
        .enumerate()
        .filter(|(_, line)| words(line).any(|w| w == "anyhow"))
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn only_the_binary_crate_uses_anyhow() {
    let root = repo_root();
    let mut problems = Vec::new();
    let mut sources = files_with_extension(&root.join("fuzz"), ".rs");
    for dir in crate_dirs(&root)
        .into_iter()
        .filter(|d| dir_name(d) != "wardgate")
    {
        sources.extend(files_with_extension(&dir, ".rs"));
    }
    for path in sources {
        let text = std::fs::read_to_string(&path).expect("source file");
        for line in lines_naming_anyhow(&text) {
            problems.push(format!(
                "{}:{line} uses anyhow, which only crates/wardgate may",
                relative(&root, &path)
            ));
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

#[test]
fn anyhow_is_found_in_code_not_in_comments_or_strings() {
    let text = "// anyhow is for binaries\nuse std::io;\nfn f() -> anyhow::Result<()> {\n    let s = \"anyhow\";\n    Ok(())\n}\n";
    assert_eq!(lines_naming_anyhow(text), [3]);
}
