//! Decision cost with 1,000 rules: the cache must make a repeated check much cheaper than
//! evaluating the rules (the figures are printed with `--nocapture`).

use std::time::Instant;

use wardgate_security::authz::Authorizer;

use super::common::*;

fn policy(cache: &str) -> String {
    let mut rules = String::new();
    for i in 0..1000 {
        rules.push_str(&format!(
            "    - principals:\n        attributes: [{{group: g{i}}}]\n        clientIds: [client-{i}]\n      brokerResources:\n      - method: Connect\n      - method: Publish\n        topics: [\"site/{{principal.attributes.site}}/g{i}/#\", \"clients/{{principal.clientId}}/#\"]\n      - method: Subscribe\n        topics: [\"commands/g{i}/+\"]\n"
        ));
    }
    format!(
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthorization\nmetadata: {{name: big}}\nspec:\n  authorizationPolicies:\n    cache: {cache}\n    rules:\n{rules}"
    )
}

#[tokio::test]
async fn a_warm_cache_beats_evaluating_a_thousand_rules() {
    // The client matches only the last rule: the worst case for evaluation.
    let f = Fabrikam::new();
    let authn_yaml = TUTORIAL_AUTHN.replace(
        "attributes:\n            group: thermostat_group",
        "attributes:\n            group: g999\n            site: s1",
    );
    let mut per_check = Vec::new();
    for cache in ["Disabled", "Enabled"] {
        let model = load(&[
            authn_yaml.clone(),
            policy(cache),
            config_map("fabrikam-ca", "client_ca.pem", &f.root.pem()),
        ]);
        let authn = wardgate_security::authn::Authenticator::new(&model, "x509-auth").unwrap();
        let id = match authn
            .connect(&wardgate_security::authn::ConnectRequest {
                client_chain: f.chain("thermostat"),
                ..connect("thermostat")
            })
            .await
        {
            wardgate_security::authn::AuthnOutcome::Allowed(id) => id,
            other => panic!("{other:?}"),
        };
        let a = Authorizer::new(&model, "big").unwrap();
        assert!(a.publish(&id, "site/s1/g999/temp").is_allowed());
        assert!(!a.publish(&id, "site/s1/g998/temp").is_allowed());
        let n = 2_000u32;
        let started = Instant::now();
        for _ in 0..n {
            assert!(a.publish(&id, "site/s1/g999/temp").is_allowed());
        }
        let each = started.elapsed() / n;
        println!("1,000 rules, cache {cache}: {each:?} per publish check (this build's profile)");
        per_check.push(each);
    }
    assert!(
        per_check[1] * 5 < per_check[0],
        "cached {:?} vs uncached {:?}",
        per_check[1],
        per_check[0]
    );
}
