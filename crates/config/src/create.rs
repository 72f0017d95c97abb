//! The YAML of `wardgate create secret tls` and `wardgate create configmap`, as
//! `kubectl create … --dry-run=client -o yaml` writes it: keys in alphabetical order,
//! `creationTimestamp: null`, base64 Secret data, UTF-8 files in `data` (literal blocks for
//! multi-line text) and other files in `binaryData`.
//!
//! Scalars follow the rules of the Go YAML emitter kubectl uses (plain when the text reads back as
//! the same string, single- or double-quoted otherwise, `|`, `|-` or `|+` blocks for text with
//! line breaks), so the output is byte-identical to kubectl's for the files operators use
//! (PEM certificates and keys, text, binary). One difference remains: kubectl folds double-quoted
//! and plain scalars longer than 80 columns at spaces; Wardgate writes them on one line. Both read
//! back as the same value.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Why `wardgate create` cannot write the resource.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The resource name is not a valid Kubernetes name.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A ConfigMap key is not valid (`[-._a-zA-Z0-9]+`).
    #[error(
        "{key:?} is not a valid key name for a ConfigMap (use letters, digits, '-', '_' and '.')"
    )]
    InvalidKey {
        /// The key.
        key: String,
    },
    /// Two files map to the same key.
    #[error(
        "cannot add key {key:?}, another key by that name already exists in ConfigMap {name:?}"
    )]
    DuplicateKey {
        /// The key.
        key: String,
        /// The ConfigMap name.
        name: String,
    },
    /// `--from-file=KEY=PATH` names a folder; only a bare folder path expands to its files.
    #[error("{path}: a folder cannot be given a key; use --from-file={path} without KEY=")]
    KeyedFolder {
        /// The folder.
        path: PathBuf,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{path}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NotACertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{path}: no PEM private key found (expected -----BEGIN ... PRIVATE KEY-----)")]
    NotAKey {
        /// The file.
        path: PathBuf,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, CreateError> {
    fs::read(path).map_err(|source| CreateError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn check_name(name: &str) -> Result<(), CreateError> {
    crate::units::check_subdomain(name).map_err(|reason| CreateError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// The YAML of a `kubernetes.io/tls` Secret holding `cert_pem` and `key_pem`.
pub fn secret_tls(
    name: &str,
    namespace: Option<&str>,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<String, CreateError> {
    check_name(name)?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = String::from("apiVersion: v1\ndata:\n");
    write_entry(&mut out, 2, "tls.crt", &b64(cert_pem));
    write_entry(&mut out, 2, "tls.key", &b64(key_pem));
    out.push_str("kind: Secret\n");
    metadata(&mut out, name, namespace);
    out.push_str("type: kubernetes.io/tls\n");
    Ok(out)
}

/// `wardgate create secret tls NAME --cert FILE --key FILE`: reads and checks the PEM files.
pub fn secret_tls_from_files(
    name: &str,
    namespace: Option<&str>,
    cert: &Path,
    key: &Path,
) -> Result<String, CreateError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    if !contains(&cert_pem, b"-----BEGIN CERTIFICATE-----") {
        return Err(CreateError::NotACertificate {
            path: cert.to_path_buf(),
        });
    }
    if !(contains(&key_pem, b"-----BEGIN") && contains(&key_pem, b"PRIVATE KEY-----")) {
        return Err(CreateError::NotAKey {
            path: key.to_path_buf(),
        });
    }
    secret_tls(name, namespace, &cert_pem, &key_pem)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The YAML of a ConfigMap with these entries: UTF-8 values go to `data`, others to
/// `binaryData` (base64).
pub fn config_map(
    name: &str,
    namespace: Option<&str>,
    entries: &[(String, Vec<u8>)],
) -> Result<String, CreateError> {
    check_name(name)?;
    let mut data = BTreeMap::new();
    let mut binary = BTreeMap::new();
    for (key, value) in entries {
        if crate::units::check_data_key(key).is_err() {
            return Err(CreateError::InvalidKey { key: key.clone() });
        }
        if data.contains_key(key) || binary.contains_key(key) {
            return Err(CreateError::DuplicateKey {
                key: key.clone(),
                name: name.to_owned(),
            });
        }
        match std::str::from_utf8(value) {
            Ok(text) => {
                data.insert(key.clone(), text.to_owned());
            }
            Err(_) => {
                binary.insert(
                    key.clone(),
                    base64::engine::general_purpose::STANDARD.encode(value),
                );
            }
        }
    }
    let mut out = String::from("apiVersion: v1\n");
    if !binary.is_empty() {
        out.push_str("binaryData:\n");
        for (k, v) in &binary {
            write_entry(&mut out, 2, k, v);
        }
    }
    if !data.is_empty() {
        out.push_str("data:\n");
        for (k, v) in &data {
            write_entry(&mut out, 2, k, v);
        }
    }
    out.push_str("kind: ConfigMap\n");
    metadata(&mut out, name, namespace);
    Ok(out)
}

/// Splits a `--from-file` argument into its optional key and path (`KEY=PATH` or `PATH`).
pub fn parse_from_file(spec: &str) -> (Option<String>, PathBuf) {
    match spec.split_once('=') {
        Some((key, path)) if !key.is_empty() => (Some(key.to_owned()), PathBuf::from(path)),
        _ => (None, PathBuf::from(spec)),
    }
}

/// `wardgate create configmap NAME --from-file=[KEY=]PATH...`: a file becomes one key (its file
/// name unless KEY is given); a folder contributes each regular file in it whose name is a valid
/// key, as kubectl does.
pub fn config_map_from_files(
    name: &str,
    namespace: Option<&str>,
    from_files: &[String],
) -> Result<String, CreateError> {
    let mut entries = Vec::new();
    for spec in from_files {
        let (key, path) = parse_from_file(spec);
        let meta = fs::metadata(&path).map_err(|source| CreateError::Read {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            if key.is_some() {
                return Err(CreateError::KeyedFolder { path });
            }
            let mut files: Vec<PathBuf> = fs::read_dir(&path)
                .map_err(|source| CreateError::Read {
                    path: path.clone(),
                    source,
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| crate::units::check_data_key(n).is_ok())
                })
                .collect();
            files.sort();
            for f in files {
                let k = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                entries.push((k, read(&f)?));
            }
        } else {
            let k = key.unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            entries.push((k, read(&path)?));
        }
    }
    config_map(name, namespace, &entries)
}

fn metadata(out: &mut String, name: &str, namespace: Option<&str>) {
    out.push_str("metadata:\n  creationTimestamp: null\n");
    write_entry(out, 2, "name", name);
    if let Some(ns) = namespace {
        write_entry(out, 2, "namespace", ns);
    }
}

/// Writes `key: value` at `indent` spaces, the value as the Go YAML emitter would.
fn write_entry(out: &mut String, indent: usize, key: &str, value: &str) {
    let pad = " ".repeat(indent);
    let _ = write!(out, "{pad}{}:", inline_scalar(key));
    if value.contains('\n') && block_allowed(value) {
        out.push(' ');
        out.push_str(&literal_block(value, indent + 2));
    } else {
        let _ = writeln!(out, " {}", inline_scalar(value));
    }
}

/// The scalar analysis of the Go emitter (`yaml_emitter_analyze_scalar`).
#[derive(Default)]
struct Analysis {
    flow_indicators: bool,
    block_indicators: bool,
    special_characters: bool,
    line_breaks: bool,
    leading_space: bool,
    leading_break: bool,
    trailing_space: bool,
    trailing_break: bool,
    break_space: bool,
    space_break: bool,
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
        && c != '\u{feff}'
}

fn analyze(value: &str) -> Analysis {
    let mut a = Analysis::default();
    if value.starts_with("---") || value.starts_with("...") {
        a.block_indicators = true;
        a.flow_indicators = true;
    }
    let chars: Vec<char> = value.chars().collect();
    let mut preceded_by_whitespace = true;
    let mut previous_space = false;
    let mut previous_break = false;
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_whitespace = next.is_none_or(|n| matches!(n, ' ' | '\t' | '\n' | '\r'));
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    a.flow_indicators = true;
                    a.block_indicators = true;
                }
                '?' | ':' => {
                    a.flow_indicators = true;
                    if followed_by_whitespace {
                        a.block_indicators = true;
                    }
                }
                '-' if followed_by_whitespace => {
                    a.flow_indicators = true;
                    a.block_indicators = true;
                }
                _ => {}
            }
        } else {
            match c {
                ',' | '?' | '[' | ']' | '{' | '}' => a.flow_indicators = true,
                ':' => {
                    a.flow_indicators = true;
                    if followed_by_whitespace {
                        a.block_indicators = true;
                    }
                }
                '#' if preceded_by_whitespace => {
                    a.flow_indicators = true;
                    a.block_indicators = true;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            a.special_characters = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            if i == 0 {
                a.leading_space = true;
            }
            if last {
                a.trailing_space = true;
            }
            if previous_break {
                a.break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if c == '\n' {
            a.line_breaks = true;
            if i == 0 {
                a.leading_break = true;
            }
            if last {
                a.trailing_break = true;
            }
            if previous_space {
                a.space_break = true;
            }
            previous_break = true;
            previous_space = false;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = matches!(c, ' ' | '\t' | '\n' | '\r');
    }
    a
}

fn block_allowed(value: &str) -> bool {
    let a = analyze(value);
    !(a.trailing_space || a.space_break || a.special_characters)
}

/// A single-line representation: plain, single-quoted or double-quoted.
fn inline_scalar(value: &str) -> String {
    let a = analyze(value);
    let mut plain = !value.is_empty() && resolves_to_string(value);
    let mut single = true;
    if a.leading_space || a.leading_break || a.trailing_space || a.trailing_break {
        plain = false;
    }
    if a.break_space {
        plain = false;
        single = false;
    }
    if a.space_break || a.special_characters {
        plain = false;
        single = false;
    }
    if a.line_breaks || a.block_indicators {
        plain = false;
    }
    if plain {
        return value.to_owned();
    }
    // The Go encoder asks for double quotes when a plain scalar would read back as another type,
    // and for plain otherwise; the emitter falls back to single quotes when plain is not allowed.
    if resolves_to_string(value) && !value.is_empty() && single && !a.line_breaks {
        return format!("'{}'", value.replace('\'', "''"));
    }
    double_quoted(value)
}

fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) <= 0xffff => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08X}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// A literal block (`|`, `|-`, `|+`, with an indentation indicator when the text starts with a
/// space or a line break), content at `indent` spaces.
fn literal_block(value: &str, indent: usize) -> String {
    let mut out = String::from("|");
    if value.starts_with([' ', '\n']) {
        out.push('2');
    }
    let chomp = if !value.ends_with('\n') {
        "-"
    } else if value == "\n" || value.ends_with("\n\n") {
        "+"
    } else {
        ""
    };
    out.push_str(chomp);
    out.push('\n');
    let pad = " ".repeat(indent);
    let body = value.strip_suffix('\n').unwrap_or(value);
    for line in body.split('\n') {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    out
}

/// Whether a plain scalar with this text reads back as a string in YAML 1.1 (what Go's YAML
/// resolver checks): not a boolean, null, number, timestamp, merge key or sexagesimal number.
fn resolves_to_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "~", "null", "Null", "NULL",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if s.is_empty() || WORDS.contains(&s) {
        return false;
    }
    !(is_int(s) || is_float(s) || is_timestamp(s) || is_base60(s))
}

fn is_int(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits =
        |t: &str, ok: fn(char) -> bool| !t.is_empty() && t.chars().all(|c| ok(c) || c == '_');
    if let Some(h) = body.strip_prefix("0x") {
        return digits(h, |c| c.is_ascii_hexdigit());
    }
    if let Some(b) = body.strip_prefix("0b") {
        return digits(b, |c| c == '0' || c == '1');
    }
    if let Some(o) = body.strip_prefix("0o") {
        return digits(o, |c| ('0'..='7').contains(&c));
    }
    digits(body, |c| c.is_ascii_digit())
}

fn is_float(s: &str) -> bool {
    // ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() && !b.is_empty() && b.chars().all(|c| c.is_ascii_digit()))
                || (!a.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit()))
        }
        None => !mantissa.is_empty() && mantissa.chars().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

fn is_timestamp(s: &str) -> bool {
    // YYYY-MM-DD, optionally followed by a time: what Go's resolver treats as a timestamp.
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || matches!(b[10], b'T' | b't' | b' ' | b'\t'))
}

fn is_base60(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, frac) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    let mut parts = main.split(':');
    let Some(first) = parts.next() else {
        return false;
    };
    let first_ok = first.starts_with(|c: char| c.is_ascii_digit())
        && first.chars().all(|c| c.is_ascii_digit() || c == '_');
    let rest: Vec<&str> = parts.collect();
    let rest_ok = !rest.is_empty()
        && rest.iter().all(|p| {
            let b = p.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        });
    let frac_ok = frac.is_none_or(|f| f.chars().all(|c| c.is_ascii_digit() || c == '_'));
    first_ok && rest_ok && frac_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_like_go_yaml() {
        assert_eq!(inline_scalar("tls.crt"), "tls.crt");
        assert_eq!(inline_scalar("123"), "\"123\"");
        assert_eq!(inline_scalar("true"), "\"true\"");
        assert_eq!(inline_scalar(""), "\"\"");
        assert_eq!(inline_scalar("a: b"), "'a: b'");
        assert_eq!(inline_scalar("- x"), "'- x'");
        assert_eq!(inline_scalar(" x"), "' x'");
        assert_eq!(inline_scalar("a\tb"), "\"a\\tb\"");
        assert_eq!(inline_scalar("2024-01-01"), "\"2024-01-01\"");
        assert_eq!(inline_scalar("1:20"), "\"1:20\"");
        assert_eq!(inline_scalar("AAH/"), "AAH/");
    }

    #[test]
    fn blocks_and_chomping() {
        assert_eq!(literal_block("a\nb\n", 4), "|\n    a\n    b\n");
        assert_eq!(literal_block("a\nb", 4), "|-\n    a\n    b\n");
        assert_eq!(literal_block("a\n\n", 4), "|+\n    a\n\n");
        assert_eq!(literal_block("a\n\nb\n", 4), "|\n    a\n\n    b\n");
        assert_eq!(literal_block(" a\n", 4), "|2\n     a\n");
        assert!(!block_allowed("a \nb\n"));
    }

    #[test]
    fn from_file_specs() {
        assert_eq!(
            parse_from_file("client_ca.pem=ca.crt"),
            (Some("client_ca.pem".to_owned()), PathBuf::from("ca.crt"))
        );
        assert_eq!(parse_from_file("ca.crt"), (None, PathBuf::from("ca.crt")));
    }
}
