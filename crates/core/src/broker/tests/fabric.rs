//! The cluster seam ([`Fabric`]): what a node forwards, what it routes from other nodes, the
//! interest it declares, and the tickets its acknowledgements wait for.

use super::*;

/// A fabric that records what the broker tells it; every forward of a QoS 1/2 message gets
/// the next ticket.
#[derive(Default)]
struct Cluster {
    forwarded: StdMutex<Vec<String>>,
    interest: StdMutex<Vec<String>>,
    handed_over: StdMutex<Vec<String>>,
    wills: StdMutex<Vec<String>>,
}

impl Cluster {
    fn forwarded(&self) -> Vec<String> {
        std::mem::take(&mut *self.forwarded.lock().expect("not poisoned"))
    }

    fn interest(&self) -> Vec<String> {
        std::mem::take(&mut *self.interest.lock().expect("not poisoned"))
    }

    fn handed_over(&self) -> Vec<String> {
        std::mem::take(&mut *self.handed_over.lock().expect("not poisoned"))
    }

    fn wills(&self) -> Vec<String> {
        std::mem::take(&mut *self.wills.lock().expect("not poisoned"))
    }
}

impl Fabric for Cluster {
    fn forward(&self, message: &Message) -> Option<Ticket> {
        let mut forwarded = self.forwarded.lock().expect("not poisoned");
        forwarded.push(format!(
            "{} {}",
            message.topic,
            String::from_utf8_lossy(&message.payload)
        ));
        (message.qos != QoS::AtMostOnce).then(|| Ticket(forwarded.len() as u64))
    }
    fn durable(&self) -> Ticket {
        Ticket(0)
    }
    fn wait_durable(&self, _: Ticket, _: Arc<dyn Wake>) {}
    fn unavailable(&self) -> bool {
        false
    }
    fn will(&self, client_id: &str, will: crate::ArmedWill<'_>) {
        let state = match will {
            crate::ArmedWill::None => "none".to_owned(),
            crate::ArmedWill::Connected { will, delay } => {
                format!("connected {} {delay}", will.topic)
            }
            crate::ArmedWill::Pending { will, delay } => format!("pending {} {delay}", will.topic),
        };
        let mut wills = self.wills.lock().expect("not poisoned");
        wills.push(format!("{client_id} {state}"));
    }
    fn interest(&self, filter: &SubscriptionFilter, held: bool) {
        let sign = if held { '+' } else { '-' };
        let mut interest = self.interest.lock().expect("not poisoned");
        interest.push(format!("{sign}{}", filter.as_filter()));
    }
    fn hand_over(&self, group: &SharedRef, message: &Message) {
        self.handed_over.lock().expect("not poisoned").push(format!(
            "$share/{}/{} {}",
            group.group,
            group.filter,
            String::from_utf8_lossy(&message.payload)
        ));
    }

    fn node_id(&self) -> &str {
        "test"
    }
    fn claim<'a>(
        &'a self,
        _: &'a str,
        _: bool,
        _: Option<&'a str>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<crate::store::RecoveredSession>> + Send + 'a>,
    > {
        Box::pin(std::future::ready(None))
    }
}

fn clustered() -> (Broker, Arc<Cluster>) {
    let broker = Broker::new(BrokerSettings::default());
    let cluster = Arc::new(Cluster::default());
    broker.join(cluster.clone()).expect("joins once");
    (broker, cluster)
}

fn payloads(session: &Session) -> Vec<String> {
    sent(session).into_iter().map(|(p, _)| p).collect()
}

#[test]
fn a_node_declares_the_filters_its_sessions_hold_once_each() {
    let broker = Broker::new(BrokerSettings::default());
    let a = connect(&broker, "a", true, 0);
    subscribe(&broker, &a, "held/before", options(QoS::AtMostOnce));
    let cluster = Arc::new(Cluster::default());
    broker.join(cluster.clone()).expect("joins once");
    assert!(
        broker.join(cluster.clone()).is_err(),
        "a second join is refused"
    );
    assert_eq!(cluster.interest(), ["+held/before"]);

    subscribe(&broker, &a, "x/#", options(QoS::AtMostOnce));
    // The same filter again replaces the subscription: no new interest.
    subscribe(&broker, &a, "x/#", options(QoS::AtLeastOnce));
    subscribe(&broker, &a, "$share/g/y/+", options(QoS::AtMostOnce));
    assert_eq!(cluster.interest(), ["+x/#", "+$share/g/y/+"]);

    let topic = TopicFilter::new("x/#").expect("valid");
    assert!(broker.unsubscribe(&a.session, &topic));
    assert!(!broker.unsubscribe(&a.session, &topic));
    assert_eq!(cluster.interest(), ["-x/#"]);

    // A clean start drops the session's subscriptions: their interest goes.
    connect(&broker, "a", true, 0);
    let mut gone = cluster.interest();
    gone.sort();
    assert_eq!(gone, ["-$share/g/y/+", "-held/before"]);
}

