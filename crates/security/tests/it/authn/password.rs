//! UsernamePassword: `passwords.toml` in a Secret with PBKDF2-SHA512 hashes, one made by the AIO
//! sample's format and one by `wardgate passwd`'s code; attributes; constant-time checks; no
//! secret in Debug output.

use std::collections::BTreeMap;

use wardgate_protocol::ReasonCode;
use wardgate_security::authn::password::{PasswordHash, entry_text, upsert_entry};
use wardgate_security::authn::{
    AuthMethodKind, Authenticator, AuthnOutcome, ConnectRequest, authentication_changed,
};

use super::common::*;

/// The AIO sample `auth-server-user-pass-mqtt`'s entry for `client1` (password `password`).
const AIO_CLIENT1: &str = r#"# Credential #1
# username: client1
# password: password
[client1]
password = "$pbkdf2-sha512$i=100000,l=64$HqJwOCHweNk1pLryiu3RsA$KVSvxKYcibIG5S5n55RvxKRTdAAfCUtBJoy5IuFzdSZyzkwvUcU+FPawEWFPn+06JyZsndfRTfpiEh+2eSJLkg"

[client1.attributes]
floor = "floor1"
site = "site1"
"#;

fn model(passwords: &str) -> wardgate_config::Model {
    load(&[
        r#"apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata: {name: passwords}
spec:
  authenticationMethods:
  - method: UsernamePassword
    usernamePasswordSettings:
      secretRef: mqtt-passwords
"#
        .to_owned(),
        secret("mqtt-passwords", "passwords.toml", passwords),
    ])
}

fn login<'a>(user: &'a str, password: &'a [u8]) -> ConnectRequest<'a> {
    ConnectRequest {
        username: Some(user),
        password: Some(password),
        protocol_v5: false,
        ..connect("dev-1")
    }
}

#[tokio::test]
async fn aio_sample_hash_and_wardgate_passwd_hash_both_work() {
    let alice = PasswordHash::create(b"correct horse", 1000).unwrap();
    let attrs: BTreeMap<String, String> = [("role".to_owned(), "ops".to_owned())].into();
    let file = upsert_entry(AIO_CLIENT1, "alice", &alice, &attrs).unwrap();
    let a = Authenticator::new(&model(&file), "passwords").unwrap();

    let AuthnOutcome::Allowed(id) = a.connect(&login("client1", b"password")).await else {
        panic!("client1 with the AIO sample's password")
    };
    assert_eq!(id.method(), AuthMethodKind::UsernamePassword);
    assert_eq!(id.username(), Some("client1"));
    assert_eq!(id.attributes()["floor"], "floor1");
    assert_eq!(id.attributes()["site"], "site1");
    assert_eq!(id.expires_at(), None);

    let AuthnOutcome::Allowed(id) = a.connect(&login("alice", b"correct horse")).await else {
        panic!("alice")
    };
    assert_eq!(id.attributes(), &attrs);
}

#[tokio::test]
async fn wrong_unknown_and_missing_passwords_are_0x86() {
    let a = Authenticator::new(&model(AIO_CLIENT1), "passwords").unwrap();
    for req in [
        login("client1", b"Password"),
        login("client1", b""),
        login("nobody", b"password"),
        ConnectRequest {
            password: None,
            ..login("client1", b"")
        },
    ] {
        let AuthnOutcome::Denied { reason, why } = a.connect(&req).await else {
            panic!("denied: {req:?}")
        };
        assert_eq!(reason, ReasonCode::BAD_USERNAME_OR_PASSWORD, "{why}");
        assert_eq!(reason.to_v311_connack(), 4);
        assert!(!why.contains("password\""), "{why}");
    }
    // No username: the method is not relevant; nothing else is configured.
    let AuthnOutcome::Denied { reason, why } = a.connect(&connect("anon")).await else {
        panic!("denied")
    };
    assert_eq!(reason, ReasonCode::NOT_AUTHORIZED);
    assert!(why.contains("no username"), "{why}");
}

#[test]
fn debug_output_never_shows_the_password() {
    let req = login("client1", b"hunter2-secret");
    let d = format!("{req:?}");
    assert!(!d.contains("hunter2"), "{d}");
    assert!(d.contains("redacted, 14 bytes"), "{d}");
    let a = Authenticator::new(&model(AIO_CLIENT1), "passwords").unwrap();
    let d = format!("{a:?}");
    assert!(!d.contains("KVSv") && !d.contains("HqJw"), "{d}");
}

#[test]
fn entry_text_is_what_passwords_toml_holds() {
    let h = PasswordHash::create(b"pw", 1000).unwrap();
    let t = entry_text("bob", &h, &BTreeMap::new());
    assert!(
        t.starts_with("[bob]\npassword = \"$pbkdf2-sha512$i=1000,l=64$"),
        "{t}"
    );
}

#[test]
fn a_broken_password_file_fails_the_authenticator_naming_the_user() {
    let e = Authenticator::new(
        &model("[eve]\npassword = \"$pbkdf2-sha256$i=1$YQ$YQ\"\n"),
        "passwords",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("Secret/mqtt-passwords") && e.contains("[eve]"),
        "{e}"
    );
}

#[test]
fn a_changed_password_secret_changes_the_authentication() {
    let before = model(AIO_CLIENT1);
    let h = PasswordHash::create(b"x", 1000).unwrap();
    let after = model(&upsert_entry(AIO_CLIENT1, "zed", &h, &BTreeMap::new()).unwrap());
    assert!(!authentication_changed(
        &before,
        &before.clone(),
        "passwords"
    ));
    assert!(authentication_changed(&before, &after, "passwords"));
    assert!(!authentication_changed(
        &before,
        &after,
        "no-such-authentication"
    ));
}
