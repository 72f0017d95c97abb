//! The session's flows without sockets: each case is a list of steps and the line each step
//! prints, with the store writes it made (a recording [`Store`]).

use std::fmt::Write as _;

use bytes::Bytes;
use wardgate_protocol::{PublishProperties, ReasonCode, TopicName};

use super::*;
use crate::budget::Budget;
use crate::message::Message;

/// One thing done to the session.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Offer a message of `bytes` payload bytes at this QoS (expiring after `expiry` seconds).
    Offer(&'static str, QoS, u64, Option<u32>),
    /// Drain at most this many packets, this many seconds after the start.
    Drain(usize, u64),
    PubAck(u16),
    PubRec(u16, bool),
    PubComp(u16),
    /// Resend every unacknowledged flow (a resumed session).
    Resend,
    /// Set the next packet id the session tries.
    NextId(u16),
    /// An incoming QoS 2 PUBLISH with this packet id; `true`: the message is routed.
    Receive(u16, bool),
    PubRel(u16),
}

use Step::*;

/// One case: the session's limits, then its steps and what each printed.
struct Case {
    name: &'static str,
    limits: QueueLimits,
    /// The client's Receive Maximum (the outbound window).
    window: u16,
    /// The server's Receive Maximum (incoming QoS 2 flows).
    receive_maximum: usize,
    /// Whether the session's queue and QoS 2 state are stored.
    stored: bool,
    /// Whether a connection is attached.
    attached: bool,
    steps: &'static [(Step, &'static str)],
}

const BOUNDS: QueueLimits = QueueLimits {
    max_queued: 2,
    max_queued_bytes: u64::MAX,
    congestion_threshold: 1,
    overflow: QueueOverflow::DropNew,
};

