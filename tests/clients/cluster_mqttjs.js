#!/usr/bin/env node
// Cluster journey with MQTT.js (MQTT 5): subscribe on one node, publish on another.
//
//     node cluster_mqttjs.js SUB_PORT PUB_PORT
//
// Prints "received TOPIC QOS PAYLOAD a=VALUE" per message; exit 0 once QoS 0, 1 and 2 arrived
// with their user property, 1 otherwise (20 s at most).
'use strict';
const crypto = require('node:crypto');
const mqtt = require('mqtt');

const [subPort, pubPort] = process.argv.slice(2).map(Number);
const timer = setTimeout(() => { console.log('timed out'); process.exit(1); }, 20000);

function connect(port, name) {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 5,
      clientId: `mqttjs-${name}-${crypto.randomBytes(4).toString('hex')}`,
      reconnectPeriod: 0,
    });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

(async () => {
  const got = new Set();
  const sub = await connect(subPort, 'sub');
  sub.on('message', (topic, payload, packet) => {
    const a = (packet.properties && packet.properties.userProperties || {}).a;
    console.log(`received ${topic} ${packet.qos} ${payload.toString()} a=${a}`);
    got.add(packet.qos);
    if (got.size === 3) {
      clearTimeout(timer);
      sub.end(false, () => process.exit(0));
    }
  });
  await sub.subscribeAsync('cross/#', { qos: 2 });
  await new Promise((r) => setTimeout(r, 300)); // the interest reaches the other NATS servers
  const pub = await connect(pubPort, 'pub');
  for (const qos of [0, 1, 2]) {
    await pub.publishAsync('cross/node', `q${qos}`, { qos, properties: { userProperties: { a: '1' } } });
  }
  pub.end();
})().catch((e) => { console.log(`error: ${e.message}`); process.exit(1); });
