//! `mosquitto_pub` / `mosquitto_sub` journeys, with MQTT 3.1.1 and `-V mqttv5`: QoS 0/1/2,
//! retained messages, wills, persistent sessions (`-c`) and messages crossing ports.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use wardgate_testkit::process::{self, Output, Running};

use super::{OrFail, start_broker};

/// Bound on each client process and each awaited line.
const STEP: Duration = Duration::from_secs(15);
/// Output format of subscribers: `MSG <qos> <retain 0|1> <topic> <payload>`.
const FORMAT: &str = "MSG %q %r %t %p";

#[derive(Debug, Clone, Copy)]
enum Version {
    V311,
    V5,
}

impl Version {
    fn flag(self) -> &'static str {
        match self {
            Version::V311 => "mqttv311",
            Version::V5 => "mqttv5",
        }
    }
}

/// A message as `mosquitto_sub -F FORMAT` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    qos: u8,
    retain: bool,
    topic: String,
    payload: String,
}

impl Message {
    fn parse(line: &str) -> Option<Message> {
        let mut parts = line.strip_prefix("MSG ")?.splitn(4, ' ');
        let qos = parts.next()?.parse().ok()?;
        let retain = parts.next()? == "1";
        let topic = parts.next()?.to_owned();
        let payload = parts.next().unwrap_or_default().to_owned();
        Some(Message {
            qos,
            retain,
            topic,
            payload,
        })
    }
}

fn messages(lines: &[String]) -> Vec<Message> {
    lines
        .iter()
        .filter_map(|line| Message::parse(line))
        .collect()
}

/// `mosquitto_pub`/`mosquitto_sub` with debug output (`-d`: one line per packet), line-buffered
/// through `stdbuf` so that each line can be awaited as it happens.
fn client(program: PathBuf, port: u16, version: Version) -> Command {
    let mut cmd = Command::new("stdbuf");
    cmd.arg("-oL").arg(program);
    let port = port.to_string();
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-V", version.flag(), "-d"]);
    cmd
}

/// Starts `mosquitto_sub` with `args` and waits until its subscriptions are all granted.
fn subscribe(port: u16, version: Version, args: &[&str]) -> Running {
    let mut cmd = client(process::mosquitto_sub().or_fail(), port, version);
    cmd.args(["-F", FORMAT]).args(args);
    let mut sub = Running::spawn(&mut cmd).or_fail();
    // "Subscribed (mid: 1): 2, 1" lists the granted QoS or the failure reason code per filter.
    let line = sub
        .wait_for_line("the SUBACK", STEP, |line| {
            line.starts_with("Subscribed (mid:")
        })
        .or_fail();
    let granted = line.rsplit("): ").next().unwrap_or_default();
    for code in granted.split(", ") {
        let code: u8 = code.trim().parse().unwrap_or(0xff);
        assert!(
            code < 0x80,
            "subscription refused ({line}) for {args:?}: {:?}",
            sub.seen()
        );
    }
    sub
}

/// Runs `mosquitto_pub` with `args` to completion; it must exit 0.
fn publish(port: u16, version: Version, args: &[&str]) -> Output {
    let mut cmd = client(process::mosquitto_pub().or_fail(), port, version);
    cmd.args(args);
    process::run(&mut cmd, STEP).or_fail().ok().or_fail()
}

fn finish(sub: Running) -> Vec<Message> {
    let output = sub.wait(STEP).or_fail();
    assert!(output.success(), "mosquitto_sub failed:\n{output}");
    let lines: Vec<String> = output.lines().map(str::to_owned).collect();
    messages(&lines)
}

fn msg(qos: u8, retain: bool, topic: &str, payload: &str) -> Message {
    Message {
        qos,
        retain,
        topic: topic.into(),
        payload: payload.into(),
    }
}