#[test]
fn a_clients_message_and_a_will_are_forwarded_and_sys_and_remote_messages_are_not() {
    let (broker, cluster) = clustered();
    let publisher = connect(&broker, "pub", true, 0);
    let result = broker.publish_from(&publisher.session, None, message("t/1", "m1", false));
    assert_eq!(result.delivered, 0);
    assert_eq!(cluster.forwarded(), ["t/1 m1"]);
    // The publisher's acknowledgement waits for the fabric's ticket.
    assert_eq!(publisher.session.fabric_ticket(), Ticket(1));

    broker.publish(message("$SYS/x", "node", false));
    broker.publish_remote(message("t/2", "remote", false), RemoteScope::Subscribers);
    assert!(cluster.forwarded().is_empty());

    let with_will = connect_as(&broker, "w", true, 0, None, Some(will("wills/w", 0)));
    broker.disconnect(
        &with_will.session,
        with_will.generation,
        Disconnect::Lost,
        Instant::now(),
    );
    assert_eq!(cluster.forwarded(), ["wills/w gone"]);
}

#[test]
fn a_remote_message_reaches_plain_subscribers_and_leaves_the_retained_store_to_the_bucket() {
    let (broker, _cluster) = clustered();
    let sub = connect(&broker, "sub", true, 0);
    subscribe(&broker, &sub, "t/+", options(QoS::AtLeastOnce));
    let routed = broker.publish_remote(message("t/1", "r1", true), RemoteScope::Subscribers);
    assert_eq!(routed.delivered, 1);
    assert_eq!(payloads(&sub.session), ["r1"]);
    assert_eq!(
        broker.retained_count(),
        0,
        "the retained bucket sets it, not the message"
    );

    broker.apply_retained(message("t/1", "kept", true));
    assert_eq!(broker.retained_count(), 1);
    let late = connect(&broker, "late", true, 0);
    subscribe(&broker, &late, "t/1", options(QoS::AtLeastOnce));
    assert_eq!(payloads(&late.session), ["kept"]);
    broker.apply_retained(message("t/1", "", true));
    assert_eq!(broker.retained_count(), 0);
}

#[test]
fn in_a_cluster_shared_groups_get_a_message_only_through_their_scope() {
    let (broker, _cluster) = clustered();
    let member = connect(&broker, "member", true, 0);
    subscribe(&broker, &member, "$share/g/s/+", options(QoS::AtLeastOnce));
    let publisher = connect(&broker, "pub", true, 0);

    // The node's own client: the fabric picks the group's node, not the publisher's.
    broker.publish_from(&publisher.session, None, message("s/1", "local", false));
    broker.publish_remote(message("s/2", "plain", false), RemoteScope::Subscribers);
    assert!(payloads(&member.session).is_empty());

    let f = TopicFilter::new("s/+").expect("valid");
    let scope = RemoteScope::Group {
        group: "g",
        filter: &f,
    };
    let routed = broker.publish_remote(message("s/3", "picked", false), scope);
    assert_eq!(routed.delivered, 1);
    assert_eq!(payloads(&member.session), ["picked"]);
    let other = RemoteScope::Group {
        group: "h",
        filter: &f,
    };
    assert_eq!(
        broker
            .publish_remote(message("s/4", "none", false), other)
            .delivered,
        0
    );

    // A single node picks a local member itself.
    let single = Broker::new(BrokerSettings::default());
    let member = connect(&single, "member", true, 0);
    subscribe(&single, &member, "$share/g/s/+", options(QoS::AtLeastOnce));
    single.publish(message("s/1", "local", false));
    assert_eq!(payloads(&member.session), ["local"]);
}

