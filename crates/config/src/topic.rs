//! Authorization topic filters and state-store key patterns: the `{principal.…}` token syntax
//! (SPEC.md §8.2, `reference/aio-broker.md` §6.2).
//!
//! Tokens are checked here; the MQTT filter syntax (`+` and `#` as whole levels, no NUL, length)
//! by `wardgate_protocol::TopicFilter`.

use wardgate_protocol::{TopicError, TopicFilter};

/// A segment of an authorization topic filter (`TopicTemplate::segments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSegment<'a> {
    /// Literal text, `+` or `#`.
    Literal(&'a str),
    /// `{principal.clientId}`.
    ClientId,
    /// `{principal.username}`.
    Username,
    /// `{principal.attributes.<key>}`.
    Attribute(&'a str),
}

/// Classifies one topic segment.
pub(crate) fn classify_segment(seg: &str) -> TopicSegment<'_> {
    match seg {
        "{principal.clientId}" => TopicSegment::ClientId,
        "{principal.username}" => TopicSegment::Username,
        _ => match seg
            .strip_prefix("{principal.attributes.")
            .and_then(|s| s.strip_suffix('}'))
        {
            Some(key) if !key.is_empty() && !key.contains(['{', '}']) => {
                TopicSegment::Attribute(key)
            }
            _ => TopicSegment::Literal(seg),
        },
    }
}

/// Whether `token` (including braces) is a known substitution token.
fn is_known_token(token: &str) -> bool {
    !matches!(classify_segment(token), TopicSegment::Literal(_))
}

const TOKEN_HELP: &str =
    "{principal.clientId}, {principal.username} or {principal.attributes.<key>}";

/// Finds the `{…}` groups of a string; `Err` names an unbalanced brace.
fn tokens(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("has a `}` without a matching `{`".to_owned());
        }
        let Some(close) = rest[open..].find('}') else {
            return Err("has a `{` without a matching `}`".to_owned());
        };
        let token = &rest[open..open + close + 1];
        if token[1..].contains('{') {
            return Err("has a `{` without a matching `}`".to_owned());
        }
        out.push(&s[offset + open..offset + open + close + 1]);
        offset += open + close + 1;
        rest = &s[offset..];
    }
    Ok(out)
}

/// Checks an authorization topic filter and returns it parsed; the error follows the field path
/// in a message.
pub(crate) fn check_topic_filter(topic: &str) -> Result<TopicFilter, String> {
    for seg in topic.split('/') {
        let toks = tokens(seg).map_err(|e| format!("\"{topic}\" {e}"))?;
        for tok in &toks {
            if !is_known_token(tok) {
                return Err(format!(
                    "\"{topic}\" uses the unknown token {tok} (expected {TOKEN_HELP})"
                ));
            }
            if *tok != seg {
                return Err(format!(
                    "\"{topic}\": the token {tok} must be a whole topic segment, as in clients/{tok}/#"
                ));
            }
        }
    }
    TopicFilter::new(topic).map_err(|e| match e {
        TopicError::Empty => "is empty; a topic filter has at least one character".to_owned(),
        TopicError::InvalidWildcard => format!(
            "\"{topic}\" is not a valid topic filter: `+` and `#` must be whole segments and `#` the last one"
        ),
        other => format!("\"{topic}\" is not a valid topic filter: {other}"),
    })
}

/// Checks a state-store key pattern: braces are reserved for known tokens.
pub(crate) fn check_key_pattern(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("is empty".to_owned());
    }
    for tok in tokens(key).map_err(|e| format!("\"{key}\" {e}"))? {
        if !is_known_token(tok) {
            return Err(format!(
                "\"{key}\" uses the unknown token {tok} (expected {TOKEN_HELP})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_segment_tokens_pass() {
        for t in [
            "clients/{principal.clientId}/#",
            "{principal.username}",
            "a/{principal.attributes.building}/+/x",
            "telemetry/temperature",
            "#",
            "+/+",
        ] {
            assert_eq!(
                check_topic_filter(t).map(|f| f.as_str().to_owned()),
                Ok(t.to_owned()),
                "{t}"
            );
        }
    }

    #[test]
    fn partial_segment_tokens_fail() {
        assert_eq!(
            check_topic_filter("client-{principal.clientId}/#").unwrap_err(),
            "\"client-{principal.clientId}/#\": the token {principal.clientId} must be a whole topic segment, as in clients/{principal.clientId}/#"
        );
        assert!(
            check_topic_filter("a/{principal.foo}")
                .unwrap_err()
                .contains("unknown token")
        );
        assert!(
            check_topic_filter("a/{principal.clientId")
                .unwrap_err()
                .contains("without")
        );
        assert!(check_topic_filter("a/#/b").is_err());
        assert!(check_topic_filter("a/b+").is_err());
        assert!(check_topic_filter("").is_err());
    }

    #[test]
    fn key_patterns_allow_tokens_inside_segments() {
        assert_eq!(check_key_pattern("clients/{principal.clientId}*"), Ok(()));
        assert!(check_key_pattern("x{nope}").is_err());
    }

    #[test]
    fn segments_classify() {
        assert_eq!(
            classify_segment("{principal.attributes.floor}"),
            TopicSegment::Attribute("floor")
        );
        assert_eq!(classify_segment("x"), TopicSegment::Literal("x"));
    }
}
