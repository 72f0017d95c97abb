//! The patch types: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch
//! approximated as a merge patch with its `$` directives dropped (lists are replaced, not merged
//! by key), and server-side apply approximated as a merge patch that creates the object when
//! absent (no field ownership, so no apply conflicts).

use serde_json::Value;

use super::status::ApiError;

/// How a PATCH body is to be applied, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
}

/// A parsed PATCH body.
#[derive(Debug, Clone)]
pub struct Patch {
    /// Its kind.
    pub kind: PatchKind,
    /// The body: an array of operations for JSON patch, an object otherwise.
    pub body: Value,
}

impl PatchKind {
    /// The kind of a `Content-Type`.
    pub fn from_content_type(content_type: &str) -> Result<PatchKind, ApiError> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::StrategicMerge),
            "application/apply-patch+yaml" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// Parses a body of this kind (apply bodies are YAML, of which JSON is a subset).
    pub fn parse(self, body: &[u8]) -> Result<Patch, ApiError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the patch body is not UTF-8"))?;
        let body: Value = match self {
            PatchKind::Apply => serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?,
            _ => serde_json::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        };
        let shape_ok = match self {
            PatchKind::Json => body.is_array(),
            _ => body.is_object(),
        };
        if !shape_ok {
            return Err(ApiError::bad_request(format!(
                "a {self:?} patch must be a JSON {}",
                if self == PatchKind::Json {
                    "array"
                } else {
                    "object"
                }
            )));
        }
        let body = match self {
            PatchKind::StrategicMerge => without_directives(body),
            _ => body,
        };
        Ok(Patch { kind: self, body })
    }
}

impl Patch {
    /// Applies the patch to `target`; a JSON patch that does not apply is 422 Invalid.
    pub fn apply_to(&self, target: &mut Value) -> Result<(), ApiError> {
        match self.kind {
            PatchKind::Json => {
                let operations: json_patch::Patch = serde_json::from_value(self.body.clone())
                    .map_err(|e| {
                        ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                    })?;
                json_patch::patch(target, &operations.0)
                    .map_err(|e| ApiError::invalid(e.to_string()))
            }
            PatchKind::Merge | PatchKind::StrategicMerge | PatchKind::Apply => {
                json_patch::merge(target, &self.body);
                Ok(())
            }
        }
    }
}

/// Drops the strategic-merge directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...).
fn without_directives(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k, without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_directives).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patched(kind: &str, doc: Value, body: &str) -> Result<Value, ApiError> {
        let patch = PatchKind::from_content_type(kind)?.parse(body.as_bytes())?;
        let mut doc = doc;
        patch.apply_to(&mut doc)?;
        Ok(doc)
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let out = patched(
            "application/merge-patch+json",
            doc,
            r#"{"a":"z","c":{"f":null},"l":[3]}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn json_patch_follows_rfc_6902_and_a_bad_path_is_invalid() {
        let doc = json!({"spec": {"ports": [{"port": 18883}]}});
        let body = r#"[{"op":"add","path":"/spec/ports/-","value":{"port":1883}}]"#;
        let out = patched("application/json-patch+json", doc.clone(), body).unwrap();
        assert_eq!(out["spec"]["ports"][1]["port"], 1883);
        let bad = patched(
            "application/json-patch+json",
            doc,
            r#"[{"op":"remove","path":"/nope"}]"#,
        );
        assert_eq!(bad.unwrap_err().code.as_u16(), 422);
    }

    #[test]
    fn strategic_merge_drops_directives_and_apply_reads_yaml() {
        let out = patched(
            "application/strategic-merge-patch+json",
            json!({}),
            r#"{"$setElementOrder/ports":[{"port":1}],"spec":{"ports":[{"port":1,"$patch":"replace"}]}}"#,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"ports": [{"port": 1}]}}));
        let out = patched("application/apply-patch+yaml", json!({}), "spec:\n  x: 1\n").unwrap();
        assert_eq!(out, json!({"spec": {"x": 1}}));
        assert!(PatchKind::from_content_type("text/plain").is_err());
    }
}
