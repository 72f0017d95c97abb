//! The scenarios of issue 3 and the matrix of cases (QoS, payload, MQTT version, read mode) they
//! run in.

use std::fmt;

use serde::Serialize;
use wardgate_protocol::{ProtocolVersion, QoS};

/// The shape of a scenario: who publishes to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Shape {
    /// `pairs` publishers, each to its own subscriber.
    P2p {
        /// Publisher/subscriber pairs.
        pairs: usize,
    },
    /// `publishers` on one topic, `subscribers` on that topic.
    FanOut {
        /// Publishers.
        publishers: usize,
        /// Subscribers.
        subscribers: usize,
    },
    /// `publishers` on their own topics, one subscriber on a wildcard.
    FanIn {
        /// Publishers.
        publishers: usize,
    },
    /// `publishers` on their own topics, `members` in one `$share` group on a wildcard.
    FanInShared {
        /// Publishers.
        publishers: usize,
        /// Members of the shared group.
        members: usize,
    },
    /// `count` idle connections: connect rate and memory per connection.
    Connections {
        /// Connections to open.
        count: usize,
    },
    /// `count` connections over TLS (full handshakes, no resumption), with a client certificate
    /// when `client_cert`: handshake rate and memory per connection.
    TlsConnections {
        /// Connections to open.
        count: usize,
        /// Whether the client presents a certificate (the listener requires one).
        client_cert: bool,
    },
    /// `pairs` point-to-point pairs at a fixed total rate: end-to-end latency.
    Latency {
        /// Publisher/subscriber pairs.
        pairs: usize,
    },
}

impl Shape {
    /// The scenario names the command line accepts, in run order.
    pub const NAMES: [&'static str; 10] = [
        "conn",
        "tls-conn",
        "mtls-conn",
        "p2p-100",
        "p2p-1000",
        "fanout-1",
        "fanout-5",
        "fanin-wild",
        "fanin-share",
        "latency",
    ];

    /// The shape for a name of [`Shape::NAMES`], with `connections` idle connections for `conn`
    /// and `tls_connections` for the TLS ones.
    pub fn from_name(name: &str, connections: usize, tls_connections: usize) -> Option<Shape> {
        Some(match name {
            "conn" => Shape::Connections { count: connections },
            "tls-conn" => Shape::TlsConnections {
                count: tls_connections,
                client_cert: false,
            },
            "mtls-conn" => Shape::TlsConnections {
                count: tls_connections,
                client_cert: true,
            },
            "p2p-100" => Shape::P2p { pairs: 100 },
            "p2p-1000" => Shape::P2p { pairs: 1000 },
            "fanout-1" => Shape::FanOut {
                publishers: 1,
                subscribers: 1000,
            },
            "fanout-5" => Shape::FanOut {
                publishers: 5,
                subscribers: 1000,
            },
            "fanin-wild" => Shape::FanIn { publishers: 1000 },
            "fanin-share" => Shape::FanInShared {
                publishers: 1000,
                members: 5,
            },
            "latency" => Shape::Latency { pairs: 100 },
            _ => return None,
        })
    }

    /// A short name with the sizes, e.g. `fanout-5x1000`.
    pub fn label(&self) -> String {
        match *self {
            Shape::P2p { pairs } => format!("p2p-{pairs}"),
            Shape::FanOut {
                publishers,
                subscribers,
            } => format!("fanout-{publishers}x{subscribers}"),
            Shape::FanIn { publishers } => format!("fanin-{publishers}x1"),
            Shape::FanInShared {
                publishers,
                members,
            } => format!("fanin-{publishers}x{members}share"),
            Shape::Connections { count } => format!("conn-{count}"),
            Shape::TlsConnections {
                count,
                client_cert: false,
            } => format!("tls-conn-{count}"),
            Shape::TlsConnections {
                count,
                client_cert: true,
            } => format!("mtls-conn-{count}"),
            Shape::Latency { pairs } => format!("latency-p2p-{pairs}"),
        }
    }

    /// The same shape with every client count divided by `by` (at least 1), for smoke runs.
    pub fn scaled_down(self, by: usize) -> Shape {
        let s = |n: usize| (n / by).max(1);
        match self {
            Shape::P2p { pairs } => Shape::P2p { pairs: s(pairs) },
            Shape::FanOut {
                publishers,
                subscribers,
            } => Shape::FanOut {
                publishers,
                subscribers: s(subscribers),
            },
            Shape::FanIn { publishers } => Shape::FanIn {
                publishers: s(publishers),
            },
            Shape::FanInShared {
                publishers,
                members,
            } => Shape::FanInShared {
                publishers: s(publishers),
                members,
            },
            Shape::Connections { count } => Shape::Connections { count: s(count) },
            Shape::TlsConnections { count, client_cert } => Shape::TlsConnections {
                count: s(count),
                client_cert,
            },
            Shape::Latency { pairs } => Shape::Latency { pairs: s(pairs) },
        }
    }
}

/// How subscribers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Read as soon as the socket is readable.
    Asap,
    /// Wait 1 ms after each read, so several messages arrive per read.
    Coalesce,
}

