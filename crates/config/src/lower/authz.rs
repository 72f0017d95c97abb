//! Lowers BrokerAuthorizations (current and old API) into [`Authorization`]s, checking topic
//! filters and their `{principal.…}` tokens.

use std::collections::BTreeMap;

use base64::Engine as _;

use super::Ctx;
use crate::load::RawDocument;
use crate::model::{
    Authorization, BrokerMethod, BrokerResource, KeyType, OperationalMode, Principals, Rule,
    StateStoreResource, TopicTemplate,
};
use crate::raw::{Object, RawResource, authz as raw, old};
use crate::topic;

pub(super) fn lower(
    doc: &RawDocument,
    o: &Object<raw::BrokerAuthorizationSpec>,
    ctx: &mut Ctx,
) -> Option<Authorization> {
    let policies = &o.spec.authorization_policies;
    let base = "spec.authorizationPolicies";
    let rules_raw = policies.rules.as_deref().unwrap_or_default();
    if rules_raw.is_empty() {
        ctx.warn(
            doc,
            &format!("{base}.rules"),
            "is empty: every port that uses this authorization denies everything",
        );
    }
    let mut rules = Vec::new();
    for (i, r) in rules_raw.iter().enumerate() {
        let path = format!("{base}.rules[{i}]");
        let principals = Principals {
            client_ids: r.principals.client_ids.clone().unwrap_or_default(),
            usernames: r.principals.usernames.clone().unwrap_or_default(),
            attributes: r.principals.attributes.clone().unwrap_or_default(),
        };
        check_principals(doc, &format!("{path}.principals"), &principals, ctx);
        let broker_resources = r
            .broker_resources
            .iter()
            .enumerate()
            .map(|(j, b)| {
                broker_resource(
                    doc,
                    &format!("{path}.brokerResources[{j}]"),
                    b.method,
                    b.client_ids.as_deref(),
                    b.topics.as_deref(),
                    ctx,
                )
            })
            .collect();
        let mut state_store_resources = Vec::new();
        for (j, s) in r.state_store_resources.iter().flatten().enumerate() {
            let sp = format!("{path}.stateStoreResources[{j}]");
            if s.keys.is_empty() {
                ctx.err(doc, &format!("{sp}.keys"), "must list at least one key");
            }
            let mut keys = Vec::new();
            for (k, key) in s.keys.iter().enumerate() {
                let kp = format!("{sp}.keys[{k}]");
                match s.key_type {
                    KeyType::Pattern => {
                        if let Err(e) = topic::check_key_pattern(key) {
                            ctx.err(doc, &kp, e);
                        }
                        keys.push(key.clone().into_bytes());
                    }
                    KeyType::String => {
                        if key.is_empty() {
                            ctx.err(doc, &kp, "is empty");
                        }
                        keys.push(key.clone().into_bytes());
                    }
                    KeyType::Binary => {
                        match base64::engine::general_purpose::STANDARD.decode(key.trim()) {
                            Ok(b) if !b.is_empty() => keys.push(b),
                            _ => ctx.err(
                                doc,
                                &kp,
                                format!(
                                    "\"{key}\" is not valid base64 (keyType Binary keys are base64-encoded)"
                                ),
                            ),
                        }
                    }
                }
            }
            state_store_resources.push(StateStoreResource {
                method: s.method,
                key_type: s.key_type,
                keys,
            });
        }
        rules.push(Rule {
            principals,
            broker_resources,
            state_store_resources,
        });
    }
    Some(Authorization {
        name: o.metadata.name.clone(),
        cache: policies.cache.unwrap_or(OperationalMode::Enabled),
        rules,
    })
}

fn check_principals(doc: &RawDocument, path: &str, p: &Principals, ctx: &mut Ctx) {
    if p.client_ids.is_empty() && p.usernames.is_empty() && p.attributes.is_empty() {
        ctx.warn(
            doc,
            path,
            "lists no clientIds, usernames or attributes: the rule applies to no one",
        );
    }
    for (i, a) in p.attributes.iter().enumerate() {
        if a.is_empty() {
            ctx.warn(
                doc,
                &format!("{path}.attributes[{i}]"),
                "is empty: it matches no one",
            );
        }
    }
}

