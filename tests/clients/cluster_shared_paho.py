#!/usr/bin/env python3
"""Shared subscription across nodes with Eclipse Paho (MQTT 5), docs/cluster.md "Shared
subscriptions": member A on one node never acknowledges its QoS 1 messages, member B on another
node does; A leaves (its session ends) and B must receive what A held, each message once.

    python cluster_shared_paho.py A_PORT B_PORT PUB_PORT

Prints "a=... b=... handed=..." and exits 0 when every message reached exactly one member
while both were there and B holds them all after A left; 1 otherwise (about 60 s at most).
"""

import sys
import threading
import time

from cluster_paho import client

GROUP = "$share/workers/jobs/#"
N = 40


class Member:
    """A member of the group: the payloads it received, in order."""

    def __init__(self, port, name, acknowledges):
        self.got = []
        self.lock = threading.Lock()
        self.client = client(port, name, manual_ack=True)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()

        def on_message(c, _userdata, message):
            payload = message.payload.decode()
            with self.lock:
                self.got.append(payload)
            # Probes are always acknowledged; the others only by a member that acknowledges.
            if acknowledges or payload == "probe":
                c.ack(message.mid, message.qos)

        self.client.on_message = on_message
        self.client.subscribe(GROUP, qos=1)
        if not subscribed.wait(10):
            sys.exit(f"{name}: no SUBACK")

    def jobs(self):
        with self.lock:
            return [p for p in self.got if p != "probe"]

    def probed(self):
        with self.lock:
            return "probe" in self.got


def until(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def main():
    a_port, b_port, pub_port = (int(p) for p in sys.argv[1:4])
    a = Member(a_port, "a", acknowledges=False)
    b = Member(b_port, "b", acknowledges=True)
    pub = client(pub_port, "pub")
    # Both nodes pull from the group's consumer: each member gets a probe.
    for _ in range(100):
        pub.publish("jobs/probe", "probe", qos=1).wait_for_publish(10)
        if until(lambda: a.probed() and b.probed(), 0.3):
            break
    else:
        sys.exit(f"the members did not both receive probes: a={a.probed()} b={b.probed()}")

    everything = {f"job-{i}" for i in range(N)}
    for i in range(N):
        pub.publish(f"jobs/{i}", f"job-{i}", qos=1).wait_for_publish(10)
    until(lambda: len(a.jobs()) + len(b.jobs()) >= N, 20)
    time.sleep(1)  # nothing more comes
    to_a, to_b = a.jobs(), b.jobs()
    print(f"a={len(to_a)} b={len(to_b)}", flush=True)
    failures = []
    if len(set(to_a) | set(to_b)) != N or len(to_a) + len(to_b) != N:
        failures.append(f"each job to one member while both are there: a={sorted(to_a)} b={sorted(to_b)}")
    if not to_a:
        failures.append("member A took no job")

    a.client.disconnect()  # its session ends with what it did not acknowledge
    a.client.loop_stop()
    until(lambda: set(b.jobs()) >= everything, 30)
    time.sleep(2)  # nothing comes twice
    final = b.jobs()
    handed = final[len(to_b):]
    print(f"handed={len(handed)}", flush=True)
    if sorted(handed) != sorted(to_a):
        failures.append(f"B got {sorted(handed)} after A left, A held {sorted(to_a)}")
    if len(final) != len(set(final)):
        failures.append(f"B got a job twice: {sorted(final)}")
    pub.disconnect()
    b.client.disconnect()
    for failure in failures:
        print(failure, flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
