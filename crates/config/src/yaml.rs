//! The YAML layer: parses a file into documents of span-carrying nodes, and deserializes a node
//! into the raw serde types with field paths and line numbers in every error.
//!
//! serde-saphyr parses the text (it rejects malformed YAML, duplicate keys and budget overruns
//! with a line number). Its nodes are kept as a small tree so that stage two can still point at the
//! line of any field (`Document::line_of`), and so that our own `serde::Deserializer` over that
//! tree can (1) track the field path (`spec.ports[1].port`), (2) match enum values
//! case-insensitively, as SPEC.md §3 requires, and (3) word its errors for operators.

use std::fmt;

use serde::Deserialize;
use serde::de::Error as _;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde_saphyr::Spanned;

/// A YAML node with the line it starts on.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) line: u64,
    pub(crate) value: Value,
}

/// The content of a YAML node.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Value {
    /// How this value is named in "found ..." messages.
    fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::Int(i) => format!("integer `{i}`"),
            Value::Float(f) => format!("number `{f}`"),
            Value::Str(s) => format!("string \"{s}\""),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string under `key` when this node is a mapping and that value is a string.
    pub(crate) fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key).map(|n| &n.value) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Removes the mapping entry or list item at `path` (relative to this node); `false` when
    /// nothing is there.
    pub(crate) fn remove(&mut self, path: &str) -> bool {
        let segs = parse_path(path);
        let Some((last, parents)) = segs.split_last() else {
            return false;
        };
        let mut node = self;
        for seg in parents {
            let next = match (&mut node.value, seg) {
                (Value::Map(entries), Seg::Key(k)) => {
                    entries.iter_mut().find(|(key, _)| key == k).map(|(_, v)| v)
                }
                (Value::Seq(items), Seg::Index(i)) => items.get_mut(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        match (&mut node.value, last) {
            (Value::Map(entries), Seg::Key(k)) => {
                let before = entries.len();
                entries.retain(|(key, _)| key != k);
                entries.len() != before
            }
            (Value::Seq(items), Seg::Index(i)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }

    /// The line of the node at `path` (relative to this node), or of its nearest existing
    /// ancestor when part of the path does not exist (a missing field is reported where its
    /// parent is).
    pub(crate) fn line_of(&self, path: &str) -> u64 {
        let mut node = self;
        for seg in parse_path(path) {
            let next = match (&node.value, seg) {
                (Value::Map(entries), Seg::Key(k)) => {
                    entries.iter().find(|(key, _)| *key == k).map(|(_, v)| v)
                }
                (Value::Seq(items), Seg::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.line
    }
}

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `spec.ports[1].port` or `data["tls.crt"]` into segments.
fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut chars = path.chars().peekable();
    let mut cur = String::new();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Seg::Key(std::mem::take(&mut cur)));
                }
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut key = String::new();
                    for k in chars.by_ref() {
                        if k == '"' {
                            break;
                        }
                        key.push(k);
                    }
                    segs.push(Seg::Key(key));
                    // The closing bracket.
                    chars.next();
                } else {
                    let mut num = String::new();
                    for k in chars.by_ref() {
                        if k == ']' {
                            break;
                        }
                        num.push(k);
                    }
                    if let Ok(i) = num.parse() {
                        segs.push(Seg::Index(i));
                    }
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segs.push(Seg::Key(cur));
    }
    segs
}

/// Appends a mapping key to a path, quoting keys that are not plain identifiers.
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[\"{key}\"]"),
    }
}

/// Appends a list index to a path.
pub(crate) fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// A YAML syntax or structure error found while parsing a file.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub(crate) line: u64,
    pub(crate) message: String,
}

/// The parser's options: YAML 1.2 booleans only (a value `no` stays a string), and budgets that
/// keep a hostile file from exhausting memory.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_documents: 1_000,
            max_depth: 64,
        },
    }
}

/// Parses every document of a YAML text. Empty documents are skipped; each returned node
/// carries the line its document starts on.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Node>, SyntaxError> {
    let docs: Vec<Spanned<RawNode>> = serde_saphyr::from_str_multiple_with_options(text, options())
        .map_err(|e| {
            let line = e.location().map_or(0, |l| l.line());
            SyntaxError {
                line,
                message: clean_parser_message(&e.to_string()),
            }
        })?;
    Ok(docs
        .into_iter()
        .map(convert)
        .filter(|n| !matches!(n.value, Value::Null))
        .collect())
}

/// Drops the `error: line N column M:` prefix serde-saphyr puts in front of its messages: the
/// line is reported separately, as `file:line:`.
fn clean_parser_message(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    let rest = first.strip_prefix("error:").unwrap_or(first).trim();
    if let Some(after) = rest.strip_prefix("line ") {
        // "line 2 column 4: unclosed bracket"
        if let Some((_, tail)) = after.split_once(": ") {
            return tail.trim().to_owned();
        }
    }
    rest.to_owned()
}

