//! Every manifest of `../shared/seeds/`, extracted into `fixtures/seeds/`, loads and validates
//! (except the one the seeds themselves contradict), with the values the seeds wrote.

use std::path::PathBuf;

use crate::common::fixtures;
use wardgate_config::{
    AuthnMethod, IssuerKind, IssuerSource, KeyAlgorithm, Model, PortProtocol, ServiceType, Tls,
    load,
};

fn seed(name: &str) -> PathBuf {
    fixtures().join("seeds").join(name)
}

#[track_caller]
fn load_seed(name: &str) -> wardgate_config::Loaded {
    match load(&[seed(name)]) {
        Ok(l) => l,
        Err(e) => panic!("seed {name} must load:\n{e}"),
    }
}

#[test]
fn every_seed_fixture_loads_except_the_port_collision() {
    let dir = fixtures().join("seeds");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 14, "{names:?}");
    for name in names {
        let result = load(&[dir.join(&name)]);
        if name == "000-loadbalancer-listener.yaml" {
            assert!(result.is_err(), "{name}");
        } else if let Err(e) = result {
            panic!("seed {name} must load:\n{e}");
        }
    }
}

#[test]
fn the_seed_loadbalancer_on_18883_collides_with_the_default_listener() {
    let e = load(&[seed("000-loadbalancer-listener.yaml")]).unwrap_err();
    let file = seed("000-loadbalancer-listener.yaml");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:14: BrokerListener/loadbalancer-listener: spec.ports[1].port 18883 is already used by BrokerListener/default",
            file.display()
        )
    );
}

#[test]
fn the_seed_loads_when_it_replaces_the_default_listener_port() {
    // The same folder plus a `default` listener without 18883 loads: a user resource replaces the
    // default of the same name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        seed("000-loadbalancer-listener.yaml"),
        dir.path().join("lb.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("default.yaml"),
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerListener\nmetadata:\n  name: default\nspec:\n  serviceName: aio-broker\n  ports:\n  - port: 28883\n    authenticationRef: default\n",
    )
    .unwrap();
    let m = load(&[dir.path().to_path_buf()]).unwrap().model;
    assert_eq!(m.listeners.len(), 2);
}

#[test]
fn default_listener_as_kubectl_shows_it() {
    let m = load_seed("000-default-listener.yaml").model;
    assert_eq!(m.listeners.len(), 1);
    let l = &m.listeners[0];
    assert_eq!(
        (l.name.as_str(), l.service_name.as_str(), l.service_type),
        ("default", "aio-broker", ServiceType::ClusterIp)
    );
    let p = &l.ports[0];
    assert_eq!(p.port, 18883);
    assert_eq!(p.authentication_ref.as_deref(), Some("default"));
    let Some(Tls::Automatic(a)) = &p.tls else {
        panic!("{:?}", p.tls)
    };
    assert_eq!(a.issuer_ref.kind, IssuerKind::Issuer);
    assert_eq!(a.issuer_ref.name, "mq-dmqtt-frontend");
    // The 0.7/0.8 default issuer is built in, backed by the quickstart CA.
    assert!(m.missing_dependencies(p).is_empty());
}

#[test]
fn ca_bootstrap_issuer_and_certificate() {
    let m = load_seed("000-ca.yaml").model;
    let i = &m.issuers[&(IssuerKind::Issuer, "selfsigned-ca-issuer".to_owned())];
    assert_eq!(i.source, IssuerSource::SelfSigned);
    let c = &m.certificates["selfsigned-ca-cert"];
    assert!(c.is_ca);
    assert_eq!(c.secret_name, "test-ca");
    assert_eq!(c.common_name.as_deref(), Some("test-ca"));
    assert_eq!(c.private_key.algorithm, KeyAlgorithm::Ec256);

    let m = load_seed("000-issuer-ca.yaml").model;
    let i = &m.issuers[&(IssuerKind::Issuer, "my-issuer".to_owned())];
    assert_eq!(
        i.source,
        IssuerSource::Ca {
            secret_name: "test-ca".to_owned()
        }
    );
}

