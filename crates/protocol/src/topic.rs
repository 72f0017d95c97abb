//! Topic names and topic filters: parsing them into types that can't be invalid, shared
//! subscription filters, and the MQTT matching rules (MQTT 5 §4.7, §4.8.2; MQTT 3.1.1 §4.7).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::sync::Arc;

/// The longest topic a two-byte length prefix can carry.
pub const MAX_TOPIC_LEN: usize = 65_535;

/// The prefix that makes a filter a shared subscription (MQTT 5 §4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// Why a string is not a valid topic name or topic filter.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// Topic names and filters must be at least one character long [MQTT-4.7.3-1].
    #[error("topic is empty")]
    Empty,
    /// The topic does not fit the two-byte length prefix of a UTF-8 string (65535 bytes).
    #[error("topic is longer than 65535 bytes")]
    TooLong,
    /// A topic name contains '+' or '#' [MQTT-3.3.2-2].
    #[error("topic name contains a wildcard character")]
    Wildcard,
    /// A filter uses '+' or '#' other than as a whole level, or '#' not as the last level [MQTT-4.7.1-1, MQTT-4.7.1-2].
    #[error("topic filter uses a wildcard other than as a whole level ('#' only last)")]
    InvalidWildcard,
    /// The topic contains U+0000 [MQTT-4.7.3-2].
    #[error("topic contains the null character U+0000")]
    NullChar,
    /// A `$share/` filter without a share name, with a wildcard in the share name, or without a filter [MQTT-4.8.2-1, MQTT-4.8.2-2].
    #[error(
        "shared subscription must be $share/{{name}}/{{filter}} with a non-empty name without '+' or '#'"
    )]
    InvalidShare,
}

/// A topic name as published: valid UTF-8, 1..=65535 bytes, no '+' or '#', no U+0000.
/// Cheap to clone (`Arc<str>` inside).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// Parses a topic name.
    pub fn new(name: impl AsRef<str>) -> Result<TopicName, TopicError> {
        let name = name.as_ref();
        validate_name(name)?;
        Ok(TopicName(Arc::from(name)))
    }

    /// Parses a topic name already held in an `Arc`, without copying it.
    pub fn from_arc(name: Arc<str>) -> Result<TopicName, TopicError> {
        validate_name(&name)?;
        Ok(TopicName(name))
    }

    /// The topic as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string inside, for callers that keep topics in their own `Arc<str>` tables.
    #[inline]
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }

    /// Whether the topic starts with '$' (server topics that '+' and '#' at the start don't match).
    #[inline]
    pub fn is_system(&self) -> bool {
        self.0.starts_with('$')
    }
}

/// Checks the topic name rules: non-empty, fits a UTF-8 string, no wildcard, no U+0000.
fn validate_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    for &b in name.as_bytes() {
        match b {
            b'+' | b'#' => return Err(TopicError::Wildcard),
            0 => return Err(TopicError::NullChar),
            _ => {}
        }
    }
    Ok(())
}

/// A topic filter: non-empty, '#' only as the whole last level, '+' only as a whole level, no U+0000.
/// `Arc<str>` inside.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(Arc<str>);

impl TopicFilter {
    /// Parses a topic filter.
    pub fn new(filter: impl AsRef<str>) -> Result<TopicFilter, TopicError> {
        let filter = filter.as_ref();
        validate_filter(filter)?;
        Ok(TopicFilter(Arc::from(filter)))
    }

    /// Parses a topic filter already held in an `Arc`, without copying it.
    pub fn from_arc(filter: Arc<str>) -> Result<TopicFilter, TopicError> {
        validate_filter(&filter)?;
        Ok(TopicFilter(filter))
    }

    /// The filter as a string slice.
    #[inline]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string inside.
    #[inline]
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }

    /// Its levels (`a/+/#` has 3; `$share/{group}/` counts as two): what one subscription to
    /// it costs against a session's subscription limit, each level being a node of the index.
    pub fn levels(&self) -> u64 {
        self.0.bytes().filter(|&b| b == b'/').count() as u64 + 1
    }

    /// Whether the filter contains '+' or '#' (and so can match more than one topic name).
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }

    /// Whether this filter is syntactically a shared subscription (`$share/...`), well-formed or not.
    pub fn is_shared(&self) -> bool {
        self.0.starts_with(SHARE_PREFIX)
    }

    /// MQTT matching rules incl. MQTT-4.7.2-1: a filter starting with '+' or '#' does not match a topic starting with '$'.
    ///
    /// The filter is matched literally: for a shared subscription match its
    /// [`SharedFilter::filter`] instead.
    #[inline]
    pub fn matches(&self, topic: &str) -> bool {
        topic_matches(&self.0, topic)
    }
}

