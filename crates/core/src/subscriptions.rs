//! The subscription index: exact filters in a hash map, wildcard filters in a level trie, and
//! `$share` groups with round-robin selection over connected members.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wardgate_protocol::{SubscriptionFilter, SubscriptionOptions, TopicFilter};

use crate::ids::SessionId;
use crate::session::Session;

/// One session's subscription to one filter, as the router sees it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The subscribing session.
    pub session: Arc<Session>,
    /// Its options (QoS, No Local, Retain As Published, Retain Handling).
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier.
    pub id: Option<u32>,
}

/// The members of one `$share/<group>/<filter>` group.
#[derive(Debug)]
pub struct SharedGroup {
    /// The share name.
    pub name: Arc<str>,
    /// The filter the group subscribes to (without the `$share/<name>/` prefix).
    pub filter: TopicFilter,
    /// Members in subscription order.
    pub members: Vec<Subscriber>,
    next: AtomicUsize,
}

impl SharedGroup {
    /// Picks the next member round robin, preferring connected ones; `exclude` is skipped (the
    /// member a message is being taken away from). `None` only when no member qualifies.
    pub fn pick(&self, exclude: Option<SessionId>) -> Option<&Subscriber> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut candidates = (0..n)
            .map(|i| &self.members[(start + i) % n])
            .filter(|s| Some(s.session.id()) != exclude);
        // Nobody connected: queue on a persistent member so the message waits for it.
        candidates
            .clone()
            .find(|s| s.session.is_connected())
            .or_else(|| candidates.next())
    }
}

/// Everything subscribed to one filter.
#[derive(Debug, Default)]
pub struct FilterEntry {
    /// Ordinary subscriptions.
    pub subscribers: Vec<Subscriber>,
    /// Shared subscription groups on this filter.
    pub groups: Vec<SharedGroup>,
}

impl FilterEntry {
    fn is_empty(&self) -> bool {
        self.subscribers.is_empty() && self.groups.is_empty()
    }

    fn upsert(&mut self, filter: &TopicFilter, group: Option<&Arc<str>>, sub: Subscriber) -> bool {
        let list = match group {
            None => &mut self.subscribers,
            Some(name) => {
                let pos = match self.groups.iter().position(|g| &g.name == name) {
                    Some(pos) => pos,
                    None => {
                        self.groups.push(SharedGroup {
                            name: name.clone(),
                            filter: filter.clone(),
                            members: Vec::new(),
                            next: AtomicUsize::new(0),
                        });
                        self.groups.len() - 1
                    }
                };
                &mut self.groups[pos].members
            }
        };
        match list.iter_mut().find(|s| s.session.id() == sub.session.id()) {
            Some(existing) => {
                *existing = sub;
                true
            }
            None => {
                list.push(sub);
                false
            }
        }
    }

    fn remove(&mut self, group: Option<&str>, session: SessionId) -> bool {
        let list = match group {
            None => &mut self.subscribers,
            Some(name) => match self.groups.iter_mut().find(|g| &*g.name == name) {
                Some(g) => &mut g.members,
                None => return false,
            },
        };
        let before = list.len();
        list.retain(|s| s.session.id() != session);
        let removed = list.len() != before;
        self.groups.retain(|g| !g.members.is_empty());
        removed
    }
}

/// One level of the wildcard trie.
///
/// Every operation on the trie is a loop, never a recursion: a filter may have as many levels
/// as its 65,535 bytes allow (`/` alone is two levels), and each level is one node, so anything
/// recursing per level (including the compiler's drop glue and a derived `Debug`) would
/// overflow the stack at a depth the client chooses.
#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Filters ending at this node (`a/+` ends at the `+` node). Boxed, like `hash`, to keep
    /// the node small: a deep filter is one node per level, and most levels hold no entry.
    here: Option<Box<FilterEntry>>,
    /// The filter `<path>/#`.
    hash: Option<Box<FilterEntry>>,
}

impl Node {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.here.is_none()
            && self.hash.is_none()
    }

    /// Moves this node's children onto `stack`, leaving it without any.
    fn take_children(&mut self, stack: &mut Vec<Node>) {
        stack.extend(self.children.drain().map(|(_, child)| child));
        if let Some(plus) = self.plus.take() {
            stack.push(*plus);
        }
    }
}

