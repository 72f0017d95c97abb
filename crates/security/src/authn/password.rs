//! The UsernamePassword method (SPEC.md §7.5) and its file format, shared with `wardgate
//! passwd`: a Secret key `passwords.toml` of
//!
//! ```toml
//! [client1]
//! password = "$pbkdf2-sha512$i=100000,l=64$HqJwOCHweNk1pLryiu3RsA$KVSv…"
//! [client1.attributes]
//! floor = "floor1"
//! ```
//!
//! as the AIO sample `auth-server-user-pass-mqtt` writes it: PBKDF2-HMAC-SHA512 in the PHC string
//! format, salt and hash in unpadded standard base64, the salt used as its decoded bytes.
//! Verification runs in constant time (aws-lc-rs `pbkdf2::verify`), off the async runtime,
//! at most a few at a time; an unknown user costs the same work as a known one.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use aws_lc_rs::pbkdf2;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use wardgate_config::{Model, UsernamePasswordSettings};
use wardgate_protocol::ReasonCode;

use super::{AuthMethodKind, AuthnError, AuthnOutcome, Identity};

/// The Secret key holding the password file.
pub const PASSWORDS_KEY: &str = "passwords.toml";

/// Iterations `wardgate passwd` uses by default (OWASP's figure for PBKDF2-HMAC-SHA512, and
/// what `az iot ops mq get-password-hash` used).
pub const DEFAULT_ITERATIONS: u32 = 210_000;

/// Salt bytes `wardgate passwd` uses (128 bits).
pub const SALT_LEN: usize = 16;

/// Derived-key length (`l=64`, the SHA-512 output size).
pub const HASH_LEN: usize = 64;

/// The most iterations accepted in a file (a typo must not make every login take minutes).
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// How many hashes are computed at once; more logins wait (a CONNECT flood must not take every
/// core).
const CONCURRENT_HASHES: usize = 4;

const SCHEME: &str = "pbkdf2-sha512";

/// PHC "B64": the standard alphabet without padding; padding is tolerated when reading.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a password hash or file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The hash string is not `$pbkdf2-sha512$i=…,l=…$salt$hash`.
    #[error(
        "the password hash is not in the $pbkdf2-sha512$i=<iterations>,l=64$<salt>$<hash> format: {0}"
    )]
    BadHash(String),
    /// The file is not valid TOML or an entry is malformed.
    #[error("{0}")]
    BadFile(String),
}

