// What the browser tests share: the real mqchat binary on loopback with the
// database the Rust test made (MQCHAT_BIN, MQCHAT_TEST_DATABASE_URL), a
// project made with its CLI, identity tokens signed as a site backend
// signs them (jose), a page server on another origin, Debian's Chromium
// driven by playwright-core, and mqtt.js as a stock client (agents).
import { after } from 'node:test';
import { spawn, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { chromium } from 'playwright-core';
import mqtt from 'mqtt';

export const PATIENCE_MS = 20000;
const BIN = required('MQCHAT_BIN');
const DATABASE_URL = required('MQCHAT_TEST_DATABASE_URL');

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: these tests are run by \`cargo nextest run --test e2e browser\``);
  return value;
}

/** The real server; `restart()` starts it again on the same ports. */
export async function startServer(environment = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mqchat-browser-'));
  const server = { dir, environment, child: null, http: null, ws: null, mqtt: null, log: [] };
  await launch(server, ['127.0.0.1:0', '127.0.0.1:0', '127.0.0.1:0']);
  server.url = `http://${server.http}`;
  server.stop = () => stop(server);
  server.restart = async () => {
    await stop(server);
    await launch(server, [server.mqtt, server.ws, server.http]);
  };
  return server;
}

// With MQCHAT_TEST_BROKER (set by the Rust test that started Mosquitto with
// mqchat's plugin, pointed at MQCHAT_TEST_HTTP_LISTEN), mqchat runs in
// external mode: clients and the SDK reach Mosquitto's listeners instead.
const BROKER = process.env.MQCHAT_TEST_BROKER && {
  url: process.env.MQCHAT_TEST_BROKER,
  mqtt: process.env.MQCHAT_TEST_BROKER_MQTT,
  ws: process.env.MQCHAT_TEST_BROKER_WS,
  http: process.env.MQCHAT_TEST_HTTP_LISTEN,
  secret: process.env.MQCHAT_TEST_PLATFORM_SECRET,
};

