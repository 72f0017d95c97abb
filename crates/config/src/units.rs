//! Value syntaxes inside strings: Kubernetes names, Go durations, byte sizes.

use std::time::Duration;

/// Checks a DNS-1123 label (BrokerListener, BrokerAuthentication, ... names): 1–63 characters,
/// lowercase letters, digits and `-`, starting and ending with a letter or digit.
pub fn check_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "\"{name}\" must be 1 to 63 characters long (a Kubernetes name)"
        ));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = !name.starts_with('-') && !name.ends_with('-');
    if !ok_chars || !ends_ok {
        return Err(format!(
            "\"{name}\" is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// Checks a Service name (DNS-1035 label): a DNS-1123 label that starts with a letter.
pub(crate) fn check_service_name(name: &str) -> Result<(), String> {
    check_label(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "\"{name}\" is not a valid Service name: it must start with a lowercase letter"
        ));
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain (Secret, ConfigMap, Issuer, Certificate names): up to 253
/// characters, dot-separated labels.
pub fn check_subdomain(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a valid name: use up to 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// Checks a Secret or ConfigMap key: letters, digits, `-`, `_` and `.`, up to 253 characters.
pub(crate) fn check_data_key(key: &str) -> Result<(), String> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "has an invalid key \"{key}\": use letters, digits, '-', '_' and '.'"
        ))
    }
}

/// Parses a Go duration (`720h`, `1h30m`, `45m`, `90s`, `1.5h`, `300ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let err = || format!("\"{s}\" is not a duration; write it like 720h, 1h30m, 45m or 90s");
    let text = s.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() || text.starts_with('-') {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * secs;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a byte size: a number with an optional unit (`K`, `M`, `G`, `T`, `P`, `E` as powers
/// of 1000 or with `i` as powers of 1024, each optionally followed by `B`).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let err = || format!("\"{s}\" is not a size; write it like 500M, 10G or 10GiB");
    let text = s.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if digits == 0 {
        return Err(err());
    }
    let value: u64 = text[..digits].parse().map_err(|_| err())?;
    let unit = text[digits..].trim();
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let (prefix, binary) = match unit.strip_suffix('i') {
        Some(p) => (p, true),
        None => (unit, false),
    };
    let power = match prefix {
        "" if !binary => 0,
        "K" | "k" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return Err(err()),
    };
    let base: u64 = if binary { 1024 } else { 1000 };
    base.checked_pow(power)
        .and_then(|m| value.checked_mul(m))
        .ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert!(parse_duration("10 days").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10GiB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("500M"), Ok(500_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10X").is_err());
    }

    #[test]
    fn names() {
        assert!(check_label("lb").is_ok());
        assert!(check_label("Lb").is_err());
        assert!(check_label("-a").is_err());
        assert!(check_service_name("1abc").is_err());
        assert!(check_subdomain("my.secret-1").is_ok());
        assert!(check_subdomain("a..b").is_err());
        assert!(check_data_key("tls.crt").is_ok());
        assert!(check_data_key("a/b").is_err());
    }
}
