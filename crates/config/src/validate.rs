//! The rules that span resources (SPEC.md §5): listeners per service type, unique ports and
//! Service names, the old API's service sharing, references between resources, X509 without
//! TLS, and the Secrets/ConfigMaps/Issuers ports will wait for.

use std::collections::BTreeMap;

use crate::diag::Diagnostic;
use crate::lower::{Ctx, ListenerSource};
use crate::model::{Model, ServiceType, Tls};

/// Applies every cross-resource rule.
///
/// `broken` lists the `(kind, name)` of resources whose documents had errors: references to them
/// are not reported again as missing.
pub(crate) fn validate(
    model: &Model,
    sources: &[ListenerSource],
    broken: &[(String, String)],
    ctx: &mut Ctx,
) {
    services(model, sources, ctx);
    ports(model, sources, ctx);
    references(model, sources, broken, ctx);
}

/// Reports at the listener's document, or as a built-in diagnostic.
fn report(
    ctx: &mut Ctx,
    model: &Model,
    sources: &[ListenerSource],
    i: usize,
    path: &str,
    message: String,
    warning: bool,
) {
    let diag = match sources.get(i).and_then(|s| s.doc.as_ref()) {
        Some(doc) => doc.origin.diag(Some(doc.label()), path, message),
        None => Diagnostic {
            file: None,
            line: None,
            document: None,
            resource: Some(format!("BrokerListener/{}", model.listeners[i].name)),
            path: Some(path.to_owned()),
            message,
        },
    };
    if warning {
        ctx.warnings.push(diag);
    } else {
        ctx.errors.push(diag);
    }
}

/// One Kubernetes Service: a current-API listener, or the old-API listeners sharing one.
struct Service {
    service_type: ServiceType,
    name: String,
    owner: usize,
}

fn services(model: &Model, sources: &[ListenerSource], ctx: &mut Ctx) {
    let mut services: Vec<Service> = Vec::new();
    for (i, l) in model.listeners.iter().enumerate() {
        let old = sources.get(i).is_some_and(|s| s.old);
        if old {
            // reference/aio-broker.md §3.3: old listeners of one serviceType share one
            // serviceName (and Service); different serviceTypes need different names.
            let same_type = services.iter().find(|s| {
                s.service_type == l.service_type && sources.get(s.owner).is_some_and(|x| x.old)
            });
            if let Some(s) = same_type {
                if s.name != l.service_name {
                    let msg = format!(
                        "\"{}\" differs from \"{}\" of BrokerListener/{}: old-API listeners with the same serviceType must share one serviceName",
                        l.service_name, s.name, model.listeners[s.owner].name
                    );
                    report(ctx, model, sources, i, "spec.serviceName", msg, false);
                }
                continue;
            }
            let same_name = services
                .iter()
                .find(|s| s.name == l.service_name && sources.get(s.owner).is_some_and(|x| x.old));
            if let Some(s) = same_name {
                let msg = format!(
                    "\"{}\" is used by BrokerListener/{} with serviceType {}: old-API listeners of different serviceTypes must have different serviceNames",
                    l.service_name, model.listeners[s.owner].name, s.service_type
                );
                report(ctx, model, sources, i, "spec.serviceName", msg, false);
                continue;
            }
        }
        if let Some(s) = services.iter().find(|s| s.service_type == l.service_type) {
            let owner = &model.listeners[s.owner].name;
            let msg = format!(
                "{} is already used by BrokerListener/{owner}: a broker has at most 3 listeners, one per serviceType (add these ports to BrokerListener/{owner})",
                l.service_type
            );
            report(ctx, model, sources, i, "spec.serviceType", msg, false);
            continue;
        }
        if let Some(s) = services.iter().find(|s| s.name == l.service_name) {
            let msg = format!(
                "\"{}\" is already used by BrokerListener/{}",
                l.service_name, model.listeners[s.owner].name
            );
            report(ctx, model, sources, i, "spec.serviceName", msg, false);
            continue;
        }
        services.push(Service {
            service_type: l.service_type,
            name: l.service_name.clone(),
            owner: i,
        });
    }
}

fn port_path(sources: &[ListenerSource], i: usize, j: usize, field: &str) -> String {
    match sources.get(i) {
        Some(s) => s.port_field(j, field),
        None => format!("spec.ports[{j}].{field}"),
    }
}