/// A PBKDF2-HMAC-SHA512 password hash. `Debug` shows the parameters, not the salt or hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .field("hash_len", &self.hash.len())
            .finish()
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn create(password: &[u8], iterations: u32) -> Result<PasswordHash, PasswordError> {
        let iterations = NonZeroU32::new(iterations)
            .filter(|i| i.get() <= MAX_ITERATIONS)
            .ok_or_else(|| {
                PasswordError::BadHash(format!("iterations must be 1..={MAX_ITERATIONS}"))
            })?;
        let mut salt = vec![0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| PasswordError::BadHash("no random numbers available".to_owned()))?;
        Ok(Self::with_salt(password, iterations, salt))
    }

    fn with_salt(password: &[u8], iterations: NonZeroU32, salt: Vec<u8>) -> PasswordHash {
        let mut hash = vec![0u8; HASH_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA512,
            iterations,
            &salt,
            password,
            &mut hash,
        );
        PasswordHash {
            iterations,
            salt,
            hash,
        }
    }

    /// Parses `$pbkdf2-sha512$i=<n>,l=<len>$<salt>$<hash>` (the leading `$` may be missing;
    /// `l` may be left out).
    pub fn parse(s: &str) -> Result<PasswordHash, PasswordError> {
        let bad = |why: &str| PasswordError::BadHash(why.to_owned());
        let s = s.trim();
        let s = s.strip_prefix('$').unwrap_or(s);
        let parts: Vec<&str> = s.split('$').collect();
        let [scheme, params, salt, hash] = parts.as_slice() else {
            return Err(bad("expected four `$`-separated parts"));
        };
        if *scheme != SCHEME {
            return Err(PasswordError::BadHash(format!(
                "the scheme is \"{}\"; only {SCHEME} is supported",
                scheme.escape_debug()
            )));
        }
        let mut iterations = None;
        let mut length = None;
        for p in params.split(',') {
            match p.split_once('=') {
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                Some(("l", v)) => {
                    length = Some(v.parse::<usize>().map_err(|_| bad("`l` is not a number"))?);
                }
                _ => {
                    return Err(PasswordError::BadHash(format!(
                        "unknown parameter \"{}\"",
                        p.escape_debug()
                    )));
                }
            }
        }
        let iterations = iterations
            .and_then(NonZeroU32::new)
            .filter(|i| i.get() <= MAX_ITERATIONS)
            .ok_or_else(|| {
                PasswordError::BadHash(format!("`i` must be a number in 1..={MAX_ITERATIONS}"))
            })?;
        let salt = B64
            .decode(salt)
            .map_err(|_| bad("the salt is not base64"))?;
        let hash = B64
            .decode(hash)
            .map_err(|_| bad("the hash is not base64"))?;
        if salt.is_empty() {
            return Err(bad("the salt is empty"));
        }
        if hash.is_empty() || hash.len() > 128 {
            return Err(bad("the hash must be 1 to 128 bytes"));
        }
        if length.is_some_and(|l| l != hash.len()) {
            return Err(PasswordError::BadHash(format!(
                "`l` says {} bytes but the hash has {}",
                length.unwrap_or_default(),
                hash.len()
            )));
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// The iteration count.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// Whether `password` is the one hashed, in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA512,
            self.iterations,
            &self.salt,
            password,
            &self.hash,
        )
        .is_ok()
    }
}

impl fmt::Display for PasswordHash {
    /// The PHC string, as stored in `passwords.toml`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "${SCHEME}$i={},l={}${}${}",
            self.iterations,
            self.hash.len(),
            B64.encode(&self.salt),
            B64.encode(&self.hash)
        )
    }
}

/// One user of a password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordEntry {
    /// The hash.
    pub hash: PasswordHash,
    /// `[user.attributes]`.
    pub attributes: BTreeMap<String, String>,
}

/// A parsed `passwords.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    /// Users by name.
    pub users: BTreeMap<String, PasswordEntry>,
}

impl PasswordFile {
    /// Parses the file; errors name the user and field, never a hash.
    pub fn parse(text: &[u8]) -> Result<PasswordFile, PasswordError> {
        Self::parse_with(text, true)
    }

    /// As [`PasswordFile::parse`]; with `strict` false, fields other than `password` and
    /// `attributes` are allowed (and ignored): the example custom authentication server's users
    /// file adds `expiry_seconds` and `deny_reason` to this format.
    fn parse_with(text: &[u8], strict: bool) -> Result<PasswordFile, PasswordError> {
        let text =
            std::str::from_utf8(text).map_err(|_| PasswordError::BadFile("is not UTF-8".into()))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            PasswordError::BadFile(format!("is not valid TOML: {}", e.message().trim()))
        })?;
        let mut users = BTreeMap::new();
        for (user, v) in &table {
            let toml::Value::Table(t) = v else {
                return Err(PasswordError::BadFile(format!(
                    "`{user}` must be a table ([{user}] with password = \"…\")"
                )));
            };
            for k in t.keys().filter(|_| strict) {
                if k != "password" && k != "attributes" {
                    return Err(PasswordError::BadFile(format!(
                        "[{user}]: unknown field `{k}`"
                    )));
                }
            }
            let Some(toml::Value::String(h)) = t.get("password") else {
                return Err(PasswordError::BadFile(format!(
                    "[{user}]: `password` must be a string"
                )));
            };
            let hash = PasswordHash::parse(h)
                .map_err(|e| PasswordError::BadFile(format!("[{user}]: {e}")))?;
            let mut attributes = BTreeMap::new();
            match t.get("attributes") {
                None => {}
                Some(toml::Value::Table(a)) => {
                    for (k, v) in a {
                        let toml::Value::String(v) = v else {
                            return Err(PasswordError::BadFile(format!(
                                "[{user}.attributes]: `{k}` must be a string"
                            )));
                        };
                        attributes.insert(k.clone(), v.clone());
                    }
                }
                Some(_) => {
                    return Err(PasswordError::BadFile(format!(
                        "[{user}]: `attributes` must be a table"
                    )));
                }
            }
            users.insert(user.clone(), PasswordEntry { hash, attributes });
        }
        Ok(PasswordFile { users })
    }
}

