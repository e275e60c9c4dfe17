// mqtt.js over WebSocket, reduced to what the client needs: connect with
// the session token, resubscribe after reconnects, promises for
// subscribe/publish, and a way to swap in a renewed token. Each connection
// announces the device online on the user's status topic and leaves a will
// saying offline, with the same epoch (the time it connected): presence
// works on any broker (docs/PROTOCOL.md §4).
import clientModule from 'mqtt/lib/client';
import { browserStreamBuilder } from 'mqtt/lib/connect/ws';

// mqtt.js's client module is CommonJS with `exports.default`; imported from
// an ES module package it arrives as the whole `exports` object. Only the
// client and its WebSocket stream are bundled: no TCP, TLS or SOCKS code.
const MqttClient = clientModule.default;

// Background tabs run timers about once a minute; the server cuts after
// 1.5x the keep-alive, so 60 s survives them.
const KEEPALIVE_SECS = 60;
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30000;

export function connectMqtt(session, handlers) {
  const url = new URL(session.mqtt.websocket_url);
  const options = {
    protocol: url.protocol === 'wss:' ? 'wss' : 'ws',
    hostname: url.hostname,
    host: url.hostname,
    port: Number(url.port) || (url.protocol === 'wss:' ? 443 : 80),
    path: url.pathname || '/mqtt',
    protocolVersion: 4,
    clean: true,
    clientId: 'web-' + Math.random().toString(36).slice(2, 12),
    username: session.mqtt.username,
    password: session.mqtt.password,
    keepalive: KEEPALIVE_SECS,
    reconnectPeriod: RECONNECT_MIN_MS,
    connectTimeout: 10000,
    resubscribe: true,
    // Native timers: worker timers are left out of the bundle (size).
    timerVariant: 'native',
    browserBufferSize: 512 * 1024,
  };
  const statusTopic = session.mqtt.topics && session.mqtt.topics.status;
  const status = (state, epoch) => JSON.stringify({ status: state, epoch, device: options.clientId });
  let epoch = 0;
  // The builder runs on every (re)connect, with the options as they are then
  // (a renewed token included); each connection gets a newer epoch and the
  // will that goes with it.
  const client = new MqttClient((self) => {
    epoch = Math.max(Date.now(), epoch + 1);
    if (statusTopic) self.options.will = { topic: statusTopic, payload: status('offline', epoch), qos: 1, retain: false };
    return browserStreamBuilder(self, self.options);
  }, options);
  let failures = 0;
  let ended = false;
  client.on('connect', () => {
    failures = 0;
    client.options.reconnectPeriod = RECONNECT_MIN_MS;
    if (statusTopic) client.publish(statusTopic, status('online', epoch), { qos: 1 });
    handlers.onConnect();
  });
  client.on('reconnect', () => {
    // Exponential back-off with jitter, so a restarted server is not
    // stormed by every page at once.
    failures += 1;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** failures);
    client.options.reconnectPeriod = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    handlers.onState('reconnecting');
  });
  client.on('close', () => {
    if (!ended) handlers.onState('reconnecting');
  });
  client.on('message', (topic, payload) => handlers.onMessage(topic, new TextDecoder().decode(payload)));
  client.on('error', (error) => {
    // CONNACK 4 (bad credentials) and 5 (not authorized: origin, will).
    const code = error && error.code === 4 ? 'auth' : error && error.code === 5 ? 'not_authorized' : 'connection';
    const wrapped = new Error(error && error.message ? error.message : String(error));
    wrapped.code = code;
    handlers.onRefused(wrapped);
  });

  const settle = (resolve, reject) => (error, granted) => {
    if (error) return reject(error);
    if (Array.isArray(granted) && granted.some((grant) => grant.qos === 128)) {
      const refused = new Error('a subscription was refused');
      refused.code = 'subscription_refused';
      return reject(refused);
    }
    resolve(granted);
  };
  return {
    subscribe(filters) {
      return new Promise((resolve, reject) => client.subscribe(filters, { qos: 1 }, settle(resolve, reject)));
    },
    unsubscribe(filters) {
      return new Promise((resolve, reject) => client.unsubscribe(filters, (error) => (error ? reject(error) : resolve())));
    },
    publish(topic, payload, qos) {
      return new Promise((resolve, reject) => client.publish(topic, payload, { qos }, (error) => (error ? reject(error) : resolve())));
    },
    /** A renewed session token: reconnect with it before the old one ends. */
    renew(session) {
      client.options.password = session.mqtt.password;
      if (client.connected) client.end(false, {}, () => client.reconnect());
    },
    end() {
      ended = true;
      client.end(true);
    },
  };
}