impl Drop for Node {
    /// Frees the subtree with an explicit stack: each node is dropped after its children were
    /// taken from it, so the drop glue never goes deeper than one level.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        self.take_children(&mut stack);
        while let Some(mut node) = stack.pop() {
            node.take_children(&mut stack);
        }
    }
}

impl std::fmt::Debug for Node {
    /// A summary, not the subtree (a derived `Debug` would recurse per level).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("children", &self.children.len())
            .field("plus", &self.plus.is_some())
            .field("here", &self.here)
            .field("hash", &self.hash)
            .finish()
    }
}

/// The routing table.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    exact: HashMap<Arc<str>, FilterEntry>,
    wild: Node,
    count: usize,
}

impl SubscriptionIndex {
    /// Adds or replaces `sub`'s subscription to `filter` (in `group` if shared). Returns true when
    /// it replaced an existing one.
    pub fn insert(
        &mut self,
        filter: &TopicFilter,
        group: Option<&Arc<str>>,
        sub: Subscriber,
    ) -> bool {
        let replaced = self.entry_mut(filter).upsert(filter, group, sub);
        if !replaced {
            self.count += 1;
        }
        replaced
    }

    /// Removes `session`'s subscription to `filter` (in `group`). Returns whether it existed.
    pub fn remove(
        &mut self,
        filter: &TopicFilter,
        group: Option<&str>,
        session: SessionId,
    ) -> bool {
        let removed = if filter.has_wildcards() {
            remove_wild(&mut self.wild, filter.as_str(), group, session)
        } else {
            match self.exact.get_mut(filter.as_str()) {
                Some(entry) => {
                    let removed = entry.remove(group, session);
                    if entry.is_empty() {
                        self.exact.remove(filter.as_str());
                    }
                    removed
                }
                None => false,
            }
        };
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Adds or replaces `sub`'s subscription to `filter`: to its filter, or to its group's
    /// filter as a member of the group. Returns true when it replaced an existing one.
    pub fn subscribe(&mut self, filter: &SubscriptionFilter, sub: Subscriber) -> bool {
        let (filter, group) = filter.route();
        self.insert(filter, group, sub)
    }

    /// Removes `session`'s subscription to `filter` (plain or shared). Returns whether it
    /// existed.
    pub fn unsubscribe(&mut self, filter: &SubscriptionFilter, session: SessionId) -> bool {
        let (filter, group) = filter.route();
        self.remove(filter, group.map(|g| &**g), session)
    }

    /// Number of subscriptions (shared members counted one each).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` with every filter entry matching `topic` (MQTT-4.7.2-1: `$` topics are not matched
    /// by a leading wildcard).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a FilterEntry)) {
        if let Some(entry) = self.exact.get(topic) {
            f(entry);
        }
        walk(&self.wild, topic, f);
    }

    /// The shared group `name` on `filter`, if it exists.
    pub fn group(&self, filter: &TopicFilter, name: &str) -> Option<&SharedGroup> {
        let entry = if filter.has_wildcards() {
            let mut node = &self.wild;
            let mut levels = filter.as_str().split('/').peekable();
            let mut found = None;
            while let Some(level) = levels.next() {
                let last = levels.peek().is_none();
                if level == "#" {
                    found = node.hash.as_deref();
                    break;
                }
                node = match level {
                    "+" => node.plus.as_deref()?,
                    l => node.children.get(l)?,
                };
                if last {
                    found = node.here.as_deref();
                }
            }
            found
        } else {
            self.exact.get(filter.as_str())
        };
        entry?.groups.iter().find(|g| &*g.name == name)
    }

    fn entry_mut(&mut self, filter: &TopicFilter) -> &mut FilterEntry {
        if !filter.has_wildcards() {
            let key: Arc<str> = Arc::from(filter.as_str());
            return self.exact.entry(key).or_default();
        }
        let mut node = &mut self.wild;
        let mut levels = filter.as_str().split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                return node.hash.get_or_insert_with(Box::default);
            }
            node = match level {
                "+" => node.plus.get_or_insert_with(Box::default),
                l => node.children.entry(l.into()).or_default(),
            };
            if levels.peek().is_none() {
                return node.here.get_or_insert_with(Box::default);
            }
        }
        // A validated filter is never empty; an empty one would have returned above.
        node.here.get_or_insert_with(Box::default)
    }
}