/// Checks the topic filter rules of MQTT 5 §4.7.1 and §4.7.3.
fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    let bytes = filter.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(TopicError::NullChar),
            b'+' => {
                // '+' must occupy a whole level [MQTT-4.7.1-2].
                let starts_level = i == 0 || bytes[i - 1] == b'/';
                let ends_level = i + 1 == bytes.len() || bytes[i + 1] == b'/';
                if !(starts_level && ends_level) {
                    return Err(TopicError::InvalidWildcard);
                }
            }
            b'#' => {
                // '#' must be the whole last level [MQTT-4.7.1-1].
                let starts_level = i == 0 || bytes[i - 1] == b'/';
                if !starts_level || i + 1 != bytes.len() {
                    return Err(TopicError::InvalidWildcard);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A SUBSCRIBE filter parsed once, at SUBSCRIBE: an ordinary filter, or a shared subscription
/// `$share/{group}/{filter}` split into its group and the filter its members match (MQTT 5
/// §4.8.2). Hashed, compared and borrowed as the filter the client sent, so a map keyed by it
/// is queried with that filter's `&str` (UNSUBSCRIBE). Made only by [`SubscriptionFilter::new`],
/// so an ordinary filter never starts with `$share/`.
#[derive(Debug, Clone)]
pub struct SubscriptionFilter(Parsed);

#[derive(Debug, Clone)]
enum Parsed {
    /// Every matching subscription gets the message.
    Plain(TopicFilter),
    /// One member of the group gets each message.
    Shared(SharedFilter),
}

/// A well-formed shared subscription: messages matching [`SharedFilter::filter`] go to one
/// member of [`SharedFilter::group`]. Made only by [`SubscriptionFilter::new`].
#[derive(Debug, Clone)]
pub struct SharedFilter {
    whole: TopicFilter,
    group: Arc<str>,
    filter: TopicFilter,
}

impl SharedFilter {
    /// The share name.
    pub fn group(&self) -> &Arc<str> {
        &self.group
    }

    /// The filter the group subscribes to (after `$share/{group}/`).
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }
}

impl SubscriptionFilter {
    /// Parses a SUBSCRIBE filter: `$share/{group}/{filter}` is a shared subscription, anything
    /// else an ordinary one. `Err(InvalidShare)` for a malformed share (empty group, group with
    /// `+` or `#`, no filter) [MQTT-4.8.2-1, MQTT-4.8.2-2].
    ///
    /// The decoder accepts malformed shares as ordinary filters so that the broker can refuse
    /// just that filter in its SUBACK (0x8F) rather than the whole SUBSCRIBE.
    pub fn new(whole: TopicFilter) -> Result<SubscriptionFilter, TopicError> {
        let Some(rest) = whole.0.strip_prefix(SHARE_PREFIX) else {
            return Ok(SubscriptionFilter(Parsed::Plain(whole)));
        };
        let Some((group, filter)) = rest.split_once('/') else {
            return Err(TopicError::InvalidShare);
        };
        if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
            return Err(TopicError::InvalidShare);
        }
        // The inner filter's levels are levels of the (valid) whole filter, so they are valid too.
        let (group, filter) = (Arc::from(group), TopicFilter(Arc::from(filter)));
        Ok(SubscriptionFilter(Parsed::Shared(SharedFilter {
            whole,
            group,
            filter,
        })))
    }

    /// The filter as the client sent it (`$share/{group}/` included).
    pub fn as_filter(&self) -> &TopicFilter {
        match &self.0 {
            Parsed::Plain(filter) => filter,
            Parsed::Shared(shared) => &shared.whole,
        }
    }

    /// Where a subscription index files it: the filter messages are matched against, and the
    /// group for a shared subscription.
    pub fn route(&self) -> (&TopicFilter, Option<&Arc<str>>) {
        match &self.0 {
            Parsed::Plain(filter) => (filter, None),
            Parsed::Shared(shared) => (&shared.filter, Some(&shared.group)),
        }
    }

    /// The shared subscription, when it is one.
    pub fn shared(&self) -> Option<&SharedFilter> {
        match &self.0 {
            Parsed::Plain(_) => None,
            Parsed::Shared(shared) => Some(shared),
        }
    }

    /// Whether it is a shared subscription.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Parsed::Shared(_))
    }
}

/// Equal when the filters the client sent are (the rest is parsed from them).
impl PartialEq for SubscriptionFilter {
    fn eq(&self, other: &Self) -> bool {
        self.as_filter() == other.as_filter()
    }
}

