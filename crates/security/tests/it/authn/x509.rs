//! X509: username = leaf CN, attributes from the first certificate (leaf up) whose subject
//! matches, the tutorial's exact attribute outcomes, multi-RDN subjects, the old API's TOML.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rcgen::DnType;
use wardgate_protocol::ReasonCode;
use wardgate_security::authn::{AuthMethodKind, Authenticator, AuthnOutcome, ConnectRequest};

use super::common::*;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn tutorial_model(f: &Fabrikam) -> wardgate_config::Model {
    load(&[
        TUTORIAL_AUTHN.to_owned(),
        config_map("fabrikam-ca", "client_ca.pem", &f.root.pem()),
    ])
}

#[tokio::test]
async fn tutorial_devices_get_exactly_the_tutorial_attributes() {
    let f = Fabrikam::new();
    let a = Authenticator::new(&tutorial_model(&f), "x509-auth").unwrap();
    let expected = [
        // Its own leaf entry wins; the intermediate's manufacturer is NOT added.
        ("thermostat", attrs(&[("group", "thermostat_group")])),
        ("hygrometer", attrs(&[("group", "hygrometer_group")])),
        // No leaf entry: the intermediate matches.
        ("heater", attrs(&[("manufacturer", "fabrikam")])),
        ("lightbulb", attrs(&[("manufacturer", "fabrikam")])),
    ];
    for (device, want) in expected {
        let req = ConnectRequest {
            username: Some("ignored-username"),
            client_chain: f.chain(device),
            ..connect(device)
        };
        let AuthnOutcome::Allowed(id) = a.connect(&req).await else {
            panic!("{device} should authenticate");
        };
        assert_eq!(id.method(), AuthMethodKind::X509);
        assert_eq!(id.client_id(), device);
        assert_eq!(id.username(), Some(device), "username = leaf CN");
        assert_eq!(id.attributes(), &want, "{device}");
        let exp = id.expires_at().expect("expires at the leaf's notAfter");
        assert!(exp > SystemTime::now() + Duration::from_secs(86_400 * 300));
        assert_eq!(id.enhanced_method(), None);
    }
    assert_eq!(a.stats().allowed, 4);
}

#[tokio::test]
async fn the_trusted_root_is_on_the_path_even_when_not_sent() {
    let f = Fabrikam::new();
    let model = load(&[
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: a}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      authorizationAttributes:
        root: {subject: "CN=Fabrikam Root CA", attributes: {org: fabrikam}}
"#
        .to_owned(),
        config_map("client-ca", "ca.crt", &f.root.pem()),
    ]);
    let a = Authenticator::new(&model, "a").unwrap();
    let mut with_root = f.chain("lightbulb").to_vec();
    with_root.push(f.root.der().clone());
    for chain in [with_root.as_slice(), f.chain("lightbulb")] {
        let AuthnOutcome::Allowed(id) = a
            .connect(&ConnectRequest {
                client_chain: chain,
                ..connect("lightbulb")
            })
            .await
        else {
            panic!("allowed")
        };
        assert_eq!(id.attributes(), &attrs(&[("org", "fabrikam")]));
    }
}

#[tokio::test]
async fn certificates_off_the_issuance_path_are_ignored() {
    // A device under an intermediate with no entry appends a certificate it made itself, whose
    // subject has privileged attributes. It must not get them.
    let root = TestCa::new("Plant Root");
    let other = root.intermediate("Plant Intermediate");
    let leaf = other
        .issue_client(&[(DnType::CommonName, "sensor")])
        .der()
        .clone();
    let forged = TestCa::with_subject(&[(DnType::CommonName, "Plant Admin CA")]);
    let model = load(&[
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: a}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      trustedClientCaCert: plant-ca
      authorizationAttributes:
        admin: {subject: "CN = Plant Admin CA", attributes: {role: admin}}
        plant: {subject: "CN = Plant Intermediate", attributes: {site: plant}}
"#
        .to_owned(),
        config_map("plant-ca", "ca.crt", &root.pem()),
    ]);
    let a = Authenticator::new(&model, "a").unwrap();
    // The forged certificate first, then the real intermediate.
    let chain = vec![leaf.clone(), forged.der().clone(), other.der().clone()];
    let AuthnOutcome::Allowed(id) = a
        .connect(&ConnectRequest {
            client_chain: &chain,
            ..connect("sensor")
        })
        .await
    else {
        panic!("allowed")
    };
    assert_eq!(id.attributes(), &attrs(&[("site", "plant")]));
    // Without its intermediate the leaf does not reach the trusted root: denied.
    let chain = vec![leaf, forged.der().clone()];
    let AuthnOutcome::Denied { reason, why } = a
        .connect(&ConnectRequest {
            client_chain: &chain,
            ..connect("sensor")
        })
        .await
    else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert!(why.contains("ConfigMap/plant-ca"), "{why}");
}

