#!/usr/bin/env node
// MQTT journeys driven with MQTT.js (npm `mqtt` v5), the client inside MQTTX and Node-RED.
//
// Each journey prints JSON lines on stdout: progress events ({"event": ...}) and one closing
// line {"journey": NAME, "ok": true|false, "observed": {...}, "problems": [...]}.
// Exit status: 0 the journey passed, 1 an assertion failed, 2 error or timeout.
// Every journey runs under a hard timeout (--timeout, default 20 s).
//
//   node mqttjs_journeys.js pubsub --url ws://127.0.0.1:8080/mqtt --protocol-version 5
//   node mqttjs_journeys.js pubsub --pub-url ws://127.0.0.1:8080/mqtt --sub-url mqtt://127.0.0.1:1883
//   node mqttjs_journeys.js retained --url mqtt://127.0.0.1:1883 --protocol-version 4
//   node mqttjs_journeys.js pubsub --url wss://localhost:8443/mqtt --ca trust-bundle/ca.crt
'use strict';

const { parseArgs } = require('node:util');
const crypto = require('node:crypto');
const fs = require('node:fs');
const mqtt = require('mqtt');

function emit(fields) {
  const sorted = Object.fromEntries(Object.entries(fields).sort(([a], [b]) => a.localeCompare(b)));
  process.stdout.write(`${JSON.stringify(sorted)}\n`);
}

function unique(prefix) {
  return `${prefix}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
}

/** Ends the journey as an error (exit 2): it could not run, which is not an assertion failure. */
function fail(opts, message, observed) {
  emit({ journey: opts.journey, ok: false, error: message, observed });
  process.exit(2);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One connected client that records every message it receives. */
async function connect(opts, name, url) {
  const client = mqtt.connect(url, {
    protocolVersion: opts.protocolVersion,
    clientId: unique(`mqttjs-${name}`),
    clean: true,
    connectTimeout: opts.stepTimeoutMs,
    reconnectPeriod: 0,
    keepalive: 30,
    // mqtts:// and wss://: trust only this CA (the server certificate is verified as usual).
    ...(opts.ca ? { ca: fs.readFileSync(opts.ca) } : {}),
  });
  const received = [];
  client.on('message', (topic, payload, packet) => {
    received.push({ topic, payload: payload.toString('utf8'), qos: packet.qos, retain: packet.retain });
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${name}: no CONNACK from ${url}`)), opts.stepTimeoutMs);
    const onConnect = () => done();
    const onError = (err) => done(new Error(`${name}: ${url}: ${err.message}`));
    const onClose = () => done(new Error(`${name}: connection to ${url} closed before CONNACK`));
    function done(err) {
      clearTimeout(timer);
      client.off('connect', onConnect).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve();
    }
    client.once('connect', onConnect).once('error', onError).once('close', onClose);
  });
  // Once connected, any client error ends the journey as an error (exit 2), never a crash.
  client.on('error', (err) => fail(opts, `${name}: ${err.message}`));
  emit({ event: 'connected', client: name, url, protocolVersion: opts.protocolVersion });
  return { name, client, received };
}

async function subscribe(sub, filter, qos) {
  const granted = await sub.client.subscribeAsync(filter, { qos });
  const codes = granted.map((g) => g.qos);
  if (codes.some((c) => c >= 0x80)) {
    throw new Error(`${sub.name}: SUBACK refused ${filter}: ${codes}`);
  }
  emit({ event: 'subscribed', client: sub.name, filter, granted: codes });
}

/** Waits until `count` messages arrived, or for `ms` milliseconds at most. */
async function waitFor(sub, count, ms) {
  const deadline = Date.now() + ms;
  while (sub.received.length < count && Date.now() < deadline) {
    await sleep(20);
  }
  return sub.received.slice();
}

function equal(problems, got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) problems.push(`${what}: got ${g}, want ${w}`);
}

