#!/usr/bin/env python3
"""MQTT journeys driven with Eclipse Paho (paho-mqtt 2.x, callback API v2).

Each sub-command runs one journey against a broker and prints JSON lines on stdout:
progress events ({"event": ...}) and one closing line
{"journey": NAME, "ok": true|false, "observed": {...}, "problems": [...]}.
Exit status: 0 the journey passed, 1 an assertion failed, 2 error or timeout.
Every journey runs under a hard timeout (--timeout, default 20 s).

    python paho_journeys.py --port 1883 topic-alias
    python paho_journeys.py --port 1883 shared-subscription --subscribers 3 --count 30
"""

import argparse
import json
import os
import queue
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V5 = mqtt.MQTTv5
V311 = mqtt.MQTTv311


def emit(**fields):
    print(json.dumps(fields, sort_keys=True), flush=True)


class JourneyError(Exception):
    """Something that prevents the journey from running (not an assertion)."""


def start_watchdog(seconds, journey):
    def fire():
        emit(journey=journey, ok=False, error=f"hard timeout after {seconds} s")
        os._exit(2)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def unique(prefix):
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def props_to_dict(props):
    """The PUBLISH properties a journey looks at, as JSON-friendly values."""
    if props is None:
        return {}
    out = {}
    for name in (
        "ContentType",
        "PayloadFormatIndicator",
        "MessageExpiryInterval",
        "ResponseTopic",
        "TopicAlias",
    ):
        if hasattr(props, name):
            out[name] = getattr(props, name)
    if hasattr(props, "CorrelationData"):
        out["CorrelationData"] = props.CorrelationData.hex()
    if hasattr(props, "UserProperty"):
        out["UserProperty"] = [list(pair) for pair in props.UserProperty]
    if hasattr(props, "SubscriptionIdentifier"):
        ids = props.SubscriptionIdentifier
        out["SubscriptionIdentifier"] = ids if isinstance(ids, list) else [ids]
    return out


