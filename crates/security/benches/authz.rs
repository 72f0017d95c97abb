//! Decision cost of the authorizer (issue 7) with 1,000 rules: a client that only the last rule
//! applies to (every rule is looked at), topics with `{principal.…}` substitution, without the
//! cache (`cache: Disabled`, every check evaluates the rules), with a warm cache (`cache:
//! Enabled`, the same topic checked again), and the first check of a session (cache enabled, the
//! client's entry forgotten before each check).
//!
//! `cargo bench -p wardgate-security --bench authz`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wardgate_security::authn::{AuthMethodKind, Identity};
use wardgate_security::authz::Authorizer;

const RULES: usize = 1_000;

/// Rule `i` applies to clients with attribute `group=g<i>` (or client ID `client-<i>`) and grants
/// Connect, Publish on `site/{site}/g<i>/#` and `clients/{clientId}/#`, Subscribe on
/// `commands/g<i>/+`.
fn authorizer(cache: &str) -> Authorizer {
    let mut rules = String::new();
    for i in 0..RULES {
        rules.push_str(&format!(
            "    - principals:\n        attributes: [{{group: g{i}}}]\n        clientIds: [client-{i}]\n      brokerResources:\n      - method: Connect\n      - method: Publish\n        topics: [\"site/{{principal.attributes.site}}/g{i}/#\", \"clients/{{principal.clientId}}/#\"]\n      - method: Subscribe\n        topics: [\"commands/g{i}/+\"]\n"
        ));
    }
    let yaml = format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\nmetadata: {{name: big}}\nspec:\n  authorizationPolicies:\n    cache: {cache}\n    rules:\n{rules}"
    );
    let model = match wardgate_config::load_str("bench.yaml", &yaml) {
        Ok(loaded) => loaded.model,
        Err(e) => panic!("{e}"),
    };
    Authorizer::new(&model, "big").expect("the policy compiles")
}

/// A client that only the last rule applies to.
fn client() -> Identity {
    let attributes = BTreeMap::from([
        ("group".to_owned(), format!("g{}", RULES - 1)),
        ("site".to_owned(), "s1".to_owned()),
    ]);
    Identity::unverified_for_tests(
        "device-7",
        Some("device-7"),
        attributes,
        AuthMethodKind::Anonymous,
    )
}

fn decisions(c: &mut Criterion) {
    let id = client();
    let allowed = format!("site/s1/g{}/temperature", RULES - 1);
    let denied = format!("site/s1/g{}/temperature", RULES - 2);
    let filter = format!("commands/g{}/+", RULES - 1);
    for (label, cache) in [("no_cache", "Disabled"), ("warm_cache", "Enabled")] {
        let a = authorizer(cache);
        assert!(a.publish(&id, &allowed).is_allowed());
        assert!(!a.publish(&id, &denied).is_allowed());
        assert!(a.subscribe(&id, &filter).is_allowed());
        assert!(a.connect(&id).is_allowed());
        c.bench_function(&format!("authz_1000_rules/{label}/publish_allowed"), |b| {
            b.iter(|| a.publish(black_box(&id), black_box(&allowed)))
        });
        c.bench_function(&format!("authz_1000_rules/{label}/publish_denied"), |b| {
            b.iter(|| a.publish(black_box(&id), black_box(&denied)))
        });
        c.bench_function(
            &format!("authz_1000_rules/{label}/subscribe_allowed"),
            |b| b.iter(|| a.subscribe(black_box(&id), black_box(&filter))),
        );
        c.bench_function(&format!("authz_1000_rules/{label}/connect"), |b| {
            b.iter(|| a.connect(black_box(&id)))
        });
    }
    // The first check of a session: the cache is enabled but holds nothing for the client.
    let a = authorizer("Enabled");
    c.bench_function("authz_1000_rules/cold_cache/publish_allowed", |b| {
        b.iter(|| {
            a.forget(id.client_id());
            a.publish(black_box(&id), black_box(&allowed))
        })
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