/// Adds or replaces `user` in a `passwords.toml` text (empty for a new file) and returns the new
/// text. Other users keep their values; a replaced user keeps its fields other than `password`
/// and `attributes`. Fields the broker does not read (`expiry_seconds` of the example custom
/// authentication server's users file) are kept; comments are not.
pub fn upsert_entry(
    text: &str,
    user: &str,
    hash: &PasswordHash,
    attributes: &BTreeMap<String, String>,
) -> Result<String, PasswordError> {
    if user.is_empty() {
        return Err(PasswordError::BadFile("the username is empty".into()));
    }
    // Check the existing file first: never rewrite a file we cannot read.
    PasswordFile::parse_with(text.as_bytes(), false)?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| PasswordError::BadFile(e.message().to_owned()))?;
    let mut entry = entry_table(hash, attributes);
    match (table.get_mut(user), &mut entry) {
        // In place, so that the user keeps its position in the file.
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in std::mem::take(old) {
                if k != "password" && k != "attributes" {
                    new.insert(k, v);
                }
            }
            *old = std::mem::take(new);
        }
        _ => {
            table.insert(user.to_owned(), entry);
        }
    }
    Ok(table.to_string())
}

/// Whether a `passwords.toml` text has an entry for `user` (whatever else it holds).
pub fn has_entry(text: &str, user: &str) -> bool {
    text.parse::<toml::Table>()
        .is_ok_and(|t| t.contains_key(user))
}

/// One user's entry as TOML text (`[user]`, `password = …`, `[user.attributes]`).
pub fn entry_text(
    user: &str,
    hash: &PasswordHash,
    attributes: &BTreeMap<String, String>,
) -> String {
    let mut table = toml::Table::new();
    table.insert(user.to_owned(), entry_table(hash, attributes));
    table.to_string()
}

/// The YAML of an Opaque Secret `name` holding `text` under `passwords.toml`, as
/// `kubectl create secret generic NAME --from-file=passwords.toml --dry-run=client -o yaml`
/// writes it.
pub fn secret_yaml(name: &str, text: &str) -> Result<String, PasswordError> {
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid {
        return Err(PasswordError::BadFile(format!(
            "\"{name}\" is not a valid Secret name (lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit)"
        )));
    }
    Ok(format!(
        "apiVersion: v1\ndata:\n  {PASSWORDS_KEY}: {}\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\n",
        base64::engine::general_purpose::STANDARD.encode(text)
    ))
}

fn entry_table(hash: &PasswordHash, attributes: &BTreeMap<String, String>) -> toml::Value {
    let mut t = toml::Table::new();
    t.insert("password".into(), toml::Value::String(hash.to_string()));
    if !attributes.is_empty() {
        let a: toml::Table = attributes
            .iter()
            .map(|(k, v)| (k.clone(), toml::Value::String(v.clone())))
            .collect();
        t.insert("attributes".into(), toml::Value::Table(a));
    }
    toml::Value::Table(t)
}

