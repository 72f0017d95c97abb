//! Authorization (SPEC.md §8): one [`Authorizer`] per BrokerAuthorization decides whether an
//! authenticated [`Identity`] may connect, publish on a topic and subscribe to a filter, and
//! [`explain`] tells an operator why.
//!
//! Rules only allow. A rule applies when any of its principals matches (a client ID, a username,
//! or an attribute map whose every pair the client has; case-sensitive). Its `brokerResources`
//! grant Connect (narrowed by `clientIds`, trailing `*` = prefix), Publish and Subscribe on
//! topic filters with `{principal.…}` substitution ([`topic`]). Publish is allowed when a
//! granted filter matches the topic; Subscribe when a granted filter covers the requested one
//! (`$share/<group>/<f>` is checked on `<f>`). No rule, no access; a policy with no rules denies
//! everything.
//!
//! With `cache: Enabled` the rules that apply to a principal, their substituted filters, and the
//! decisions made, are memoized per client (bounded). A policy change builds a new `Authorizer`,
//! which starts with an empty cache; [`Authorizer::recheck`] tells the server which connected
//! clients lost Connect or a subscription under the new policy.

mod explain;
mod topic;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wardgate_config::{BrokerMethod, Model, Principals, TopicTemplate};

pub use explain::{ExplainAction, ExplainQuery, Explanation, PortExplanation, explain};

use crate::authn::Identity;
use topic::Granted;

/// At most this many principals are cached; past it the cache starts over.
const MAX_CACHED_PRINCIPALS: usize = 100_000;
/// At most this many decisions are cached per principal; past it that principal's start over.
const MAX_CACHED_DECISIONS: usize = 4_096;

/// Why an [`Authorizer`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// The named BrokerAuthorization is not in the configuration.
    #[error("BrokerAuthorization/{0} does not exist")]
    UnknownAuthorization(String),
}

/// An authorization decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by `spec.authorizationPolicies.rules[rule]`, through its topic `topic` (as
    /// written, before substitution; `None` for Connect).
    Allow {
        /// The rule's index.
        rule: usize,
        /// The rule topic that granted it.
        topic: Option<String>,
    },
    /// Denied.
    Deny {
        /// Why (for logs and `explain`).
        why: String,
    },
}

impl Decision {
    /// Whether the action is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow { rule, topic: None } => write!(f, "allowed by rules[{rule}]"),
            Decision::Allow {
                rule,
                topic: Some(t),
            } => write!(f, "allowed by rules[{rule}], topic \"{t}\""),
            Decision::Deny { why } => write!(f, "denied: {why}"),
        }
    }
}

/// Whether BrokerAuthorization `name` differs between two configurations: the server then
/// builds a new [`Authorizer`] and [`Authorizer::recheck`]s the clients of the ports using it.
pub fn authorization_changed(old: &Model, new: &Model, name: &str) -> bool {
    old.authorizations.get(name) != new.authorizations.get(name)
}

/// The result of re-checking a connected client against a changed policy (SPEC.md §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    /// Still allowed to be connected with every subscription it has.
    Keep,
    /// Lost Connect or a subscription: disconnect it (v5 DISCONNECT 0x87).
    Disconnect {
        /// What was lost.
        why: String,
    },
}

/// Decision counts since the authorizer was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthzStats {
    /// Connects allowed / denied.
    pub connect_allowed: u64,
    /// Connects denied.
    pub connect_denied: u64,
    /// Publishes allowed.
    pub publish_allowed: u64,
    /// Publishes denied.
    pub publish_denied: u64,
    /// Subscriptions allowed.
    pub subscribe_allowed: u64,
    /// Subscriptions denied.
    pub subscribe_denied: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connect_allowed: AtomicU64,
    connect_denied: AtomicU64,
    publish_allowed: AtomicU64,
    publish_denied: AtomicU64,
    subscribe_allowed: AtomicU64,
    subscribe_denied: AtomicU64,
}

/// Which client IDs a rule's Connect grants admit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ConnectGrant {
    /// Any client ID.
    Any,
    /// Client IDs matching one of these patterns (tokens substituted, trailing `*` = prefix).
    Only(Vec<String>),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    principals: Principals,
    connect: Option<ConnectGrant>,
    publish: Vec<TopicTemplate>,
    subscribe: Vec<TopicTemplate>,
}

