//! RFC 3339 timestamps, as the custom authentication contract writes `expiry`
//! (`2026-11-22T10:00:00Z`, `2026-11-22T10:00:00.5+01:00`).

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses an RFC 3339 date-time into a `SystemTime`; `None` when malformed. The date and time
/// are separated by `T`, `t` or a space (RFC 3339 §5.6), which `time` does not check.
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn unix(s: &str) -> Option<i64> {
        parse_rfc3339(s).map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        })
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(unix("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix("2026-11-22T10:00:00Z"), Some(1_795_341_600));
        assert_eq!(unix("2026-11-22T11:00:00+01:00"), Some(1_795_341_600));
        assert_eq!(unix("2026-11-22T09:30:00-00:30"), Some(1_795_341_600));
        assert_eq!(unix("2024-02-29T00:00:00.123456789Z"), Some(1_709_164_800));
        assert_eq!(unix("1969-12-31T23:59:59Z"), Some(-1));
        let t = parse_rfc3339("2024-02-29T00:00:00.5Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().subsec_millis(), 500);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "2026-11-22",
            "2026-11-22T10:00:00",
            "2026-13-22T10:00:00Z",
            "2023-02-29T10:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:00:00+0100",
            "2026-11-22T10:00:00.Z",
            "2026-11-22T10:00:00Zjunk",
            "２０２６-11-22T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }
}