#[tokio::test]
async fn multi_rdn_subjects_and_spacing() {
    let root = TestCa::with_subject(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationalUnitName, "Engineering"),
        (DnType::CommonName, "Contoso Root CA Cert"),
    ]);
    let leaf = root.issue_client(&[
        (DnType::OrganizationName, "Contoso"),
        (DnType::CommonName, "smart-fan"),
    ]);
    let chain = vec![leaf.der().clone(), root.der().clone()];
    for (fan_subject, root_subject, expect) in [
        // AIO's written style (most specific first), spaces around `=`.
        (
            "CN = smart-fan, O = Contoso",
            "CN = Contoso Root CA Cert, OU = Engineering, C = US",
            attrs(&[("building", "17")]),
        ),
        // Encoded order, no spaces, lower-case types.
        (
            "o=Contoso,cn=smart-fan",
            "C=US,OU=Engineering,CN=Contoso Root CA Cert",
            attrs(&[("building", "17")]),
        ),
        // The leaf's entry is missing its O: not the same name, so the root's entry applies.
        (
            "CN = smart-fan",
            "CN = Contoso Root CA Cert, OU = Engineering, C = US",
            attrs(&[("organization", "contoso")]),
        ),
        // RDNs out of order: no match at all.
        (
            "O = Contoso, CN = smart-fan, C = US",
            "OU = Engineering, CN = Contoso Root CA Cert, C = US",
            BTreeMap::new(),
        ),
    ] {
        let model = load(&[
            format!(
                r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {{name: a}}
spec:
  authenticationMethods:
  - method: X509
    x509Settings:
      authorizationAttributes:
        fan: {{subject: "{fan_subject}", attributes: {{building: "17"}}}}
        root: {{subject: "{root_subject}", attributes: {{organization: contoso}}}}
"#
            ),
            config_map("client-ca", "ca.crt", &root.pem()),
        ]);
        let a = Authenticator::new(&model, "a").unwrap();
        let AuthnOutcome::Allowed(id) = a
            .connect(&ConnectRequest {
                client_chain: &chain,
                ..connect("fan-1")
            })
            .await
        else {
            panic!("allowed")
        };
        assert_eq!(id.username(), Some("smart-fan"));
        assert_eq!(id.attributes(), &expect, "{fan_subject} / {root_subject}");
    }
}

#[tokio::test]
async fn old_api_attributes_toml() {
    let f = Fabrikam::new();
    let toml = r#"[thermostat]
subject = "CN = thermostat"
[thermostat.attributes]
group = "thermostat_group"

[intermediate]
subject = "CN = Fabrikam Intermediate CA 1"
[intermediate.attributes]
manufacturer = "fabrikam"
"#;
    let model = load(&[
        r#"apiVersion: mq.iotoperations.azure.com/v1beta1
kind: BrokerAuthentication
metadata: {name: authn}
spec:
  listenerRef: []
  authenticationMethods:
  - x509:
      trustedClientCaCert: client-ca
      attributes:
        secretName: x509-attributes
"#
        .to_owned(),
        secret("x509-attributes", "x509Attributes.toml", toml),
        config_map("client-ca", "client_ca.pem", &f.root.pem()),
    ]);
    let a = Authenticator::new(&model, "authn").unwrap();
    for (device, want) in [
        ("thermostat", attrs(&[("group", "thermostat_group")])),
        ("lightbulb", attrs(&[("manufacturer", "fabrikam")])),
    ] {
        let AuthnOutcome::Allowed(id) = a
            .connect(&ConnectRequest {
                client_chain: f.chain(device),
                ..connect(device)
            })
            .await
        else {
            panic!("allowed")
        };
        assert_eq!(id.attributes(), &want, "{device}");
    }
}

#[tokio::test]
async fn no_certificate_on_an_x509_only_port_is_not_authorized() {
    let f = Fabrikam::new();
    let a = Authenticator::new(&tutorial_model(&f), "x509-auth").unwrap();
    let AuthnOutcome::Denied { reason, why } = a.connect(&connect("anon")).await else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(reason.to_v311_connack(), 5);
    assert!(why.contains("no client certificate"), "{why}");
    // With a username (and no UsernamePassword method): 0x86, v3.1.1 rc 4.
    let AuthnOutcome::Denied { reason, .. } = a
        .connect(&ConnectRequest {
            username: Some("u"),
            password: Some(b"p"),
            ..connect("anon")
        })
        .await
    else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::BAD_USERNAME_OR_PASSWORD);
    assert_eq!(reason.to_v311_connack(), 4);
    assert_eq!(a.stats().denied, 2);
}