/// A topic a rule grants to one principal.
#[derive(Debug, Clone)]
struct Grant {
    rule: usize,
    template: String,
    filter: Granted,
}

/// What the rules give one principal.
#[derive(Debug)]
struct Grants {
    connect: Decision,
    publish: Vec<Grant>,
    subscribe: Vec<Grant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Action {
    Publish = 0,
    Subscribe = 1,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Publish => "Publish",
            Action::Subscribe => "Subscribe",
        }
    }
}

/// One cached principal.
#[derive(Debug)]
struct Cached {
    username: Option<String>,
    attributes: BTreeMap<String, String>,
    grants: Grants,
    /// Decisions by topic or filter, one map per action (looked up by `&str`, no allocation).
    decisions: Mutex<[HashMap<String, Decision>; 2]>,
}

/// The authorization of one BrokerAuthorization. Cheap to share behind an `Arc`.
pub struct Authorizer {
    name: String,
    rules: Vec<CompiledRule>,
    cache: Option<Mutex<HashMap<String, Arc<Cached>>>>,
    counters: Counters,
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("name", &self.name)
            .field("rules", &self.rules.len())
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

impl Authorizer {
    /// Builds the authorizer of BrokerAuthorization `authorization_name`.
    pub fn new(model: &Model, authorization_name: &str) -> Result<Authorizer, AuthzError> {
        let authz = model
            .authorizations
            .get(authorization_name)
            .ok_or_else(|| AuthzError::UnknownAuthorization(authorization_name.to_owned()))?;
        let rules = authz
            .rules
            .iter()
            .map(|r| {
                let mut connect = None;
                let mut publish = Vec::new();
                let mut subscribe = Vec::new();
                for b in &r.broker_resources {
                    match b.method {
                        BrokerMethod::Connect => {
                            connect = Some(match (connect, b.client_ids.is_empty()) {
                                (_, true) | (Some(ConnectGrant::Any), _) => ConnectGrant::Any,
                                (Some(ConnectGrant::Only(mut v)), false) => {
                                    v.extend(b.client_ids.iter().cloned());
                                    ConnectGrant::Only(v)
                                }
                                (None, false) => ConnectGrant::Only(b.client_ids.clone()),
                            });
                        }
                        BrokerMethod::Publish => publish.extend(b.topics.iter().cloned()),
                        BrokerMethod::Subscribe => subscribe.extend(b.topics.iter().cloned()),
                    }
                }
                CompiledRule {
                    principals: r.principals.clone(),
                    connect,
                    publish,
                    subscribe,
                }
            })
            .collect();
        Ok(Authorizer {
            name: authorization_name.to_owned(),
            rules,
            cache: authz.cache.is_enabled().then(|| Mutex::new(HashMap::new())),
            counters: Counters::default(),
        })
    }

    /// The BrokerAuthorization's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decision counts so far.
    pub fn stats(&self) -> AuthzStats {
        let c = &self.counters;
        AuthzStats {
            connect_allowed: c.connect_allowed.load(Ordering::Relaxed),
            connect_denied: c.connect_denied.load(Ordering::Relaxed),
            publish_allowed: c.publish_allowed.load(Ordering::Relaxed),
            publish_denied: c.publish_denied.load(Ordering::Relaxed),
            subscribe_allowed: c.subscribe_allowed.load(Ordering::Relaxed),
            subscribe_denied: c.subscribe_denied.load(Ordering::Relaxed),
        }
    }

    /// May the client connect? (A Connect grant from a rule that applies, whose `clientIds`, if
    /// any, admit the client ID.)
    pub fn connect(&self, id: &Identity) -> Decision {
        let d = self.with_grants(id, |g| g.connect.clone());
        self.count(
            &d,
            &self.counters.connect_allowed,
            &self.counters.connect_denied,
        );
        d
    }

