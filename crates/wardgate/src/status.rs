//! `wardgate status`: asks a running broker's admin API (SPEC.md §11) and prints its ports and
//! their states, its certificates and when they expire, and its clients. Exit 0 when the broker is
//! ready, 1 when it is not ready or cannot be reached.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use wardgate_server::admin::client::{AdminClient, ClientError};
use wardgate_server::admin::cluster::Cluster;
use wardgate_server::admin::dto;

/// Arguments of `wardgate status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Address of the broker's admin API (`serve --admin-addr`, or 127.0.0.1:<prometheusPort>).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9600")]
    admin_addr: SocketAddr,
    /// The admin token, when the broker requires one (`serve --admin-token-file`).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<std::path::PathBuf>,
}

/// Most clients listed; the rest are counted.
const MAX_CLIENT_ROWS: usize = 50;

pub(crate) fn run(args: StatusArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(fetch(&args)));
    match result {
        Ok(report) => {
            print!("{}", render(args.admin_addr, &report, SystemTime::now()));
            if report.readiness.ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("wardgate: {e:#}");
            match e.downcast_ref::<ClientError>() {
                Some(ClientError::Unreachable { .. }) => eprintln!(
                    "Is `wardgate serve` running? If its admin API listens elsewhere, pass --admin-addr."
                ),
                Some(ClientError::Unauthorized { .. }) => eprintln!(
                    "Pass the token the broker was started with: --admin-token-file FILE."
                ),
                _ => {}
            }
            ExitCode::from(1)
        }
    }
}

/// Everything `status` shows.
struct Report {
    health: dto::Health,
    readiness: dto::Readiness,
    listeners: dto::Listeners,
    certificates: dto::Certificates,
    clients: dto::Clients,
    /// The cluster, when the node is in one (the route answers 404 otherwise).
    cluster: Option<Cluster>,
}

async fn fetch(args: &StatusArgs) -> anyhow::Result<Report> {
    let mut api = AdminClient::new(args.admin_addr);
    if let Some(file) = &args.admin_token_file {
        api = api.with_token(wardgate_server::admin::AdminToken::read_file(file)?);
    }
    let (_, health) = api.get_json::<dto::Health>("/healthz").await?;
    let (_, readiness) = api.get_json::<dto::Readiness>("/readyz").await?;
    let (_, listeners) = api.get_json::<dto::Listeners>("/api/v1/listeners").await?;
    let (_, certificates) = api
        .get_json::<dto::Certificates>("/api/v1/certificates")
        .await?;
    let (_, clients) = api.get_json::<dto::Clients>("/api/v1/clients").await?;
    let cluster = wardgate_server::admin::cluster::fetch(&api).await?;
    Ok(Report {
        health,
        readiness,
        listeners,
        certificates,
        clients,
        cluster,
    })
}

/// A left-aligned text table; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::from("  ");
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How far `not_after` is from `now`, in words.
fn expiry(not_after: &str, now: SystemTime) -> String {
    const DAY: u64 = 86_400;
    match dto::parse_rfc3339(not_after) {
        None => "unknown".to_string(),
        Some(t) => match t.duration_since(now) {
            Ok(left) if left.as_secs() >= DAY => format!("in {} days", left.as_secs() / DAY),
            Ok(left) => format!("in {} hours", left.as_secs() / 3600),
            Err(e) => format!("EXPIRED {} days ago", e.duration().as_secs() / DAY),
        },
    }
}

