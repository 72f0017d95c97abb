//! `/cluster`: the cluster's nodes, their health and what each holds, as this node sees them
//! (the same view as `GET /api/v1/cluster`); on a single node the page says so.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{Page, render};
use crate::admin::AdminState;

pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Response {
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
        p { "Which node holds each client is not shown yet (client ownership across nodes is being built)." }
    };
    render(&state, Page::Cluster, body)
}
