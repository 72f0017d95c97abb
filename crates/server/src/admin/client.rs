//! A tiny client for the admin API: one HTTP/1.1 request per connection over a plain TCP
//! stream, for `wardgate status` and tests. No TLS, no redirects, no keep-alive; bodies are read whole
//! (the admin API's are small) up to a bound.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::AdminToken;

/// The largest response accepted.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address.
    #[error("cannot reach the admin API at {addr}: {source}")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The exchange failed after connecting.
    #[error("the admin API at {addr} failed to answer: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No complete answer within the timeout.
    #[error("the admin API at {0} did not answer in time")]
    Timeout(SocketAddr),
    /// The answer was not HTTP this client understands.
    #[error("the admin API at {addr} sent a malformed response: {what}")]
    Malformed {
        /// The address.
        addr: SocketAddr,
        /// What was wrong.
        what: String,
    },
    /// The admin API wants the admin token (or another one).
    #[error("the admin API at {addr} refused the request (401): {error}")]
    Unauthorized {
        /// The address.
        addr: SocketAddr,
        /// What it said.
        error: String,
    },
    /// The body was not the JSON expected.
    #[error("unexpected JSON from {path}: {source}")]
    Json {
        /// The path requested.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding already removed).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The admin API at one address.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    timeout: Duration,
    /// Sent as `Authorization: Bearer` with every request, when set.
    token: Option<AdminToken>,
}

impl AdminClient {
    /// A client for `addr`, with a 5 s timeout per request.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            timeout: Duration::from_secs(5),
            token: None,
        }
    }

    /// Sends `token` with every request (a broker started with `--admin-token-file`).
    pub fn with_token(mut self, token: AdminToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The address it talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<HttpResponse, ClientError> {
        self.request("GET", path, &[], b"").await
    }

    /// `method path` with extra `headers` and `body` (a `Content-Length` is added).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpResponse, ClientError> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {}\r\n", token.as_str()));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let mut request = head.into_bytes();
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        tokio::time::timeout(self.timeout, self.exchange(request, body))
            .await
            .map_err(|_| ClientError::Timeout(self.addr))?
    }

    /// `GET path`, parsing the body as `T` whatever the status (the admin API answers errors and
    /// `/readyz` 503 with JSON too), except a 401: [`ClientError::Unauthorized`]. Returns the
    /// status with it.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<(u16, T), ClientError> {
        let response = self.get(path).await?;
        if response.status == 401 {
            let error = serde_json::from_slice::<super::dto::Error>(&response.body)
                .map_or_else(|_| response.text(), |e| e.error);
            return Err(ClientError::Unauthorized {
                addr: self.addr,
                error,
            });
        }
        let value = serde_json::from_slice(&response.body).map_err(|source| ClientError::Json {
            path: path.to_string(),
            source,
        })?;
        Ok((response.status, value))
    }

    /// Sends `head` (the request line and the caller's headers), the common headers, and
    /// `body`; reads the whole response.
    async fn exchange(&self, mut head: Vec<u8>, body: &[u8]) -> Result<HttpResponse, ClientError> {
        let addr = self.addr;
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Unreachable { addr, source })?;
        let io = |source| ClientError::Io { addr, source };
        head.extend_from_slice(
            format!(
                "Host: {addr}\r\nAccept: */*\r\nConnection: close\r\nUser-Agent: wardgate/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        );
        head.extend_from_slice(body);
        stream.write_all(&head).await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64 + 1)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        if raw.len() > MAX_RESPONSE {
            return Err(self.malformed("response too large"));
        }
        parse_response(&raw).map_err(|what| self.malformed(what))
    }

    fn malformed(&self, what: impl Into<String>) -> ClientError {
        ClientError::Malformed {
            addr: self.addr,
            what: what.into(),
        }
    }
}

/// Parses a whole HTTP/1.1 response (the connection closed after it).
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not HTTP/1.x: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = headers.iter().find(|(n, _)| n == "content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        rest.get(..len)
            .ok_or("body shorter than content-length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nhi")
            .expect("parse");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        assert_eq!(r.header("x-a"), Some("b"));
        let r = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .expect("parse");
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
    }
}
