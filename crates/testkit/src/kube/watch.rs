//! `?watch=1`: a chunked stream of JSON lines (`{"type":"ADDED","object":{...}}`), resumed from
//! a resourceVersion, with BOOKMARK events when asked for, an ERROR event carrying 410 Gone for a
//! resourceVersion older than the history, and an end when the test breaks watches or the
//! request's `timeoutSeconds` passes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use super::resources::ResourceType;
use super::selector::{Selector, SelectorKind};
use super::store::{Change, Store};

/// What one watch request asked for.
#[derive(Debug, Clone)]
pub(super) struct WatchRequest {
    /// The resource type.
    pub(super) rt: ResourceType,
    /// The version the objects are shown in.
    pub(super) version: String,
    /// The namespace, or all.
    pub(super) namespace: Option<String>,
    /// `labelSelector`.
    pub(super) labels: Selector,
    /// `fieldSelector`.
    pub(super) fields: Selector,
    /// `resourceVersion`.
    pub(super) from: Option<u64>,
    /// `allowWatchBookmarks=true`.
    pub(super) bookmarks: bool,
    /// `sendInitialEvents=true`: end the initial events with a marked BOOKMARK.
    pub(super) initial_events: bool,
    /// `timeoutSeconds`.
    pub(super) timeout: Duration,
}

/// The server side of watches: how often bookmarks go out, and the signal that ends them all.
#[derive(Debug, Clone)]
pub(super) struct WatchControl {
    /// Interval between BOOKMARK events.
    pub(super) bookmark_interval: Duration,
    /// Bumped by the test to end every open watch mid-stream.
    pub(super) breaks: watch::Receiver<u64>,
}

fn line(event: &str, object: Value) -> Bytes {
    let mut text = json!({"type": event, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn shown(request: &WatchRequest, object: &Value) -> Value {
    request.rt.show(&request.version, object.clone())
}

fn wanted(request: &WatchRequest, change: &Change) -> bool {
    change.group == request.rt.storage_group()
        && change.plural == request.rt.plural
        && request
            .namespace
            .as_ref()
            .is_none_or(|ns| *ns == change.namespace)
        && request.labels.matches(&change.object, SelectorKind::Label)
        && request.fields.matches(&change.object, SelectorKind::Field)
}

/// A BOOKMARK at `rv`; `initial_end` marks the end of a streaming list's initial events.
fn bookmark(request: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        json!({
            "apiVersion": request.rt.api_version(&request.version),
            "kind": request.rt.kind,
            "metadata": metadata,
        }),
    )
}

/// Starts the stream of `request`; the response is sent at once, events as they happen.
pub(super) fn respond(store: Arc<Store>, request: WatchRequest, control: WatchControl) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(run(store, request, control, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

async fn run(
    store: Arc<Store>,
    request: WatchRequest,
    mut control: WatchControl,
    tx: mpsc::Sender<Bytes>,
) {
    let subscription =
        match store.subscribe(&request.rt, request.namespace.as_deref(), request.from) {
            Ok(subscription) => subscription,
            Err(gone) => {
                let _ = tx.send(line("ERROR", gone.to_status())).await;
                return;
            }
        };
    let (mut changes, mut seen) = (subscription.changes, subscription.snapshot);
    for change in subscription.first.iter().filter(|c| wanted(&request, c)) {
        if tx
            .send(line(change.event.as_str(), shown(&request, &change.object)))
            .await
            .is_err()
        {
            return;
        }
    }
    if request.initial_events {
        // The end of the initial events of a streaming list (`sendInitialEvents=true`).
        if tx.send(bookmark(&request, seen, true)).await.is_err() {
            return;
        }
    }
    control.breaks.mark_unchanged();
    let deadline = tokio::time::sleep(request.timeout);
    tokio::pin!(deadline);
    let mut ticks = tokio::time::interval(control.bookmark_interval);
    ticks.tick().await;
    loop {
        let out = tokio::select! {
            received = changes.recv() => match received {
                Ok(change) if change.rv > seen => {
                    seen = change.rv;
                    if !wanted(&request, &change) {
                        continue;
                    }
                    line(change.event.as_str(), shown(&request, &change.object))
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let gone = super::status::ApiError::expired(seen, store.resource_version());
                    let _ = tx.send(line("ERROR", gone.to_status())).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticks.tick(), if request.bookmarks => bookmark(&request, seen, false),
            _ = control.breaks.changed() => return,
            _ = &mut deadline => return,
            _ = tx.closed() => return,
        };
        if tx.send(out).await.is_err() {
            return;
        }
    }
}
