//! How a node authenticates to NATS (docs/cluster.md, "NATS credentials"): nothing, or what the
//! Secret of `spec.cluster.nats.credentialsSecretRef` holds — a NATS credentials file (user JWT
//! and NKey seed, key `nats.creds`), a user name and password (keys `username` and `password`,
//! as in a Kubernetes `kubernetes.io/basic-auth` Secret), or a token (key `token`). Exactly one
//! of the three: a Secret with two is refused rather than one of them picked silently.

use std::collections::BTreeMap;
use std::fmt;

/// The Secret key of a NATS credentials file.
const CREDENTIALS_KEY: &str = "nats.creds";
/// The Secret keys of a user name and password.
const USERNAME_KEY: &str = "username";
/// The Secret key of a password (with [`USERNAME_KEY`]).
const PASSWORD_KEY: &str = "password";
/// The Secret key of a token.
const TOKEN_KEY: &str = "token";

/// What a node presents to the NATS servers.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum NatsAuth {
    /// No credentials (a NATS cluster on a private network without authorization).
    #[default]
    Anonymous,
    /// A credentials file's text (user JWT and NKey seed), checked to parse.
    Credentials(String),
    /// A user name and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
}

impl fmt::Debug for NatsAuth {
    // Never the secret itself: a Debug print ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

impl NatsAuth {
    /// Reads a Secret's values: exactly one of `nats.creds`, `username` with `password`, or
    /// `token`; the error says what is missing, extra or unreadable (never a value).
    pub fn from_secret(data: &BTreeMap<String, Vec<u8>>) -> Result<NatsAuth, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            data.get(key)
                .map(|v| {
                    String::from_utf8(v.clone())
                        .map_err(|_| format!("key {key:?} is not UTF-8 text"))
                })
                .transpose()
        };
        // A value written with `echo` ends with a newline that is not part of it; a
        // credentials file's own last line does end with one.
        let line = |key: &str| -> Result<Option<String>, String> {
            Ok(text(key)?.map(|s| s.trim_end_matches(['\r', '\n']).to_owned()))
        };
        let creds = text(CREDENTIALS_KEY)?;
        let user = line(USERNAME_KEY)?;
        let password = line(PASSWORD_KEY)?;
        let token = line(TOKEN_KEY)?;
        let given: Vec<&str> = [
            (creds.is_some(), CREDENTIALS_KEY),
            (user.is_some() || password.is_some(), "username/password"),
            (token.is_some(), TOKEN_KEY),
        ]
        .into_iter()
        .filter_map(|(present, what)| present.then_some(what))
        .collect();
        if given.len() > 1 {
            return Err(format!(
                "holds {}: give exactly one way to authenticate to NATS",
                given.join(" and ")
            ));
        }
        let auth = match (creds, user, password, token) {
            (Some(creds), ..) => {
                async_nats::ConnectOptions::new()
                    .credentials(&creds)
                    .map_err(|e| {
                        format!("key {CREDENTIALS_KEY:?} is not a NATS credentials file: {e}")
                    })?;
                NatsAuth::Credentials(creds)
            }
            (_, Some(user), Some(password), _) if !user.is_empty() => {
                NatsAuth::UserPassword { user, password }
            }
            (_, Some(_), Some(_), _) => return Err(format!("key {USERNAME_KEY:?} is empty")),
            (_, Some(_), None, _) => {
                return Err(format!("has {USERNAME_KEY:?} but no {PASSWORD_KEY:?}"));
            }
            (_, None, Some(_), _) => {
                return Err(format!("has {PASSWORD_KEY:?} but no {USERNAME_KEY:?}"));
            }
            (_, _, _, Some(token)) if !token.is_empty() => NatsAuth::Token(token),
            (_, _, _, Some(_)) => return Err(format!("key {TOKEN_KEY:?} is empty")),
            (None, None, None, None) => {
                return Err(format!(
                    "holds none of {CREDENTIALS_KEY:?} (a NATS credentials file), {USERNAME_KEY:?} with {PASSWORD_KEY:?}, or {TOKEN_KEY:?}"
                ));
            }
        };
        Ok(auth)
    }

    /// What kind of credentials these are, for logs (`anonymous`, `credentials file`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::Anonymous => "anonymous",
            NatsAuth::Credentials(_) => "credentials file",
            NatsAuth::UserPassword { .. } => "username and password",
            NatsAuth::Token(_) => "token",
        }
    }

    /// `options` presenting these credentials.
    pub(crate) fn apply(
        &self,
        options: async_nats::ConnectOptions,
    ) -> std::io::Result<async_nats::ConnectOptions> {
        Ok(match self {
            NatsAuth::Anonymous => options,
            NatsAuth::Credentials(creds) => options.credentials(creds)?,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => options.token(token.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(values: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn a_secret_holds_exactly_one_way_to_authenticate() {
        assert_eq!(
            NatsAuth::from_secret(&secret(&[("username", "wg"), ("password", "pw\n")])),
            Ok(NatsAuth::UserPassword {
                user: "wg".into(),
                password: "pw".into()
            })
        );
        assert_eq!(
            NatsAuth::from_secret(&secret(&[("token", "t0k")])),
            Ok(NatsAuth::Token("t0k".into()))
        );
        let refused =
            |values: &[(&str, &str)]| NatsAuth::from_secret(&secret(values)).expect_err("refused");
        assert_eq!(
            refused(&[("token", "t"), ("username", "u"), ("password", "p")]),
            "holds username/password and token: give exactly one way to authenticate to NATS"
        );
        assert_eq!(
            refused(&[("username", "u")]),
            r#"has "username" but no "password""#
        );
        assert_eq!(
            refused(&[("password", "p")]),
            r#"has "password" but no "username""#
        );
        assert_eq!(refused(&[("token", "")]), r#"key "token" is empty"#);
        assert!(refused(&[("tls.crt", "x")]).starts_with(r#"holds none of "nats.creds""#));
        assert!(
            refused(&[("nats.creds", "not a creds file")])
                .starts_with(r#"key "nats.creds" is not a NATS credentials file"#)
        );
        let mut binary = secret(&[]);
        binary.insert("token".into(), vec![0xff, 0xfe]);
        assert_eq!(
            NatsAuth::from_secret(&binary),
            Err(r#"key "token" is not UTF-8 text"#.to_owned())
        );
    }

    #[test]
    fn a_credentials_file_is_read_whole() {
        // The shape `nsc generate creds` writes (async-nats's documented example seed).
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJqd3QiLCJhbGciOiJlZDI1NTE5In0.e30.sig\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAIO3FHUX5PNV2LQIIP7TZ3N4L7TX3W53MQGEIVYFIGA635OZCKEYHFLM\n------END USER NKEY SEED------\n";
        let auth = NatsAuth::from_secret(&secret(&[("nats.creds", creds)])).expect("read");
        assert_eq!(auth.kind(), "credentials file");
        assert!(auth.apply(async_nats::ConnectOptions::new()).is_ok());
        let bad_seed = creds.replace("SUAIO3", "SUAXXX");
        assert!(NatsAuth::from_secret(&secret(&[("nats.creds", &bad_seed)])).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let auth = NatsAuth::Token("hunter2".into());
        assert_eq!(format!("{auth:?}"), "token");
    }
}
