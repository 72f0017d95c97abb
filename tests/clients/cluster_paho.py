#!/usr/bin/env python3
"""Cluster journey with Eclipse Paho (MQTT 5): subscribe on one node, publish on another.

    python cluster_paho.py SUB_PORT PUB_PORT

Prints "received TOPIC QOS PAYLOAD a=VALUE" per message; exit 0 once QoS 0, 1 and 2 arrived
with their user property, 1 otherwise (20 s at most).
"""

import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def client(port, name, manual_ack=False):
    """A connected MQTT 5 client, its network loop started; with `manual_ack`, received QoS 1/2
    messages are acknowledged only by `client.ack`."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"paho-{name}-{uuid.uuid4().hex[:8]}",
                    protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not connected.wait(10):
        sys.exit(f"{name}: no CONNACK on {port}")
    return c


def main():
    sub_port, pub_port = int(sys.argv[1]), int(sys.argv[2])
    got = {}
    done = threading.Event()

    def on_message(_client, _userdata, message):
        props = dict(getattr(message.properties, "UserProperty", []) or [])
        line = f"received {message.topic} {message.qos} {message.payload.decode()} a={props.get('a')}"
        print(line, flush=True)
        got[message.qos] = line
        if len(got) == 3:
            done.set()

    subscribed = threading.Event()
    sub = client(sub_port, "sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.subscribe("cross/#", qos=2)
    if not subscribed.wait(10):
        sys.exit("no SUBACK")
    time.sleep(0.3)  # the interest reaches the other NATS servers
    pub = client(pub_port, "pub")
    for qos in range(3):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("a", "1")]
        pub.publish("cross/node", f"q{qos}", qos=qos, properties=props).wait_for_publish(10)
    ok = done.wait(20)
    pub.disconnect()
    sub.disconnect()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
