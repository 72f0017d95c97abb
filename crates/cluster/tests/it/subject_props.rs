//! Property tests of the topic/subject mapping: it is reversible, and NATS matching of the
//! subjects `filter_subjects` makes agrees with MQTT matching (the protocol crate's) for topics
//! and filters made of every level form: empty levels, leading `/`, `.`, spaces, `$` first
//! levels, `_`-prefixed levels, NATS wildcards, UTF-8, `+` and `#`.

use proptest::prelude::*;
use wardgate_cluster::{filter_subjects, subject_topic, topic_subject};
use wardgate_protocol::{TopicFilter, TopicName};

const PREFIX: &str = "wg";

/// Whether the NATS subject pattern `pattern` matches the literal `subject`, token by token:
/// `*` is one token, a last `>` one or more tokens.
fn nats_matches(pattern: &str, subject: &str) -> bool {
    let mut pattern = pattern.split('.');
    let mut subject = subject.split('.');
    loop {
        match (pattern.next(), subject.next()) {
            (Some(">"), Some(_)) => return pattern.next().is_none(),
            (Some("*"), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// One topic level: a small shared alphabet (so that filters and topics often meet) with every
/// form that needs encoding.
fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "", "a", "b", "A-9", ".", "a.b", " ", "a b", "$x", "$SYS", "_", "_61", "é", "日本",
            "*", ">", "-", "\t",
        ])
        .prop_map(str::to_owned),
        1 => "[ab_.$ é*>-]{0,3}",
    ]
}

fn topic() -> impl Strategy<Value = TopicName> {
    prop::collection::vec(level(), 1..5).prop_filter_map("not a topic name", |levels| {
        TopicName::new(levels.join("/")).ok()
    })
}

/// A filter of its own: levels or `+`, maybe ending in `#`.
fn free_filter() -> impl Strategy<Value = TopicFilter> {
    let filter_level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (prop::collection::vec(filter_level, 0..5), any::<bool>()).prop_filter_map(
        "not a topic filter",
        |(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#".to_owned());
            }
            TopicFilter::new(levels.join("/")).ok()
        },
    )
}

/// A filter made from a topic (some levels turned into `+`, maybe cut off with `#`), so that
/// matches are common.
fn filter_of(topic: &TopicName) -> impl Strategy<Value = TopicFilter> + use<> {
    let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
    let n = levels.len();
    (
        prop::collection::vec(any::<bool>(), n),
        prop::option::of(0..=n),
    )
        .prop_filter_map("not a topic filter", move |(plus, cut)| {
            let mut out: Vec<String> = levels
                .iter()
                .zip(&plus)
                .map(|(l, &p)| if p { "+".to_owned() } else { l.clone() })
                .collect();
            if let Some(cut) = cut {
                out.truncate(cut);
                out.push("#".to_owned());
            }
            TopicFilter::new(out.join("/")).ok()
        })
}

fn topic_and_filter() -> impl Strategy<Value = (TopicName, TopicFilter)> {
    prop_oneof![
        (topic(), free_filter()),
        topic().prop_flat_map(|t| (Just(t.clone()), filter_of(&t))),
    ]
}

/// Whether NATS delivers a message on `topic`'s subject to someone subscribed to `filter`'s.
fn nats_delivers(filter: &TopicFilter, topic: &TopicName) -> bool {
    let subject = topic_subject(PREFIX, topic);
    filter_subjects(PREFIX, filter)
        .iter()
        .any(|pattern| nats_matches(pattern, &subject))
}

/// Whether `token` is a valid literal NATS token: not empty, no `.`, `*`, `>` or whitespace.
fn is_nats_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn a_subject_gives_back_its_topic(t in topic()) {
        let subject = topic_subject(PREFIX, &t);
        prop_assert!(subject.split('.').all(is_nats_token), "{subject}");
        prop_assert_eq!(subject_topic(PREFIX, &subject), Some(t));
    }

    #[test]
    fn nats_matching_of_the_subjects_is_mqtt_matching((t, f) in topic_and_filter()) {
        prop_assert_eq!(
            nats_delivers(&f, &t),
            f.matches(&t),
            "filter {:?} → {:?}, topic {:?} → {}",
            f.as_str(),
            filter_subjects(PREFIX, &f),
            t.as_str(),
            topic_subject(PREFIX, &t)
        );
    }

    #[test]
    fn filter_subjects_are_valid_nats_patterns(f in free_filter()) {
        for pattern in filter_subjects(PREFIX, &f) {
            let tokens: Vec<&str> = pattern.split('.').collect();
            for (i, token) in tokens.iter().enumerate() {
                let wildcard = *token == "*" || (*token == ">" && i == tokens.len() - 1);
                prop_assert!(wildcard || is_nats_token(token), "{pattern}");
            }
        }
    }
}

#[test]
fn the_matcher_in_this_test_follows_nats() {
    assert!(nats_matches("a.*", "a.b"));
    assert!(!nats_matches("a.*", "a"));
    assert!(!nats_matches("a.*", "a.b.c"));
    assert!(nats_matches("a.>", "a.b.c"));
    assert!(!nats_matches("a.>", "a"));
    assert!(nats_matches("a", "a"));
    assert!(!nats_matches("a.b", "a.c"));
}