fn ports(model: &Model, sources: &[ListenerSource], ctx: &mut Ctx) {
    // AIO's rule: `port` is unique across all listeners.
    let mut by_port: BTreeMap<u16, (usize, usize)> = BTreeMap::new();
    for (i, l) in model.listeners.iter().enumerate() {
        for (j, p) in l.ports.iter().enumerate() {
            if p.port == 0 {
                continue;
            }
            match by_port.get(&p.port) {
                Some(&(oi, oj)) if oi == i => {
                    let msg = format!(
                        "{} is listed twice in this listener (also {})",
                        p.port,
                        port_path(sources, oi, oj, "port")
                    );
                    report(
                        ctx,
                        model,
                        sources,
                        i,
                        &port_path(sources, i, j, "port"),
                        msg,
                        false,
                    );
                }
                Some(&(oi, _)) => {
                    let msg = format!(
                        "{} is already used by BrokerListener/{}",
                        p.port, model.listeners[oi].name
                    );
                    report(
                        ctx,
                        model,
                        sources,
                        i,
                        &port_path(sources, i, j, "port"),
                        msg,
                        false,
                    );
                }
                None => {
                    by_port.insert(p.port, (i, j));
                }
            }
        }
    }
    // Outside Kubernetes a NodePort listener binds its nodePort, so that number must not be
    // bound by anything else either.
    let mut bound: BTreeMap<u16, (usize, &str)> = BTreeMap::new();
    for (i, l) in model.listeners.iter().enumerate() {
        if l.service_type == ServiceType::NodePort {
            continue;
        }
        for p in &l.ports {
            bound.entry(p.port).or_insert((i, "port"));
        }
    }
    for (i, l) in model.listeners.iter().enumerate() {
        if l.service_type != ServiceType::NodePort {
            continue;
        }
        for (j, p) in l.ports.iter().enumerate() {
            let Some(n) = p.node_port else { continue };
            if let Some(&(oi, what)) = bound.get(&n) {
                let msg = format!(
                    "{n} is already used as a {what} by BrokerListener/{}",
                    model.listeners[oi].name
                );
                report(
                    ctx,
                    model,
                    sources,
                    i,
                    &port_path(sources, i, j, "nodePort"),
                    msg,
                    false,
                );
            } else {
                bound.insert(n, (i, "nodePort"));
            }
        }
    }
}

fn references(
    model: &Model,
    sources: &[ListenerSource],
    broken: &[(String, String)],
    ctx: &mut Ctx,
) {
    let is_broken = |kind: &str, name: &str| broken.iter().any(|(k, n)| k == kind && n == name);
    for (i, l) in model.listeners.iter().enumerate() {
        for (j, p) in l.ports.iter().enumerate() {
            let authn_path = port_path(sources, i, j, "authenticationRef");
            if let Some(a) = &p.authentication_ref {
                match model.authentications.get(a) {
                    None if is_broken("BrokerAuthentication", a) => {}
                    None => {
                        let msg =
                            format!("\"{a}\" names a BrokerAuthentication that does not exist");
                        report(ctx, model, sources, i, &authn_path, msg, false);
                    }
                    Some(auth) if auth.has_x509() && p.tls.is_none() => {
                        let msg = format!(
                            "\"{a}\" has an X509 method, which needs TLS on this port: add tls to port {}",
                            p.port
                        );
                        report(ctx, model, sources, i, &authn_path, msg, false);
                    }
                    Some(_) => {}
                }
            }
            if let Some(z) = &p.authorization_ref {
                let path = port_path(sources, i, j, "authorizationRef");
                if !model.authorizations.contains_key(z) && !is_broken("BrokerAuthorization", z) {
                    let msg = format!("\"{z}\" names a BrokerAuthorization that does not exist");
                    report(ctx, model, sources, i, &path, msg, false);
                } else if p.authentication_ref.is_none() && model.authorizations.contains_key(z) {
                    let msg = "has no effect without an authenticationRef on the same port (AIO behaviour): every client may do everything".to_owned();
                    report(ctx, model, sources, i, &path, msg, true);
                }
            }
            if let Some(Tls::Manual(m)) = &p.tls
                && let Some(secret) = model.secrets.get(&m.secret_ref)
                && (secret.get("tls.crt").is_none() || secret.get("tls.key").is_none())
            {
                let msg = format!(
                    "\"{}\" names a Secret without the keys tls.crt and tls.key (create it with `wardgate create secret tls`)",
                    m.secret_ref
                );
                let path = port_path(sources, i, j, "tls.manual.secretRef");
                report(ctx, model, sources, i, &path, msg, false);
            }
            let tls_deps = model.tls_dependencies(p);
            let authn_deps = model.authentication_dependencies(p);
            for (deps, field) in [(tls_deps, "tls"), (authn_deps, "authenticationRef")] {
                for dep in deps.iter().filter(|d| !model.has(d)) {
                    let msg = format!("{dep} does not exist yet: port {} will wait for it", p.port);
                    let path = port_path(sources, i, j, field);
                    report(ctx, model, sources, i, &path, msg, true);
                }
            }
        }
    }
}