class Client:
    """A paho client with a message queue and blocking helpers bounded by a deadline."""

    def __init__(self, args, name, protocol=V5, client_id=None, clean=True, connect_props=None):
        self.args = args
        self.name = name
        self.protocol = protocol
        self.client_id = client_id or unique(name)
        self.clean = clean
        self.connect_props = connect_props
        self.messages = queue.Queue()
        self.acks = {}
        self.ack_lock = threading.Condition()
        self.connack = queue.Queue()
        self.aliases = {}
        kwargs = {"protocol": protocol}
        if protocol != V5:
            kwargs["clean_session"] = clean
        self.mqtt = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, **kwargs
        )
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_message = self._on_message
        self.mqtt.on_subscribe = self._on_subscribe
        self.mqtt.on_publish = self._on_publish

    def _on_connect(self, _client, _userdata, flags, reason_code, properties):
        self.connack.put((flags, reason_code, properties))

    def _on_message(self, _client, _userdata, msg):
        topic = msg.topic
        props = getattr(msg, "properties", None)
        alias = getattr(props, "TopicAlias", None) if props is not None else None
        alias_only = alias is not None and not topic
        # paho does not resolve inbound topic aliases; a journey that allows the broker to use
        # them resolves them here, as an application would.
        if alias is not None:
            if topic:
                self.aliases[alias] = topic
            else:
                topic = self.aliases.get(alias, f"<unknown alias {alias}>")
        self.messages.put(
            {
                "client": self.name,
                "topic": topic,
                "payload": msg.payload.decode("utf-8", "replace"),
                "qos": msg.qos,
                "retain": bool(msg.retain),
                "alias_only": alias_only,
                "properties": props_to_dict(props if self.protocol == V5 else None),
            }
        )

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        with self.ack_lock:
            self.acks[("sub", mid)] = [rc.value for rc in reason_codes]
            self.ack_lock.notify_all()

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        with self.ack_lock:
            self.acks[("pub", mid)] = reason_code.value
            self.ack_lock.notify_all()

    def connect(self, timeout=None):
        timeout = timeout or self.args.step_timeout
        kwargs = {}
        if self.protocol == V5:
            kwargs["clean_start"] = self.clean
            if self.connect_props is not None:
                kwargs["properties"] = self.connect_props
        self.mqtt.connect(self.args.host, self.args.port, keepalive=30, **kwargs)
        self.mqtt.loop_start()
        try:
            flags, reason_code, props = self.connack.get(timeout=timeout)
        except queue.Empty:
            raise JourneyError(f"{self.name}: no CONNACK within {timeout} s") from None
        if reason_code.is_failure:
            raise JourneyError(f"{self.name}: CONNACK refused: {reason_code}")
        emit(event="connected", client=self.name, session_present=flags.session_present)
        return flags, props

    def _wait_ack(self, key, timeout):
        deadline = time.monotonic() + timeout
        with self.ack_lock:
            while key not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise JourneyError(f"{self.name}: no {key[0]} ack for mid {key[1]}")
                self.ack_lock.wait(left)
            return self.acks.pop(key)

    def subscribe(self, topic_filter, qos=1, props=None):
        if self.protocol == V5:
            options = mqtt.SubscribeOptions(qos=qos)
            result, mid = self.mqtt.subscribe(topic_filter, options=options, properties=props)
        else:
            result, mid = self.mqtt.subscribe(topic_filter, qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise JourneyError(f"{self.name}: subscribe failed locally: {result}")
        codes = self._wait_ack(("sub", mid), self.args.step_timeout)
        if any(code >= 0x80 for code in codes):
            raise JourneyError(f"{self.name}: SUBACK refused {topic_filter}: {codes}")
        emit(event="subscribed", client=self.name, filter=topic_filter, reason_codes=codes)
        return codes

    def publish(self, topic, payload, qos=1, retain=False, props=None):
        info = self.mqtt.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise JourneyError(f"{self.name}: publish failed locally: {info.rc}")
        if qos > 0:
            code = self._wait_ack(("pub", info.mid), self.args.step_timeout)
            if code >= 0x80:
                raise JourneyError(f"{self.name}: publish to {topic!r} refused: {code}")
        return info.mid

    def collect(self, count, timeout):
        """Up to `count` messages, waiting at most `timeout` seconds in all."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return out

    def drain(self, quiet):
        """Every message that arrives until none has for `quiet` seconds."""
        out = []
        while True:
            try:
                out.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                return out

    def disconnect(self):
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


class Checks:
    def __init__(self):
        self.problems = []

    def expect(self, cond, message):
        if not cond:
            self.problems.append(message)

    def equal(self, got, want, what):
        if got != want:
            self.problems.append(f"{what}: got {got!r}, want {want!r}")


def topic_alias(args, checks, observed):
    """A publisher sends with a topic alias, then with an empty topic and the alias only."""
    topic = args.topic or unique("paho/alias")
    sub_props = None
    if args.subscriber_alias_max:
        sub_props = Properties(PacketTypes.CONNECT)
        sub_props.TopicAliasMaximum = args.subscriber_alias_max
    sub = Client(args, "sub", connect_props=sub_props)
    sub.connect()
    sub.subscribe(topic, qos=args.qos)
    pub = Client(args, "pub")
    _, connack = pub.connect()
    alias_max = getattr(connack, "TopicAliasMaximum", 0)
    observed["broker_topic_alias_maximum"] = alias_max
    checks.expect(alias_max >= 1, f"CONNACK Topic Alias Maximum is {alias_max}, need >= 1")
    payloads = [f"alias-{i}" for i in range(args.count)]
    for i, payload in enumerate(payloads):
        props = Properties(PacketTypes.PUBLISH)
        props.TopicAlias = 1
        pub.publish(topic if i == 0 else "", payload, qos=args.qos, props=props)
    got = sub.collect(len(payloads), args.step_timeout)
    observed["received"] = got
    # How many arrived as an alias with an empty topic: the broker's choice, reported only.
    observed["received_alias_only"] = sum(1 for m in got if m["alias_only"])
    checks.equal([m["payload"] for m in got], payloads, "payloads in order")
    checks.equal({m["topic"] for m in got}, {topic}, "topics seen by the subscriber")
    # A connection still usable after the aliased publishes: the broker did not drop it.
    checks.expect(pub.mqtt.is_connected(), "publisher was disconnected")
    pub.disconnect()
    sub.disconnect()


def subscription_identifiers(args, checks, observed):
    """Two overlapping subscriptions with identifiers; each delivery carries the matching ones."""
    base = args.topic or unique("paho/subid")
    sub = Client(args, "sub")
    sub.connect()
    plus = Properties(PacketTypes.SUBSCRIBE)
    plus.SubscriptionIdentifier = 7
    sub.subscribe(f"{base}/+", qos=args.qos, props=plus)
    hash_ = Properties(PacketTypes.SUBSCRIBE)
    hash_.SubscriptionIdentifier = 300
    sub.subscribe(f"{base}/#", qos=args.qos, props=hash_)
    # Matches {base}/# (300) and this exact filter (no identifier), not {base}/+.
    plain = f"{base}/x/plain"
    sub.subscribe(plain, qos=args.qos)

    pub = Client(args, "pub")
    pub.connect()
    pub.publish(f"{base}/one", "both", qos=args.qos)
    pub.publish(f"{base}/one/two", "hash-only", qos=args.qos)
    got = sub.drain(args.quiet)
    observed["received"] = got
    ids_for = {}
    for m in got:
        ids_for.setdefault(m["payload"], []).extend(
            m["properties"].get("SubscriptionIdentifier", [])
        )
    # Overlapping matches may come as one message with both identifiers or one copy per
    # subscription (MQTT 5 §3.3.4); either way the set of identifiers is {7, 300}.
    checks.equal(sorted(set(ids_for.get("both", []))), [7, 300], f"identifiers for {base}/one")
    checks.equal(ids_for.get("hash-only"), [300], f"identifiers for {base}/one/two")

    pub.publish(plain, "plain", qos=args.qos)
    got = sub.drain(args.quiet)
    observed["received_plain"] = got
    ids = sorted({i for m in got for i in m["properties"].get("SubscriptionIdentifier", [])})
    checks.equal(ids, [300], "identifiers for the plain topic")
    checks.expect(len(got) >= 1, "the plain topic was not delivered")
    pub.disconnect()
    sub.disconnect()


def shared_subscription(args, checks, observed):
    """N members of $share/g/topic split the messages: each gets some, none twice, none lost."""
    topic = args.topic or unique("paho/shared")
    group_filter = f"{args.share_prefix}{topic}"
    members = []
    for i in range(args.subscribers):
        member = Client(args, f"member{i}")
        member.connect()
        member.subscribe(group_filter, qos=args.qos)
        members.append(member)
    watcher = Client(args, "watcher")
    watcher.connect()
    watcher.subscribe(topic, qos=args.qos)
    pub = Client(args, "pub")
    pub.connect()
    payloads = [f"m{i}" for i in range(args.count)]
    for payload in payloads:
        pub.publish(topic, payload, qos=args.qos)
    per_member = {m.name: [x["payload"] for x in m.drain(args.quiet)] for m in members}
    watched = [x["payload"] for x in watcher.drain(0.2)]
    observed["per_member"] = {k: len(v) for k, v in per_member.items()}
    observed["watcher"] = len(watched)
    everything = [p for got in per_member.values() for p in got]
    checks.equal(len(everything), len(payloads), "messages delivered to the group in all")
    checks.equal(sorted(set(everything)), sorted(payloads), "distinct messages to the group")
    for name, got in per_member.items():
        checks.expect(len(got) > 0, f"{name} received nothing (no round robin)")
    checks.equal(watched, payloads, "the non-shared subscriber gets every message in order")
    for m in members + [watcher, pub]:
        m.disconnect()


def message_expiry(args, checks, observed):
    """Messages queued for an offline session expire; survivors arrive with less time left."""
    topic = args.topic or unique("paho/expiry")
    client_id = unique("expiry-sub")
    connect_props = Properties(PacketTypes.CONNECT)
    connect_props.SessionExpiryInterval = 300
    sub = Client(args, "sub", client_id=client_id, clean=True, connect_props=connect_props)
    sub.connect()
    sub.subscribe(topic, qos=1)
    sub.disconnect()

    pub = Client(args, "pub")
    pub.connect()
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = args.short_expiry
    pub.publish(topic, "short", qos=1, props=short)
    long_ = Properties(PacketTypes.PUBLISH)
    long_.MessageExpiryInterval = args.long_expiry
    pub.publish(topic, "long", qos=1, props=long_)
    pub.publish(topic, "forever", qos=1)
    pub.disconnect()
    emit(event="offline-wait", seconds=args.offline_wait)
    time.sleep(args.offline_wait)

    again = Client(args, "sub-again", client_id=client_id, clean=False, connect_props=connect_props)
    flags, _ = again.connect()
    observed["session_present"] = bool(flags.session_present)
    checks.expect(flags.session_present, "session not present on reconnect")
    got = again.drain(args.quiet)
    observed["received"] = got
    by_payload = {m["payload"]: m for m in got}
    checks.equal(sorted(by_payload), ["forever", "long"], "messages delivered after the wait")
    if "long" in by_payload:
        left = by_payload["long"]["properties"].get("MessageExpiryInterval")
        checks.expect(
            left is not None and left <= args.long_expiry - int(args.offline_wait),
            f"remaining expiry {left} not decremented from {args.long_expiry} "
            f"after {args.offline_wait} s offline",
        )
    if "forever" in by_payload:
        checks.expect(
            "MessageExpiryInterval" not in by_payload["forever"]["properties"],
            "a message without expiry got a Message Expiry Interval",
        )
    # End the session so the broker does not keep it for 300 s.
    again.disconnect()
    cleanup = Client(args, "cleanup", client_id=client_id, clean=True)
    cleanup.connect()
    cleanup.disconnect()


def request_response(args, checks, observed):
    """Response Topic and Correlation Data reach the responder, whose answer comes back."""
    base = args.topic or unique("paho/rr")
    request_topic = f"{base}/request"
    response_topic = f"{base}/response"
    correlation = uuid.uuid4().bytes

    connect_props = Properties(PacketTypes.CONNECT)
    connect_props.RequestResponseInformation = 1
    requester = Client(args, "requester", connect_props=connect_props)
    _, connack = requester.connect()
    # Optional in MQTT 5 (§3.2.2.3.15): reported, not required.
    observed["response_information"] = getattr(connack, "ResponseInformation", None)
    requester.subscribe(response_topic, qos=args.qos)
    responder = Client(args, "responder")
    responder.connect()
    responder.subscribe(request_topic, qos=args.qos)

    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    requester.publish(request_topic, "ping", qos=args.qos, props=props)
    requests = responder.collect(1, args.step_timeout)
    observed["request"] = requests
    if not requests:
        checks.problems.append("the responder got no request")
        return
    req = requests[0]["properties"]
    checks.equal(req.get("ResponseTopic"), response_topic, "Response Topic at the responder")
    checks.equal(req.get("CorrelationData"), correlation.hex(), "Correlation Data at the responder")
    reply = Properties(PacketTypes.PUBLISH)
    reply.CorrelationData = bytes.fromhex(req.get("CorrelationData", ""))
    responder.publish(req.get("ResponseTopic") or response_topic, "pong", qos=args.qos, props=reply)
    responses = requester.collect(1, args.step_timeout)
    observed["response"] = responses
    checks.equal([m["payload"] for m in responses], ["pong"], "response payload")
    if responses:
        checks.equal(
            responses[0]["properties"].get("CorrelationData"),
            correlation.hex(),
            "Correlation Data on the response",
        )
    requester.disconnect()
    responder.disconnect()


def properties_forwarded(args, checks, observed):
    """User properties (order and repeats), Content Type and Payload Format Indicator."""
    topic = args.topic or unique("paho/props")
    sub = Client(args, "sub")
    sub.connect()
    sub.subscribe(topic, qos=args.qos)
    pub = Client(args, "pub")
    pub.connect()
    user = [("region", "eu"), ("trace", "a1"), ("region", "us"), ("ünï", "çødé")]
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = user
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    pub.publish(topic, '{"v": 1}', qos=args.qos, props=props)
    pub.publish(topic, "bare", qos=args.qos)
    got = sub.collect(2, args.step_timeout)
    observed["received"] = got
    checks.equal([m["payload"] for m in got], ['{"v": 1}', "bare"], "payloads")
    if len(got) == 2:
        first, second = got[0]["properties"], got[1]["properties"]
        checks.equal(first.get("UserProperty"), [list(p) for p in user], "User Properties")
        checks.equal(first.get("ContentType"), "application/json", "Content Type")
        checks.equal(first.get("PayloadFormatIndicator"), 1, "Payload Format Indicator")
        for name in ("UserProperty", "ContentType", "PayloadFormatIndicator"):
            checks.expect(name not in second, f"{name} leaked onto a message that had none")
    pub.disconnect()
    sub.disconnect()


def basic(args, checks, observed):
    """Publish and subscribe at QoS 0, 1 and 2, with MQTT 3.1.1 or 5.0 (--mqtt-version)."""
    protocol = V311 if args.mqtt_version == "3.1.1" else V5
    topic = args.topic or unique("paho/basic")
    sub = Client(args, "sub", protocol=protocol)
    sub.connect()
    sub.subscribe(topic, qos=2)
    pub = Client(args, "pub", protocol=protocol)
    pub.connect()
    sent = []
    for qos in (0, 1, 2):
        for i in range(args.count):
            payload = f"q{qos}-{i}"
            pub.publish(topic, payload, qos=qos)
            sent.append((payload, qos))
    got = sub.collect(len(sent), args.step_timeout)
    observed["received"] = len(got)
    checks.equal([(m["payload"], m["qos"]) for m in got], sent, "messages (payload, qos)")
    pub.disconnect()
    sub.disconnect()


JOURNEYS = {
    "topic-alias": topic_alias,
    "subscription-identifiers": subscription_identifiers,
    "shared-subscription": shared_subscription,
    "message-expiry": message_expiry,
    "request-response": request_response,
    "properties": properties_forwarded,
    "basic": basic,
}


def parse_args(argv):
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("journey", choices=sorted(JOURNEYS))
    p.add_argument("--host", default=env("MQTT_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("MQTT_PORT", "1883")))
    p.add_argument("--topic", default=None, help="topic (or topic prefix); unique by default")
    p.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    p.add_argument("--count", type=int, default=5, help="messages to send")
    p.add_argument("--mqtt-version", choices=("3.1.1", "5"), default="5", help="basic only")
    p.add_argument("--subscribers", type=int, default=3, help="shared-subscription members")
    p.add_argument(
        "--share-prefix",
        default="$share/g/",
        help="prefix of the shared filter (set to '' to see the check fail)",
    )
    p.add_argument(
        "--subscriber-alias-max",
        type=int,
        default=0,
        help="topic-alias: Topic Alias Maximum the subscriber offers the broker",
    )
    p.add_argument("--short-expiry", type=int, default=1, help="message-expiry: seconds")
    p.add_argument("--long-expiry", type=int, default=60, help="message-expiry: seconds")
    p.add_argument("--offline-wait", type=float, default=3.0, help="message-expiry: seconds")
    p.add_argument("--quiet", type=float, default=1.0, help="seconds of silence that end a drain")
    p.add_argument("--step-timeout", type=float, default=5.0, help="seconds per ack or message")
    p.add_argument("--timeout", type=float, default=float(env("JOURNEY_TIMEOUT", "20")))
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    start_watchdog(args.timeout, args.journey)
    checks = Checks()
    observed = {}
    try:
        JOURNEYS[args.journey](args, checks, observed)
    except Exception as err:  # noqa: BLE001 - any failure to run is reported the same way
        emit(journey=args.journey, ok=False, error=f"{type(err).__name__}: {err}", observed=observed)
        return 2
    ok = not checks.problems
    emit(journey=args.journey, ok=ok, problems=checks.problems, observed=observed)
    return 0 if ok else 1


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    # Skip interpreter teardown: paho's network threads must not delay or block the exit.
    os._exit(code)