async function launch(server, [mqttListen, wsListen, httpListen]) {
  const args = BROKER
    ? ['--database-url', DATABASE_URL, 'serve', '--broker', BROKER.url, '--http-listen', BROKER.http]
    : ['--database-url', DATABASE_URL, 'serve', '--mqtt-listen', mqttListen, '--ws-listen', wsListen, '--http-listen', httpListen];
  const external = BROKER
    ? {
        MQCHAT_BROKER__PLATFORM_SECRET: BROKER.secret,
        MQCHAT_MQTT__PUBLIC_URL: `mqtt://${BROKER.mqtt}`,
        MQCHAT_WEBSOCKET__PUBLIC_URL: `ws://${BROKER.ws}/mqtt`,
      }
    : {};
  const child = spawn(BIN, args, {
    cwd: server.dir,
    env: { ...process.env, MQCHAT_LOG: 'info', NO_COLOR: '1', ...external, ...server.environment },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server.child = child;
  const lines = createInterface({ input: child.stderr });
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mqchat did not start:\n${server.log.join('\n')}`)), PATIENCE_MS);
    lines.on('line', (line) => {
      server.log.push(line);
      if (line.includes('mqchat listening')) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => reject(new Error(`mqchat exited (${code}):\n${server.log.join('\n')}`)));
  });
  const line = await listening;
  const address = (key) => line.match(new RegExp(`${key}=(\\S+)`))[1];
  server.mqtt = BROKER ? BROKER.mqtt : address('mqtt_addr');
  server.ws = BROKER ? BROKER.ws : address('websocket_addr');
  server.http = address('http_addr');
}

async function stop(server) {
  if (!server.child || server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = once(server.child, 'exit');
  server.child.kill('SIGKILL');
  await exited;
}

/**
 * What every browser test file starts from: the server (with `environment`),
 * a project, a site on another origin serving `pages(server, project)`
 * (default: the widget page at `/`) and a browser — all closed after the
 * file's tests, after whatever was handed to `onClose`.
 */
export async function scene({ environment = {}, pages } = {}) {
  const server = await startServer(environment);
  const project = createProject();
  const site = await pageServer(pages ? await pages(server, project) : { '/': widgetPage(server) });
  const browser = await launchBrowser();
  const closing = [];
  after(async () => {
    for (const close of closing.reverse()) await close();
    await browser.close();
    await site.close();
    await server.stop();
  });
  return { server, project, site, browser, onClose: (close) => closing.push(close) };
}

/** A project made with the CLI, as an operator does: {project_id, public_key, secret_key}. */
export function createProject() {
  const output = execFileSync(BIN, ['--database-url', DATABASE_URL, 'project', 'create', '--name', 'Browser'], { encoding: 'utf8' });
  return JSON.parse(output);
}

/** The server API with the project's secret key: [status, body]. */
export async function serverApi(server, project, method, path, body) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${project.secret_key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return [response.status, text ? JSON.parse(text) : null];
}

/** An identity token as the site's backend signs it. */
export function identityToken(project, sub, { name, ttlSeconds = 3600 } = {}) {
  const claims = name ? { name } : {};
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(new TextEncoder().encode(project.secret_key));
}

export function userHash(secret, userId) {
  return createHmac('sha256', secret).update(userId).digest('hex');
}

/** An HTTP server on another loopback port (another origin) serving `pages` by path. */
export async function pageServer(pages) {
  const server = createServer((request, response) => {
    const page = pages[new URL(request.url, 'http://x').pathname];
    if (!page) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** Debian's Chromium, headless, with nothing reaching outside loopback. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A page that loads the SDK from the server and exposes its callbacks' results on `window.seen`. */
export function widgetPage(server, body = '') {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shop</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script>window.seen = { errors: [], ready: 0, messages: [] };</script>
<script src="${server.url}/sdk/v1.js"></script></head><body><h1>A shop</h1>${body}</body></html>`;
}

/** Starts the widget in `page` with a getToken that fetches a token from the test. */
export async function initWidget(page, project, tokenFor, extra = {}) {
  await page.exposeFunction('testToken', tokenFor);
  await page.evaluate(
    ({ publicKey, extra }) =>
      window.MqChat.init({
        publicKey,
        getToken: () => window.testToken(),
        onReady: () => (window.seen.ready += 1),
        onError: (error) => window.seen.errors.push({ code: error.code, message: error.message }),
        onMessage: (message) => window.seen.messages.push(message.content),
        ...extra,
      }),
    { publicKey: project.public_key, extra },
  );
}

/** Waits until `predicate` (run in the page with `arg`) is true. */
export function until(page, predicate, arg) {
  return page.waitForFunction(predicate, arg, { timeout: PATIENCE_MS, polling: 50 });
}

/** The text of the widget's shadow DOM matching `selector`. */
export function shadowTexts(page, selector) {
  return page.evaluate((selector) => {
    const host = document.querySelector('[data-mqchat]');
    if (!host) return null;
    return [...host.shadowRoot.querySelectorAll(selector)].map((element) => element.textContent);
  }, selector);
}

/** A stock MQTT client (mqtt.js over TCP), for agents and other users outside the browser. */
export async function mqttClient(server, project, sub) {
  const client = mqtt.connect(`mqtt://${server.mqtt}`, {
    username: project.public_key,
    password: await identityToken(project, sub, { name: sub }),
    clientId: `${sub}-${Math.random().toString(36).slice(2, 8)}`,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  await once(client, 'connect');
  const inbox = `chat/${project.project_id}/user/${sub}/inbox`;
  await client.subscribeAsync(inbox, { qos: 1 });
  const received = [];
  const waiters = [];
  client.on('message', (topic, payload) => {
    const entry = { topic, body: JSON.parse(payload.toString()) };
    received.push(entry);
    for (const waiter of [...waiters]) {
      if (waiter.match(entry)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(entry);
      }
    }
  });
  let n = 0;
  return {
    client,
    received,
    /** The first message (already received or to come) that `match` accepts. */
    next(match) {
      const found = received.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${sub} waited in vain`)), PATIENCE_MS);
        waiters.push({ match, resolve: (entry) => (clearTimeout(timer), resolve(entry)) });
      });
    },
    async command(op, fields) {
      const id = `${sub}-${++n}`;
      await client.publishAsync(`chat/${project.project_id}/user/${sub}/outbox`, JSON.stringify({ id, op, ...fields }), { qos: 1 });
      const reply = await this.next((entry) => entry.body.reply_to === id);
      if (!reply.body.ok) throw new Error(`${op}: ${JSON.stringify(reply.body.error)}`);
      return reply.body.data;
    },
    end: () => client.endAsync(),
  };
}