#[test]
fn automatic_and_manual_tls_listeners() {
    let loaded = load_seed("000-loadbalancer-tls-automatic.yaml");
    let l = loaded.model.listener("loadbalancer-tls").unwrap();
    assert_eq!(l.service_type, ServiceType::LoadBalancer);
    assert_eq!(l.service_name, "aio-broker-loadbalancer-tls");
    let Some(Tls::Automatic(a)) = &l.ports[0].tls else {
        panic!()
    };
    assert_eq!(a.issuer_ref.group, "cert-manager.io");
    assert_eq!(
        a.secret_name,
        "aio-broker-loadbalancer-tls-frontend-server-8884"
    );
    // Issuer my-issuer is not in this file: the port waits, with a warning.
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message == "Issuer/my-issuer does not exist yet: port 8884 will wait for it"),
        "{:?}",
        loaded.warnings
    );

    let m = load_seed("000-loadbalancer-tls-manual.yaml").model;
    let l = m.listener("loadbalancer-tls").unwrap();
    assert_eq!(
        l.ports[0].tls,
        Some(Tls::Manual(wardgate_config::ManualTls {
            secret_ref: "server-cert-secret".to_owned()
        }))
    );
}

#[test]
fn old_api_parameters_fragment() {
    let m = load_seed("000-tls-automatic-parameters.yaml").model;
    let l = m.listener("my-tls-listener").unwrap();
    assert_eq!(l.service_name, "my-new-tls-listener");
    let Some(Tls::Automatic(a)) = &l.ports[0].tls else {
        panic!()
    };
    assert_eq!(a.secret_name, "my-issuer-8884");
    assert_eq!(a.private_key.algorithm, KeyAlgorithm::Ec256);
    assert_eq!(a.san_dns.len(), 2);
    assert_eq!(
        a.san_ip,
        vec!["192.168.1.1".parse::<std::net::IpAddr>().unwrap()]
    );
}

/// Seed 000's "all supported properties" block under the current API's
/// `certManagerCertificateSpec` (`namespace`, `secret`, `privateKey: {rotationPolicy,
/// algorithm: ECDSA, size}`) loads with the values it gives; it was refused with 4 errors.
#[test]
fn seed_000_server_certificate_parameters_load_under_cert_manager_certificate_spec() {
    let m = load_seed("000-tls-automatic-parameters-current.yaml").model;
    let l = m.listener("loadbalancer-tls").unwrap();
    let Some(Tls::Automatic(a)) = &l.ports[0].tls else {
        panic!("{:?}", l.ports[0].tls)
    };
    assert_eq!(a.secret_name, "my-issuer-8884");
    assert_eq!(a.private_key.algorithm, KeyAlgorithm::Ec256);
    assert_eq!(
        a.private_key.rotation_policy,
        wardgate_config::model::RotationPolicy::Always
    );
    assert_eq!(a.san_dns.len(), 2);

    // The other sizes and algorithms of either spelling, and what contradicts itself.
    let text = std::fs::read_to_string(seed("000-tls-automatic-parameters-current.yaml")).unwrap();
    let with_key = |key: &str| {
        let dir = tempfile::tempdir().unwrap();
        let t = text.replace(
            "          rotationPolicy: Always\n          algorithm: ECDSA\n          size: 256\n",
            key,
        );
        assert_ne!(t, text);
        std::fs::write(dir.path().join("l.yaml"), t).unwrap();
        load(&[dir.path().to_path_buf()]).map(|l| {
            let Some(Tls::Automatic(a)) =
                &l.model.listener("loadbalancer-tls").unwrap().ports[0].tls
            else {
                panic!()
            };
            (a.private_key.algorithm, a.private_key.rotation_policy)
        })
    };
    use wardgate_config::model::RotationPolicy::{Always, Never};
    for (key, want) in [
        (
            "          algorithm: ECDSA\n          size: 384\n",
            (KeyAlgorithm::Ec384, Always),
        ),
        (
            "          algorithm: RSA\n          size: 4096\n          rotationPolicy: Never\n",
            (KeyAlgorithm::Rsa4096, Never),
        ),
        (
            "          algorithm: RSA\n",
            (KeyAlgorithm::Rsa2048, Always),
        ),
        (
            "          algorithm: Ed25519\n",
            (KeyAlgorithm::Ed25519, Always),
        ),
        (
            "          algorithm: Ec521\n          rotationPolicy: Always\n",
            (KeyAlgorithm::Ec521, Always),
        ),
        ("          size: 521\n", (KeyAlgorithm::Ec521, Always)),
    ] {
        assert_eq!(with_key(key).unwrap(), want, "{key}");
    }
    for (key, error) in [
        (
            "          algorithm: ECDSA\n          size: 2048\n",
            "privateKey.size 2048 is not a supported key size",
        ),
        (
            "          algorithm: Ec384\n          size: 256\n",
            "privateKey.size 256 contradicts algorithm Ec384",
        ),
    ] {
        let e = with_key(key).unwrap_err().to_string();
        assert!(e.contains(error), "{key}: {e}");
    }
}

