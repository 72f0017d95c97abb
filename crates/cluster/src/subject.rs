//! The reversible mapping between MQTT topics and NATS subjects, and from MQTT filters to the
//! NATS subjects that match the same topics.
//!
//! A subject is `<prefix>.<class>.<tok1>.<tok2>...`, one token per topic level. The class is `t`
//! for topics whose first level does not start with `$` and `s` for those that do, so a filter
//! starting with `+` or `#` (mapped into class `t` only) never matches a `$` topic (MQTT 5
//! §4.7.2). A level made only of `[A-Za-z0-9-]` is its own token; any other level (empty, or
//! with a byte NATS forbids in a token or that could be confused with an encoding) is `_`
//! followed by the lowercase hex of its UTF-8 bytes, the empty level being `_` alone. A raw token
//! never starts with `_`, so the mapping is injective and [`subject_topic`] reverses it.

use std::fmt::Write as _;

use wardgate_protocol::{TopicFilter, TopicName};

/// The class token of topics whose first level does not start with `$`.
const CLASS_TOPIC: &str = "t";
/// The class token of topics whose first level starts with `$` (`$SYS/...`, `$azure/...`).
const CLASS_SYSTEM: &str = "s";
/// The first byte of an encoded token.
const ENCODED: u8 = b'_';

/// The NATS subject `topic` is published on under `prefix` (e.g. `wg`): `a/b` → `wg.t.a.b`,
/// `$SYS/x` → `wg.s._24535953.x`, `/` → `wg.t._._`.
pub fn topic_subject(prefix: &str, topic: &TopicName) -> String {
    let class = if topic.is_system() {
        CLASS_SYSTEM
    } else {
        CLASS_TOPIC
    };
    let mut subject = subject_head(prefix, class, topic.len());
    for level in topic.split('/') {
        subject.push('.');
        push_level(&mut subject, level);
    }
    subject
}

/// The topic whose subject under `prefix` is `subject`; `None` for a subject
/// [`topic_subject`] does not make (another prefix, a wildcard, an unknown class, a token that is
/// not in canonical form, or levels that are not a valid topic name).
pub fn subject_topic(prefix: &str, subject: &str) -> Option<TopicName> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (class, tokens) = rest.split_once('.')?;
    let mut topic = String::with_capacity(tokens.len());
    for (i, token) in tokens.split('.').enumerate() {
        if i > 0 {
            topic.push('/');
        }
        topic.push_str(&decode_token(token)?);
    }
    let system = topic.starts_with('$');
    let expected = if system { CLASS_SYSTEM } else { CLASS_TOPIC };
    if class != expected {
        return None;
    }
    TopicName::new(topic).ok()
}

/// `text` as one subject token, encoded as a topic level is (a client ID as a key of the
/// ownership bucket): `dev-1` → `dev-1`, `a.b` → `_612e62`.
pub fn level_token(text: &str) -> String {
    let mut token = String::with_capacity(text.len());
    push_level(&mut token, text);
    token
}

/// The longest key [`client_key`] makes from a client ID before it hashes it: a key is part of
/// a NATS subject, and nats-server closes a connection whose control line passes 4 KiB (a
/// client could otherwise cut its node off the cluster with a long client ID).
pub const MAX_CLIENT_KEY: usize = 1024;

/// The key-value key of a client ID (ownership, wills): its [`level_token`], or, when that is
/// longer than [`MAX_CLIENT_KEY`], `__` and a [`stable_hash`] of the ID (a level token never
/// starts with `__`, so the two never meet; [`token_text`] reads no client ID back from it).
pub fn client_key(client_id: &str) -> String {
    let token = level_token(client_id);
    if token.len() <= MAX_CLIENT_KEY {
        return token;
    }
    format!("__{}", stable_hash(client_id.as_bytes()))
}