/** Publish on one URL at each QoS, receive on another (or the same) URL, in order. */
async function pubsub(opts, problems, observed) {
  const topic = opts.topic || unique('mqttjs/pubsub');
  const sub = await connect(opts, 'sub', opts.subUrl);
  await subscribe(sub, topic, 2);
  const pub = await connect(opts, 'pub', opts.pubUrl);
  const sent = [];
  for (const qos of opts.qos) {
    for (let i = 0; i < opts.count; i += 1) {
      const payload = `q${qos}-${i}`;
      await pub.client.publishAsync(topic, payload, { qos });
      sent.push([payload, qos]);
    }
  }
  const got = await waitFor(sub, sent.length, opts.stepTimeoutMs);
  // Give a duplicate the chance to show up.
  await sleep(opts.quietMs);
  observed.received = sub.received.length;
  equal(problems, sub.received.map((m) => [m.payload, m.qos]), sent, 'messages (payload, qos)');
  equal(problems, [...new Set(got.map((m) => m.topic))], [topic], 'topics');
  await pub.client.endAsync();
  await sub.client.endAsync();
}

/** A retained message reaches a later subscriber; an empty retained publish clears it. */
async function retained(opts, problems, observed) {
  const topic = opts.topic || unique('mqttjs/retained');
  const pub = await connect(opts, 'pub', opts.pubUrl);
  await pub.client.publishAsync(topic, 'kept', { qos: 1, retain: true });

  const late = await connect(opts, 'late', opts.subUrl);
  await subscribe(late, topic, 1);
  const got = await waitFor(late, 1, opts.stepTimeoutMs);
  observed.late = got;
  equal(problems, got.map((m) => [m.payload, m.retain]), [['kept', true]], 'retained delivery');
  // A live message to an existing subscriber carries retain = false (Retain As Published off).
  await pub.client.publishAsync(topic, 'live', { qos: 1, retain: true });
  const live = await waitFor(late, 2, opts.stepTimeoutMs);
  equal(problems, live.slice(1).map((m) => [m.payload, m.retain]), [['live', false]], 'live delivery');

  await pub.client.publishAsync(topic, '', { qos: 1, retain: true });
  const after = await connect(opts, 'after-clear', opts.subUrl);
  await subscribe(after, topic, 1);
  await sleep(opts.quietMs);
  observed.after_clear = after.received;
  equal(problems, after.received, [], 'messages after clearing the retained message');
  for (const c of [pub, late, after]) await c.client.endAsync();
}

const JOURNEYS = { pubsub, retained };

function parseOptions(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      'pub-url': { type: 'string' },
      'sub-url': { type: 'string' },
      'protocol-version': { type: 'string', default: '5' },
      topic: { type: 'string' },
      ca: { type: 'string' },
      qos: { type: 'string', default: '0,1,2' },
      count: { type: 'string', default: '3' },
      quiet: { type: 'string', default: '0.5' },
      'step-timeout': { type: 'string', default: '5' },
      timeout: { type: 'string', default: process.env.JOURNEY_TIMEOUT || '20' },
    },
  });
  const journey = positionals[0];
  if (!JOURNEYS[journey]) {
    throw new Error(`usage: mqttjs_journeys.js (${Object.keys(JOURNEYS).join('|')}) --url URL ...`);
  }
  const url = values.url || process.env.MQTT_URL || 'mqtt://127.0.0.1:1883';
  return {
    journey,
    pubUrl: values['pub-url'] || url,
    subUrl: values['sub-url'] || url,
    protocolVersion: Number(values['protocol-version']),
    topic: values.topic,
    ca: values.ca,
    qos: values.qos.split(',').map(Number),
    count: Number(values.count),
    quietMs: Number(values.quiet) * 1000,
    stepTimeoutMs: Number(values['step-timeout']) * 1000,
    timeoutMs: Number(values.timeout) * 1000,
  };
}

async function main() {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    emit({ ok: false, error: err.message });
    process.exit(2);
  }
  const watchdog = setTimeout(
    () => fail(opts, `hard timeout after ${opts.timeoutMs / 1000} s`),
    opts.timeoutMs,
  );
  const problems = [];
  const observed = { pub_url: opts.pubUrl, sub_url: opts.subUrl, protocol_version: opts.protocolVersion };
  try {
    await JOURNEYS[opts.journey](opts, problems, observed);
  } catch (err) {
    fail(opts, err.message, observed);
  }
  clearTimeout(watchdog);
  emit({ journey: opts.journey, ok: problems.length === 0, problems, observed });
  process.exit(problems.length === 0 ? 0 : 1);
}

main();