const fn case(name: &'static str, steps: &'static [(Step, &'static str)]) -> Case {
    Case {
        name,
        limits: QueueLimits {
            max_queued: 100,
            max_queued_bytes: u64::MAX,
            congestion_threshold: 50,
            overflow: QueueOverflow::DropNew,
        },
        window: 10,
        receive_maximum: 10,
        stored: false,
        attached: true,
        steps,
    }
}

const CASES: &[Case] = &[
    Case {
        window: 2,
        ..case(
            "the inflight window holds back QoS 1/2 past the client's Receive Maximum",
            &[
                (Offer("a", QoS::AtLeastOnce, 1, None), "queued"),
                (Offer("b", QoS::ExactlyOnce, 1, None), "queued"),
                (Offer("c", QoS::AtLeastOnce, 1, None), "queued"),
                (Offer("d", QoS::AtMostOnce, 1, None), "queued"),
                (Drain(10, 0), "a#1 b#2"),
                (Drain(10, 0), ""),
                (PubAck(1), "true"),
                (Drain(10, 0), "c#3 d"),
                (Resend, "b#2 dup, c#3 dup"),
            ],
        )
    },
    case(
        "acknowledgements complete their own flow only; unknown ids are refused",
        &[
            (Offer("a", QoS::AtLeastOnce, 1, None), "queued"),
            (Offer("b", QoS::ExactlyOnce, 1, None), "queued"),
            (Drain(10, 0), "a#1 b#2"),
            (PubAck(2), "false"),
            (PubComp(2), "false"),
            (PubRec(1, true), "false"),
            (PubRec(2, true), "pubrel"),
            (PubRec(2, true), "pubrel"),
            (Resend, "a#1 dup, pubrel#2"),
            (PubComp(2), "true"),
            (PubComp(2), "false"),
            (PubAck(1), "true"),
            (PubAck(1), "false"),
            (PubAck(9), "false"),
            (Resend, ""),
        ],
    ),
    case(
        "an error PUBREC ends the flow without PUBREL",
        &[
            (Offer("a", QoS::ExactlyOnce, 1, None), "queued"),
            (Drain(10, 0), "a#1"),
            (PubRec(1, false), "false"),
            (Resend, ""),
        ],
    ),
    Case {
        limits: BOUNDS,
        ..case(
            "DropNew keeps the queue and refuses the new message",
            &[
                (Offer("a", QoS::AtLeastOnce, 1, None), "queued"),
                (Offer("b", QoS::AtLeastOnce, 1, None), "queued, congested"),
                (Offer("c", QoS::AtLeastOnce, 1, None), "full"),
                (Drain(10, 0), "a#1 b#2"),
            ],
        )
    },
    Case {
        limits: QueueLimits {
            overflow: QueueOverflow::DropOldest,
            ..BOUNDS
        },
        ..case(
            "DropOldest makes room by dropping the oldest queued message",
            &[
                (Offer("a", QoS::AtLeastOnce, 1, None), "queued"),
                (Offer("b", QoS::AtLeastOnce, 1, None), "queued, congested"),
                (
                    Offer("c", QoS::AtLeastOnce, 1, None),
                    "queued, congested, 1 oldest dropped",
                ),
                (Drain(10, 0), "b#1 c#2"),
            ],
        )
    },
    Case {
        limits: QueueLimits {
            max_queued_bytes: 250,
            ..case("", &[]).limits
        },
        ..case(
            "the byte bound counts queued and in-flight copies; an empty queue takes one",
            &[
                (
                    Offer("big", QoS::AtLeastOnce, 400, None),
                    "queued, congested",
                ),
                (Drain(10, 0), "big#1"),
                (Offer("a", QoS::AtLeastOnce, 10, None), "queued, congested"),
                (Offer("b", QoS::AtLeastOnce, 10, None), "full"),
                (PubAck(1), "true"),
                (Offer("b", QoS::AtLeastOnce, 10, None), "queued"),
            ],
        )
    },
    Case {
        attached: false,
        ..case(
            "without a connection QoS 0 is dropped, QoS 1/2 queued",
            &[
                (Offer("a", QoS::AtMostOnce, 1, None), "offline"),
                (Offer("b", QoS::AtLeastOnce, 1, None), "queued"),
            ],
        )
    },
    case(
        "packet ids wrap past 65535 to 1 and skip the ids in flight",
        &[
            (NextId(65535), ""),
            (Offer("a", QoS::AtLeastOnce, 1, None), "queued"),
            (Offer("b", QoS::ExactlyOnce, 1, None), "queued"),
            (Drain(10, 0), "a#65535 b#1"),
            (NextId(65535), ""),
            (Offer("c", QoS::AtLeastOnce, 1, None), "queued"),
            (Drain(10, 0), "c#2"),
            (PubAck(65535), "true"),
            (PubRec(1, true), "pubrel"),
        ],
    ),
    case(
        "an expired message is dropped from the queue, not sent",
        &[
            (Offer("a", QoS::AtLeastOnce, 1, Some(5)), "queued"),
            (Offer("b", QoS::AtLeastOnce, 1, Some(50)), "queued"),
            (Drain(10, 10), "b#1"),
        ],
    ),
    case(
        "a message in flight is redelivered even past its expiry",
        &[
            (Offer("a", QoS::AtLeastOnce, 1, Some(5)), "queued"),
            (Drain(10, 0), "a#1"),
            (Drain(10, 10), ""),
            (Resend, "a#1 dup"),
        ],
    ),
    Case {
        receive_maximum: 2,
        ..case(
            "incoming QoS 2: route, duplicate, over the limit, released by PUBREL or refusal",
            &[
                (Receive(1, true), "route"),
                (Receive(1, true), "duplicate"),
                (Receive(2, false), "route"),
                (Receive(2, true), "route"),
                (Receive(3, true), "over limit"),
                (PubRel(1), "true"),
                (PubRel(1), "false"),
                (Receive(3, true), "route"),
                (PubRel(7), "false"),
            ],
        )
    },
    Case {
        stored: true,
        ..case(
            "persistence: queued copies, QoS 2 flows in flight, dequeues, released packet ids",
            &[
                (Offer("a", QoS::AtLeastOnce, 1, None), "queued; enqueue 1"),
                (Offer("b", QoS::ExactlyOnce, 1, None), "queued; enqueue 2"),
                (Offer("c", QoS::AtMostOnce, 1, None), "queued"),
                (Drain(10, 0), "a#1 b#2 c; inflight 2 #2 AwaitPubRec"),
                (PubAck(1), "true; dequeue 1"),
                (PubRec(2, true), "pubrel; inflight 2 #2 AwaitPubComp"),
                (PubComp(2), "true; dequeue 2"),
                (Receive(5, false), "route; release #5"),
                (Receive(5, true), "route"),
                (PubRel(5), "true; release #5"),
            ],
        )
    },
];

/// A [`Store`] that remembers what it was asked to write.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<String>>);

impl Store for Recording {
    fn write(&self, ops: &[Op<'_>]) -> Ticket {
        let mut written = self.0.lock();
        for op in ops {
            written.push(match op {
                Op::Enqueue { seq, .. } => format!("enqueue {seq}"),
                Op::Dequeue { seq, .. } => format!("dequeue {seq}"),
                Op::Inflight {
                    seq,
                    packet_id,
                    state,
                    ..
                } => format!("inflight {seq} #{} {state:?}", packet_id.get()),
                Op::IncomingQos2 { packet_id, .. } => format!("incoming #{}", packet_id.get()),
                Op::ReleaseQos2 { packet_id, .. } => format!("release #{}", packet_id.get()),
                other => format!("{other:?}"),
            });
        }
        Ticket(written.len() as u64)
    }
    fn durable(&self) -> Ticket {
        Ticket(u64::MAX)
    }
    fn wait_durable(&self, _: Ticket, waker: Arc<dyn Wake>) {
        waker.wake();
    }
    fn is_full(&self) -> bool {
        false
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(&self) {}
}

fn id(n: u16) -> PacketId {
    PacketId::new(n).expect("packet ids in the cases are not 0")
}

/// Runs `case`'s steps, returning what each printed.
fn run(case: &Case) -> Vec<String> {
    let store = Arc::new(Recording::default());
    let session = Arc::new(Session::new(
        SessionId(1),
        "client".into(),
        ProtocolVersion::V5,
        case.limits,
        Arc::new(Stats::default()),
        case.stored.then(|| Arc::clone(&store) as Arc<dyn Store>),
    ));
    if case.stored {
        let mut st = session.state.lock();
        st.stored = true;
        st.persist_subs = true;
        session.set_persist_queue(&mut st, true);
    }
    let budget = Budget::new(u64::MAX);
    let start = Instant::now();
    let generation = case.attached.then(|| {
        let window = case.window;
        session
            .attach(Arc::new(NoWake), window, ReasonCode::SESSION_TAKEN_OVER)
            .0
    });
    let topic = TopicName::new("t").expect("topic");
    let mut printed = Vec::new();
    for &(step, _) in case.steps {
        let mut line = String::new();
        match step {
            Offer(payload, qos, bytes, expiry) => {
                let message = Message {
                    topic: topic.clone(),
                    payload: Bytes::from_static(payload.as_bytes()),
                    qos,
                    retain: false,
                    properties: PublishProperties::default(),
                    origin: None,
                    expires_at: Message::expiry_from(start, expiry),
                };
                let delivery = Delivery {
                    message: Arc::new(message),
                    qos,
                    retain: false,
                    subscription_ids: Vec::new(),
                    shared: None,
                    charge: Some(budget.charge(bytes)),
                    seq: None,
                };
                line = match session.enqueue(delivery) {
                    Enqueued::Queued {
                        congested,
                        dropped_oldest,
                    } => {
                        let mut l = "queued".to_owned();
                        if congested {
                            l += ", congested";
                        }
                        if dropped_oldest > 0 {
                            let _ = write!(l, ", {dropped_oldest} oldest dropped");
                        }
                        l
                    }
                    Enqueued::DroppedOffline => "offline".into(),
                    Enqueued::DroppedFull => "full".into(),
                };
            }
            Drain(max, secs) => {
                let generation = generation.expect("a connection drains");
                let mut out = Vec::new();
                let now = start + Duration::from_secs(secs);
                session.drain_attached(generation, now, max, |_| true, &mut out);
                line = outgoing(&out, " ");
            }
            PubAck(n) => line = session.puback(id(n)).to_string(),
            PubComp(n) => line = session.pubcomp(id(n)).to_string(),
            PubRec(n, accepted) => {
                line = if session.pubrec(id(n), accepted) {
                    "pubrel".into()
                } else {
                    "false".into()
                };
            }
            Resend => {
                let mut out = Vec::new();
                session.resend_inflight(&mut out);
                line = outgoing(&out, ", ");
            }
            Receive(n, routed) => {
                line = match session.receive_qos2(id(n), case.receive_maximum) {
                    Qos2Receipt::Route(admission) => {
                        if routed {
                            admission.keep();
                        }
                        "route".into()
                    }
                    Qos2Receipt::Duplicate => "duplicate".into(),
                    Qos2Receipt::OverLimit => "over limit".into(),
                };
            }
            PubRel(n) => line = session.pubrel(id(n)).to_string(),
            NextId(n) => session.state.lock().next_packet_id = n,
        }
        let written: Vec<String> = store.0.lock().drain(..).collect();
        if !written.is_empty() {
            let _ = write!(line, "; {}", written.join(", "));
        }
        printed.push(line);
    }
    printed
}

/// The packets in `out` as `payload#packet_id` (with ` dup` on redelivery) or `pubrel#id`.
fn outgoing(out: &[Outgoing], separator: &str) -> String {
    let packets: Vec<String> = out
        .iter()
        .map(|o| match o {
            Outgoing::Publish { delivery, qos, dup } => {
                let mut p = String::from_utf8_lossy(&delivery.message.payload).into_owned();
                if let Some(id) = qos.packet_id() {
                    let _ = write!(p, "#{}", id.get());
                }
                if *dup {
                    p += " dup";
                }
                p
            }
            Outgoing::PubRel(id) => format!("pubrel#{}", id.get()),
        })
        .collect();
    packets.join(separator)
}

#[test]
fn session_flows() {
    let mut failed = Vec::new();
    for case in CASES {
        let expected: Vec<&str> = case.steps.iter().map(|(_, e)| *e).collect();
        let printed = run(case);
        if printed != expected {
            failed.push(format!(
                "{}:\n  expected {expected:?}\n  printed  {printed:?}",
                case.name
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