impl fmt::Display for ReadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadMode::Asap => "asap",
            ReadMode::Coalesce => "coalesce",
        })
    }
}

/// One run: a shape at one QoS, payload size, MQTT version and read mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    /// Who publishes to whom.
    pub shape: Shape,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Payload bytes (at least 16).
    pub payload: usize,
    /// MQTT version of every client.
    pub version: ProtocolVersion,
    /// How subscribers read.
    pub read: ReadMode,
}

impl Case {
    /// A stable identifier, the key for comparing brokers: `p2p-100/q1/16B/v3/asap`.
    pub fn id(&self) -> String {
        let v = if self.version.is_v5() { "v5" } else { "v3" };
        match self.shape {
            Shape::Connections { .. } | Shape::TlsConnections { .. } => {
                format!("{}/{v}", self.shape.label())
            }
            _ => format!(
                "{}/q{}/{}B/{v}/{}",
                self.shape.label(),
                self.qos.as_u8(),
                self.payload,
                self.read
            ),
        }
    }
}

/// Which cases to run: the product of the lists given, or the standard selection.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Scenario names of [`Shape::NAMES`].
    pub scenarios: Vec<String>,
    /// QoS levels.
    pub qos: Vec<u8>,
    /// Payload sizes.
    pub payloads: Vec<usize>,
    /// MQTT versions (3 or 5).
    pub versions: Vec<u8>,
    /// Read modes.
    pub reads: Vec<ReadMode>,
    /// Run exactly the product above; otherwise add the standard extra cases (coalescing and
    /// 1 KiB at QoS 0/1, MQTT 5 at QoS 1/2).
    pub product_only: bool,
    /// Idle connections of the `conn` scenario.
    pub connections: usize,
    /// Connections of the TLS scenarios.
    pub tls_connections: usize,
}

fn version_of(v: u8) -> ProtocolVersion {
    if v == 5 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    }
}

impl Matrix {
    /// Every case, in run order (scenario by scenario).
    pub fn cases(&self) -> Vec<Case> {
        let mut out: Vec<Case> = Vec::new();
        let mut push = |c: Case| {
            if !out.iter().any(|o| o.id() == c.id()) {
                out.push(c);
            }
        };
        for name in &self.scenarios {
            let Some(shape) = Shape::from_name(name, self.connections, self.tls_connections) else {
                continue;
            };
            if let Shape::Connections { .. } | Shape::TlsConnections { .. } = shape {
                for &v in &self.versions {
                    push(Case {
                        shape,
                        qos: QoS::AtMostOnce,
                        payload: 16,
                        version: version_of(v),
                        read: ReadMode::Asap,
                    });
                }
                continue;
            }
            for &q in &self.qos {
                let qos = QoS::from_u8(q).unwrap_or(QoS::AtMostOnce);
                for &payload in &self.payloads {
                    for &v in &self.versions {
                        for &read in &self.reads {
                            push(Case {
                                shape,
                                qos,
                                payload,
                                version: version_of(v),
                                read,
                            });
                        }
                    }
                }
                if self.product_only || matches!(shape, Shape::Latency { .. }) {
                    continue;
                }
                let base = Case {
                    shape,
                    qos,
                    payload: 16,
                    version: ProtocolVersion::V311,
                    read: ReadMode::Asap,
                };
                if q <= 1 {
                    push(Case {
                        read: ReadMode::Coalesce,
                        ..base
                    });
                    push(Case {
                        payload: 1024,
                        ..base
                    });
                }
                if q >= 1 {
                    push(Case {
                        version: ProtocolVersion::V5,
                        ..base
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(product_only: bool) -> Matrix {
        Matrix {
            scenarios: Shape::NAMES.iter().map(|s| s.to_string()).collect(),
            qos: vec![0, 1, 2],
            payloads: vec![16],
            versions: vec![3],
            reads: vec![ReadMode::Asap],
            product_only,
            connections: 20_000,
            tls_connections: 2_000,
        }
    }

    #[test]
    fn standard_matrix_adds_the_extra_cases_once() {
        let cases = matrix(false).cases();
        let ids: Vec<String> = cases.iter().map(Case::id).collect();
        assert!(ids.contains(&"conn-20000/v3".to_string()));
        assert!(ids.contains(&"p2p-100/q1/16B/v3/coalesce".to_string()));
        assert!(ids.contains(&"fanout-5x1000/q0/1024B/v3/asap".to_string()));
        assert!(ids.contains(&"fanin-1000x5share/q2/16B/v5/asap".to_string()));
        assert!(ids.contains(&"latency-p2p-100/q1/16B/v3/asap".to_string()));
        assert!(ids.contains(&"mtls-conn-2000/v3".to_string()));
        // 6 throughput shapes x (3 base + 2 coalesce + 2 KiB + 2 v5) + 3 conn + 3 latency.
        assert_eq!(cases.len(), 6 * 9 + 3 + 3);
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }

    #[test]
    fn product_matrix_is_exactly_the_product() {
        assert_eq!(matrix(true).cases().len(), 6 * 3 + 3 + 3);
    }
}
