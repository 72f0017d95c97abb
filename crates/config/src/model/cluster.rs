//! The cluster a node joins (issue 17, Wardgate extension `spec.cluster` of the Broker under
//! `wardgate.io/v1`, and `serve --cluster` / `--node-id`): NATS URLs, replication, the subject
//! prefix and the node's id, each parsed into a type that can't be invalid.

use std::fmt;

/// The URL schemes of a NATS server the client speaks.
const NATS_SCHEMES: [&str; 4] = ["nats", "tls", "ws", "wss"];
/// The longest node id (it names the node in subjects, key-value keys and metric labels).
const MAX_NODE_ID: usize = 64;

/// `spec.cluster` of the Broker: the NATS JetStream cluster every node of this broker joins.
/// Every node reads the same resources, so the node's own id is not here (`serve --node-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `nats.urls`: where the NATS servers are (at least one).
    pub nats_urls: NatsUrls,
    /// `nats.credentialsSecretRef`: a Secret holding how the node authenticates to NATS (key
    /// `nats.creds`: a credentials file; or `username` and `password`; or `token`), read by
    /// `serve` at start; `None` connects without credentials.
    pub credentials_secret_ref: Option<String>,
    /// `replicas`: how many NATS servers keep each stream and bucket (default 3).
    pub replicas: Replicas,
    /// `subjectPrefix`: the first subject tokens of everything this broker publishes on NATS
    /// (default `wg`), so that several brokers can share one NATS cluster.
    pub subject_prefix: SubjectPrefix,
}

impl Cluster {
    /// The cluster `serve --cluster URLS` makes without a `spec.cluster`: defaults everywhere.
    pub fn with_urls(nats_urls: NatsUrls) -> Cluster {
        Cluster {
            nats_urls,
            credentials_secret_ref: None,
            replicas: Replicas::default(),
            subject_prefix: SubjectPrefix::default(),
        }
    }
}

/// One NATS server URL: `nats://`, `tls://`, `ws://` or `wss://`, a host and maybe a port, no
/// user or password (credentials come from a Secret), no path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatsUrl(String);

impl NatsUrl {
    /// Parses a NATS URL, saying what is wrong with it.
    pub fn parse(url: &str) -> Result<NatsUrl, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "{url:?} is not a URL: expected nats://HOST[:PORT] (or tls://, ws://, wss://)"
            ));
        };
        if !NATS_SCHEMES.contains(&scheme) {
            return Err(format!(
                "{url:?} has scheme {scheme:?}: expected one of nats, tls, ws, wss"
            ));
        }
        if rest.contains('@') {
            return Err(format!(
                "{url:?} carries credentials: put them in the Secret of nats.credentialsSecretRef"
            ));
        }
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) || authority.chars().any(char::is_whitespace) {
            return Err(format!(
                "{url:?} has a path or query: expected {scheme}://HOST[:PORT]"
            ));
        }
        let (host, port) = split_host_port(authority);
        if host.is_empty() {
            return Err(format!("{url:?} has no host"));
        }
        if let Some(port) = port
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(format!("{url:?} has port {port:?}: expected 1–65535"));
        }
        Ok(NatsUrl(url.to_owned()))
    }

    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `host[:port]` or `[v6]:port` split into host and port.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(v6) = authority.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, rest)) => (host, Some(rest.strip_prefix(':').unwrap_or(rest))),
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// At least one NATS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrls(Vec<NatsUrl>);

impl NatsUrls {
    /// The URLs, or `None` for none.
    pub fn new(urls: Vec<NatsUrl>) -> Option<NatsUrls> {
        (!urls.is_empty()).then_some(NatsUrls(urls))
    }

    /// The URLs, in the order given.
    pub fn as_slice(&self) -> &[NatsUrl] {
        &self.0
    }
}

/// How many NATS servers keep each stream: 1, 3 or 5 (Raft needs an odd count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replicas {
    /// One copy: no fault tolerance (a single NATS server).
    One,
    /// Three copies: one server may fail (the default).
    #[default]
    Three,
    /// Five copies: two servers may fail.
    Five,
}

impl Replicas {
    /// The replica count from a number, saying what is wrong with it.
    pub fn from_count(count: i64) -> Result<Replicas, String> {
        match count {
            1 => Ok(Replicas::One),
            3 => Ok(Replicas::Three),
            5 => Ok(Replicas::Five),
            n => Err(format!(
                "{n} is not 1, 3 or 5: JetStream's Raft groups need an odd count of at most 5"
            )),
        }
    }