fn render(addr: SocketAddr, r: &Report, now: SystemTime) -> String {
    let mut out = String::new();
    let verdict = if r.readiness.ready {
        "ready"
    } else {
        "NOT READY"
    };
    let _ = writeln!(
        out,
        "Wardgate {} at {addr}: {verdict} (started {})",
        r.health.version, r.health.started
    );
    for reason in &r.readiness.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    if let Some(e) = &r.listeners.last_reload_error {
        let _ = writeln!(
            out,
            "  ! the last configuration reload was refused (the previous configuration runs): {e}"
        );
    }

    let _ = writeln!(out, "\nPorts ({}):", r.listeners.ports.len());
    let rows: Vec<Vec<String>> = r
        .listeners
        .ports
        .iter()
        .map(|p| {
            let detail = match &p.reason {
                Some(reason) => reason.clone(),
                None => p.addresses.join(" "),
            };
            vec![
                p.port.to_string(),
                p.listener.clone(),
                p.protocol.clone(),
                p.state.clone(),
                p.connections.to_string(),
                detail,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PORT",
            "LISTENER",
            "PROTOCOL",
            "STATE",
            "CLIENTS",
            "ADDRESSES / REASON",
        ],
        &rows,
    ));

    if r.certificates.certificates.is_empty() {
        let _ = writeln!(out, "\nCertificates: none");
    } else {
        let _ = writeln!(
            out,
            "\nCertificates ({}):",
            r.certificates.certificates.len()
        );
        let rows: Vec<Vec<String>> = r
            .certificates
            .certificates
            .iter()
            .map(|c| {
                vec![
                    c.used_by.clone(),
                    c.subject.clone(),
                    c.not_after.clone(),
                    expiry(&c.not_after, now),
                    c.source.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["USED BY", "SUBJECT", "NOT AFTER", "EXPIRES", "SOURCE"],
            &rows,
        ));
    }

    if let Some(cluster) = &r.cluster {
        out.push_str(&render_cluster(cluster));
    }

    let _ = writeln!(out, "\nClients: {} connected", r.clients.count);
    if !r.clients.clients.is_empty() {
        let rows: Vec<Vec<String>> = r
            .clients
            .clients
            .iter()
            .take(MAX_CLIENT_ROWS)
            .map(|c| {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
                vec![
                    c.client_id.clone(),
                    opt(c.username.clone()),
                    opt(c.port.map(|p| p.to_string())),
                    opt(c.protocol_version.clone()),
                    opt(c.peer.clone()),
                    opt(c.connected_since.clone()),
                    c.subscriptions.len().to_string(),
                    c.queued.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "CLIENT ID",
                "USERNAME",
                "PORT",
                "VERSION",
                "PEER",
                "CONNECTED SINCE",
                "SUBS",
                "QUEUED",
            ],
            &rows,
        ));
        if r.clients.clients.len() > MAX_CLIENT_ROWS {
            let _ = writeln!(
                out,
                "  ... and {} more (GET /api/v1/clients lists them all)",
                r.clients.clients.len() - MAX_CLIENT_ROWS
            );
        }
    }
    out
}

/// The Cluster section: this node, its NATS connection, the members and their health.
fn render_cluster(c: &Cluster) -> String {
    let up = c.members.iter().filter(|m| m.up).count();
    let mut out = format!(
        "\nCluster: node {}, NATS {}, {up} of {} nodes up (forwarded {}, received {}, dropped {}, retried {})\n",
        c.node,
        c.nats,
        c.members.len(),
        c.forwarded,
        c.received,
        c.dropped,
        c.retried
    );
    let rows: Vec<Vec<String>> = c
        .members
        .iter()
        .map(|m| {
            let ports: Vec<String> = m.ports.iter().map(u16::to_string).collect();
            vec![
                m.id.clone(),
                if m.up { "up" } else { "DOWN" }.to_string(),
                format!("{:.1}s ago", m.last_seen_ms as f64 / 1000.0),
                m.clients.to_string(),
                ports.join(","),
                m.version.clone(),
                m.started.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NODE", "HEALTH", "SEEN", "CLIENTS", "PORTS", "VERSION", "STARTED",
        ],
        &rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            health: dto::Health {
                status: "alive".into(),
                version: "0.1.0".into(),
                started: "2026-01-01T00:00:00Z".into(),
            },
            readiness: dto::Readiness {
                ready: false,
                reasons: vec!["ports: BrokerListener/tls:8883 is Failed: no Secret".into()],
                checks: Vec::new(),
            },
            listeners: dto::Listeners {
                ports: vec![
                    dto::Port {
                        listener: "default".into(),
                        port: 1883,
                        protocol: "Mqtt".into(),
                        state: "Listening".into(),
                        reason: None,
                        addresses: vec!["127.0.0.1:1883".into(), "[::1]:1883".into()],
                        connections: 1,
                        tls: None,
                        authentication: None,
                        authorization: None,
                    },
                    dto::Port {
                        listener: "tls".into(),
                        port: 8883,
                        protocol: "Mqtt".into(),
                        state: "Failed".into(),
                        reason: Some("no Secret".into()),
                        addresses: Vec::new(),
                        connections: 0,
                        tls: Some("Manual".into()),
                        authentication: None,
                        authorization: None,
                    },
                ],
                reloads: 0,
                reload_failures: 0,
                last_reload_error: None,
            },
            certificates: dto::Certificates {
                certificates: vec![dto::Certificate {
                    used_by: "BrokerListener/tls:8883".into(),
                    port: Some(8883),
                    subject: "CN=broker".into(),
                    sans: vec!["DNS:localhost".into()],
                    issuer: "CN=ca".into(),
                    serial: "01".into(),
                    not_before: "2026-01-01T00:00:00Z".into(),
                    not_after: "2026-01-31T00:00:00Z".into(),
                    source: "Secret/tls".into(),
                    expired: false,
                }],
            },
            clients: dto::Clients {
                count: 1,
                clients: vec![dto::Client {
                    client_id: "sensor-1".into(),
                    connected: true,
                    username: None,
                    port: Some(1883),
                    peer: Some("127.0.0.1:50000".into()),
                    protocol_version: Some("5.0".into()),
                    attributes: Default::default(),
                    connected_since: Some("2026-01-01T00:00:01Z".into()),
                    subscriptions: Vec::new(),
                    queued: 0,
                    inflight: 0,
                    dropped: 0,
                }],
            },
            cluster: None,
        }
    }

    #[test]
    fn renders_the_cluster_section_of_a_node() {
        use wardgate_server::admin::cluster::ClusterMember;
        let member = |id: &str, up: bool, last_seen_ms: u64| ClusterMember {
            id: id.into(),
            up,
            last_seen_ms,
            started: "2026-01-01T00:00:00Z".into(),
            version: "0.1.0".into(),
            ports: vec![1883],
            clients: 2,
        };
        let mut r = report();
        r.cluster = Some(Cluster {
            node: "a".into(),
            nats: "connected".into(),
            members: vec![member("a", true, 300), member("b", false, 4200)],
            forwarded: 5,
            received: 7,
            dropped: 0,
            retried: 1,
        });
        let now = dto::parse_rfc3339("2026-01-11T00:00:00Z").expect("time");
        let text = render("127.0.0.1:9600".parse().expect("addr"), &r, now);
        let expected = "
Cluster: node a, NATS connected, 1 of 2 nodes up (forwarded 5, received 7, dropped 0, retried 1)
  NODE  HEALTH  SEEN      CLIENTS  PORTS  VERSION  STARTED
  a     up      0.3s ago  2        1883   0.1.0    2026-01-01T00:00:00Z
  b     DOWN    4.2s ago  2        1883   0.1.0    2026-01-01T00:00:00Z
";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn renders_ports_certificates_and_clients() {
        let now = dto::parse_rfc3339("2026-01-11T00:00:00Z").expect("time");
        let text = render("127.0.0.1:9600".parse().expect("addr"), &report(), now);
        let expected = "\
Wardgate 0.1.0 at 127.0.0.1:9600: NOT READY (started 2026-01-01T00:00:00Z)
  - ports: BrokerListener/tls:8883 is Failed: no Secret

Ports (2):
  PORT  LISTENER  PROTOCOL  STATE      CLIENTS  ADDRESSES / REASON
  1883  default   Mqtt      Listening  1        127.0.0.1:1883 [::1]:1883
  8883  tls       Mqtt      Failed     0        no Secret

Certificates (1):
  USED BY                  SUBJECT    NOT AFTER             EXPIRES     SOURCE
  BrokerListener/tls:8883  CN=broker  2026-01-31T00:00:00Z  in 20 days  Secret/tls

Clients: 1 connected
  CLIENT ID  USERNAME  PORT  VERSION  PEER             CONNECTED SINCE       SUBS  QUEUED
  sensor-1   -         1883  5.0      127.0.0.1:50000  2026-01-01T00:00:01Z  0     0
";
        assert_eq!(text, expected);
    }

    #[test]
    fn expiry_reads_in_days_hours_or_expired() {
        let now = dto::parse_rfc3339("2026-01-11T00:00:00Z").expect("time");
        assert_eq!(expiry("2026-01-11T05:00:00Z", now), "in 5 hours");
        assert_eq!(expiry("2026-01-01T00:00:00Z", now), "EXPIRED 10 days ago");
        assert_eq!(expiry("garbage", now), "unknown");
    }
}
