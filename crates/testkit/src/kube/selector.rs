//! `labelSelector` and `fieldSelector` query parameters: equality-based requirements
//! (`k=v`, `k==v`, `k!=v`) and, for labels, existence (`k`, `!k`) and set ones
//! (`k in (a,b)`, `k notin (a,b)`).

use serde_json::Value;

use super::status::ApiError;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// What a selector looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// `metadata.labels`.
    Label,
    /// Dotted paths into the object (`metadata.name`, `involvedObject.uid`).
    Field,
}

/// Splits on commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn set_values(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_string()).collect())
}

impl Selector {
    /// Parses a selector; set and existence terms are only valid for labels.
    pub fn parse(text: &str, kind: SelectorKind) -> Result<Selector, ApiError> {
        let bad = || ApiError::bad_request(format!("unable to parse requirement: {text:?}"));
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let requirement = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once("==") {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = term.split_once('=') {
                Requirement::Equals(k.trim().into(), v.trim().into())
            } else if kind == SelectorKind::Field {
                return Err(bad());
            } else if let Some((k, set)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().into(), set_values(set).ok_or_else(bad)?)
            } else if let Some((k, set)) = term.split_once(" in ") {
                Requirement::In(k.trim().into(), set_values(set).ok_or_else(bad)?)
            } else if let Some(k) = term.strip_prefix('!') {
                Requirement::NotExists(k.trim().into())
            } else {
                Requirement::Exists(term.into())
            };
            requirements.push(requirement);
        }
        Ok(Selector { requirements })
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value, kind: SelectorKind) -> bool {
        let lookup = |key: &str| -> Option<String> {
            let value = match kind {
                SelectorKind::Label => object.pointer("/metadata/labels")?.get(key)?,
                SelectorKind::Field => {
                    let pointer = format!("/{}", key.replace('.', "/"));
                    object.pointer(&pointer)?
                }
            };
            Some(match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => lookup(k).as_deref() == Some(v.as_str()),
            // A field selector's `!=` matches objects without the field, as a label's does.
            Requirement::NotEquals(k, v) => lookup(k).as_deref() != Some(v.as_str()),
            Requirement::In(k, set) => lookup(k).is_some_and(|x| set.contains(&x)),
            Requirement::NotIn(k, set) => lookup(k).is_none_or(|x| !set.contains(&x)),
            Requirement::Exists(k) => lookup(k).is_some(),
            Requirement::NotExists(k) => lookup(k).is_none(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_requirements_of_every_form() {
        let obj = json!({"metadata": {"labels": {"app": "wardgate", "tier": "edge"}}});
        let yes = [
            "app=wardgate",
            "app==wardgate,tier",
            "!missing",
            "tier in (edge,core)",
            "app notin (x)",
            "app!=x",
        ];
        let no = [
            "app=other",
            "missing",
            "!app",
            "tier in (core)",
            "app notin (wardgate)",
        ];
        for s in yes {
            assert!(
                Selector::parse(s, SelectorKind::Label)
                    .unwrap()
                    .matches(&obj, SelectorKind::Label),
                "{s}"
            );
        }
        for s in no {
            assert!(
                !Selector::parse(s, SelectorKind::Label)
                    .unwrap()
                    .matches(&obj, SelectorKind::Label),
                "{s}"
            );
        }
    }

    #[test]
    fn field_selectors_follow_dotted_paths_and_reject_bare_keys() {
        let obj = json!({"metadata": {"name": "a"}, "involvedObject": {"uid": "u1"}});
        let sel =
            Selector::parse("metadata.name=a,involvedObject.uid=u1", SelectorKind::Field).unwrap();
        assert!(sel.matches(&obj, SelectorKind::Field));
        let sel = Selector::parse("metadata.name!=a", SelectorKind::Field).unwrap();
        assert!(!sel.matches(&obj, SelectorKind::Field));
        assert!(Selector::parse("metadata.name", SelectorKind::Field).is_err());
    }
}