fn qos_levels(version: Version) {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let topic = "e2e/qos";
    let sub = subscribe(port, version, &["-t", topic, "-q", "2", "-C", "3"]);
    let q0 = publish(
        port,
        version,
        &["-t", topic, "-q", "0", "-m", "at most once"],
    );
    let q1 = publish(
        port,
        version,
        &["-t", topic, "-q", "1", "-m", "at least once"],
    );
    let q2 = publish(
        port,
        version,
        &["-t", topic, "-q", "2", "-m", "exactly once"],
    );
    assert!(q0.stdout.contains("sending PUBLISH (d0, q0"), "{q0}");
    assert!(q1.stdout.contains("received PUBACK"), "{q1}");
    assert!(q2.stdout.contains("received PUBREC"), "{q2}");
    assert!(q2.stdout.contains("received PUBCOMP"), "{q2}");
    assert_eq!(
        finish(sub),
        [
            msg(0, false, topic, "at most once"),
            msg(1, false, topic, "at least once"),
            msg(2, false, topic, "exactly once"),
        ]
    );
}

#[test]
fn qos_levels_v311() {
    qos_levels(Version::V311);
}

#[test]
fn qos_levels_v5() {
    qos_levels(Version::V5);
}

/// A subscription at QoS 1 gets a QoS 2 publication at QoS 1 (the lower of the two).
#[test]
fn qos_is_downgraded_to_the_subscription_v5() {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let sub = subscribe(port, Version::V5, &["-t", "e2e/down", "-q", "1", "-C", "1"]);
    publish(
        port,
        Version::V5,
        &["-t", "e2e/down", "-q", "2", "-m", "two"],
    );
    assert_eq!(finish(sub), [msg(1, false, "e2e/down", "two")]);
}

/// Subscribes to `topic` and to a sentinel, publishes the sentinel and returns every message
/// received up to it (plus a short grace period): what a new subscriber gets on subscribe.
fn messages_on_subscribe(port: u16, version: Version, topic: &str) -> Vec<Message> {
    let sentinel = format!("{topic}/sentinel");
    let mut sub = subscribe(port, version, &["-t", topic, "-t", &sentinel, "-q", "1"]);
    publish(port, version, &["-t", &sentinel, "-q", "1", "-m", "end"]);
    sub.wait_for_line("the sentinel", STEP, |line| {
        Message::parse(line).is_some_and(|m| m.topic == sentinel)
    })
    .or_fail();
    std::thread::sleep(Duration::from_millis(300));
    let output = sub.kill();
    let lines: Vec<String> = output.lines().map(str::to_owned).collect();
    messages(&lines)
        .into_iter()
        .filter(|m| m.topic != sentinel)
        .collect()
}

fn retained(version: Version) {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let topic = "e2e/retained";
    publish(
        port,
        version,
        &["-t", topic, "-q", "1", "-r", "-m", "first"],
    );
    publish(port, version, &["-t", topic, "-q", "1", "-r", "-m", "kept"]);
    // A later subscriber gets the last retained message, flagged retained.
    assert_eq!(
        messages_on_subscribe(port, version, topic),
        [msg(1, true, topic, "kept")]
    );
    // `-r -n`: an empty retained message clears it.
    publish(port, version, &["-t", topic, "-q", "1", "-r", "-n"]);
    assert_eq!(messages_on_subscribe(port, version, topic), []);
}

#[test]
fn retained_set_replaced_and_cleared_v311() {
    retained(Version::V311);
}

#[test]
fn retained_set_replaced_and_cleared_v5() {
    retained(Version::V5);
}

