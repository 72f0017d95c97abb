//! `/cluster`: the cluster's nodes, their health and what each holds, as this node sees them
//! (the same view as `GET /api/v1/cluster`); on a single node the page says so.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::html;

use super::{Page, render};
use crate::admin::AdminState;

pub(super) async fn page(
    State(state): State<Arc<AdminState>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(view) = state.cluster() else {
        let body = html! {
            p #cluster-status {
                "This broker runs as a single node (no cluster is configured: see "
                code { "spec.cluster" } " and " code { "serve --cluster" } ")."
            }
        };
        return render(&state, Page::Cluster, body);
    };
    let cluster = view.cluster();
    // `?client=ID`: which node holds that client.
    let wanted = form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "client")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let located = match &wanted {
        Some(id) => Some((id.clone(), view.locate(id).await)),
        None => None,
    };
    let up = cluster.members.iter().filter(|m| m.up).count();
    let body = html! {
        p #cluster-status {
            "Node " strong { (cluster.node) } ", NATS " (cluster.nats) ": "
            (up) " of " (cluster.members.len()) " nodes up."
        }
        table #cluster-members {
            thead { tr { th { "Node" } th { "Health" } th { "Last seen" } th { "Clients" }
                th { "Ports" } th { "Version" } th { "Started" } } }
            tbody {
                @for m in &cluster.members {
                    tr {
                        td { (m.id) }
                        td class=(if m.up { "state ok" } else { "state bad" }) { (if m.up { "up" } else { "DOWN" }) }
                        td { (m.last_seen_ms) " ms ago" }
                        td { (m.clients) }
                        td { (m.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")) }
                        td { (m.version) }
                        td { (m.started) }
                    }
                }
            }
        }
        p {
            "Messages handed to the cluster: " (cluster.forwarded)
            "; received from other nodes: " (cluster.received)
            "; dropped: " (cluster.dropped) "; publishes retried: " (cluster.retried) "."
        }
        h2 { "Where is a client?" }
        form #locate method="get" action="cluster" {
            label { "Client ID " input type="search" name="client" value=(wanted.clone().unwrap_or_default()); }
            " " button type="submit" { "Find" }
        }
        @if let Some((id, found)) = &located {
            p #located {
                @match found {
                    Ok(Some(node)) => { "Client " strong { (id) } " is held by node " strong { (node) } "." }
                    Ok(None) => { "No node holds client " strong { (id) } "." }
                    Err(e) => { "The cluster's ownership records cannot be read: " (e) }
                }
            }
        }
    };
    render(&state, Page::Cluster, body)
}
