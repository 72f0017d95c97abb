//! Import circles: within a crate, an edge goes from module A to module B when a file of A names
//! `crate::B…` or `super::…B…` in a `use` or a path (resolved to the module that defines the
//! item); edges to an ancestor are left out (a module is part of it), and the rest must form no
//! cycle. A line scanner reads every `src/**/*.rs` a crate root reaches through `mod name;`,
//! leaving out comments, literals and `#[cfg(test)]` items.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{crate_dirs, dir_name, files_with_extension, relative, repo_root};

/// The import circles of today, as `import_cycles` prints them (the crate, then the walk). The
/// list must match exactly: a circle that is gone comes off it, and no new one goes on.
const KNOWN_CYCLES: &[&str] = &[];

/// The words of `line`: runs of identifier characters.
pub(crate) fn words(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| !is_ident(c)).filter(|w| !w.is_empty())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `text` with comments and the insides of string and character literals blanked, newlines
/// kept (so line numbers hold), for scans that must see only code.
pub(crate) fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], at(i + 1));
        let before = if i == 0 { ' ' } else { chars[i - 1] };
        let end = if c == '/' && next == '/' {
            (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len())
        } else if c == '/' && next == '*' {
            block_comment_end(&chars, i)
        } else if c == '"' {
            string_end(&chars, i + 1, 0)
        } else if c == 'r' && !is_ident(before) && (next == '"' || next == '#') {
            let hashes = (i + 1..chars.len())
                .take_while(|&j| chars[j] == '#')
                .count();
            if at(i + 1 + hashes) == '"' {
                string_end(&chars, i + 2 + hashes, hashes)
            } else {
                i + 1 // a raw identifier
            }
        } else if c == '\'' && next == '\\' {
            (i + 2..chars.len())
                .find(|&j| chars[j] == '\'')
                .map_or(chars.len(), |j| j + 1)
        } else if c == '\'' && at(i + 2) == '\'' {
            i + 3
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        let end = end.max(i + 1);
        out.extend(chars[i..end.min(chars.len())].iter().map(|&c| blank(c)));
        i = end;
    }
    out
}

