//! Request routing: discovery paths, then `/api/v1/...` and `/apis/<group>/<version>/...` split
//! into resource type, namespace, name and subresource, and dispatched by verb.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::App;
use super::events;
use super::openapi;
use super::patch::PatchKind;
use super::resources::{self, ResourceType};
use super::selector::{Selector, SelectorKind};
use super::status::{self, ApiError};
use super::store::Part;
use super::tokenreview;
use super::watch::{self, WatchRequest};

/// The query parameters the fake reads.
#[derive(Debug, Default)]
struct Query {
    watch: bool,
    resource_version: Option<u64>,
    bookmarks: bool,
    initial_events: bool,
    timeout: Option<u64>,
    labels: String,
    fields: String,
    orphan: bool,
    dry_run: bool,
}

impl Query {
    fn parse(raw: Option<&str>) -> Query {
        let mut query = Query::default();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "watch" => query.watch = value == "1" || value == "true",
                "resourceVersion" => query.resource_version = value.parse().ok(),
                "allowWatchBookmarks" => query.bookmarks = value == "true",
                "sendInitialEvents" => query.initial_events = value == "true",
                "timeoutSeconds" => query.timeout = value.parse().ok(),
                "labelSelector" => query.labels = value.into_owned(),
                "fieldSelector" => query.fields = value.into_owned(),
                "propagationPolicy" => query.orphan = value == "Orphan",
                "dryRun" => query.dry_run = !value.is_empty(),
                _ => {}
            }
        }
        query
    }
}

/// Where a resource request points.
struct Target {
    rt: ResourceType,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    part: Part,
}

/// The one handler: every request comes here.
pub(super) async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    app.log_request(&method, &uri);
    match route(&app, &method, &uri, &headers, body) {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

fn json_response(code: StatusCode, value: Value) -> Result<Response, ApiError> {
    Ok((code, axum::Json(value)).into_response())
}

fn route(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let types = app.store.types();
    let ok = |v: Option<Value>| match v {
        Some(v) => json_response(StatusCode::OK, v),
        None => Err(ApiError::no_route(path)),
    };
    match segments.as_slice() {
        ["version"] => ok(Some(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-wardgate-fake",
            "platform": "linux/amd64", "goVersion": "go1.24.0", "compiler": "gc",
        }))),
        ["api"] => ok(Some(resources::core_versions(&app.addr))),
        ["openapi", "v3"] => ok(Some(openapi::root(&types))),
        ["openapi", "v3", rest @ ..] => ok(openapi::document(&types, &rest.join("/"))),
        ["apis"] => ok(Some(resources::group_list(&types))),
        ["api", version] => ok(resources::resource_list(&types, "", version)),
        ["apis", group] => ok(resources::group(&types, group)),
        ["apis", group, version] => ok(resources::resource_list(&types, group, version)),
        ["api", version, rest @ ..] => resource(
            app,
            method,
            uri,
            headers,
            body,
            target(app, "", version, rest, path)?,
        ),
        ["apis", group, version, rest @ ..] => resource(
            app,
            method,
            uri,
            headers,
            body,
            target(app, group, version, rest, path)?,
        ),
        _ => Err(ApiError::no_route(path)),
    }
}

fn target(
    app: &App,
    group: &str,
    version: &str,
    rest: &[&str],
    path: &str,
) -> Result<Target, ApiError> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(ApiError::no_route(path)),
    };
    let rt = app
        .store
        .find_type(group, version, plural)
        .ok_or_else(|| ApiError::no_route(path))?;
    let part = match sub {
        None => Part::Main,
        Some("status") if rt.status => Part::Status,
        Some(_) => return Err(ApiError::no_route(path)),
    };
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(ApiError::no_route(path));
    }
    Ok(Target {
        rt,
        version: version.into(),
        namespace,
        name: name.map(str::to_string),
        part,
    })
}

/// Sets the apiVersion and kind an object is read as.
fn shown(target: &Target, object: Value) -> Value {
    target.rt.show(&target.version, object)
}

/// The form a written object is stored in (the core form of an `events.k8s.io` Event).
fn stored_form(target: &Target, object: Value) -> Value {
    if target.rt.is_events_view() {
        events::to_core(object)
    } else {
        object
    }
}

fn parse_body(body: &[u8], protobuf: bool) -> Result<Value, ApiError> {
    if protobuf {
        return super::protobuf::decode(body);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
}

/// The namespace a write goes to: the URL's, which a body's `metadata.namespace` must agree with.
fn write_namespace(target: &Target, object: &Value) -> Result<String, ApiError> {
    let url = target.namespace.clone().unwrap_or_default();
    match object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) if target.rt.namespaced && !ns.is_empty() && ns != url => {
            Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        _ => Ok(url),
    }
}