/// Seed 000's bootstrapping in one folder: a selfSigned issuer, an `isCA` Certificate writing
/// Secret `test-ca`, a `ca` issuer on that Secret, and a listener using it. The broker issues
/// `test-ca` itself, so nothing is missing: no "Secret/test-ca does not exist yet" warning (there
/// was one). Without the Certificate the Secret is awaited and the warning stays.
#[test]
fn a_secret_a_certificate_of_the_folder_writes_is_not_warned_about_as_missing() {
    let files = [
        "000-ca.yaml",
        "000-issuer-ca.yaml",
        "000-loadbalancer-tls-automatic.yaml",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| seed(f)).collect();
    let loaded = load(&paths).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .all(|w| !w.message.contains("does not exist")),
        "{:?}",
        loaded.warnings
    );
    let loaded = load(&paths[1..]).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.message == "Secret/test-ca does not exist yet: port 8884 will wait for it"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn old_api_listeners_share_their_service() {
    let m = load_seed("001-old-listeners.yaml").model;
    // No current-API default listener is added to an old-API configuration.
    let names: Vec<&str> = m.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["my-secure-listener", "my-test-listener"]);
    for l in &m.listeners {
        assert_eq!(l.service_name, "aio-mq-dmqtt-frontend");
        assert_eq!(l.service_type, ServiceType::ClusterIp);
    }
    let secure = m.listener("my-secure-listener").unwrap();
    assert_eq!(secure.ports[0].port, 8883);
    assert_eq!(
        secure.ports[0].authentication_ref.as_deref(),
        Some("default")
    );
    let test = m.listener("my-test-listener").unwrap();
    assert_eq!(test.ports[0].authentication_ref, None);
    assert_eq!(test.ports[0].tls, None);

    let m = load_seed("001-old-default-listener.yaml").model;
    let l = m.listener("listener").unwrap();
    assert_eq!(l.ports[0].port, 8883);
}

#[test]
fn blog_layout_has_three_listeners() {
    let m = load_seed("002-blog-layout.yaml").model;
    let kinds: Vec<(&str, ServiceType, u16)> = m
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.service_type,
                l.ports[0].bound_port(l.service_type),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("default", ServiceType::ClusterIp, 18883),
            ("loadbalancer-listener", ServiceType::LoadBalancer, 8883),
            ("nodeport-listener", ServiceType::NodePort, 31883),
        ]
    );
    let lb = m.listener("loadbalancer-listener").unwrap();
    assert_eq!(lb.ports[0].protocol, PortProtocol::Mqtt);
    let Some(Tls::Automatic(a)) = &lb.ports[0].tls else {
        panic!()
    };
    assert_eq!(a.issuer_ref.kind, IssuerKind::ClusterIssuer);
    assert_eq!(a.san_ip.len(), 2);

    let loaded = load_seed("002-blog-x509.yaml");
    let AuthnMethod::X509(x) = &loaded.model.authentications["x509-policy"].methods[0] else {
        panic!()
    };
    assert_eq!(x.trusted_client_ca_cert, "clients42-ca");
}

#[test]
fn tutorial_x509_abac() {
    let m: Model = load_seed("003-tutorial-x509-abac.yaml").model;
    let AuthnMethod::X509(x) = &m.authentications["x509-auth"].methods[0] else {
        panic!()
    };
    assert_eq!(x.authorization_attributes.len(), 3);
    assert_eq!(
        x.authorization_attributes["intermediate"].subject,
        "CN = Fabrikam Intermediate CA 1"
    );
    let z = &m.authorizations["abac-authz"];
    assert_eq!(z.rules.len(), 4);
    assert_eq!(z.rules[3].principals.usernames, ["heater"]);
    assert_eq!(z.rules[3].broker_resources[1].topics.len(), 2);
    let l = m.listener("mqtts-endpoint").unwrap();
    assert_eq!(l.service_name, "mqtts-endpoint");
    assert_eq!(l.ports[0].effective_authorization_ref(), Some("abac-authz"));
}

#[test]
fn cluster_issuer_with_status_and_trailing_spaces() {
    let m = load_seed("004-cluster-issuer.yaml").model;
    let i = &m.issuers[&(
        IssuerKind::ClusterIssuer,
        "azure-iot-operations-aio-certificate-issuer".to_owned(),
    )];
    // The user's ClusterIssuer replaces the built-in one of the same name.
    assert_eq!(
        i.source,
        IssuerSource::Ca {
            secret_name: "azure-iot-operations-aio-ca-certificate".to_owned()
        }
    );
}

#[test]
fn all_seeds_together_except_the_collision() {
    let dir = fixtures().join("seeds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("003")
                || n.starts_with("004")
                || n == "000-ca.yaml"
                || n == "000-issuer-ca.yaml"
        })
        .collect();
    files.sort();
    load(&files).unwrap();
}