/// The tree as serde-saphyr hands it over, with spans on every node and key.
#[derive(Debug)]
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> serde::Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_none<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
                RawNode::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
                Ok(RawNode::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
                Ok(RawNode::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
                Ok(RawNode::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
                Ok(RawNode::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
                i128::try_from(v)
                    .map(RawNode::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
                Ok(RawNode::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
                Ok(RawNode::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
                Ok(RawNode::Str(v))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawNode, E> {
                String::from_utf8(v.to_vec())
                    .map(RawNode::Str)
                    .map_err(|_| E::custom("binary values must be valid UTF-8"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(RawNode::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
                let mut v = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    v.push(entry);
                }
                Ok(RawNode::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn convert(raw: Spanned<RawNode>) -> Node {
    let line = raw.referenced.line();
    let value = match raw.value {
        RawNode::Null => Value::Null,
        RawNode::Bool(b) => Value::Bool(b),
        RawNode::Int(i) => Value::Int(i),
        RawNode::Float(f) => Value::Float(f),
        RawNode::Str(s) => Value::Str(s),
        RawNode::Seq(items) => Value::Seq(items.into_iter().map(convert).collect()),
        RawNode::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (key_text(k.value), convert(v)))
                .collect(),
        ),
    };
    // A block mapping's span starts at its first key; a key's own line is more useful for the
    // values below it, which `line_of` reaches through the entries anyway.
    Node { line, value }
}

/// Mapping keys are strings in every resource we read; other scalars are kept as their text.
fn key_text(k: RawNode) -> String {
    match k {
        RawNode::Str(s) => s,
        RawNode::Int(i) => i.to_string(),
        RawNode::Bool(b) => b.to_string(),
        RawNode::Float(f) => f.to_string(),
        RawNode::Null => "null".to_owned(),
        RawNode::Seq(_) | RawNode::Map(_) => "<complex key>".to_owned(),
    }
}

/// An error from deserializing a node into a raw type: what is wrong, at which path and line.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    pub(crate) path: Option<String>,
    pub(crate) line: Option<u64>,
    pub(crate) kind: DeErrorKind,
}

/// The kinds of deserialization errors, kept apart so the path can be completed later.
#[derive(Debug, Clone)]
pub(crate) enum DeErrorKind {
    Message(String),
    MissingField(&'static str),
    UnknownField(&'static [&'static str]),
}

impl DeError {
    fn new(kind: DeErrorKind) -> Self {
        DeError {
            path: None,
            line: None,
            kind,
        }
    }

    fn at(mut self, path: &str, line: u64) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
            self.line = Some(line);
        }
        self
    }

    /// Whether a required field is missing (it cannot be dropped to look for more problems).
    pub(crate) fn is_missing_field(&self) -> bool {
        matches!(self.kind, DeErrorKind::MissingField(_))
    }

    /// The full field path of the error.
    pub(crate) fn full_path(&self) -> String {
        let base = self.path.clone().unwrap_or_default();
        match &self.kind {
            DeErrorKind::MissingField(f) => join_key(&base, f),
            _ => base,
        }
    }

    /// The problem, worded to follow the path.
    pub(crate) fn problem(&self) -> String {
        match &self.kind {
            DeErrorKind::Message(m) => m.clone(),
            DeErrorKind::MissingField(_) => "is required".to_owned(),
            DeErrorKind::UnknownField(expected) => {
                if expected.is_empty() {
                    "is not a known field".to_owned()
                } else {
                    format!(
                        "is not a known field (expected one of: {})",
                        expected.join(", ")
                    )
                }
            }
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.full_path(), self.problem())
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(DeErrorKind::Message(msg.to_string()))
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeErrorKind::Message(format!(
            "must be {}, found {}",
            describe_expected(exp),
            describe_unexpected(&unexp)
        )))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(DeErrorKind::Message(format!(
            "has an invalid value {}: expected {exp}",
            describe_unexpected(&unexp)
        )))
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(DeErrorKind::MissingField(field))
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeErrorKind::UnknownField(expected))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(DeErrorKind::Message(format!(
            "has an unknown value \"{variant}\" (expected one of: {})",
            expected.join(", ")
        )))
    }
}

/// Serde names primitive targets by their Rust type (`i64`); operators read "an integer".
fn describe_expected(exp: &dyn de::Expected) -> String {
    let text = exp.to_string();
    match text.as_str() {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" => {
            "an integer".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" | "bool" => "true or false".to_owned(),
        _ => text,
    }
}

fn describe_unexpected(u: &de::Unexpected<'_>) -> String {
    match u {
        de::Unexpected::Str(s) => format!("string \"{s}\""),
        de::Unexpected::Signed(i) => format!("integer `{i}`"),
        de::Unexpected::Unsigned(i) => format!("integer `{i}`"),
        de::Unexpected::Float(x) => format!("number `{x}`"),
        de::Unexpected::Bool(b) => format!("boolean `{b}`"),
        de::Unexpected::Unit | de::Unexpected::Option => "null".to_owned(),
        de::Unexpected::Seq => "a list".to_owned(),
        de::Unexpected::Map => "a mapping".to_owned(),
        other => other.to_string(),
    }
}

/// Deserializes `T` from a node, reporting errors with paths relative to `base`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node, base: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: base.to_owned(),
    })
}

/// A `serde::Deserializer` over one node.
struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    fn err(&self, e: DeError) -> DeError {
        e.at(&self.path, self.node.line)
    }
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    visitor.visit_u64(v)
                } else {
                    visitor.visit_i128(*i)
                }
            }
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                index: 0,
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                value: None,
                path: &self.path,
            }),
        };
        result.map_err(|e| self.err(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Value::Str(s) = &self.node.value else {
            return Err(self.err(DeError::custom(format!(
                "must be one of {}, found {}",
                variants.join(", "),
                self.node.value.describe()
            ))));
        };
        // Enum values are matched case-insensitively (SPEC.md §3): `clusterIp`, `ClusterIP`.
        let Some(canonical) = variants.iter().find(|v| v.eq_ignore_ascii_case(s)) else {
            return Err(self.err(de::Error::unknown_variant(s, variants)));
        };
        visitor
            .visit_enum(UnitVariant(canonical))
            .map_err(|e| self.err(e))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// The enum access for a variant name matched case-insensitively; only unit variants exist in
/// our raw types.
struct UnitVariant(&'static str);

impl<'de> EnumAccess<'de> for UnitVariant {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), DeError> {
        let de: de::value::StrDeserializer<'_, DeError> = self.0.into_deserializer();
        Ok((seed.deserialize(de)?, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _seed: S) -> Result<S::Value, DeError> {
        Err(DeError::custom("must be a plain value"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _v: V) -> Result<V::Value, DeError> {
        Err(DeError::custom("must be a plain value"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _v: V,
    ) -> Result<V::Value, DeError> {
        Err(DeError::custom("must be a plain value"))
    }
}

struct SeqDe<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    index: usize,
    path: &'p str,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = join_index(self.path, self.index);
        self.index += 1;
        let line = node.line;
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map(Some)
        .map_err(|e| e.at(&path, line))
    }
}

struct MapDe<'a, 'p> {
    entries: std::slice::Iter<'a, (String, Node)>,
    value: Option<(&'a Node, String)>,
    path: &'p str,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, node)) = self.entries.next() else {
            return Ok(None);
        };
        let path = join_key(self.path, key);
        let line = node.line;
        self.value = Some((node, path.clone()));
        let de: de::value::StrDeserializer<'_, DeError> = key.as_str().into_deserializer();
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(&path, line))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((node, path)) = self.value.take() else {
            return Err(DeError::custom("value without a key"));
        };
        let line = node.line;
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
        })
        .map_err(|e| e.at(&path, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    enum Kind {
        ClusterIp,
        LoadBalancer,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Port {
        port: i64,
        service_type: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Spec {
        ports: Vec<Port>,
    }

    fn parse_one(text: &str) -> Node {
        parse_documents(text).unwrap().remove(0)
    }

    #[test]
    fn enum_values_match_case_insensitively() {
        let n = parse_one("ports:\n- port: 1\n  serviceType: clusterip\n");
        let s: Spec = from_node(&n, "spec").unwrap();
        assert_eq!(s.ports[0].service_type, Some(Kind::ClusterIp));
        assert_eq!(s.ports[0].port, 1);
    }

    #[test]
    fn unknown_field_names_its_path_and_line() {
        let n = parse_one("ports:\n- port: 1\n- port: 2\n  prot: 3\n");
        let e = from_node::<Spec>(&n, "spec").unwrap_err();
        assert_eq!(e.full_path(), "spec.ports[1].prot");
        assert_eq!(e.line, Some(4));
        assert!(e.problem().starts_with("is not a known field"));
    }

    #[test]
    fn missing_field_names_the_field() {
        let n = parse_one("ports:\n- serviceType: LoadBalancer\n");
        let e = from_node::<Spec>(&n, "spec").unwrap_err();
        assert_eq!(e.to_string(), "spec.ports[0].port is required");
    }

    #[test]
    fn wrong_type_says_what_was_found() {
        let n = parse_one("ports:\n- port: abc\n");
        let e = from_node::<Spec>(&n, "spec").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.ports[0].port must be an integer, found string \"abc\""
        );
    }

    #[test]
    fn unknown_enum_value_lists_the_choices() {
        let n = parse_one("ports:\n- port: 1\n  serviceType: Foo\n");
        let e = from_node::<Spec>(&n, "spec").unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.ports[0].serviceType has an unknown value \"Foo\" (expected one of: ClusterIp, LoadBalancer)"
        );
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn line_of_follows_paths() {
        let n = parse_one("a: 1\ndata:\n  tls.crt: x\nlist:\n- b: 1\n- b: 2\n");
        assert_eq!(n.line_of("data[\"tls.crt\"]"), 3);
        assert_eq!(n.line_of("list[1].b"), 6);
        assert_eq!(n.line_of("list[1].missing"), 6);
    }

    #[test]
    fn syntax_errors_carry_a_line() {
        let e = parse_documents("a: 1\nb: [1, 2\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unclosed"), "{}", e.message);
    }

    #[test]
    fn empty_documents_are_skipped_and_yes_stays_a_string() {
        let docs = parse_documents("---\na: yes\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(matches!(docs[0].get("a").unwrap().value, Value::Str(_)));
    }
}