fn resource(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    target: Target,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let protobuf = headers
        .get("content-type")
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("application/vnd.kubernetes.protobuf"));
    let verb = match (method.as_str(), target.name.is_some(), query.watch) {
        ("GET", false, true) => "watch",
        ("GET", false, false) => "list",
        ("GET", true, _) => "get",
        ("POST", false, _) => "create",
        ("PUT", true, _) => "update",
        ("PATCH", true, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(
                method.as_str(),
                &target.rt.qualified(),
            ));
        }
    };
    if !target.rt.verbs.contains(&verb) {
        return Err(ApiError::method_not_allowed(verb, &target.rt.qualified()));
    }
    if query.dry_run {
        return Err(ApiError::bad_request(
            "dryRun is not implemented by the fake API server",
        ));
    }
    let store = &app.store;
    let rt = &target.rt;
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    match verb {
        "create" if rt.kind == "TokenReview" => {
            let review = tokenreview::review(&app.tokens.lock(), &body)?;
            json_response(StatusCode::CREATED, review)
        }
        "watch" => {
            let request = WatchRequest {
                rt: rt.clone(),
                version: target.version.clone(),
                namespace: target.namespace.clone(),
                labels: Selector::parse(&query.labels, SelectorKind::Label)?,
                fields: Selector::parse(&query.fields, SelectorKind::Field)?,
                from: query.resource_version,
                bookmarks: query.bookmarks,
                initial_events: query.initial_events,
                timeout: Duration::from_secs(query.timeout.unwrap_or(1800)),
            };
            Ok(watch::respond(store.clone(), request, app.watch_control()))
        }
        "list" => {
            let labels = Selector::parse(&query.labels, SelectorKind::Label)?;
            let fields = Selector::parse(&query.fields, SelectorKind::Field)?;
            let (items, rv) = store.list(rt, target.namespace.as_deref(), &labels, &fields);
            let items: Vec<Value> = items.into_iter().map(|o| shown(&target, o)).collect();
            let list = json!({
                "kind": format!("{}List", rt.kind),
                "apiVersion": rt.api_version(&target.version),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            });
            let wants_table = headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("as=Table"));
            json_response(
                StatusCode::OK,
                if wants_table {
                    super::table::of_list(rt, &list)
                } else {
                    list
                },
            )
        }
        "get" => {
            let object = shown(&target, store.get(rt, &ns, &name)?);
            let wants_table = headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains("as=Table"));
            let value = if wants_table {
                super::table::of_list(
                    rt,
                    &json!({"metadata": {"resourceVersion": ""}, "items": [object]}),
                )
            } else {
                object
            };
            json_response(StatusCode::OK, value)
        }
        "create" => {
            let object = stored_form(&target, parse_body(&body, protobuf)?);
            let ns = write_namespace(&target, &object)?;
            json_response(
                StatusCode::CREATED,
                shown(&target, store.create(rt, &ns, object)?),
            )
        }
        "update" => {
            let object = stored_form(&target, parse_body(&body, protobuf)?);
            write_namespace(&target, &object)?;
            json_response(
                StatusCode::OK,
                shown(&target, store.replace(rt, &ns, &name, object, target.part)?),
            )
        }
        "patch" => {
            let content_type = headers
                .get("content-type")
                .and_then(|c| c.to_str().ok())
                .unwrap_or("");
            let kind = PatchKind::from_content_type(content_type)?;
            let patch = kind.parse(&body)?;
            if rt.is_events_view() {
                // The patch is written against the view: apply it there, store the core form.
                let mut object = rt.show(&target.version, store.get(rt, &ns, &name)?);
                patch.apply_to(&mut object)?;
                if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.remove("resourceVersion");
                }
                let stored = store.replace(rt, &ns, &name, events::to_core(object), target.part)?;
                return json_response(StatusCode::OK, shown(&target, stored));
            }
            let (object, created) = store.patch(rt, &ns, &name, &patch, target.part)?;
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json_response(code, shown(&target, object))
        }
        "delete" => {
            let orphan = query.orphan
                || serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|o| o.get("propagationPolicy").cloned())
                    .is_some_and(|p| p == "Orphan");
            json_response(
                StatusCode::OK,
                shown(&target, store.delete(rt, &ns, &name, orphan)?),
            )
        }
        _ => {
            let labels = Selector::parse(&query.labels, SelectorKind::Label)?;
            let fields = Selector::parse(&query.fields, SelectorKind::Field)?;
            let (items, _) = store.list(rt, target.namespace.as_deref(), &labels, &fields);
            for item in items {
                let item_ns = item
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let item_name = item
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                // Already gone (owned by an earlier one) is fine: the goal is an empty collection.
                let _ = store.delete(rt, item_ns, item_name, query.orphan);
            }
            json_response(StatusCode::OK, status::success())
        }
    }
}