/// The UsernamePassword method, ready to use.
pub(crate) struct PasswordMethod {
    secret: String,
    file: Arc<PasswordFile>,
    /// Hashed when the user is unknown, so that the answer takes as long.
    decoy: Arc<PasswordHash>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl PasswordMethod {
    pub(crate) fn new(
        model: &Model,
        s: &UsernamePasswordSettings,
    ) -> Result<PasswordMethod, AuthnError> {
        let file = read_secret(model, &s.secret_ref)?;
        let iterations = file
            .users
            .values()
            .map(|e| e.hash.iterations())
            .max()
            .unwrap_or(DEFAULT_ITERATIONS);
        let decoy = PasswordHash::with_salt(
            b"decoy",
            NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN),
            vec![0; SALT_LEN],
        );
        Ok(PasswordMethod {
            secret: s.secret_ref.clone(),
            file: Arc::new(file),
            decoy: Arc::new(decoy),
            permits: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_HASHES)),
        })
    }

    /// The user's attributes, if the user exists (for `explain`; no password involved).
    pub(crate) fn user_attributes(&self, user: &str) -> Option<&BTreeMap<String, String>> {
        self.file.users.get(user).map(|e| &e.attributes)
    }

    /// The Secret's name.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    pub(crate) async fn authenticate(
        &self,
        client_id: &str,
        user: &str,
        password: Option<&[u8]>,
    ) -> AuthnOutcome {
        let deny = |why: &str| AuthnOutcome::denied(ReasonCode::BAD_USERNAME_OR_PASSWORD, why);
        let Some(password) = password else {
            return deny("UsernamePassword: the CONNECT has a username but no password");
        };
        let entry = self.file.users.get(user).cloned();
        let hash = match &entry {
            Some(e) => Arc::new(e.hash.clone()),
            None => self.decoy.clone(),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return deny("UsernamePassword: shutting down");
        };
        let password = password.to_vec();
        let matches = tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .unwrap_or(false);
        match entry {
            Some(e) if matches => {
                let mut id = Identity::new(
                    client_id,
                    Some(user.to_owned()),
                    AuthMethodKind::UsernamePassword,
                );
                id.attributes = e.attributes;
                AuthnOutcome::Allowed(id)
            }
            // One message for both: which usernames exist is not told to clients or logs'
            // readers beyond this.
            _ => deny("UsernamePassword: unknown username or wrong password"),
        }
    }
}