#[tokio::test]
async fn expired_leaf_is_denied() {
    let root = TestCa::new("R");
    let mut p = wardgate_testkit::pki::empty_params();
    p.distinguished_name.push(DnType::CommonName, "old");
    p.not_before = rcgen::date_time_ymd(2020, 1, 1);
    p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let leaf = root.sign(&p).der().clone();
    let model = load(&[
        "apiVersion: mqttbroker.iotoperations.azure.com/v1\nkind: BrokerAuthentication\nmetadata: {name: a}\nspec:\n  authenticationMethods:\n  - method: X509\n".to_owned(),
        config_map("client-ca", "ca.crt", &root.pem()),
    ]);
    let a = Authenticator::new(&model, "a").unwrap();
    let chain = [leaf];
    let AuthnOutcome::Denied { reason, why } = a
        .connect(&ConnectRequest {
            client_chain: &chain,
            ..connect("old")
        })
        .await
    else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert!(why.contains("expired"), "{why}");
}

/// The tutorial's device chain made by the pki module (what `wardgate cert` uses), mixing RSA
/// and EC keys, with the tutorial's attributes.
#[tokio::test]
async fn chains_made_by_the_pki_module() {
    use wardgate_config::KeyAlgorithm;
    use wardgate_security::pki::issue::{CertRequest, Key, Profile, Signer, provider, self_signed};
    let year = Duration::from_secs(365 * 86_400);
    let root_key = Key::generate(KeyAlgorithm::Rsa2048).unwrap();
    let root_der = self_signed(
        &CertRequest::new("Fabrikam Root CA", Profile::RootCa, year),
        &root_key,
    )
    .unwrap();
    let root = Signer::new(
        vec![root_der.clone()],
        "root",
        root_key,
        "root key",
        &provider(),
    )
    .unwrap();
    let int_key = Key::generate(KeyAlgorithm::Ec256).unwrap();
    let int_der = root
        .issue(
            &CertRequest::new(
                "Fabrikam Intermediate CA 1",
                Profile::IntermediateCa { path_len: Some(0) },
                year,
            ),
            &int_key,
        )
        .unwrap();
    let int = Signer::new(
        vec![int_der.clone()],
        "int",
        int_key,
        "int key",
        &provider(),
    )
    .unwrap();
    let model = load(&[
        TUTORIAL_AUTHN.to_owned(),
        config_map(
            "fabrikam-ca",
            "client_ca.pem",
            &wardgate_security::pki::pem::certificate_pem(&root_der),
        ),
    ]);
    let a = Authenticator::new(&model, "x509-auth").unwrap();
    for (device, want) in [
        ("thermostat", attrs(&[("group", "thermostat_group")])),
        ("lightbulb", attrs(&[("manufacturer", "fabrikam")])),
    ] {
        let key = Key::generate(KeyAlgorithm::Ec256).unwrap();
        let leaf = int
            .issue(&CertRequest::new(device, Profile::Client, year), &key)
            .unwrap();
        let chain = [leaf, int_der.clone()];
        let AuthnOutcome::Allowed(id) = a
            .connect(&ConnectRequest {
                client_chain: &chain,
                ..connect(device)
            })
            .await
        else {
            panic!("{device} allowed")
        };
        assert_eq!(id.username(), Some(device));
        assert_eq!(id.attributes(), &want, "{device}");
    }
}

/// The tutorial's chain made with the openssl command line (PrintableString names, OpenSSL's
/// extensions), when openssl is installed, as the end-to-end scripts make it.
#[tokio::test]
async fn chains_made_with_openssl() {
    let Ok(out) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("openssl is not installed; the rcgen and pki tests cover the same ground");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-days",
            "30",
            "-subj",
            "/CN=Fabrikam Root CA",
            "-keyout",
            "root.key",
            "-out",
            "root.crt",
        ],
    ]
    .concat());
    std::fs::write(
        dir.path().join("ca.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    run(&[
        &["req"][..],
        &ec,
        &[
            "-subj",
            "/CN=Fabrikam Intermediate CA 1",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "int.csr",
        "-CA",
        "root.crt",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "ca.ext",
        "-out",
        "int.crt",
    ]);
    std::fs::write(dir.path().join("leaf.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    let model = load(&[
        TUTORIAL_AUTHN.to_owned(),
        config_map(
            "fabrikam-ca",
            "client_ca.pem",
            &std::fs::read_to_string(dir.path().join("root.crt")).unwrap(),
        ),
    ]);
    let a = Authenticator::new(&model, "x509-auth").unwrap();
    for (device, want) in [
        ("thermostat", attrs(&[("group", "thermostat_group")])),
        ("heater", attrs(&[("manufacturer", "fabrikam")])),
    ] {
        run(&[
            &["req"][..],
            &ec,
            &[
                "-subj",
                &format!("/CN={device}"),
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.crt",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.crt",
        ]);
        let mut bundle = std::fs::read(dir.path().join("leaf.crt")).unwrap();
        bundle.extend(std::fs::read(dir.path().join("int.crt")).unwrap());
        let chain = wardgate_security::pki::pem::certificates(&bundle, "bundle").unwrap();
        let AuthnOutcome::Allowed(id) = a
            .connect(&ConnectRequest {
                client_chain: &chain,
                ..connect(device)
            })
            .await
        else {
            panic!("{device} allowed")
        };
        assert_eq!(id.username(), Some(device));
        assert_eq!(id.attributes(), &want, "{device}");
    }
}
