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

    /// Whether the filter contains '+' or '#' (and so can match more than one topic name).
    pub fn has_wildcards(&self) -> bool {
        self.0.bytes().any(|b| b == b'+' || b == b'#')
    }

    /// `$share/{group}/{filter}` parsed: `Ok(Some(SharedFilter))` for a shared subscription,
    /// `Ok(None)` for an ordinary one, `Err` for a malformed share (empty group, group with + or #, no filter).
    ///
    /// The decoder accepts malformed shares as ordinary filters so that the broker can refuse
    /// just that filter in its SUBACK (0x8F) rather than the whole SUBSCRIBE.
    pub fn shared(&self) -> Result<Option<SharedFilter>, TopicError> {
        let Some(rest) = self.0.strip_prefix(SHARE_PREFIX) else {
            return Ok(None);
        };
        let Some((group, filter)) = rest.split_once('/') else {
            return Err(TopicError::InvalidShare);
        };
        if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
            return Err(TopicError::InvalidShare);
        }
        // The inner filter's levels are levels of the (valid) whole filter, so they are valid too.
        Ok(Some(SharedFilter {
            group: Arc::from(group),
            filter: TopicFilter(Arc::from(filter)),
        }))
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

/// A parsed shared subscription: messages matching `filter` go to one member of `group`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedFilter {
    /// The share name.
    pub group: Arc<str>,
    /// The filter the group subscribes to.
    pub filter: TopicFilter,
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
    fn borrow_lets_maps_be_queried_by_str() {
        let mut set = std::collections::HashSet::new();
        set.insert(TopicFilter::new("a/+").expect("valid"));
        assert!(set.contains("a/+"));
    }
}
