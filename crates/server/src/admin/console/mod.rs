//! The web console (`docs/console.md`): HTML pages rendered here with `maud` from the same
//! reports the JSON API answers, one small stylesheet and one small script embedded in the
//! binary. No page needs the script except for the live charts and the as-you-type client
//! filter; forms are plain GET (explain, search) and POST (disconnect, with the CSRF token).
//!
//! Every page: [`overview`] (`/`), [`certificates`], [`clients`], [`authorization`],
//! [`configuration`], and the cluster's place ([`cluster`]).

mod authorization;
mod certificates;
mod clients;
mod cluster;
mod configuration;
mod overview;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, html};

use super::AdminState;

/// The console's routes (the caller adds the state and the access check).
pub(super) fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/certificates", get(certificates::page))
        .route("/clients", get(clients::page))
        .route("/clients/disconnect", post(clients::disconnect))
        .route("/authorization", get(authorization::page))
        .route("/configuration", get(configuration::page))
        .route("/cluster", get(cluster::page))
        .route("/console/console.css", get(stylesheet))
        .route("/console/console.js", get(script))
}

/// The console's pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Overview,
    Certificates,
    Clients,
    Authorization,
    Configuration,
    Cluster,
}

impl Page {
    const ALL: [Page; 6] = [
        Page::Overview,
        Page::Certificates,
        Page::Clients,
        Page::Authorization,
        Page::Configuration,
        Page::Cluster,
    ];

    fn title(self) -> &'static str {
        match self {
            Page::Overview => "Overview",
            Page::Certificates => "Certificates",
            Page::Clients => "Clients",
            Page::Authorization => "Authorization",
            Page::Configuration => "Configuration",
            Page::Cluster => "Cluster",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Page::Overview => "/",
            Page::Certificates => "/certificates",
            Page::Clients => "/clients",
            Page::Authorization => "/authorization",
            Page::Configuration => "/configuration",
            Page::Cluster => "/cluster",
        }
    }
}

/// The security headers of every console response: no framing, no third-party anything, no
/// caching of pages that show the broker's state.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `body` in the console's frame (navigation, title), as a response.
fn render(state: &AdminState, page: Page, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Wardgate · " (page.title()) }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/console/console.css";
                script src="/console/console.js" defer {}
            }
            body data-page=(page.title().to_ascii_lowercase()) {
                header.top {
                    a.brand href="/" { "Wardgate" }
                    nav {
                        @for p in Page::ALL {
                            a href=(p.path()) class=[(p == page).then_some("active")] { (p.title()) }
                        }
                    }
                    span.version { "v" (env!("CARGO_PKG_VERSION")) " · " (state.status.read().ports.len()) " ports" }
                }
                main {
                    h1 { (page.title()) }
                    (body)
                }
            }
        }
    };
    let mut response = markup.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A port state as the logs print it (`AwaitingSecret: ...`), with its colour class.
fn port_state(state: &str, reason: Option<&str>) -> Markup {
    let class = match state {
        "Listening" => "ok",
        "Failed" => "bad",
        _ => "warn",
    };
    html! {
        span class={"state " (class)} { (state) }
        @if let Some(reason) = reason { ": " (reason) }
    }
}

/// An empty-table line.
fn none_row(columns: u8, text: &str) -> Markup {
    html! { tr { td.none colspan=(columns) { (text) } } }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
}
