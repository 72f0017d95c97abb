//! Rule topics against client topics (SPEC.md §8.2): substituting `{principal.…}` tokens,
//! matching a topic name (publish) and covering a requested filter (subscribe).
//!
//! A substituted value is always one literal level. A value that is empty or holds `/`, `+`,
//! `#` or NUL would change the filter's shape (a client ID `+` turning `clients/{clientId}/#`
//! into everyone's topics), so such a topic matches nothing, as does a missing token.
//! Topics beginning with `$` match only filters whose first level is written as that literal in
//! the rule: neither wildcards nor substituted values reach them.

use wardgate_config::{TopicSegment, TopicTemplate};

use crate::authn::Identity;

/// One level of a substituted rule filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Level {
    /// Literal text written in the rule.
    Literal(String),
    /// A substituted token's value (always literal, never a wildcard).
    Value(String),
    /// `+`.
    Plus,
    /// `#`.
    Hash,
}

/// A rule topic with the principal's values in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Granted {
    levels: Vec<Level>,
}

impl Granted {
    /// Substitutes the tokens of `template` for `id`; `None` when a token is missing or its
    /// value cannot be one literal level.
    pub(crate) fn substitute(template: &TopicTemplate, id: &Identity) -> Option<Granted> {
        let mut levels = Vec::new();
        for seg in template.segments() {
            let value = match seg {
                TopicSegment::Literal("+") => {
                    levels.push(Level::Plus);
                    continue;
                }
                TopicSegment::Literal("#") => {
                    levels.push(Level::Hash);
                    continue;
                }
                TopicSegment::Literal(l) => {
                    levels.push(Level::Literal(l.to_owned()));
                    continue;
                }
                TopicSegment::ClientId => Some(id.client_id()),
                TopicSegment::Username => id.username(),
                TopicSegment::Attribute(k) => id.attributes().get(k).map(String::as_str),
            }?;
            if value.is_empty() || value.contains(['/', '+', '#', '\0']) {
                return None;
            }
            levels.push(Level::Value(value.to_owned()));
        }
        Some(Granted { levels })
    }

    /// Whether the first level is a literal beginning with `$` written in the rule.
    fn names_dollar(&self) -> bool {
        matches!(self.levels.first(), Some(Level::Literal(l)) if l.starts_with('$'))
    }

