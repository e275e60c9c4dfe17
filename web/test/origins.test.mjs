// A page whose origin the project does not allow gets nothing: the
// preflight and the WebSocket are refused, and the widget says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { identityToken, initWidget, pageServer, serverApi, until, widgetPage, scene } from './harness.mjs';

const { server, project, site: allowed, browser, onClose } = await scene();
const refused = await pageServer({ '/': widgetPage(server) });
onClose(() => refused.close());
const [status] = await serverApi(server, project, 'PATCH', '/api/v1/project', { allowed_origins: [allowed.origin] });
assert.equal(status, 200);

const preflight = (origin) =>
  fetch(`${server.url}/api/v1/sdk/init`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, x-public-key' },
  });

test('the preflight is granted to the allowed origin only', async () => {
  const granted = await preflight(allowed.origin);
  assert.equal(granted.status, 204);
  assert.equal(granted.headers.get('access-control-allow-origin'), allowed.origin);
  assert.match(granted.headers.get('access-control-allow-headers'), /x-public-key/);
  const denied = await preflight(refused.origin);
  assert.equal(denied.status, 403);
  assert.equal(denied.headers.get('access-control-allow-origin'), null);
});

test('a request from another origin is refused before it is handled', async () => {
  const response = await fetch(`${server.url}/api/v1/sdk/init`, {
    method: 'POST',
    headers: { origin: refused.origin, 'x-public-key': project.public_key, authorization: `Bearer ${await identityToken(project, 'eve')}` },
  });
  assert.equal(response.status, 403);
  assert.equal(response.headers.get('access-control-allow-origin'), null);
  assert.equal((await response.json()).error.code, 'origin_not_allowed');
});

test('the widget on a refused origin reports it through onError and mounts nothing', async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(refused.origin + '/');
  await initWidget(page, project, () => identityToken(project, 'eve'));
  await until(page, () => window.seen.errors.length > 0);
  const [error] = await page.evaluate(() => window.seen.errors);
  assert.equal(error.code, 'origin_not_allowed');
  assert.match(error.message, new RegExp(refused.origin.replace(/[.:/]/g, '\\$&')));
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-mqchat]').length), 0);
  // The browser itself refuses the API to this page: its preflight fails.
  const blocked = await page.evaluate(async ({ url, key }) => {
    try {
      await fetch(`${url}/api/v1/sdk/init`, { method: 'POST', headers: { 'x-public-key': key, authorization: 'Bearer x' } });
      return 'answered';
    } catch (error) {
      return error.name;
    }
  }, { url: server.url, key: project.public_key });
  assert.equal(blocked, 'TypeError');
});

test('a WebSocket from a refused origin is not authorized, from the allowed one it is', async () => {
  const connect = async (origin) => {
    const client = mqtt.connect(`ws://${server.ws}/mqtt`, {
      username: project.public_key,
      password: await identityToken(project, 'eve'),
      protocolVersion: 4,
      reconnectPeriod: 0,
      wsOptions: { headers: { origin } },
    });
    return new Promise((resolve) => {
      client.once('connect', () => (client.end(true), resolve('connected')));
      client.once('error', (error) => (client.end(true), resolve(`refused ${error.code}`)));
    });
  };
  assert.equal(await connect(refused.origin), 'refused 5');
  assert.equal(await connect(allowed.origin), 'connected');
});
