//! Lowers ServiceAccounts: their `aio-broker-auth/<key>` annotations become attributes.

use std::collections::BTreeMap;

use super::Ctx;
use crate::load::RawDocument;
use crate::model::{ATTRIBUTE_ANNOTATION_PREFIX, ServiceAccount, attribute_of_annotation};
use crate::raw::RawResource;

pub(super) fn lower(docs: &[&RawDocument], ctx: &mut Ctx) -> BTreeMap<String, ServiceAccount> {
    let mut accounts = BTreeMap::new();
    for doc in docs {
        let RawResource::ServiceAccount(sa) = &doc.resource else {
            continue;
        };
        let mut attributes = BTreeMap::new();
        for (key, value) in sa.metadata.annotations.iter().flatten() {
            let Some(attribute) = attribute_of_annotation(key) else {
                continue;
            };
            if attribute.is_empty() {
                ctx.err(
                    doc,
                    &format!("metadata.annotations[\"{key}\"]"),
                    format!(
                        "names no attribute (write {ATTRIBUTE_ANNOTATION_PREFIX}<attribute>: <value>)"
                    ),
                );
                continue;
            }
            attributes.insert(attribute.to_owned(), value.clone());
        }
        let name = sa.metadata.name.clone();
        accounts.insert(
            name.clone(),
            ServiceAccount {
                name,
                namespace: sa.metadata.namespace.clone(),
                attributes,
            },
        );
    }
    accounts
}
