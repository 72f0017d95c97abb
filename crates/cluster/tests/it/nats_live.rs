//! On a real nats-server: subscribing to `filter_subjects` and publishing on `topic_subject`
//! delivers exactly what MQTT matching says, and a 3-server JetStream cluster from the testkit
//! keeps acknowledging writes to an R3 stream with one server killed or paused, and stops with
//! two gone.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use futures_util::StreamExt as _;
use tokio::time::timeout;
use wardgate_cluster::{filter_subjects, subject_topic, topic_subject};
use wardgate_protocol::{TopicFilter, TopicName};
use wardgate_testkit::nats::NatsCluster;

const PREFIX: &str = "wg";
/// How long a subscriber stays quiet before it is taken to have received everything.
const IDLE: Duration = Duration::from_millis(200);
/// The bound on a whole step of a test.
const STEP: Duration = Duration::from_secs(30);
/// How long a stream may take to elect a new leader and answer again after a server is lost.
const ELECTION: Duration = Duration::from_secs(20);

/// The topics published in the end-to-end mapping test, every level form among them.
const TOPICS: &[&str] = &[
    "a",
    "a/b",
    "a/",
    "/",
    "/a",
    "a//b",
    "a.b/c",
    "a b",
    "$SYS/x",
    "$x/a",
    "_x",
    "_61",
    "*",
    ">",
    "é/日本",
    "a/b/c",
];

/// Each filter and the topics of [`TOPICS`] that MQTT says it matches.
const FILTERS: &[(&str, &[&str])] = &[
    ("a/#", &["a", "a/b", "a/", "a//b", "a/b/c"]),
    ("+", &["a", "a b", "_x", "_61", "*", ">"]),
    ("+/+", &["a/b", "a/", "/", "/a", "a.b/c", "é/日本"]),
    (
        "#",
        &[
            "a",
            "a/b",
            "a/",
            "/",
            "/a",
            "a//b",
            "a.b/c",
            "a b",
            "_x",
            "_61",
            "*",
            ">",
            "é/日本",
            "a/b/c",
        ],
    ),
    ("$SYS/#", &["$SYS/x"]),
    ("+/x", &[]),
    ("a.b/+", &["a.b/c"]),
    ("/#", &["/", "/a"]),
    ("*", &["*"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_subjects_receive_what_mqtt_matches_on_a_real_server() {
    let nats = NatsCluster::start_with(1).expect("nats-server");
    let client = timeout(STEP, async_nats::connect(nats.url(0)))
        .await
        .expect("connect in time")
        .expect("connect");
    for (filter, expected) in FILTERS {
        let filter = TopicFilter::new(filter).expect("filter");
        // One subscriber per subject, like a node subscribing for a local session.
        let mut subscribers = Vec::new();
        for subject in filter_subjects(PREFIX, &filter) {
            subscribers.push(client.subscribe(subject).await.expect("subscribe"));
        }
        client.flush().await.expect("flush");
        for topic in TOPICS {
            let topic = TopicName::new(topic).expect("topic");
            let subject = topic_subject(PREFIX, &topic);
            client
                .publish(subject, topic.as_str().to_owned().into())
                .await
                .expect("publish");
        }
        // The server handles a connection's messages in order: once the PING of `flush` has its
        // PONG, every publish before it has been delivered to this connection's subscriptions.
        client.flush().await.expect("flush");
        let mut received = Vec::new();
        for mut subscriber in subscribers {
            while let Ok(Some(message)) = timeout(IDLE, subscriber.next()).await {
                let topic = subject_topic(PREFIX, &message.subject).expect("a topic subject");
                assert_eq!(topic.as_bytes(), &message.payload[..]);
                received.push(topic.as_str().to_owned());
            }
        }
        received.sort();
        let mut expected: Vec<String> = expected.iter().map(|t| (*t).to_owned()).collect();
        expected.sort();
        assert_eq!(received, expected, "filter {filter}");
    }
}

/// Publishes `count` messages on `subject` and waits for every JetStream acknowledgement. Each
/// carries a message id (`subject/i`), so a message sent again is stored once.
async fn publish_acked(js: &jetstream::Context, subject: &str, count: usize) -> Result<(), String> {
    for i in 0..count {
        publish_one(js, subject, i).await?;
    }
    Ok(())
}

async fn publish_one(js: &jetstream::Context, subject: &str, i: usize) -> Result<(), String> {
    let message = PublishMessage::build()
        .payload(format!("{i}").into())
        .message_id(format!("{subject}/{i}"));
    let ack = js
        .send_publish(subject.to_owned(), message)
        .await
        .map_err(|e| format!("publish {i}: {e}"))?;
    ack.await.map_err(|e| format!("ack {i}: {e}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_acknowledges_with_a_quorum_and_stops_without_one() {
    let mut nats = NatsCluster::start().expect("3 nats-servers");
    assert_eq!(nats.len(), 3);
    // Connected to n0 only, so that killing or pausing the others never moves the client.
    let client = timeout(STEP, async_nats::connect(nats.url(0)))
        .await
        .expect("connect in time")
        .expect("connect");
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(3))
        .build(client);
    let config = jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        num_replicas: 3,
        ..Default::default()
    };
    timeout(STEP, js.create_stream(config))
        .await
        .expect("in time")
        .expect("an R3 stream");
    timeout(STEP, publish_acked(&js, "orders.a", 5))
        .await
        .expect("in time")
        .expect("acks with 3 servers");

    nats.kill(2);
    timeout(STEP, publish_with_retry(&js, "orders.b", 10))
        .await
        .expect("in time")
        .expect("acks with n2 killed (quorum n0, n1)");

    nats.restart(2).expect("n2 back");
    nats.pause(1).expect("SIGSTOP n1");
    timeout(STEP, publish_with_retry(&js, "orders.c", 10))
        .await
        .expect("in time")
        .expect("acks with n1 paused (quorum n0, n2)");
    nats.resume(1).expect("SIGCONT n1");

    let mut stream = js.get_stream("ORDERS").await.expect("stream");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 25);

    // Without a quorum nothing is acknowledged: the test above could fail.
    nats.kill(1);
    nats.kill(2);
    let lost = timeout(STEP, publish_acked(&js, "orders.d", 1))
        .await
        .expect("in time");
    assert!(lost.is_err(), "an ack from one server of three: {lost:?}");
}

/// Like [`publish_acked`], but a message without an ack is sent again every 250 ms for up to
/// [`ELECTION`]: when a stream's leader dies or hangs, the stream answers nothing until the
/// others elect a new one (a few seconds), and a restarted server catches up first. The message
/// id makes JetStream store a message sent again once.
async fn publish_with_retry(
    js: &jetstream::Context,
    subject: &str,
    count: usize,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + ELECTION;
    for i in 0..count {
        loop {
            match publish_one(js, subject, i).await {
                Ok(()) => break,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    eprintln!("sending again after: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