/// 128 bits of `bytes` as 32 hex digits that every node and every build computes alike
/// (FNV-1a, twice with different seeds; unlike `DefaultHasher`, fixed by its definition).
pub fn stable_hash(bytes: &[u8]) -> String {
    let fnv = |seed: u64| {
        bytes.iter().fold(seed, |hash, &b| {
            (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// The text a token made by [`level_token`] stands for (`None`: not such a token).
pub fn token_text(token: &str) -> Option<String> {
    decode_token(token)
}

/// The NATS subjects under `prefix` that together match exactly the topics `filter` matches:
/// `+` → `*`; a trailing `#` → `>` plus the parent level itself (`a/#` → `[p.t.a, p.t.a.>]`,
/// `#` → `[p.t.>]`). A filter whose first level is a wildcard maps into class `t` only, one
/// whose first level is a literal starting with `$` into class `s`. `filter` is the plain
/// filter: pass a shared subscription's inner filter (`SubscriptionFilter::route`).
pub fn filter_subjects(prefix: &str, filter: &TopicFilter) -> Vec<String> {
    let class = if filter.starts_with('$') {
        CLASS_SYSTEM
    } else {
        CLASS_TOPIC
    };
    let (levels, multi) = match filter.strip_suffix('#') {
        // `#` alone, or `.../#`: `#` is always a whole last level.
        Some("") => (None, true),
        Some(parent) => (parent.strip_suffix('/'), true),
        None => (Some(filter.as_str()), false),
    };
    let mut parent = subject_head(prefix, class, filter.len());
    if let Some(levels) = levels {
        for level in levels.split('/') {
            parent.push('.');
            if level == "+" {
                parent.push('*');
            } else {
                push_level(&mut parent, level);
            }
        }
    }
    if !multi {
        return vec![parent];
    }
    let all = format!("{parent}.>");
    if levels.is_none() {
        // `#` alone: `p.t` is never a topic subject (every topic has at least one level).
        return vec![all];
    }
    vec![parent, all]
}

/// `<prefix>.<class>`, with room for a topic of `topic_len` bytes.
fn subject_head(prefix: &str, class: &str, topic_len: usize) -> String {
    let mut subject = String::with_capacity(prefix.len() + 3 + topic_len * 2);
    subject.push_str(prefix);
    subject.push('.');
    subject.push_str(class);
    subject
}

/// Whether `level` is its own token: not empty, only `[A-Za-z0-9-]`.
fn is_raw(level: &str) -> bool {
    !level.is_empty()
        && level
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Appends the token of one topic level.
fn push_level(subject: &mut String, level: &str) {
    if is_raw(level) {
        subject.push_str(level);
        return;
    }
    subject.push(char::from(ENCODED));
    for b in level.bytes() {
        // Writing to a String cannot fail.
        let _ = write!(subject, "{b:02x}");
    }
}

/// The level a token stands for, if the token is in the form [`push_level`] makes.
fn decode_token(token: &str) -> Option<String> {
    let Some(hex) = token.strip_prefix(char::from(ENCODED)) else {
        return is_raw(token).then(|| token.to_owned());
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = hex
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect::<Option<Vec<u8>>>()?;
    let level = String::from_utf8(bytes).ok()?;
    // Canonical form only: a raw level is never encoded, so `_61` is not a token for `a`.
    (!is_raw(&level)).then_some(level)
}

/// The value of a lowercase hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_id_too_long_for_a_key_is_hashed_and_a_short_one_is_its_token() {
        assert_eq!(client_key("dev.1"), level_token("dev.1"));
        // The longest client ID MQTT allows, made of bytes that double in a token.
        let long = ".".repeat(65_535);
        let key = client_key(&long);
        assert!(key.len() <= MAX_CLIENT_KEY, "{} bytes", key.len());
        assert!(key.starts_with("__") && token_text(&key).is_none(), "{key}");
        assert_ne!(key, client_key(&".".repeat(65_534)));
        assert_eq!(key, client_key(&long), "the same on every call");
        // Pinned: every node and build computes the same key.
        assert_eq!(stable_hash(b"g"), stable_hash(b"g"));
        assert_eq!(
            stable_hash(b""),
            "cbf29ce484222325".to_owned() + "6c62272e07bb0142"
        );
    }

    fn topic(s: &str) -> TopicName {
        TopicName::new(s).expect("topic")
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::new(s).expect("filter")
    }

    #[test]
    fn topics_map_level_by_level() {
        let cases = [
            ("a/b", "wg.t.a.b"),
            ("A-1/b-C", "wg.t.A-1.b-C"),
            ("/", "wg.t._._"),
            ("/a", "wg.t._.a"),
            ("a//b", "wg.t.a._.b"),
            ("a.b", "wg.t._612e62"),
            ("a b", "wg.t._612062"),
            ("_x", "wg.t._5f78"),
            ("*/>", "wg.t._2a._3e"),
            ("$SYS/x", "wg.s._24535953.x"),
            ("a/$x", "wg.t.a._2478"),
            ("é", "wg.t._c3a9"),
        ];
        for (t, s) in cases {
            assert_eq!(topic_subject("wg", &topic(t)), s, "{t}");
            assert_eq!(subject_topic("wg", s), Some(topic(t)), "{s}");
        }
    }

    #[test]
    fn filters_map_wildcards_and_the_parent_of_hash() {
        let cases: [(&str, &[&str]); 8] = [
            ("a/b", &["p.t.a.b"]),
            ("a/+", &["p.t.a.*"]),
            ("+", &["p.t.*"]),
            ("#", &["p.t.>"]),
            ("a/#", &["p.t.a", "p.t.a.>"]),
            ("+/#", &["p.t.*", "p.t.*.>"]),
            ("$SYS/#", &["p.s._24535953", "p.s._24535953.>"]),
            ("/+/#", &["p.t._.*", "p.t._.*.>"]),
        ];
        for (f, subjects) in cases {
            assert_eq!(filter_subjects("p", &filter(f)), subjects, "{f}");
        }
    }

    #[test]
    fn subjects_not_made_by_the_mapping_have_no_topic() {
        for s in [
            "wg",
            "wg.t",
            "other.t.a",
            "wg.x.a",
            "wg.t.a.*",
            "wg.t.a.>",
            "wg.t._61",
            "wg.t._6",
            "wg.t._6G",
            "wg.t._2B",
            "wg.t._2b",
            "wg.t._00",
            "wg.t._ff",
            "wg.s.a",
            "wg.t._2478",
            "wg.t.a b",
            "wg.t.a..b",
            "wgx.t.a",
        ] {
            assert_eq!(subject_topic("wg", s), None, "{s}");
        }
    }

    #[test]
    fn a_dotted_prefix_is_kept_whole() {
        let s = topic_subject("site1.wg", &topic("a/b"));
        assert_eq!(s, "site1.wg.t.a.b");
        assert_eq!(subject_topic("site1.wg", &s), Some(topic("a/b")));
        assert_eq!(subject_topic("site1", &s), None);
    }
}