fn will(version: Version) {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let will_topic = "e2e/will";
    let watcher = subscribe(port, version, &["-t", will_topic, "-q", "1", "-C", "1"]);

    // A client that disconnects cleanly (`-C 1` exits after one message) sends no will.
    let clean = subscribe(
        port,
        version,
        &[
            "-t",
            "e2e/poke",
            "-C",
            "1",
            "--will-topic",
            will_topic,
            "--will-payload",
            "clean",
        ],
    );
    publish(port, version, &["-t", "e2e/poke", "-m", "bye"]);
    let clean = clean.wait(STEP).or_fail();
    assert!(clean.success(), "{clean}");
    assert!(clean.stdout.contains("sending DISCONNECT"), "{clean}");

    // A client killed with SIGKILL (its TCP connection just closes) has its will published.
    let mut victim = subscribe(
        port,
        version,
        &[
            "-t",
            "e2e/victim",
            "--will-topic",
            will_topic,
            "--will-payload",
            "killed",
            "--will-qos",
            "1",
        ],
    );
    victim.kill();
    // The watcher stops at its first message: it must be the killed client's will.
    assert_eq!(finish(watcher), [msg(1, false, will_topic, "killed")]);
}

#[test]
fn will_sent_on_kill_not_on_clean_disconnect_v311() {
    will(Version::V311);
}

#[test]
fn will_sent_on_kill_not_on_clean_disconnect_v5() {
    will(Version::V5);
}

fn persistent_session(version: Version) {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let topic = "e2e/session";
    let id = match version {
        Version::V311 => "e2e-persistent-v311",
        Version::V5 => "e2e-persistent-v5",
    };
    // `-c`: clean session off (v3.1.1) / clean start off and no session expiry (v5).
    let session = ["-c", "-i", id, "-q", "1", "-t", topic, "-C", "1"];
    let first = subscribe(port, version, &session);
    publish(port, version, &["-t", topic, "-q", "1", "-m", "online"]);
    assert_eq!(finish(first), [msg(1, false, topic, "online")]);

    // Published while the client is away: kept in its session.
    publish(port, version, &["-t", topic, "-q", "1", "-m", "queued"]);
    let mut cmd = client(process::mosquitto_sub().or_fail(), port, version);
    cmd.args(["-F", FORMAT]).args(session);
    let again = process::run(&mut cmd, STEP).or_fail();
    assert!(again.success(), "{again}");
    let lines: Vec<String> = again.lines().map(str::to_owned).collect();
    assert_eq!(
        messages(&lines),
        [msg(1, false, topic, "queued")],
        "{again}"
    );
}

#[test]
fn persistent_session_receives_while_offline_messages_v311() {
    persistent_session(Version::V311);
}

#[test]
fn persistent_session_receives_while_offline_messages_v5() {
    persistent_session(Version::V5);
}

/// A client without a persistent session gets nothing that was published while it was away.
#[test]
fn clean_session_gets_nothing_from_while_offline_v311() {
    let broker = start_broker();
    let port = broker.ports().mqtt;
    let topic = "e2e/clean";
    let first = subscribe(
        port,
        Version::V311,
        &["-i", "e2e-clean", "-q", "1", "-t", topic, "-C", "1"],
    );
    publish(
        port,
        Version::V311,
        &["-t", topic, "-q", "1", "-m", "online"],
    );
    assert_eq!(finish(first), [msg(1, false, topic, "online")]);
    publish(
        port,
        Version::V311,
        &["-t", topic, "-q", "1", "-m", "missed"],
    );
    assert_eq!(messages_on_subscribe(port, Version::V311, topic), []);
}

/// One fabric: published on either MQTT port, received on the other, across versions.
#[test]
fn message_crosses_ports() {
    let broker = start_broker();
    let ports = broker.ports();
    let topic = "e2e/cross";
    let on_first = subscribe(
        ports.mqtt,
        Version::V5,
        &["-t", topic, "-q", "1", "-C", "2"],
    );
    let on_second = subscribe(
        ports.mqtt2,
        Version::V311,
        &["-t", topic, "-q", "1", "-C", "2"],
    );
    publish(
        ports.mqtt2,
        Version::V311,
        &["-t", topic, "-q", "1", "-m", "from second"],
    );
    publish(
        ports.mqtt,
        Version::V5,
        &["-t", topic, "-q", "1", "-m", "from first"],
    );
    let want = [
        msg(1, false, topic, "from second"),
        msg(1, false, topic, "from first"),
    ];
    assert_eq!(finish(on_first), want);
    assert_eq!(finish(on_second), want);
}