fn read_secret(model: &Model, name: &str) -> Result<PasswordFile, AuthnError> {
    let sec = model
        .secrets
        .get(name)
        .ok_or_else(|| AuthnError::MissingSecret {
            method: "UsernamePassword usernamePasswordSettings.secretRef".to_owned(),
            name: name.to_owned(),
        })?;
    let text = sec
        .get(PASSWORDS_KEY)
        .ok_or_else(|| AuthnError::MissingKey {
            resource: format!("Secret/{name}"),
            key: PASSWORDS_KEY.to_owned(),
        })?;
    PasswordFile::parse(text).map_err(|e| AuthnError::PasswordFile {
        resource: format!("Secret/{name}"),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the AIO sample `auth-server-user-pass-mqtt` (user `client1`, password `password`).
    pub(crate) const AIO_SAMPLE: &str = "$pbkdf2-sha512$i=100000,l=64$HqJwOCHweNk1pLryiu3RsA$KVSvxKYcibIG5S5n55RvxKRTdAAfCUtBJoy5IuFzdSZyzkwvUcU+FPawEWFPn+06JyZsndfRTfpiEh+2eSJLkg";

    #[test]
    fn the_aio_sample_hash_verifies() {
        let h = PasswordHash::parse(AIO_SAMPLE).unwrap();
        assert_eq!(h.iterations(), 100_000);
        assert!(h.verify(b"password"));
        assert!(!h.verify(b"Password"));
        assert!(!h.verify(b""));
        assert_eq!(h.to_string(), AIO_SAMPLE, "formats back identically");
    }

    #[test]
    fn created_hashes_round_trip() {
        let h = PasswordHash::create(b"s3cret", 1000).unwrap();
        let s = h.to_string();
        assert!(s.starts_with("$pbkdf2-sha512$i=1000,l=64$"), "{s}");
        let back = PasswordHash::parse(&s).unwrap();
        assert_eq!(back, h);
        assert!(back.verify(b"s3cret"));
        assert!(!back.verify(b"s3cret "));
        assert_ne!(
            PasswordHash::create(b"s3cret", 1000).unwrap().to_string(),
            s,
            "fresh salt"
        );
    }

    #[test]
    fn debug_hides_salt_and_hash() {
        let h = PasswordHash::parse(AIO_SAMPLE).unwrap();
        let d = format!("{h:?}");
        assert!(!d.contains("HqJw") && !d.contains("KVSv"), "{d}");
    }

    #[test]
    fn bad_hashes_say_why() {
        for (s, why) in [
            ("$pbkdf2-sha256$i=1,l=64$YQ$YQ", "scheme"),
            ("$pbkdf2-sha512$i=0,l=64$YQ$YQ", "`i`"),
            ("$pbkdf2-sha512$l=64$YQ$YQ", "`i`"),
            ("$pbkdf2-sha512$i=5,l=64$YQ$YQ", "`l` says 64"),
            ("$pbkdf2-sha512$i=5$!!$YQ", "salt"),
            ("$pbkdf2-sha512$i=5,x=1$YQ$YQ", "unknown parameter"),
            ("plain", "four"),
        ] {
            let e = PasswordHash::parse(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
        // Padded base64 and a missing leading `$` are tolerated.
        assert!(PasswordHash::parse("pbkdf2-sha512$i=5$YQ==$YQ==").is_ok());
    }

    #[test]
    fn files_parse_with_attributes() {
        let f = PasswordFile::parse(
            format!(
                "# Credential #1\n[client1]\npassword = \"{AIO_SAMPLE}\"\n\n[client1.attributes]\nfloor = \"floor1\"\nsite = \"site1\"\n\n[client2]\npassword = \"{AIO_SAMPLE}\"\n"
            )
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(f.users.len(), 2);
        assert_eq!(f.users["client1"].attributes["floor"], "floor1");
        assert!(f.users["client2"].attributes.is_empty());
    }

    #[test]
    fn file_errors_name_the_user_not_the_hash() {
        let e = PasswordFile::parse(b"[bob]\npassword = \"$pbkdf2-sha512$i=1$c2VjcmV0$\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[bob]"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
        let e = PasswordFile::parse(b"bob = 1\n").unwrap_err().to_string();
        assert!(e.contains("`bob`"), "{e}");
        let e = PasswordFile::parse(b"[bob]\npasswd = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn upsert_adds_and_replaces() {
        let h1 = PasswordHash::create(b"a", 1000).unwrap();
        let h2 = PasswordHash::create(b"b", 1000).unwrap();
        let attrs: BTreeMap<_, _> = [("floor".to_owned(), "1".to_owned())].into();
        let t = upsert_entry("", "alice", &h1, &attrs).unwrap();
        let t = upsert_entry(&t, "bob", &h1, &BTreeMap::new()).unwrap();
        let t = upsert_entry(&t, "alice", &h2, &BTreeMap::new()).unwrap();
        let f = PasswordFile::parse(t.as_bytes()).unwrap();
        assert_eq!(f.users.len(), 2);
        assert!(f.users["alice"].hash.verify(b"b"));
        assert!(f.users["alice"].attributes.is_empty());
        assert!(f.users["bob"].hash.verify(b"a"));
        assert!(t.find("[alice]").unwrap() < t.find("[bob]").unwrap(), "{t}");
        assert!(upsert_entry("[x\n", "a", &h1, &attrs).is_err());
        let e = entry_text("carol", &h1, &attrs);
        assert!(
            e.contains("[carol]") && e.contains("[carol.attributes]"),
            "{e}"
        );
    }
}
