//! Just enough of Kubernetes' protobuf encoding to read what `kubectl create` sends: client-go's
//! typed clients post built-in kinds as `application/vnd.kubernetes.protobuf` (the `k8s\0`
//! magic, a `runtime.Unknown` envelope, the object's message) and do not fall back to JSON.
//! The kinds `kubectl create` makes from flags are decoded to JSON here: Namespace, Secret,
//! ConfigMap and ServiceAccount, with the metadata fields a user can set.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::status::ApiError;

/// How one field's value is read.
#[derive(Clone, Copy)]
enum Field {
    Text,
    Bool,
    Texts,
    TextMap,
    BytesMap,
    Message(&'static [(u64, &'static str, Field)]),
}

const OBJECT_META: &[(u64, &str, Field)] = &[
    (1, "name", Field::Text),
    (2, "generateName", Field::Text),
    (3, "namespace", Field::Text),
    (11, "labels", Field::TextMap),
    (12, "annotations", Field::TextMap),
    (14, "finalizers", Field::Texts),
];

const NAMESPACE: &[(u64, &str, Field)] = &[(1, "metadata", Field::Message(OBJECT_META))];
const SECRET: &[(u64, &str, Field)] = &[
    (1, "metadata", Field::Message(OBJECT_META)),
    (2, "data", Field::BytesMap),
    (3, "type", Field::Text),
    (4, "stringData", Field::TextMap),
    (5, "immutable", Field::Bool),
];
const CONFIG_MAP: &[(u64, &str, Field)] = &[
    (1, "metadata", Field::Message(OBJECT_META)),
    (2, "data", Field::TextMap),
    (3, "binaryData", Field::BytesMap),
    (4, "immutable", Field::Bool),
];
const SERVICE_ACCOUNT: &[(u64, &str, Field)] = &[
    (1, "metadata", Field::Message(OBJECT_META)),
    (4, "automountServiceAccountToken", Field::Bool),
];

/// A protobuf wire-format reader over one message.
struct Reader<'a> {
    bytes: &'a [u8],
}

fn malformed() -> ApiError {
    ApiError::bad_request("malformed protobuf body")
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or_else(malformed)?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ApiError> {
        if n > self.bytes.len() {
            return Err(malformed());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// The next field: its number and, for length-delimited ones, the bytes (else `None`,
    /// the value having been skipped).
    fn field(&mut self) -> Result<(u64, Option<&'a [u8]>, u64), ApiError> {
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        match wire {
            0 => Ok((number, None, self.varint()?)),
            1 => self.take(8).map(|_| (number, None, 0)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
                Ok((number, Some(self.take(len)?), 0))
            }
            5 => self.take(4).map(|_| (number, None, 0)),
            _ => Err(malformed()),
        }
    }
}

fn text(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("protobuf string is not UTF-8"))
}

/// A map entry: key 1, value 2.
fn entry(bytes: &[u8]) -> Result<(String, Vec<u8>), ApiError> {
    let mut reader = Reader { bytes };
    let (mut key, mut value) = (String::new(), Vec::new());
    while !reader.bytes.is_empty() {
        match reader.field()? {
            (1, Some(b), _) => key = text(b)?,
            (2, Some(b), _) => value = b.to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Decodes one message by its field table; nesting is bounded by the tables (two levels).
fn message(bytes: &[u8], fields: &[(u64, &str, Field)]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    let mut reader = Reader { bytes };
    while !reader.bytes.is_empty() {
        let (number, data, scalar) = reader.field()?;
        let Some((_, name, kind)) = fields.iter().find(|(n, _, _)| *n == number) else {
            continue;
        };
        let name = (*name).to_string();
        match (*kind, data) {
            (Field::Bool, None) => {
                out.insert(name, json!(scalar != 0));
            }
            (Field::Text, Some(b)) => {
                out.insert(name, json!(text(b)?));
            }
            (Field::Texts, Some(b)) => {
                let list = out.entry(name).or_insert_with(|| json!([]));
                if let Some(items) = list.as_array_mut() {
                    items.push(json!(text(b)?));
                }
            }
            (Field::TextMap | Field::BytesMap, Some(b)) => {
                let (key, value) = entry(b)?;
                let value = match kind {
                    Field::TextMap => json!(text(&value)?),
                    _ => json!(base64::engine::general_purpose::STANDARD.encode(value)),
                };
                if let Some(map) = out.entry(name).or_insert_with(|| json!({})).as_object_mut() {
                    map.insert(key, value);
                }
            }
            (Field::Message(inner), Some(b)) => {
                out.insert(name, message(b, inner)?);
            }
            _ => return Err(malformed()),
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a `k8s\0` protobuf body into the JSON object it stands for.
pub(super) fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| ApiError::bad_request("protobuf body without the k8s magic"))?;
    let mut reader = Reader { bytes: envelope };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !reader.bytes.is_empty() {
        match reader.field()? {
            (1, Some(type_meta), _) => {
                let meta = message(
                    type_meta,
                    &[(1, "apiVersion", Field::Text), (2, "kind", Field::Text)],
                )?;
                api_version = meta["apiVersion"].as_str().unwrap_or("").to_string();
                kind = meta["kind"].as_str().unwrap_or("").to_string();
            }
            (2, Some(bytes), _) => raw = bytes,
            _ => {}
        }
    }
    let fields = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "Secret") => SECRET,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        _ => {
            return Err(ApiError::unsupported_media_type(&format!(
                "application/vnd.kubernetes.protobuf ({api_version} {kind}: send JSON)"
            )));
        }
    };
    let mut object = message(raw, fields)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(number << 3 | 2).unwrap(),
            u8::try_from(bytes.len()).unwrap(),
        ];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_secret_in_its_envelope_decodes_to_json() {
        let meta = [field(1, b"s"), field(3, b"ns")].concat();
        let data = [field(1, b"tls.crt"), field(2, b"PEM")].concat();
        let secret = [
            field(1, &meta),
            field(2, &data),
            field(3, b"kubernetes.io/tls"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [&b"k8s\0"[..], &field(1, &type_meta), &field(2, &secret)].concat();
        let object = decode(&body).unwrap();
        assert_eq!(object["metadata"]["name"], "s");
        assert_eq!(object["type"], "kubernetes.io/tls");
        assert_eq!(object["data"]["tls.crt"], "UEVN");
        assert_eq!(
            decode(&body[..body.len() - 3]).unwrap_err().code.as_u16(),
            400,
            "truncated"
        );
    }
}