/// The index after the `*/` closing the (possibly nested) block comment opened at `start`.
fn block_comment_end(chars: &[char], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// The index after the closing quote of a string whose body starts at `body`; `hashes` is the
/// count of a raw string's `#`s (raw strings have no escapes).
fn string_end(chars: &[char], body: usize, hashes: usize) -> usize {
    let raw = hashes > 0 || (body >= 2 && chars[body - 2] == 'r');
    let mut i = body;
    while i < chars.len() {
        match chars[i] {
            '\\' if !raw => i += 2,
            '"' if chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes =>
            {
                return i + 1 + hashes;
            }
            _ => i += 1,
        }
    }
    chars.len()
}

/// Blanks every item under `#[cfg(test)]` in code-only text (newlines kept) and returns the
/// names of the file modules it declared (`#[cfg(test)] mod tests;`), which are not scanned.
fn drop_test_items(code: &mut String) -> BTreeSet<String> {
    const ATTR: &str = "#[cfg(test)]";
    let mut test_modules = BTreeSet::new();
    while let Some(start) = code.find(ATTR) {
        let bytes = code.as_bytes();
        let mut i = start + ATTR.len();
        let mut depth = 0i32; // of (), [] and {}
        let mut end = bytes.len();
        while i < bytes.len() {
            match bytes[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth -= 1,
                b'{' => depth += 1,
                b'}' if depth == 0 => {
                    end = i;
                    break;
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                b';' | b',' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let item: Vec<&str> = words(&code[start + ATTR.len()..end]).collect();
        if let Some(at) = item.iter().position(|w| *w == "mod")
            && code[..end].ends_with(';')
            && let Some(name) = item.get(at + 1)
        {
            test_modules.insert(name.to_string());
        }
        let blanked: String = code[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        code.replace_range(start..end, &blanked);
    }
    test_modules
}

/// A path a file names, as written (`crate::a::B`, `super::super::c`, `d::e` in a `use`), with
/// the line it is on and, for a `use`, the name it brings into scope (`None` for a glob).
#[derive(Debug, Clone)]
struct Named {
    path: Vec<String>,
    line: usize,
    alias: Option<String>,
    in_use: bool,
}

/// The index of the first character of every whole word `word` in `code`.
fn word_starts<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        let before = code[..i].chars().next_back().unwrap_or(' ');
        let after = code[i + word.len()..].chars().next().unwrap_or(' ');
        !is_ident(before) && before != ':' && before != '$' && !is_ident(after)
    })
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].matches('\n').count() + 1
}

/// Every `use` leaf and every other `crate::…`/`super::…` path of one file's code (test items
/// already dropped).
fn named_paths(code: &str) -> Vec<Named> {
    let mut named = Vec::new();
    let mut rest = code.to_string();
    for start in word_starts(code, "use").collect::<Vec<_>>() {
        let Some(len) = code[start..].find(';') else {
            continue;
        };
        let tokens = tokens(code, start + 3, start + len);
        let mut at = 0;
        use_tree(&tokens, &mut at, &[], code, &mut named);
        rest.replace_range(start..start + len, &" ".repeat(len));
    }
    for head in ["crate", "super"] {
        for start in word_starts(&rest, head) {
            if !rest[start + head.len()..].starts_with("::") || rest[..start].ends_with("in ") {
                continue;
            }
            let tokens = tokens(&rest, start, rest.len());
            let mut path = Vec::new();
            for pair in tokens.chunks(2) {
                match pair {
                    [(_, word), (_, sep)] if is_word(word) && sep == "::" => {
                        path.push(word.clone())
                    }
                    [(_, word), ..] if is_word(word) => {
                        path.push(word.clone());
                        break;
                    }
                    _ => break,
                }
            }
            named.push(Named {
                path,
                line: line_of(&rest, start),
                alias: None,
                in_use: false,
            });
        }
    }
    named
}

fn is_word(token: &str) -> bool {
    token.chars().all(is_ident)
}

/// The tokens of `code[from..to]` that paths are made of: words, `::`, `{`, `}`, `,`, `*`; the
/// first other character ends the list. Each with its offset.
fn tokens(code: &str, from: usize, to: usize) -> Vec<(usize, String)> {
    let mut tokens = Vec::new();
    let mut i = from;
    let bytes = code.as_bytes();
    while i < to {
        let c = bytes[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if code[i..].starts_with("::") {
            tokens.push((i, "::".into()));
            i += 2;
        } else if matches!(c, '{' | '}' | ',' | '*') {
            tokens.push((i, c.to_string()));
            i += 1;
        } else if is_ident(c) || code[i..].starts_with("r#") {
            let start = i;
            i += if c == 'r' && code[i..].starts_with("r#") {
                2
            } else {
                0
            };
            let len = code[i..to].find(|c: char| !is_ident(c)).unwrap_or(to - i);
            tokens.push((start, code[i..i + len].to_string()));
            i += len;
        } else {
            break;
        }
    }
    tokens
}

/// Reads one use tree at `tokens[*at..]` under `prefix`, pushing its leaves.
fn use_tree(
    tokens: &[(usize, String)],
    at: &mut usize,
    prefix: &[String],
    code: &str,
    named: &mut Vec<Named>,
) {
    let mut path = prefix.to_vec();
    while let Some((offset, token)) = tokens.get(*at) {
        *at += 1;
        match token.as_str() {
            "{" => {
                while tokens.get(*at).is_some_and(|(_, t)| t != "}") {
                    use_tree(tokens, at, &path, code, named);
                    if tokens.get(*at).is_some_and(|(_, t)| t == ",") {
                        *at += 1;
                    }
                }
                *at += 1;
                return;
            }
            "*" => {
                named.push(Named {
                    path,
                    line: line_of(code, *offset),
                    alias: None,
                    in_use: true,
                });
                return;
            }
            "::" => {}
            word => {
                path.push(word.to_string());
                let next = tokens.get(*at).map(|(_, t)| t.as_str());
                if next == Some("as") || next != Some("::") {
                    let alias = if next == Some("as") {
                        *at += 2;
                        tokens
                            .get(*at - 1)
                            .map(|(_, t)| t.clone())
                            .unwrap_or_default()
                    } else if word == "self" {
                        path.iter().rev().nth(1).cloned().unwrap_or_default()
                    } else {
                        word.to_string()
                    };
                    if word == "self" {
                        path.pop();
                    }
                    named.push(Named {
                        path,
                        line: line_of(code, *offset),
                        alias: Some(alias),
                        in_use: true,
                    });
                    return;
                }
            }
        }
    }
}

/// One module of a crate: the file that holds it, and what its code names.
#[derive(Debug, Default)]
struct Module {
    file: String,
    named: Vec<Named>,
}

/// A crate's modules by path (`[]` is the root), read from its root file through its
/// `mod name;` declarations; `#[cfg(test)]` modules are left out. `files` maps a path relative
/// to `src/` to the file's text.
fn modules(files: &BTreeMap<String, String>, root_file: &str) -> BTreeMap<Vec<String>, Module> {
    let mut modules = BTreeMap::new();
    let mut pending = vec![(Vec::<String>::new(), root_file.to_string())];
    while let Some((path, file)) = pending.pop() {
        let Some(text) = files.get(&file) else {
            continue;
        };
        let mut code = code_only(text);
        let test_modules = drop_test_items(&mut code);
        // Children of `a.rs` and `a/mod.rs` live in `a/`; of the root, beside it.
        let dir = match file.rsplit_once('/') {
            _ if path.is_empty() => file
                .rsplit_once('/')
                .map_or(String::new(), |(d, _)| d.into()),
            Some((d, "mod.rs")) => d.to_string(),
            _ => file.trim_end_matches(".rs").to_string(),
        };
        for start in word_starts(&code, "mod") {
            let tokens = tokens(&code, start + 3, code.len());
            let Some((_, name)) = tokens.first() else {
                continue;
            };
            let declared = match (code[start..].find(';'), code[start..].find('{')) {
                (Some(semicolon), Some(brace)) => semicolon < brace,
                (semicolon, _) => semicolon.is_some(),
            };
            if !declared || test_modules.contains(name) || !is_word(name) {
                continue;
            }
            let base = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let child = [format!("{base}.rs"), format!("{base}/mod.rs")]
                .into_iter()
                .find(|f| files.contains_key(f));
            if let Some(child) = child {
                let mut child_path = path.clone();
                child_path.push(name.clone());
                pending.push((child_path, child));
            }
        }
        let named = named_paths(&code);
        modules.insert(path, Module { file, named });
    }
    modules
}

/// The module that defines what `path` names from inside module `from`, following the
/// re-exports and imports of the modules on the way; `None` for what lies outside the crate.
fn resolve(
    modules: &BTreeMap<Vec<String>, Module>,
    from: &[String],
    path: &[String],
    hops: usize,
) -> Option<Vec<String>> {
    let mut module: Vec<String> = from.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            module.clear();
            rest = &rest[1..];
        }
        Some("self" | "super") => {}
        Some(first) => {
            let mut child = module.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None; // another crate
            }
        }
        None => return None,
    }
    while let Some(step) = rest.first() {
        match step.as_str() {
            "self" => {}
            "super" => {
                module.pop()?;
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    while let Some(step) = rest.first() {
        module.push(step.clone());
        if !modules.contains_key(&module) {
            module.pop();
            break;
        }
        rest = &rest[1..];
    }
    let Some(item) = rest.first() else {
        return Some(module);
    };
    let imported = modules[&module]
        .named
        .iter()
        .find(|n| n.in_use && n.alias.as_ref() == Some(item));
    match imported {
        Some(import) if hops < 8 => {
            let mut through = import.path.clone();
            through.extend_from_slice(&rest[1..]);
            resolve(modules, &module, &through, hops + 1)
        }
        _ => Some(module),
    }
}

/// An edge of the import graph: module `from` names something defined in module `to`.
type Edge = (Vec<String>, Vec<String>);

/// Where each edge is made: `file:line`s.
type Evidence = BTreeMap<Edge, Vec<String>>;

/// The edges between sibling modules that circles are made of. An edge from `a::x` to `b::y`
/// is drawn between the children of their closest common ancestor (`a -> b`, cousins count);
/// edges to an ancestor (a module is part of it) or to a descendant are left out.
fn sibling_edges(modules: &BTreeMap<Vec<String>, Module>) -> Evidence {
    let mut edges = Evidence::new();
    for (from, module) in modules {
        for named in &module.named {
            let Some(to) = resolve(modules, from, &named.path, 0) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue;
            }
            let edge = (from[..=common].to_vec(), to[..=common].to_vec());
            let place = format!("{}:{}", module.file, named.line);
            let places = edges.entry(edge).or_default();
            if !places.contains(&place) {
                places.push(place);
            }
        }
    }
    edges
}

/// The strongly connected components of more than one module, each as a sorted list.
fn components(edges: &Evidence) -> Vec<Vec<Vec<String>>> {
    let mut next: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    let reaches = |start: &Vec<String>| -> BTreeSet<Vec<String>> {
        let mut seen = BTreeSet::from([start.clone()]);
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(node) = queue.pop_front() {
            for to in &next[&node] {
                if seen.insert((*to).clone()) {
                    queue.push_back((*to).clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        next.keys().map(|n| (*n, reaches(n))).collect();
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in next.keys() {
        if done.contains(*node) {
            continue;
        }
        let component: Vec<Vec<String>> = reach[node]
            .iter()
            .filter(|other| reach[other].contains(*node))
            .cloned()
            .collect();
        done.extend(component.iter().cloned());
        if component.len() > 1 {
            found.push(component);
        }
    }
    found
}

/// A closed walk through every module of `component`: from its first module, always on to the
/// nearest one not yet visited, then back.
fn walk(component: &[Vec<String>], edges: &Evidence) -> Vec<Vec<String>> {
    let members: BTreeSet<&Vec<String>> = component.iter().collect();
    let shortest = |from: &Vec<String>, goal: &dyn Fn(&Vec<String>) -> bool| {
        let mut back: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        let mut queue = VecDeque::from([from.clone()]);
        while let Some(node) = queue.pop_front() {
            if &node != from && goal(&node) {
                let mut path = vec![node.clone()];
                while let Some(prev) = back.get(path.last().expect("path")) {
                    path.push(prev.clone());
                }
                path.pop();
                path.reverse();
                return path;
            }
            for (_, to) in edges
                .keys()
                .filter(|(f, t)| *f == node && members.contains(t))
            {
                if to != from && !back.contains_key(to) {
                    back.insert(to.clone(), node.clone());
                    queue.push_back(to.clone());
                }
            }
        }
        Vec::new()
    };
    let start = &component[0];
    let mut visited = BTreeSet::from([start.clone()]);
    let mut route = vec![start.clone()];
    while visited.len() < component.len() {
        let here = route.last().expect("route").clone();
        let leg = shortest(&here, &|n| !visited.contains(n));
        if leg.is_empty() {
            break;
        }
        visited.extend(leg.iter().cloned());
        route.extend(leg);
    }
    let here = route.last().expect("route").clone();
    route.extend(shortest(&here, &|n| n == start));
    route
}

/// The import circles of one crate: per circle, the line KNOWN_CYCLES holds
/// (`crate: a -> b -> a`) and the places that make each of its edges.
fn import_cycles(
    label: &str,
    files: &BTreeMap<String, String>,
    root_file: &str,
    src: &str,
) -> Vec<(String, Vec<String>)> {
    let modules = modules(files, root_file);
    let edges = sibling_edges(&modules);
    let name = |m: &Vec<String>| m.join("::");
    components(&edges)
        .iter()
        .map(|component| {
            let route = walk(component, &edges);
            let names: Vec<String> = route.iter().map(name).collect();
            let places = route
                .windows(2)
                .map(|pair| {
                    let edge = (pair[0].clone(), pair[1].clone());
                    let at: Vec<String> =
                        edges[&edge].iter().map(|p| format!("{src}{p}")).collect();
                    let at = at.join(", ");
                    format!("  {} -> {}: {at}", name(&pair[0]), name(&pair[1]))
                })
                .collect();
            (format!("{label}: {}", names.join(" -> ")), places)
        })
        .collect()
}

#[test]
fn no_crate_has_an_import_circle() {
    let root = repo_root();
    let mut found = Vec::new();
    for dir in crate_dirs(&root) {
        let src = dir.join("src");
        let files: BTreeMap<String, String> = files_with_extension(&src, ".rs")
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).expect("source file");
                (relative(&src, &path), text)
            })
            .collect();
        let name = dir_name(&dir);
        for (root_file, label) in [
            ("lib.rs", name.clone()),
            ("main.rs", format!("{name} (bin)")),
        ] {
            let src = format!("crates/{name}/src/");
            found.extend(import_cycles(&label, &files, root_file, &src));
        }
    }
    let known: BTreeSet<&str> = KNOWN_CYCLES.iter().copied().collect();
    let mut problems = Vec::new();
    for (cycle, places) in &found {
        if !known.contains(cycle.as_str()) {
            problems.push(format!("import circle {cycle}\n{}", places.join("\n")));
        }
    }
    for cycle in known {
        if !found.iter().any(|(c, _)| c == cycle) {
            problems.push(format!(
                "{cycle} is on KNOWN_CYCLES but is gone: take it off"
            ));
        }
    }
    assert!(problems.is_empty(), "tidy:\n{}", problems.join("\n"));
}

/// A small crate with a planted circle `a -> b -> c -> a`, and imports the rule leaves out:
/// comments, strings, `#[cfg(test)]` items and modules, edges to ancestors.
fn demo_crate() -> BTreeMap<String, String> {
    [
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n#[cfg(test)]\nmod tests;\n"),
        (
            "a.rs",
            "//! Names crate::c::C only in a comment.\npub use crate::b::{\n    self as bee,\n    Thing,\n};\n#[cfg(test)]\nuse crate::c::C;\npub struct A(pub &'static str);\npub const S: A = A(\"crate::c::C\");\n",
        ),
        ("b/mod.rs", "pub mod inner;\npub use self::inner::Thing;\n"),
        (
            "b/inner.rs",
            "use super::super::{b, c::C};\npub struct Thing(C);\nfn g() -> crate::b::Thing {\n    b::Thing(C)\n}\n",
        ),
        (
            "c.rs",
            "pub struct C;\npub fn h() -> crate::a::A { crate::a::S }\n#[cfg(test)]\nmod tests {\n    use crate::b::Thing;\n}\n",
        ),
        ("tests.rs", "use crate::b::Thing;\n"),
    ]
    .into_iter()
    .map(|(path, text)| (path.to_string(), text.to_string()))
    .collect()
}

#[test]
fn the_import_scanner_draws_the_edges_of_the_rule() {
    let edges: Vec<String> = sibling_edges(&modules(&demo_crate(), "lib.rs"))
        .into_iter()
        .map(|((from, to), at)| {
            format!(
                "{} -> {}: {}",
                from.join("::"),
                to.join("::"),
                at.join(", ")
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            "a -> b: a.rs:3, a.rs:4",
            "b -> c: b/inner.rs:1",
            "c -> a: c.rs:2"
        ]
    );
}

#[test]
fn the_import_scanner_finds_a_planted_circle() {
    let mut files = demo_crate();
    assert_eq!(
        import_cycles("demo", &files, "lib.rs", ""),
        [(
            "demo: a -> b -> c -> a".to_string(),
            vec![
                "  a -> b: a.rs:3, a.rs:4".to_string(),
                "  b -> c: b/inner.rs:1".to_string(),
                "  c -> a: c.rs:2".to_string(),
            ]
        )]
    );
    files.insert("c.rs".into(), "pub struct C;\n".into());
    assert_eq!(import_cycles("demo", &files, "lib.rs", ""), []);
}
