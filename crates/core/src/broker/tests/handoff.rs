//! A session leaving one node ([`Broker::release`]) and taken in by another
//! ([`Broker::adopt`]): what moves, and what the receiving node's store gets.

use super::*;
use crate::store::QueuePolicy;

#[test]
fn a_released_session_is_adopted_whole_and_written_to_the_new_nodes_store() {
    let mut settings = BrokerSettings::default();
    settings.persistence.queues = QueuePolicy {
        mode: PolicyMode::All,
        ..QueuePolicy::default()
    };
    let a = Broker::with_store(settings.clone(), Arc::new(Recording::default()));
    let dev = connect(&a, "dev", false, 300);
    subscribe(&a, &dev, "q/#", options(QoS::AtLeastOnce));
    a.disconnect(
        &dev.session,
        dev.generation,
        Disconnect::Normal {
            session_expiry: None,
        },
        Instant::now(),
    );
    a.publish(message("q/1", "m1", false));
    a.publish(message("q/2", "m2", false));

    let state = a
        .release("dev", (true, None), Instant::now())
        .expect("it continues");
    assert!(a.session("dev").is_none(), "the old node drops its copy");
    assert_eq!(a.publish(message("q/3", "late", false)).delivered, 0);

    let store = Arc::new(Recording::default());
    let b = Broker::with_store(settings, store.clone());
    b.adopt(state, Instant::now());
    let written = store.take();
    assert_eq!(written[..2], ["session dev", "subscribe q/#"]);
    assert_eq!(
        written
            .iter()
            .filter(|op| op.starts_with("Enqueue"))
            .count(),
        2
    );

    let back = connect(&b, "dev", false, 300);
    assert!(back.session_present);
    assert_eq!(payloads(&back.session), ["m1", "m2"]);
    b.publish(message("q/4", "here", false));
    assert_eq!(payloads(&back.session), ["here"]);
}

#[test]
fn a_clean_start_elsewhere_ends_the_session_and_publishes_its_will() {
    let a = Broker::new(BrokerSettings::default());
    let watcher = connect(&a, "watcher", true, 0);
    subscribe(&a, &watcher, "wills/#", options(QoS::AtMostOnce));
    connect_as(&a, "dev", false, 300, None, Some(will("wills/dev", 60)));
    assert!(a.release("dev", (false, None), Instant::now()).is_none());
    assert!(a.session("dev").is_none());
    assert_eq!(payloads(&watcher.session), ["gone"]);
}

#[test]
fn a_session_of_another_principal_is_not_handed_over_and_its_will_is_published_delay_or_not() {
    let a = Broker::new(BrokerSettings::default());
    let watcher = connect(&a, "watcher", true, 0);
    subscribe(&a, &watcher, "wills/#", options(QoS::AtMostOnce));
    connect_as(
        &a,
        "dev",
        false,
        300,
        Some("alice"),
        Some(will("wills/dev", 60)),
    );
    // As on one node: another principal connecting with Clean Start 0 gets a new session.
    assert!(
        a.release("dev", (true, Some("mallory")), Instant::now())
            .is_none()
    );
    assert!(a.session("dev").is_none());
    assert_eq!(payloads(&watcher.session), ["gone"]);
}