    /// The count.
    pub fn count(self) -> usize {
        match self {
            Replicas::One => 1,
            Replicas::Three => 3,
            Replicas::Five => 5,
        }
    }
}

/// The subject prefix: one or more tokens of `[A-Za-z0-9_-]` joined by `.` (no wildcard, no
/// whitespace, no empty token), e.g. `wg` or `site1.wg`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubjectPrefix(String);

impl SubjectPrefix {
    /// Parses a subject prefix, saying what is wrong with it.
    pub fn new(prefix: &str) -> Result<SubjectPrefix, String> {
        if prefix.split('.').all(is_plain_token) {
            Ok(SubjectPrefix(prefix.to_owned()))
        } else {
            Err(format!(
                "{prefix:?} is not a NATS subject prefix: expected tokens of A-Z, a-z, 0-9, '_' and '-' joined by '.'"
            ))
        }
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SubjectPrefix {
    fn default() -> SubjectPrefix {
        SubjectPrefix("wg".to_owned())
    }
}

/// A node's id within the cluster: 1–64 characters of `[A-Za-z0-9_-]`, so that it is one NATS
/// subject token, a key-value key and a metric label as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl NodeId {
    /// Parses a node id, saying what is wrong with it.
    pub fn new(id: &str) -> Result<NodeId, String> {
        if id.is_empty() {
            return Err("the node id is empty".to_owned());
        }
        if id.len() > MAX_NODE_ID || !is_plain_token(id) {
            return Err(format!(
                "{id:?} is not a node id: expected 1–{MAX_NODE_ID} characters of A-Z, a-z, 0-9, '_' and '-' (one NATS subject token)"
            ));
        }
        Ok(NodeId(id.to_owned()))
    }

    /// The default node id: this machine's host name up to its first `.`, each character a node
    /// id may not hold replaced by `-`, cut to 64 characters; `wardgate` when there is no host
    /// name. Read from `/proc/sys/kernel/hostname`, else `$HOSTNAME`.
    pub fn from_host_name() -> NodeId {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        NodeId::from_name(&name)
    }

    /// [`NodeId::from_host_name`] for a given host name.
    pub fn from_name(host: &str) -> NodeId {
        let label = host.trim().split('.').next().unwrap_or_default();
        let id: String = label
            .chars()
            .map(|c| if is_plain_char(c) { c } else { '-' })
            .take(MAX_NODE_ID)
            .collect();
        if id.is_empty() {
            NodeId("wardgate".to_owned())
        } else {
            NodeId(id)
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_plain_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_plain_token(token: &str) -> bool {
    !token.is_empty() && token.chars().all(is_plain_char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_urls_need_a_nats_scheme_a_host_and_no_credentials() {
        for ok in [
            "nats://127.0.0.1:4222",
            "nats://nats",
            "tls://nats.example.com:4222",
            "ws://[::1]:8080",
            "wss://h/",
        ] {
            assert!(NatsUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1:4222",
            "http://h:4222",
            "nats://",
            "nats://:4222",
            "nats://u:p@h:4222",
            "nats://h:0",
            "nats://h:99999",
            "nats://h:x",
            "nats://h/path",
            "nats://[::1",
        ] {
            assert!(NatsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ids_are_one_plain_token() {
        assert!(NodeId::new("node-1_a").is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "é", &"x".repeat(65)] {
            assert!(NodeId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_node_id_is_the_first_label_of_the_host_name() {
        assert_eq!(NodeId::from_name("web-1.example.com\n").as_str(), "web-1");
        assert_eq!(NodeId::from_name("h$st").as_str(), "h-st");
        assert_eq!(NodeId::from_name("").as_str(), "wardgate");
        assert_eq!(NodeId::from_name(&"a".repeat(80)).as_str().len(), 64);
    }

    #[test]
    fn subject_prefixes_are_plain_tokens_joined_by_dots() {
        assert!(SubjectPrefix::new("site1.wg").is_ok());
        for bad in ["", ".", "a.", "a..b", "a.*", "a.>", "a b"] {
            assert!(SubjectPrefix::new(bad).is_err(), "{bad}");
        }
    }
}