    /// Whether the topic name is matched (publish).
    pub(crate) fn matches_topic(&self, topic: &str) -> bool {
        if topic.starts_with('$') && !self.names_dollar() {
            return false;
        }
        let mut t = topic.split('/');
        let mut g = self.levels.iter();
        loop {
            match (g.next(), t.next()) {
                (Some(Level::Hash), _) => return true,
                (Some(Level::Plus), Some(_)) => {}
                (Some(Level::Literal(l) | Level::Value(l)), Some(s)) if l == s => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Whether every topic the requested filter can match is matched by this filter
    /// (subscribe). `requested` is a valid, non-shared filter.
    pub(crate) fn covers(&self, requested: &str) -> bool {
        if requested.starts_with('$') && !self.names_dollar() {
            return false;
        }
        // A requested filter starting with a wildcard matches no `$` topic, so a rule naming a
        // `$` level cannot cover it unless its own first level is a wildcard (handled below).
        let mut r = requested.split('/');
        let mut g = self.levels.iter();
        loop {
            match (g.next(), r.next()) {
                // `#` covers whatever remains, including nothing (`a/#` matches `a`).
                (Some(Level::Hash), _) => return true,
                // `+` covers one level that is not `#`.
                (Some(Level::Plus), Some(s)) if s != "#" => {}
                (Some(Level::Literal(l) | Level::Value(l)), Some(s)) if l == s => {}
                (None, None) => return true,
                // The requested filter ended first: only a trailing `#` (matching the parent
                // level) would still cover it, which the first arm handled.
                _ => return false,
            }
        }
    }

    /// The filter as text, for messages (values appear as written).
    pub(crate) fn to_filter(&self) -> String {
        self.levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) | Level::Value(s) => s.as_str(),
                Level::Plus => "+",
                Level::Hash => "#",
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The filter a SUBSCRIBE filter is authorized on: `$share/<group>/<filter>` → `<filter>`.
pub(crate) fn unshared(filter: &str) -> &str {
    match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, f)) if !f.is_empty() => f,
            _ => filter,
        },
        None => filter,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use wardgate_protocol::topic_matches;

    use super::*;
    use crate::authn::{AuthMethodKind, Identity};

    pub(crate) fn template(s: &str) -> TopicTemplate {
        let yaml = format!(
            "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\nmetadata: {{name: z}}\nspec:\n  authorizationPolicies:\n    rules:\n    - principals: {{clientIds: [x]}}\n      brokerResources:\n      - method: Publish\n        topics: [\"{s}\"]\n"
        );
        let loaded = wardgate_config::load_str("t.yaml", &yaml).unwrap();
        loaded.model.authorizations["z"].rules[0].broker_resources[0].topics[0].clone()
    }

    fn id(client: &str, user: Option<&str>, attrs: &[(&str, &str)]) -> Identity {
        Identity::assumed(
            client,
            user,
            attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            AuthMethodKind::X509,
        )
    }

    fn granted(t: &str, i: &Identity) -> Option<Granted> {
        Granted::substitute(&template(t), i)
    }

    #[test]
    fn substitution_is_whole_level_and_literal() {
        let i = id("dev1", Some("alice"), &[("building", "b17")]);
        let g = granted(
            "clients/{principal.clientId}/{principal.username}/{principal.attributes.building}/#",
            &i,
        )
        .unwrap();
        assert_eq!(g.to_filter(), "clients/dev1/alice/b17/#");
        assert!(g.matches_topic("clients/dev1/alice/b17/x"));
        assert!(!g.matches_topic("clients/dev2/alice/b17/x"));
        // Missing username or attribute: nothing.
        assert!(granted("u/{principal.username}", &id("c", None, &[])).is_none());
        assert!(granted("a/{principal.attributes.floor}", &i).is_none());
        // Values that would change the filter's shape: nothing.
        for bad in ["+", "#", "a/b", ""] {
            assert!(
                granted("c/{principal.clientId}/#", &id(bad, None, &[])).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn dollar_topics_need_an_explicit_rule() {
        let i = id("c", None, &[("x", "$SYS")]);
        assert!(
            !granted("#", &i)
                .unwrap()
                .matches_topic("$SYS/broker/uptime")
        );
        assert!(
            !granted("+/broker/#", &i)
                .unwrap()
                .matches_topic("$SYS/broker/uptime")
        );
        assert!(
            granted("$SYS/#", &i)
                .unwrap()
                .matches_topic("$SYS/broker/uptime")
        );
        assert!(
            !granted("{principal.attributes.x}/#", &i)
                .unwrap()
                .matches_topic("$SYS/broker"),
            "a substituted value does not name a $ topic"
        );
        assert!(!granted("#", &i).unwrap().covers("$SYS/#"));
        assert!(granted("$SYS/#", &i).unwrap().covers("$SYS/broker/+"));
        assert!(!granted("$SYS/broker", &i).unwrap().covers("#"));
    }

    #[test]
    fn coverage_examples() {
        let i = id("c", None, &[]);
        let g = granted("telemetry/#", &i).unwrap();
        assert!(g.covers("telemetry/+/x"));
        assert!(g.covers("telemetry"));
        assert!(g.covers("telemetry/#"));
        assert!(!g.covers("#"));
        assert!(!g.covers("+/x"));
        let p = granted("a/+/c", &i).unwrap();
        assert!(p.covers("a/b/c"));
        assert!(p.covers("a/+/c"));
        assert!(!p.covers("a/#"));
        assert!(!p.covers("a/+/c/d"));
        assert!(!p.covers("a/b"));
        assert!(!granted("a/+", &i).unwrap().covers("a/#"));
        assert!(!granted("a", &i).unwrap().covers("a/#"));
        assert!(granted("a/#", &i).unwrap().covers("a"));
    }

    #[test]
    fn shared_filters_are_checked_on_the_inner_filter() {
        assert_eq!(unshared("$share/g/telemetry/#"), "telemetry/#");
        assert_eq!(unshared("telemetry/#"), "telemetry/#");
        assert_eq!(unshared("$share/g"), "$share/g");
    }

    // Property tests: the matcher and the coverage check against brute force over a small
    // universe of topics.
    const WORDS: &[&str] = &["a", "b", "", "$s"];

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just(String::new()),
            Just("$s".to_owned()),
            Just("+".to_owned()),
        ]
    }

    fn filter() -> impl Strategy<Value = String> {
        (prop::collection::vec(level(), 1..4), any::<bool>()).prop_map(|(mut l, hash)| {
            if hash {
                l.push("#".to_owned());
            }
            let f = l.join("/");
            if f.is_empty() { "a".to_owned() } else { f }
        })
    }

    /// Every topic of 1 to 5 levels over WORDS plus a word no filter uses.
    fn universe() -> Vec<String> {
        let words: Vec<&str> = WORDS.iter().copied().chain(["zz"]).collect();
        let mut out: Vec<Vec<String>> = words.iter().map(|w| vec![(*w).to_owned()]).collect();
        let mut all = out.clone();
        for _ in 1..5 {
            let mut next = Vec::new();
            for t in &out {
                for w in &words {
                    let mut n = t.clone();
                    n.push((*w).to_owned());
                    next.push(n);
                }
            }
            all.extend(next.iter().cloned());
            out = next;
        }
        all.into_iter().map(|l| l.join("/")).collect()
    }

    fn literal_first(f: &str) -> bool {
        !f.starts_with(['+', '#'])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn matching_agrees_with_mqtt_rules(g in filter(), t in prop::sample::select(universe())) {
            let i = id("c", None, &[]);
            let granted = Granted::substitute(&template(&g), &i).unwrap();
            // The MQTT rule, plus: `$` topics need the rule to name them literally.
            let expected = topic_matches(&g, &t) && (!t.starts_with('$') || literal_first(&g));
            prop_assert_eq!(granted.matches_topic(&t), expected, "{} vs {}", g, t);
        }

        #[test]
        fn coverage_agrees_with_brute_force(g in filter(), r in filter()) {
            let i = id("c", None, &[]);
            let granted = Granted::substitute(&template(&g), &i).unwrap();
            let brute = universe()
                .iter()
                .filter(|t| topic_matches(&r, t))
                .all(|t| granted.matches_topic(t));
            prop_assert_eq!(granted.covers(&r), brute, "{} covers {}?", g, r);
        }
    }
}