    /// May the client publish on `topic` (a topic name)? Also used for the will topic.
    pub fn publish(&self, id: &Identity, topic: &str) -> Decision {
        let d = self.decide(id, Action::Publish, topic);
        self.count(
            &d,
            &self.counters.publish_allowed,
            &self.counters.publish_denied,
        );
        d
    }

    /// May the client subscribe to `filter`? `$share/<group>/<f>` is checked on `<f>`.
    pub fn subscribe(&self, id: &Identity, filter: &str) -> Decision {
        let d = self.decide(id, Action::Subscribe, filter);
        self.count(
            &d,
            &self.counters.subscribe_allowed,
            &self.counters.subscribe_denied,
        );
        d
    }

    /// Whether `id` may subscribe to `filter` under this policy, for what a session resumed by
    /// `id` kept: its subscriptions, and the topics of its queued messages (a topic name is a
    /// filter without wildcards). Cached like [`Authorizer::subscribe`], neither counted nor
    /// logged: the caller logs what it drops.
    pub fn allows_subscribe(&self, id: &Identity, filter: &str) -> Decision {
        self.decide(id, Action::Subscribe, filter)
    }

    /// Whether `id` may publish on `topic` under this policy: a connected client's will topic,
    /// re-checked after a policy change. Neither counted nor logged (the caller logs).
    pub fn allows_publish(&self, id: &Identity, topic: &str) -> Decision {
        self.decide_with(&self.grants(id), id, Action::Publish, topic)
    }

    /// Re-checks a connected client after a policy change: does it keep Connect and every
    /// subscription (filters as subscribed, `$share/…` included)? Not cached, not counted.
    pub fn recheck<'a>(
        &self,
        id: &Identity,
        subscriptions: impl IntoIterator<Item = &'a str>,
    ) -> Recheck {
        let grants = self.grants(id);
        if let Decision::Deny { why } = grants.connect {
            return Recheck::Disconnect { why };
        }
        for filter in subscriptions {
            if let Decision::Deny { why } = self.decide_with(&grants, id, Action::Subscribe, filter)
            {
                return Recheck::Disconnect { why };
            }
        }
        Recheck::Keep
    }

    /// Forgets what the cache holds for a client (its session ended).
    pub fn forget(&self, client_id: &str) {
        if let Some(cache) = &self.cache {
            cache.lock().remove(client_id);
        }
    }

