//! Drives the subscription index (`core::subscriptions::SubscriptionIndex`) with structured
//! input: inserts, removals and lookups of filters and topics of any depth and shape (runs of one
//! level repeated up to the 65,535-byte limit, odd strings as they come), checked against a model
//! and a reference matcher written here. Also checks the protocol crate's own topic matching
//! (`topic_matches`, `TopicFilter::matches`) and filter/name validation against the same
//! reference. Nothing may recurse per level: the deepest inputs must not overflow the stack.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use wardgate_core::subscriptions::{Subscriber, SubscriptionIndex};
use wardgate_core::{QueueLimits, Session, SessionId};
use wardgate_protocol::{
    ProtocolVersion, QoS, SubscriptionOptions, TopicFilter, TopicName, topic_matches,
};

const SESSIONS: usize = 4;
const GROUPS: [&str; 2] = ["g", "h"];
/// The longest filter or topic the two-byte length prefix carries.
const MAX_LEN: usize = 65_535;

/// One level: a few literals (so that filters and topics meet), empty, `$`-prefixed, and the
/// wildcards when `wild`.
fn level(u: &mut Unstructured, wild: bool) -> Result<&'static str> {
    const NAMES: &[&str] = &["a", "b", "", "$s"];
    const FILTERS: &[&str] = &["a", "b", "", "$s", "+", "+", "#"];
    let choices = if wild { FILTERS } else { NAMES };
    Ok(choices[u.choose_index(choices.len())?])
}

/// A filter or topic: usually runs of levels (a run is sometimes thousands deep), sometimes an
/// arbitrary string.
fn text(u: &mut Unstructured, wild: bool) -> Result<String> {
    if u.ratio(1, 8)? {
        return Ok(u.arbitrary::<&str>()?.to_owned());
    }
    let mut levels = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let l = level(u, wild)?;
        // Deep runs are rare (they are slow), but each input may hold several.
        let n = if u.ratio(1, 48)? {
            u.int_in_range(1..=40_000)?
        } else {
            u.int_in_range(1..=3)?
        };
        levels.extend(std::iter::repeat_n(l, n));
    }
    let mut s = levels.join("/");
    if s.len() > MAX_LEN && u.ratio(7, 8)? {
        // Mostly keep to what a packet can carry (cut at a level boundary); now and then too long.
        let cut = s[..=MAX_LEN].rfind('/').unwrap_or(0);
        s.truncate(cut.max(1));
    }
    Ok(s)
}

/// The MQTT matching rule, written independently of the crates under test: level by level over
/// split vectors.
fn reference_matches(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    for (i, fl) in f.iter().enumerate() {
        if *fl == "#" {
            // `i` levels matched so far; `#` takes the rest, including none (the parent).
            return true;
        }
        match t.get(i) {
            Some(tl) if *fl == "+" || fl == tl => {}
            _ => return false,
        }
    }
    f.len() == t.len()
}

/// The filter rules: non-empty, fits, no NUL, wildcards only as whole levels, `#` last.
fn reference_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > MAX_LEN || filter.contains('\0') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "+" => true,
        "#" => i + 1 == levels.len(),
        l => !l.contains(['+', '#']),
    })
}

fn reference_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_LEN && !name.contains(['\0', '+', '#'])
}