fn broker_resource(
    doc: &RawDocument,
    path: &str,
    method: BrokerMethod,
    client_ids: Option<&[String]>,
    topics: Option<&[String]>,
    ctx: &mut Ctx,
) -> BrokerResource {
    let mut out = Vec::new();
    match method {
        BrokerMethod::Connect => {
            if topics.is_some_and(|t| !t.is_empty()) {
                ctx.err(
                    doc,
                    &format!("{path}.topics"),
                    "must not be set for method Connect",
                );
            }
        }
        BrokerMethod::Publish | BrokerMethod::Subscribe => {
            if client_ids.is_some_and(|c| !c.is_empty()) {
                ctx.warn(
                    doc,
                    &format!("{path}.clientIds"),
                    format!("only applies to method Connect; it is ignored for {method}"),
                );
            }
            match topics {
                None | Some([]) => ctx.err(
                    doc,
                    &format!("{path}.topics"),
                    format!("must list at least one topic for method {method}"),
                ),
                Some(ts) => {
                    for (i, t) in ts.iter().enumerate() {
                        match topic::check_topic_filter(t) {
                            Ok(_) => out.push(TopicTemplate::new_unchecked(t.clone())),
                            Err(e) => ctx.err(doc, &format!("{path}.topics[{i}]"), e),
                        }
                    }
                }
            }
        }
    }
    BrokerResource {
        method,
        client_ids: if method == BrokerMethod::Connect {
            client_ids.map(<[String]>::to_vec).unwrap_or_default()
        } else {
            Vec::new()
        },
        topics: out,
    }
}

/// Old BrokerAuthorizations link to listeners by `listenerRef`: listener name → authorization.
pub(super) fn old_links(docs: &[&RawDocument], ctx: &mut Ctx) -> BTreeMap<String, String> {
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    for doc in docs {
        let RawResource::OldBrokerAuthorization(o) = &doc.resource else {
            continue;
        };
        for (i, l) in o.spec.listener_ref.iter().enumerate() {
            if let Some(other) = links.get(l) {
                ctx.err(
                    doc,
                    &format!("spec.listenerRef[{i}]"),
                    format!(
                        "\"{l}\" is already linked to BrokerAuthorization/{other}; a listener uses one BrokerAuthorization"
                    ),
                );
            } else {
                links.insert(l.clone(), o.metadata.name.clone());
            }
        }
    }
    links
}

/// Converts an old BrokerAuthorization (`enableCache`, `clientids`).
pub(super) fn lower_old(
    doc: &RawDocument,
    o: &Object<old::BrokerAuthorizationSpec>,
    ctx: &mut Ctx,
) -> Option<Authorization> {
    let policies = &o.spec.authorization_policies;
    let base = "spec.authorizationPolicies";
    let mut rules = Vec::new();
    for (i, r) in policies.rules.iter().flatten().enumerate() {
        let path = format!("{base}.rules[{i}]");
        let principals = Principals {
            client_ids: r.principals.client_ids.clone().unwrap_or_default(),
            usernames: r.principals.usernames.clone().unwrap_or_default(),
            attributes: r.principals.attributes.clone().unwrap_or_default(),
        };
        check_principals(doc, &format!("{path}.principals"), &principals, ctx);
        let broker_resources = r
            .broker_resources
            .iter()
            .enumerate()
            .map(|(j, b)| {
                broker_resource(
                    doc,
                    &format!("{path}.brokerResources[{j}]"),
                    b.method,
                    None,
                    b.topics.as_deref(),
                    ctx,
                )
            })
            .collect();
        rules.push(Rule {
            principals,
            broker_resources,
            state_store_resources: Vec::new(),
        });
    }
    if rules.is_empty() {
        ctx.warn(
            doc,
            &format!("{base}.rules"),
            "is empty: every listener that uses this authorization denies everything",
        );
    }
    Some(Authorization {
        name: o.metadata.name.clone(),
        cache: OperationalMode::from_bool(policies.enable_cache.unwrap_or(false)),
        rules,
    })
}
