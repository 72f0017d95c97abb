//! `/cluster`: the place for the cluster's nodes and where each client is connected. Wardgate
//! runs as a single node until clustering (issue 17) lands; the page says so and shows nothing
//! it does not know.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use maud::html;

use super::{Page, render};
use crate::admin::AdminState;

pub(super) async fn page(State(state): State<Arc<AdminState>>) -> Response {
    let body = html! {
        p #cluster-status {
            "This broker runs as a single node: clustering is not available in this version. "
            "When it is, this page lists the cluster's nodes, their state, and the node each "
            "client is connected to."
        }
    };
    render(&state, Page::Cluster, body)
}