#[test]
fn a_message_this_node_refused_is_not_forwarded() {
    let mut settings = BrokerSettings::default();
    settings.queue.max_queued = 1;
    settings.queue.overflow = crate::session::QueueOverflow::DropNew;
    let broker = Broker::new(settings);
    let cluster = Arc::new(Cluster::default());
    broker.join(cluster.clone()).expect("joins once");
    let sub = connect(&broker, "sub", true, 0);
    subscribe(&broker, &sub, "t", options(QoS::AtLeastOnce));
    let publisher = connect(&broker, "pub", true, 0);
    assert!(
        !broker
            .publish_from(&publisher.session, None, message("t", "1", false))
            .refused()
    );
    let second = broker.publish_from(&publisher.session, None, message("t", "2", false));
    assert!(second.refused(), "the queue of one is full");
    assert_eq!(cluster.forwarded(), ["t 1"]);
}

#[test]
fn a_leaving_member_hands_its_unacknowledged_shared_copies_to_the_cluster() {
    let f = TopicFilter::new("s/+").expect("valid");
    let scope = RemoteScope::Group {
        group: "g",
        filter: &f,
    };
    // Another member connected here: the leaving member's copies stay on this node.
    let (broker, cluster) = clustered();
    let a = connect(&broker, "a", true, 0);
    let b = connect(&broker, "b", true, 0);
    for member in [&a, &b] {
        subscribe(&broker, member, "$share/g/s/+", options(QoS::AtLeastOnce));
    }
    for p in ["1", "2"] {
        assert_eq!(
            broker
                .publish_remote(message("s/x", p, false), scope)
                .delivered,
            1
        );
    }
    let mut to_b = payloads(&b.session);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, Instant::now());
    to_b.extend(payloads(&b.session));
    to_b.sort();
    assert_eq!(to_b, ["1", "2"], "a's copy went to b");
    assert!(cluster.handed_over().is_empty());

    // The last member here receives two messages (one in flight, one queued), does not
    // acknowledge them and leaves: its session persists, but another node may have a member
    // connected, so the cluster gets them and the session keeps none.
    let (broker, cluster) = clustered();
    let m = connect(&broker, "m", false, 60);
    subscribe(&broker, &m, "$share/g/s/+", options(QoS::AtLeastOnce));
    for p in ["3", "4"] {
        broker.publish_remote(message("s/x", p, false), scope);
    }
    let mut first = Vec::new();
    m.session.drain(Instant::now(), 1, |_| true, &mut first);
    assert_eq!(first.len(), 1, "one in flight, one queued");
    broker.disconnect(&m.session, m.generation, Disconnect::Lost, Instant::now());
    assert_eq!(cluster.handed_over(), ["$share/g/s/+ 3", "$share/g/s/+ 4"]);
    let m = connect(&broker, "m", false, 60);
    assert!(m.session_present);
    assert!(payloads(&m.session).is_empty(), "handed over, not kept");

    // A single node keeps them with the persistent session.
    let single = Broker::new(BrokerSettings::default());
    let m = connect(&single, "m", false, 60);
    subscribe(&single, &m, "$share/g/s/+", options(QoS::AtLeastOnce));
    single.publish(message("s/x", "5", false));
    single.disconnect(&m.session, m.generation, Disconnect::Lost, Instant::now());
    let m = connect(&single, "m", false, 60);
    assert_eq!(payloads(&m.session), ["5"]);
}

#[test]
fn the_fabric_knows_each_sessions_will_as_it_changes() {
    let (broker, cluster) = clustered();
    let now = Instant::now();
    // The delay is capped by the session's expiry.
    let _capped = connect_as(&broker, "d", true, 5, None, Some(will("w/d", 30)));
    assert_eq!(cluster.wills(), ["d connected w/d 5"]);
    let a = connect_as(&broker, "a", true, 60, None, Some(will("w/a", 5)));
    assert_eq!(cluster.wills(), ["a connected w/a 5"]);
    broker.disconnect(&a.session, a.generation, Disconnect::Lost, now);
    assert_eq!(cluster.wills(), ["a pending w/a 5"]);
    // Due: published here, so the fabric's record goes.
    broker.tick(now + Duration::from_secs(6));
    assert_eq!(cluster.wills(), ["a none"]);

    let b = connect_as(&broker, "b", true, 60, None, Some(will("w/b", 0)));
    let normal = Disconnect::Normal {
        session_expiry: None,
    };
    broker.disconnect(&b.session, b.generation, normal, now);
    assert_eq!(cluster.wills(), ["b connected w/b 0", "b none"]);

    let _c = connect_as(&broker, "c", true, 60, None, Some(will("w/c", 10)));
    broker.release("c", (true, None), now);
    assert_eq!(cluster.wills(), ["c connected w/c 10", "c none"]);
}