/// Calls `f` with every entry of the trie under `root` matching `topic`: a depth-first walk
/// with an explicit stack (children before `+`, as a recursion would visit them). Each trie
/// node is reached by one path only, so the work is bounded by the trie's size.
fn walk<'a>(root: &'a Node, topic: &str, mut f: impl FnMut(&'a FilterEntry)) {
    if root.hash.is_none() && root.plus.is_none() && root.children.is_empty() {
        // No wildcard subscription at all: no stack to allocate.
        return;
    }
    let dollar = topic.starts_with('$');
    // (node, the topic's levels not yet matched (None: all matched), whether it is the root).
    let mut stack: Vec<(&'a Node, Option<&str>, bool)> = vec![(root, Some(topic), true)];
    while let Some((node, rest, root)) = stack.pop() {
        // MQTT-4.7.2-1: a leading wildcard doesn't match a `$` topic.
        let wildcard_ok = !(root && dollar);
        if wildcard_ok && let Some(entry) = node.hash.as_deref() {
            f(entry);
        }
        let Some(rest) = rest else {
            if !root && let Some(entry) = node.here.as_deref() {
                f(entry);
            }
            continue;
        };
        let (level, next) = match rest.split_once('/') {
            Some((level, next)) => (level, Some(next)),
            None => (rest, None),
        };
        if wildcard_ok && let Some(plus) = &node.plus {
            stack.push((plus, next, false));
        }
        if let Some(child) = node.children.get(level) {
            stack.push((child, next, false));
        }
    }
}

/// The child of `node` for one filter level (`+` or a literal).
fn child_mut<'n>(node: &'n mut Node, level: &str) -> Option<&'n mut Node> {
    match level {
        "+" => node.plus.as_deref_mut(),
        l => node.children.get_mut(l),
    }
}

