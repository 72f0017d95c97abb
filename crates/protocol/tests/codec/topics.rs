//! Topic matching (MQTT 5 §4.7): wildcards, the '$' rule, the parent-level rule of '#', empty
//! levels, and shared-subscription filters (§4.8.2).

use proptest::collection::vec;
use proptest::prelude::*;
use wardgate_protocol::{SubscriptionFilter, TopicError, TopicFilter, topic_matches};

use crate::strategies::topic_name;

#[test]
fn matching_table() {
    let cases = [
        // Exact and '+' (§4.7.1.3).
        ("a/b", "a/b", true),
        ("a/b", "a/b/", false),
        ("a/b", "a", false),
        ("a/+", "a/b", true),
        ("a/+", "a/b/c", false),
        ("a/+", "a", false),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        // '+' matches an empty level.
        ("a/+", "a/", true),
        ("a/+/c", "a//c", true),
        ("+", "", true),
        // '#' (§4.7.1.2), including the parent level: "a/#" matches "a".
        ("#", "a/b/c", true),
        ("#", "/", true),
        ("a/#", "a", true),
        ("a/#", "a/", true),
        ("a/#", "a/b/c", true),
        ("a/#", "ab", false),
        ("a/b/#", "a", false),
        ("+/#", "a", true),
        ("+/#", "/", true),
        // Case sensitivity and non-ASCII.
        ("A/b", "a/b", false),
        ("温度/+", "温度/x", true),
        // '$' topics (§4.7.2, MQTT-4.7.2-1): no match by a leading wildcard.
        ("#", "$SYS/uptime", false),
        ("+/uptime", "$SYS/uptime", false),
        ("+", "$", false),
        ("$SYS/#", "$SYS/uptime", true),
        ("$SYS/#", "$SYS", true),
        ("$SYS/+", "$SYS/uptime", true),
        ("a/#", "a/$x", true),
        ("a/+", "a/$x", true),
    ];
    for (filter, topic, expected) in cases {
        assert_eq!(
            topic_matches(filter, topic),
            expected,
            "{filter} vs {topic}"
        );
        let parsed = TopicFilter::new(filter).expect("table filters are valid");
        assert_eq!(parsed.matches(topic), expected, "{filter} vs {topic}");
    }
}

#[test]
fn shared_filters_parse_group_and_filter() {
    let shared = |s: &str| {
        SubscriptionFilter::new(TopicFilter::new(s).expect("valid filter"))
            .map(|f| f.shared().cloned())
    };
    let ok = shared("$share/g1/a/+/#")
        .expect("well-formed")
        .expect("shared");
    assert_eq!(&**ok.group(), "g1");
    assert_eq!(ok.filter().as_str(), "a/+/#");
    assert!(ok.filter().matches("a/b/c"));
    let sys = shared("$share/g/$SYS/#")
        .expect("well-formed")
        .expect("shared");
    assert_eq!(sys.filter().as_str(), "$SYS/#");
    assert_eq!(
        shared("$share/g//")
            .expect("well-formed")
            .expect("shared")
            .filter()
            .as_str(),
        "/"
    );

    for plain in ["a/b", "$share", "$sharex/g/a", "$SYS/#"] {
        assert!(matches!(shared(plain), Ok(None)), "{plain}");
    }
    for bad in [
        "$share/g",
        "$share/g/",
        "$share//a",
        "$share/+/a",
        "$share/#",
    ] {
        assert!(
            matches!(shared(bad), Err(TopicError::InvalidShare)),
            "{bad}"
        );
    }
    assert!(TopicFilter::new("$share/g/a").expect("valid").is_shared());
    assert!(TopicFilter::new("a/#").expect("valid").has_wildcards());
    assert!(!TopicFilter::new("a/b").expect("valid").has_wildcards());
}

proptest! {
    /// Replacing levels of a topic by '+' and cutting it with '#' (possibly right after its last
    /// level) gives filters that match it, unless the '$' rule applies.
    #[test]
    fn filters_derived_from_a_topic_match_it(
        topic in topic_name(),
        pluses in vec(any::<bool>(), 8),
        cut in proptest::option::of(0usize..6),
    ) {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut filter: Vec<&str> = levels
            .iter()
            .zip(pluses.iter().chain(std::iter::repeat(&false)))
            .map(|(level, plus)| if *plus { "+" } else { level })
            .collect();
        if let Some(cut) = cut {
            filter.truncate(cut.min(levels.len()));
            filter.push("#");
        }
        let filter = filter.join("/");
        let dollar_rule = topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#'));
        prop_assert_eq!(topic_matches(&filter, &topic), !dollar_rule, "{} vs {}", filter, topic);
        // One more level than the topic has never matches without '#'.
        if cut.is_none() {
            let longer = format!("{filter}/extra");
            prop_assert!(!topic_matches(&longer, &topic));
        }
    }

    /// A filter without wildcards matches exactly the topic it spells.
    #[test]
    fn plain_filters_match_only_themselves(a in topic_name(), b in topic_name()) {
        let filter = TopicFilter::new(a.as_str()).expect("a topic name is a valid filter");
        prop_assert!(filter.matches(&a));
        prop_assert_eq!(filter.matches(&b), a == b);
    }
}
