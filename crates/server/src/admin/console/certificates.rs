//! `/certificates`: every certificate served or trusted, with its expiry coloured, and the trust
//! bundle's download link.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{Page, none_row, render};
use crate::admin::{AdminState, api, dto};

/// Certificates that expire within this are shown in the warning colour.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The expiry's colour class at `now`: `bad` expired, `warn` soon, `ok` otherwise.
fn expiry_class(not_after: &str, now: SystemTime) -> &'static str {
    match dto::parse_rfc3339(not_after) {
        Some(t) if t <= now => "bad",
        Some(t) if t <= now + EXPIRY_WARNING => "warn",
        Some(_) => "ok",
        None => "warn",
    }
}

pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Response {
    let report = api::certificates_report(&state);
    let now = SystemTime::now();
    let body = html! {
        p.actions {
            @if state.trust_bundle.is_some() {
                a.button href="/api/v1/trust-bundle" download="wardgate-trust-bundle.pem" { "Download the trust bundle (PEM)" }
            } @else {
                "No trust bundle yet."
            }
        }
        table #certificates {
            thead { tr {
                th { "Used by" } th { "Subject" } th { "SANs" } th { "Issuer" } th { "Serial" }
                th { "Not before" } th { "Not after" } th { "Source" }
            } }
            tbody {
                @for c in &report.certificates {
                    tr {
                        td { (c.used_by) }
                        td { (c.subject) }
                        td { (c.sans.join(", ")) }
                        td { (c.issuer) }
                        td.mono { (c.serial) }
                        td { (c.not_before) }
                        td class={"expiry " (expiry_class(&c.not_after, now))} {
                            (c.not_after) @if c.expired { " (expired)" }
                        }
                        td { (c.source) }
                    }
                }
                @if report.certificates.is_empty() { (none_row(8, "No certificate is in use: no port serves TLS.")) }
            }
        }
        p.note { "Expiry is amber within 30 days and red once past. Private keys are never shown." }
    };
    render(&state, Page::Certificates, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_turns_amber_within_30_days_and_red_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |days: i64| {
            let secs = 1_800_000_000 + days * 24 * 3600;
            dto::rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs()))
        };
        assert_eq!(expiry_class(&at(90), now), "ok");
        assert_eq!(expiry_class(&at(29), now), "warn");
        assert_eq!(expiry_class(&at(-1), now), "bad");
        assert_eq!(expiry_class("garbage", now), "warn");
    }
}