impl Eq for SubscriptionFilter {}

/// The hash of the filter the client sent, as [`Borrow<str>`] requires.
impl std::hash::Hash for SubscriptionFilter {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_filter().as_str().hash(state);
    }
}

/// Lets maps keyed by it be queried with the filter the client sent.
impl Borrow<str> for SubscriptionFilter {
    fn borrow(&self) -> &str {
        self.as_filter().as_str()
    }
}

impl fmt::Display for SubscriptionFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_filter())
    }
}

/// Whether `filter` matches `topic` under the MQTT rules (the same rule as [`TopicFilter::matches`]).
///
/// '+' matches exactly one level (which may be empty), '#' matches any number of levels including
/// the parent (`a/#` matches `a`), and a filter starting with a wildcard doesn't match a topic
/// starting with '$' [MQTT-4.7.2-1]. Neither argument is validated.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

macro_rules! impl_str_newtype {
    ($ty:ident) => {
        impl Deref for $ty {
            type Target = str;
            #[inline]
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $ty {
            #[inline]
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Lets maps keyed by this type be queried with a `&str` (hash and order are those of the string).
        impl Borrow<str> for $ty {
            #[inline]
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl FromStr for $ty {
            type Err = TopicError;
            fn from_str(s: &str) -> Result<Self, TopicError> {
                $ty::new(s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = TopicError;
            fn try_from(s: &str) -> Result<Self, TopicError> {
                $ty::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = TopicError;
            fn try_from(s: String) -> Result<Self, TopicError> {
                $ty::from_arc(Arc::from(s))
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                &*self.0 == *other
            }
        }
    };
}

impl_str_newtype!(TopicName);
impl_str_newtype!(TopicFilter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_wildcards_nul_and_empty() {
        assert_eq!(TopicName::new(""), Err(TopicError::Empty));
        assert_eq!(TopicName::new("a/+"), Err(TopicError::Wildcard));
        assert_eq!(TopicName::new("a/#"), Err(TopicError::Wildcard));
        assert_eq!(TopicName::new("a\0b"), Err(TopicError::NullChar));
        assert_eq!(TopicName::new("x".repeat(65_536)), Err(TopicError::TooLong));
        assert!(TopicName::new("x".repeat(65_535)).is_ok());
        assert!(TopicName::new("/").is_ok());
        assert!(TopicName::new(String::from("$SYS/x")).is_ok_and(|t| t.is_system()));
    }

    #[test]
    fn filters_allow_wildcards_only_as_whole_levels() {
        for ok in [
            "#",
            "+",
            "a/#",
            "a/+/b",
            "+/+",
            "/",
            "//",
            "a//#",
            "+/",
            "$share/g/#",
        ] {
            assert!(TopicFilter::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a#", "a/#/b", "#/", "a+", "+a", "a/b+", "a/+b/c", "##", "++",
        ] {
            assert_eq!(
                TopicFilter::new(bad),
                Err(TopicError::InvalidWildcard),
                "{bad}"
            );
        }
        assert_eq!(TopicFilter::new(""), Err(TopicError::Empty));
        assert_eq!(TopicFilter::new("a\0"), Err(TopicError::NullChar));
    }

    #[test]
    fn subscription_filters_are_keyed_by_what_the_client_sent() {
        let parse = |s: &str| SubscriptionFilter::new(TopicFilter::new(s).expect("valid"));
        let mut map = std::collections::HashMap::new();
        for (whole, route, group) in [
            ("a/+", "a/+", None),
            ("$share/g/a/+", "a/+", Some("g")),
            ("$share/h/a/+", "a/+", Some("h")),
        ] {
            let parsed = parse(whole).expect("well-formed");
            assert_eq!(parsed.as_filter().as_str(), whole);
            let (filter, name) = parsed.route();
            assert_eq!((filter.as_str(), name.map(|g| &**g)), (route, group));
            assert_eq!(parsed.is_shared(), group.is_some());
            map.insert(parsed, whole);
        }
        // Three keys, each found by the string the client sent (UNSUBSCRIBE).
        assert_eq!(map.len(), 3);
        assert_eq!(map.get("$share/h/a/+"), Some(&"$share/h/a/+"));
        assert_eq!(map.get("a/+"), Some(&"a/+"));
        assert!(matches!(parse("$share/g"), Err(TopicError::InvalidShare)));
    }

    #[test]
    fn borrow_lets_maps_be_queried_by_str() {
        let mut set = std::collections::HashSet::new();
        set.insert(TopicFilter::new("a/+").expect("valid"));
        assert!(set.contains("a/+"));
    }
}