/// (filter, group, session) as subscribed.
type Sub = (String, Option<&'static str>, usize);

fn matched(index: &SubscriptionIndex, topic: &str) -> Vec<(Option<String>, u64)> {
    let mut got = Vec::new();
    index.for_each_match(topic, |entry| {
        got.extend(entry.subscribers.iter().map(|s| (None, s.session.id().0)));
        for g in &entry.groups {
            got.extend(
                g.members
                    .iter()
                    .map(|s| (Some(g.name.to_string()), s.session.id().0)),
            );
        }
    });
    got.sort();
    got
}

fn run(u: &mut Unstructured) -> Result<()> {
    let sessions: Vec<Arc<Session>> = (0..SESSIONS)
        .map(|i| {
            Arc::new(Session::new(
                SessionId(i as u64),
                Arc::from(format!("c{i}")),
                ProtocolVersion::V5,
                QueueLimits::default(),
                Arc::default(),
                None,
            ))
        })
        .collect();
    let mut index = SubscriptionIndex::default();
    let mut model: Vec<Sub> = Vec::new();
    for _ in 0..u.int_in_range(1..=24)? {
        match u.int_in_range(0..=2)? {
            // Insert.
            0 => {
                let f = text(u, true)?;
                let valid = TopicFilter::new(&f);
                assert_eq!(
                    valid.is_ok(),
                    reference_valid_filter(&f),
                    "validity of {f:?}"
                );
                let Ok(filter) = valid else { continue };
                let group = if u.ratio(1, 4)? {
                    Some(GROUPS[u.choose_index(GROUPS.len())?])
                } else {
                    None
                };
                let session = u.choose_index(SESSIONS)?;
                let sub = Subscriber {
                    session: sessions[session].clone(),
                    options: SubscriptionOptions::new(QoS::AtMostOnce),
                    id: None,
                };
                let key = (f, group, session);
                let existed = model.contains(&key);
                assert_eq!(
                    index.insert(&filter, group.map(Arc::from).as_ref(), sub),
                    existed
                );
                if !existed {
                    model.push(key);
                }
                if let Some(g) = group {
                    assert!(index.group(&filter, g).is_some());
                }
            }
            // Remove: usually something subscribed, sometimes anything.
            1 => {
                let key = if !model.is_empty() && u.ratio(3, 4)? {
                    model[u.choose_index(model.len())?].clone()
                } else {
                    let f = text(u, true)?;
                    let group = if u.ratio(1, 4)? {
                        Some(GROUPS[0])
                    } else {
                        None
                    };
                    (f, group, u.choose_index(SESSIONS)?)
                };
                let Ok(filter) = TopicFilter::new(&key.0) else {
                    continue;
                };
                let pos = model.iter().position(|k| *k == key);
                let removed = index.remove(&filter, key.1, SessionId(key.2 as u64));
                assert_eq!(removed, pos.is_some(), "remove {key:?}");
                if let Some(pos) = pos {
                    model.swap_remove(pos);
                }
                if let Some(g) = key.1 {
                    let left = model.iter().any(|k| k.0 == key.0 && k.1 == Some(g));
                    assert_eq!(index.group(&filter, g).is_some(), left);
                }
            }
            // Match.
            _ => {
                let t = text(u, false)?;
                assert_eq!(TopicName::new(&t).is_ok(), reference_valid_name(&t));
                for (f, _, _) in model.iter().take(8) {
                    let expected = reference_matches(f, &t);
                    assert_eq!(topic_matches(f, &t), expected, "{f:?} vs {t:?}");
                    let filter = TopicFilter::new(f).expect("valid when inserted");
                    assert_eq!(filter.matches(&t), expected);
                }
                if TopicName::new(&t).is_err() {
                    continue;
                }
                let mut expected: Vec<(Option<String>, u64)> = model
                    .iter()
                    .filter(|(f, _, _)| reference_matches(f, &t))
                    .map(|(_, g, s)| (g.map(str::to_owned), *s as u64))
                    .collect();
                expected.sort();
                assert_eq!(matched(&index, &t), expected, "topic {t:?}");
            }
        }
        assert_eq!(index.len(), model.len());
    }
    // Half the time leave the index full: its drop must not recurse either.
    if u.ratio(1, 2)? {
        for (f, g, s) in std::mem::take(&mut model) {
            let filter = TopicFilter::new(&f).expect("valid when inserted");
            assert!(index.remove(&filter, g, SessionId(s as u64)));
        }
        assert!(index.is_empty());
    }
    drop(index);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