    fn count(&self, d: &Decision, allowed: &AtomicU64, denied: &AtomicU64) {
        match d {
            Decision::Allow { .. } => allowed.fetch_add(1, Ordering::Relaxed),
            Decision::Deny { .. } => denied.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn decide(&self, id: &Identity, action: Action, what: &str) -> Decision {
        let Some(cache) = &self.cache else {
            return self.decide_with(&self.grants(id), id, action, what);
        };
        let entry = self.cached(cache, id);
        let slot = action as usize;
        if let Some(d) = entry.decisions.lock()[slot].get(what) {
            return d.clone();
        }
        let d = self.decide_with(&entry.grants, id, action, what);
        let mut decisions = entry.decisions.lock();
        let map = &mut decisions[slot];
        if map.len() >= MAX_CACHED_DECISIONS {
            map.clear();
        }
        map.insert(what.to_owned(), d.clone());
        d
    }

    fn with_grants<T>(&self, id: &Identity, f: impl FnOnce(&Grants) -> T) -> T {
        match &self.cache {
            Some(cache) => f(&self.cached(cache, id).grants),
            None => f(&self.grants(id)),
        }
    }

    fn cached(&self, cache: &Mutex<HashMap<String, Arc<Cached>>>, id: &Identity) -> Arc<Cached> {
        if let Some(e) = cache.lock().get(id.client_id())
            && e.username.as_deref() == id.username()
            && e.attributes == *id.attributes()
        {
            return e.clone();
        }
        let entry = Arc::new(Cached {
            username: id.username().map(str::to_owned),
            attributes: id.attributes().clone(),
            grants: self.grants(id),
            decisions: Mutex::new([HashMap::new(), HashMap::new()]),
        });
        let mut map = cache.lock();
        if map.len() >= MAX_CACHED_PRINCIPALS {
            map.clear();
        }
        map.insert(id.client_id().to_owned(), entry.clone());
        entry
    }

    /// What the rules give `id`.
    fn grants(&self, id: &Identity) -> Grants {
        let mut connect = None;
        let mut near_connect = Vec::new();
        let mut publish = Vec::new();
        let mut subscribe = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !principal_matches(&rule.principals, id) {
                continue;
            }
            match &rule.connect {
                Some(grant) if connect.is_none() => {
                    if connect_admits(grant, id) {
                        connect = Some(i);
                    } else {
                        near_connect.push(i);
                    }
                }
                _ => {}
            }
            for (templates, out) in [
                (&rule.publish, &mut publish),
                (&rule.subscribe, &mut subscribe),
            ] {
                for t in templates {
                    if let Some(filter) = Granted::substitute(t, id) {
                        out.push(Grant {
                            rule: i,
                            template: t.as_str().to_owned(),
                            filter,
                        });
                    }
                }
            }
        }
        let connect = match connect {
            Some(rule) => Decision::Allow { rule, topic: None },
            None if !near_connect.is_empty() => Decision::Deny {
                why: format!(
                    "{} applies to {} but its Connect clientIds do not admit client ID \"{}\"",
                    rule_list(&near_connect),
                    describe(id),
                    id.client_id()
                ),
            },
            None if self.rules.is_empty() => Decision::Deny {
                why: format!(
                    "BrokerAuthorization/{} has no rules, so it denies everything",
                    self.name
                ),
            },
            None => Decision::Deny {
                why: format!(
                    "no rule of BrokerAuthorization/{} grants Connect to {}",
                    self.name,
                    describe(id)
                ),
            },
        };
        Grants {
            connect,
            publish,
            subscribe,
        }
    }

    fn decide_with(&self, grants: &Grants, id: &Identity, action: Action, what: &str) -> Decision {
        let (list, checked) = match action {
            Action::Publish => (&grants.publish, what),
            Action::Subscribe => (&grants.subscribe, topic::unshared(what)),
        };
        let hit = list.iter().find(|g| match action {
            Action::Publish => g.filter.matches_topic(checked),
            Action::Subscribe => g.filter.covers(checked),
        });
        match hit {
            Some(g) => Decision::Allow {
                rule: g.rule,
                topic: Some(g.template.clone()),
            },
            None => {
                let shared = if checked == what {
                    String::new()
                } else {
                    format!(" (checked as \"{checked}\")")
                };
                Decision::Deny {
                    why: if self.rules.is_empty() {
                        format!(
                            "BrokerAuthorization/{} has no rules, so it denies everything",
                            self.name
                        )
                    } else {
                        format!(
                            "no rule of BrokerAuthorization/{} grants {} on \"{what}\"{shared} to {}",
                            self.name,
                            action.name(),
                            describe(id)
                        )
                    },
                }
            }
        }
    }
}

fn rule_list(rules: &[usize]) -> String {
    let names: Vec<String> = rules.iter().map(|r| format!("rules[{r}]")).collect();
    names.join(", ")
}

/// Whether a rule's principals include the client.
fn principal_matches(p: &Principals, id: &Identity) -> bool {
    p.client_ids.iter().any(|c| c == id.client_id())
        || id
            .username()
            .is_some_and(|u| p.usernames.iter().any(|n| n == u))
        || p.attributes
            .iter()
            .any(|m| !m.is_empty() && m.iter().all(|(k, v)| id.attributes().get(k) == Some(v)))
}

fn connect_admits(grant: &ConnectGrant, id: &Identity) -> bool {
    match grant {
        ConnectGrant::Any => true,
        ConnectGrant::Only(patterns) => patterns.iter().any(|p| {
            let Some(p) = substitute_text(p, id) else {
                return false;
            };
            match p.strip_suffix('*') {
                Some(prefix) => id.client_id().starts_with(prefix),
                None => id.client_id() == p,
            }
        }),
    }
}

/// Replaces `{principal.…}` tokens anywhere in a text (Connect `clientIds`); `None` when one is
/// missing or unknown.
fn substitute_text(pattern: &str, id: &Identity) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let token = &rest[open + 1..close];
        let value = match token {
            "principal.clientId" => Some(id.client_id()),
            "principal.username" => id.username(),
            _ => token
                .strip_prefix("principal.attributes.")
                .and_then(|k| id.attributes().get(k))
                .map(String::as_str),
        }?;
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The principal, for messages.
pub(crate) fn describe(id: &Identity) -> String {
    let mut s = format!("client ID \"{}\"", id.client_id());
    match id.username() {
        Some(u) => s.push_str(&format!(", username \"{u}\"")),
        None => s.push_str(", no username"),
    }
    if id.attributes().is_empty() {
        s.push_str(", no attributes");
    } else {
        let attrs: Vec<String> = id
            .attributes()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(", attributes {{{}}}", attrs.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::AuthMethodKind;

    fn model(rules_yaml: &str, cache: &str) -> Model {
        let yaml = format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\nmetadata: {{name: z}}\nspec:\n  authorizationPolicies:\n    cache: {cache}\n    rules:\n{rules_yaml}"
        );
        wardgate_config::load_str("t.yaml", &yaml).unwrap().model
    }

    fn id(client: &str, user: Option<&str>, attrs: &[(&str, &str)]) -> Identity {
        Identity::assumed(
            client,
            user,
            attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            AuthMethodKind::X509,
        )
    }

    const RULES: &str = r##"
    - principals:
        attributes: [{building: b17, floor: "2"}, {role: admin}]
      brokerResources:
      - method: Connect
        clientIds: ["{principal.attributes.building}-*"]
      - method: Publish
        topics: ["sensors/{principal.attributes.building}/{principal.clientId}/#"]
      - method: Subscribe
        topics: ["commands/{principal.clientId}/+", "broadcast/#"]
    - principals:
        clientIds: [legacy]
        usernames: [ops]
      brokerResources:
      - method: Connect
      - method: Subscribe
        topics: ["#", "$SYS/#"]
"##;

    #[test]
    fn principals_or_maps_and_keys() {
        for cache in ["Enabled", "Disabled"] {
            let a = Authorizer::new(&model(RULES, cache), "z").unwrap();
            // Both keys of the first map: applies; the Connect clientIds prefix admits.
            let dev = id("b17-dev", None, &[("building", "b17"), ("floor", "2")]);
            assert_eq!(
                a.connect(&dev),
                Decision::Allow {
                    rule: 0,
                    topic: None
                }
            );
            // One key only: the map does not match.
            let half = id("b17-dev", None, &[("building", "b17")]);
            assert!(!a.connect(&half).is_allowed());
            // Second map alone matches, but the clientIds prefix needs `building`.
            let admin = id("b17-x", None, &[("role", "admin")]);
            let Decision::Deny { why } = a.connect(&admin) else {
                panic!("expected deny")
            };
            assert!(why.contains("clientIds"), "{why}");
            // Client ID outside the prefix.
            let other = id("b18-dev", None, &[("building", "b17"), ("floor", "2")]);
            assert!(!a.connect(&other).is_allowed());
            // Case-sensitive.
            let upper = id("b17-dev", None, &[("Building", "b17"), ("floor", "2")]);
            assert!(!a.connect(&upper).is_allowed());
            // Client ID or username principals.
            assert!(a.connect(&id("legacy", None, &[])).is_allowed());
            assert!(a.connect(&id("x", Some("ops"), &[])).is_allowed());
            assert!(!a.connect(&id("x", Some("Ops"), &[])).is_allowed());
        }
    }

    #[test]
    fn publish_and_subscribe_with_substitution() {
        for cache in ["Enabled", "Disabled"] {
            let a = Authorizer::new(&model(RULES, cache), "z").unwrap();
            let dev = id("b17-dev", None, &[("building", "b17"), ("floor", "2")]);
            assert_eq!(
                a.publish(&dev, "sensors/b17/b17-dev/temp"),
                Decision::Allow {
                    rule: 0,
                    topic: Some(
                        "sensors/{principal.attributes.building}/{principal.clientId}/#".into()
                    )
                }
            );
            assert!(!a.publish(&dev, "sensors/b17/b17-other/temp").is_allowed());
            assert!(!a.publish(&dev, "sensors/b18/b17-dev/temp").is_allowed());
            assert!(a.subscribe(&dev, "commands/b17-dev/reboot").is_allowed());
            assert!(a.subscribe(&dev, "commands/b17-dev/+").is_allowed());
            assert!(!a.subscribe(&dev, "commands/b17-dev/#").is_allowed());
            assert!(a.subscribe(&dev, "$share/g/broadcast/x").is_allowed());
            assert!(!a.subscribe(&dev, "$share/g/other").is_allowed());
            // `#` does not reach `$` topics; the explicit rule does.
            let ops = id("x", Some("ops"), &[]);
            assert!(a.subscribe(&ops, "#").is_allowed());
            assert_eq!(
                a.subscribe(&ops, "$SYS/broker/uptime"),
                Decision::Allow {
                    rule: 1,
                    topic: Some("$SYS/#".into())
                }
            );
            assert!(!a.publish(&ops, "anything").is_allowed());
            // Repeated answers are stable (cache hits).
            for _ in 0..3 {
                assert!(a.publish(&dev, "sensors/b17/b17-dev/temp").is_allowed());
                assert!(!a.publish(&dev, "x").is_allowed());
            }
        }
    }

    #[test]
    fn cache_follows_identity_changes() {
        let a = Authorizer::new(&model(RULES, "Enabled"), "z").unwrap();
        let dev = id("b17-dev", None, &[("building", "b17"), ("floor", "2")]);
        assert!(a.publish(&dev, "sensors/b17/b17-dev/t").is_allowed());
        // Same client ID, other attributes (a reconnect with another certificate).
        let moved = id("b17-dev", None, &[("building", "b18"), ("role", "admin")]);
        assert!(!a.publish(&moved, "sensors/b17/b17-dev/t").is_allowed());
        assert!(a.publish(&moved, "sensors/b18/b17-dev/t").is_allowed());
        a.forget("b17-dev");
        assert!(a.publish(&dev, "sensors/b17/b17-dev/t").is_allowed());
        let s = a.stats();
        assert_eq!((s.publish_allowed, s.publish_denied), (3, 1));
    }

    #[test]
    fn empty_policy_denies_everything() {
        let a = Authorizer::new(&model("      []\n", "Enabled"), "z").unwrap();
        let i = id("c", Some("u"), &[("a", "b")]);
        for d in [a.connect(&i), a.publish(&i, "t"), a.subscribe(&i, "t")] {
            let Decision::Deny { why } = d else {
                panic!("expected deny")
            };
            assert!(why.contains("no rules"), "{why}");
        }
    }

    #[test]
    fn recheck_after_a_policy_change() {
        let a = Authorizer::new(&model(RULES, "Enabled"), "z").unwrap();
        let dev = id("b17-dev", None, &[("building", "b17"), ("floor", "2")]);
        assert_eq!(
            a.recheck(&dev, ["broadcast/#", "commands/b17-dev/x"]),
            Recheck::Keep
        );
        assert!(matches!(
            a.recheck(&dev, ["broadcast/#", "secrets/#"]),
            Recheck::Disconnect { .. }
        ));
        assert!(matches!(
            a.recheck(&id("nobody", None, &[]), []),
            Recheck::Disconnect { .. }
        ));
    }

    #[test]
    fn connect_client_id_patterns() {
        let i = id("b17-7", Some("u"), &[("building", "b17")]);
        let p = |s: &str| connect_admits(&ConnectGrant::Only(vec![s.to_owned()]), &i);
        assert!(p("b17-7"));
        assert!(p("b17*"));
        assert!(p("{principal.attributes.building}*"));
        assert!(p("{principal.clientId}"));
        assert!(p("*"));
        assert!(!p("b17"));
        assert!(!p("{principal.attributes.floor}*"));
        assert!(!p("{principal.attributes.building"));
    }

    #[test]
    fn decisions_display() {
        assert_eq!(
            Decision::Allow {
                rule: 2,
                topic: Some("a/#".into())
            }
            .to_string(),
            "allowed by rules[2], topic \"a/#\""
        );
        assert_eq!(Decision::Deny { why: "x".into() }.to_string(), "denied: x");
    }
}