/// Removes `session`'s subscription to the wildcard `filter` from the trie under `root`, then
/// prunes the nodes left empty. Iterative: one pass down to remove, one (read-only) pass to find
/// the highest node that only leads to emptiness, one pass down to cut it off.
fn remove_wild(root: &mut Node, filter: &str, group: Option<&str>, session: SessionId) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    let Some((last, path)) = levels.split_last() else {
        return false;
    };
    // `path` leads to the node holding the entry: `here` of the last level's node, or `hash` of
    // the node before a trailing `#`.
    let (path, hash) = if *last == "#" {
        (path, true)
    } else {
        (&levels[..], false)
    };
    let mut node = &mut *root;
    for level in path {
        match child_mut(node, level) {
            Some(child) => node = child,
            None => return false,
        }
    }
    let slot = if hash { &mut node.hash } else { &mut node.here };
    let Some(entry) = slot.as_mut() else {
        return false;
    };
    let removed = entry.remove(group, session);
    if entry.is_empty() {
        *slot = None;
    }
    // The nodes along `path` (root excluded): the first one from which everything below holds
    // nothing but the path itself can be cut off with its subtree.
    let mut cut = None;
    let mut node = &*root;
    for (depth, level) in path.iter().enumerate() {
        let child = match *level {
            "+" => node.plus.as_deref(),
            l => node.children.get(l),
        };
        let Some(child) = child else {
            cut = None;
            break;
        };
        let next = path.get(depth + 1);
        let only_path = child.here.is_none()
            && child.hash.is_none()
            && match next {
                None => child.children.is_empty() && child.plus.is_none(),
                Some(&"+") => child.children.is_empty(),
                Some(l) => {
                    child.plus.is_none()
                        && child.children.len() == 1
                        && child.children.contains_key(*l)
                }
            };
        if !only_path {
            cut = None;
        } else if cut.is_none() {
            cut = Some(depth);
        }
        node = child;
    }
    if let Some(depth) = cut {
        let mut parent = &mut *root;
        for level in &path[..depth] {
            match child_mut(parent, level) {
                Some(child) => parent = child,
                None => return removed,
            }
        }
        match path[depth] {
            "+" => parent.plus = None,
            l => {
                parent.children.remove(l);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::QueueLimits;
    use proptest::prelude::*;
    use wardgate_protocol::{ProtocolVersion, QoS, RetainHandling, topic_matches};

    fn session(n: u64) -> Arc<Session> {
        Arc::new(Session::new(
            SessionId(n),
            Arc::from(format!("c{n}")),
            ProtocolVersion::V5,
            QueueLimits::default(),
            Arc::default(),
            None,
        ))
    }

    fn sub(s: &Arc<Session>) -> Subscriber {
        Subscriber {
            session: s.clone(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::SendAtSubscribe,
            },
            id: None,
        }
    }

    fn matched(index: &SubscriptionIndex, topic: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        index.for_each_match(topic, |e| {
            ids.extend(e.subscribers.iter().map(|s| s.session.id().0));
        });
        ids.sort_unstable();
        ids
    }

    fn filter(f: &str) -> TopicFilter {
        TopicFilter::new(f).expect("valid filter")
    }

    #[test]
    fn matches_exact_plus_hash_and_parent_level() {
        let mut index = SubscriptionIndex::default();
        let filters = [
            "a/b", "a/+", "a/#", "#", "+/+", "+", "a/b/c", "$SYS/#", "+/b",
        ];
        let sessions: Vec<_> = (0..filters.len() as u64).map(session).collect();
        for (f, s) in filters.iter().zip(&sessions) {
            assert!(!index.insert(&filter(f), None, sub(s)));
        }
        assert_eq!(index.len(), filters.len());
        assert_eq!(matched(&index, "a/b"), vec![0, 1, 2, 3, 4, 8]);
        assert_eq!(matched(&index, "a"), vec![2, 3, 5]);
        assert_eq!(matched(&index, "a/b/c"), vec![2, 3, 6]);
        assert_eq!(matched(&index, "$SYS/x"), vec![7]);
        assert_eq!(matched(&index, "$SYS"), vec![7]);
        assert_eq!(matched(&index, "/b"), vec![3, 4, 8]);
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut index = SubscriptionIndex::default();
        let s = session(1);
        index.insert(&filter("a/+/c"), None, sub(&s));
        assert!(
            index.insert(&filter("a/+/c"), None, sub(&s)),
            "second insert replaces"
        );
        assert_eq!(index.len(), 1);
        assert!(index.remove(&filter("a/+/c"), None, s.id()));
        assert!(!index.remove(&filter("a/+/c"), None, s.id()));
        assert!(index.is_empty());
        assert!(index.wild.is_empty(), "trie pruned");
    }

    #[test]
    fn shared_groups_round_robin() {
        let mut index = SubscriptionIndex::default();
        let group: Arc<str> = Arc::from("g");
        let (a, b) = (session(1), session(2));
        index.insert(&filter("t/#"), Some(&group), sub(&a));
        index.insert(&filter("t/#"), Some(&group), sub(&b));
        let g = index.group(&filter("t/#"), "g").expect("group exists");
        // Neither is connected: still picks members (queued for persistent sessions) in turn.
        let picks: Vec<u64> = (0..4)
            .map(|_| g.pick(None).map(|s| s.session.id().0).unwrap_or(0))
            .collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
        assert_eq!(
            g.pick(Some(SessionId(1))).map(|s| s.session.id().0),
            Some(2)
        );
        assert!(index.remove(&filter("t/#"), Some("g"), a.id()));
        assert!(index.remove(&filter("t/#"), Some("g"), b.id()));
        assert!(index.group(&filter("t/#"), "g").is_none());
    }

    /// Filters as deep as a topic filter can be (65,535 bytes: up to 65,535 levels) are inserted,
    /// matched, removed and dropped on a test thread's stack: nothing recurses per level.
    #[test]
    fn deepest_filters_insert_match_remove_and_drop_iteratively() {
        let filters = [
            format!("{}+", "+/".repeat(32_767)),
            format!("{}#", "/".repeat(65_533)),
            format!("{}+", "/".repeat(65_534)),
            format!("a/{}#", "+/".repeat(32_765)),
        ];
        let topics = [
            format!("{}a", "a/".repeat(32_767)),
            format!("{}x", "/".repeat(65_534)),
            "/".repeat(65_535),
        ];
        let sessions: Vec<_> = (0..filters.len() as u64).map(session).collect();
        let mut index = SubscriptionIndex::default();
        for (f, s) in filters.iter().zip(&sessions) {
            assert!(!index.insert(&filter(f), None, sub(s)));
        }
        for t in &topics {
            let expected: Vec<u64> = (0..filters.len())
                .filter(|&i| topic_matches(&filters[i], t))
                .map(|i| i as u64)
                .collect();
            assert!(!expected.is_empty(), "each topic matches something");
            assert_eq!(matched(&index, t), expected);
        }
        for (f, s) in filters.iter().zip(&sessions) {
            assert!(index.remove(&filter(f), None, s.id()));
        }
        assert!(index.is_empty());
        assert!(index.wild.is_empty(), "trie pruned");
        // And a deep trie freed whole by its drop glue.
        for (f, s) in filters.iter().zip(&sessions) {
            index.insert(&filter(f), None, sub(s));
        }
        assert!(!format!("{index:?}").is_empty());
        drop(index);
    }

    /// A trie node is one level of a filter (two bytes of a packet at least): it stays small.
    #[test]
    fn trie_nodes_stay_small() {
        assert!(
            std::mem::size_of::<Node>() <= 72,
            "{}",
            std::mem::size_of::<Node>()
        );
    }

    #[test]
    fn removal_prunes_only_what_nothing_else_uses() {
        let mut index = SubscriptionIndex::default();
        let (a, b) = (session(1), session(2));
        index.insert(&filter("a/+/c/#"), None, sub(&a));
        index.insert(&filter("a/+"), None, sub(&b));
        index.insert(&filter("a/b/+/d"), None, sub(&b));
        assert!(index.remove(&filter("a/+/c/#"), None, a.id()));
        assert_eq!(matched(&index, "a/x"), vec![2]);
        assert_eq!(matched(&index, "a/b/c/d"), vec![2]);
        assert!(matched(&index, "a/x/c").is_empty());
        assert!(index.remove(&filter("a/b/+/d"), None, b.id()));
        assert_eq!(matched(&index, "a/x"), vec![2]);
        assert!(index.remove(&filter("a/+"), None, b.id()));
        assert!(index.wild.is_empty(), "trie pruned");
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just(String::new()),
            Just("$x".to_string())
        ]
    }

    proptest! {
        /// The index agrees with the reference matcher on every filter and topic.
        #[test]
        fn index_agrees_with_reference_matcher(
            filters in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![level(), Just("+".to_string())], 1..4), any::<bool>())
                    .prop_map(|(mut v, hash)| {
                        if hash { v.push("#".into()); }
                        v.join("/")
                    }),
                1..12),
            topic in proptest::collection::vec(level(), 1..5).prop_map(|v| v.join("/")),
        ) {
            let mut index = SubscriptionIndex::default();
            let mut expected = Vec::new();
            for (i, f) in filters.iter().enumerate() {
                let Ok(tf) = TopicFilter::new(f) else { continue };
                let s = session(i as u64);
                if !index.insert(&tf, None, sub(&s)) && topic_matches(f, &topic) {
                    expected.push(i as u64);
                }
            }
            // Duplicate filters map to distinct sessions, so every insert is new.
            expected.sort_unstable();
            prop_assert_eq!(matched(&index, &topic), expected);
        }

        /// Removing any subset keeps the index in agreement with the reference matcher, and
        /// removing everything leaves an empty trie.
        #[test]
        fn removal_agrees_with_reference_matcher(
            filters in proptest::collection::vec(
                (proptest::collection::vec(prop_oneof![level(), Just("+".to_string())], 1..4), any::<bool>(), any::<bool>())
                    .prop_map(|(mut v, hash, keep)| {
                        if hash { v.push("#".into()); }
                        let f = v.join("/");
                        (if f.is_empty() { "a".to_string() } else { f }, keep)
                    }),
                1..12),
            topic in proptest::collection::vec(level(), 1..5).prop_map(|v| v.join("/")),
        ) {
            let mut index = SubscriptionIndex::default();
            let sessions: Vec<_> = (0..filters.len() as u64).map(session).collect();
            for ((f, _), s) in filters.iter().zip(&sessions) {
                index.insert(&filter(f), None, sub(s));
            }
            let mut expected = Vec::new();
            for (i, ((f, keep), s)) in filters.iter().zip(&sessions).enumerate() {
                if *keep {
                    if topic_matches(f, &topic) {
                        expected.push(i as u64);
                    }
                } else {
                    prop_assert!(index.remove(&filter(f), None, s.id()));
                }
            }
            prop_assert_eq!(matched(&index, &topic), expected);
            for ((f, keep), s) in filters.iter().zip(&sessions) {
                if *keep {
                    prop_assert!(index.remove(&filter(f), None, s.id()));
                }
            }
            prop_assert!(index.is_empty());
            prop_assert!(index.wild.is_empty(), "trie pruned");
        }
    }
}
