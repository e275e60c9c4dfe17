// Sessions outlive their first token: the widget renews its session token
// before it expires (server cap of 8 s here, so renewal comes at 6 s) and
// keeps working; a session token can never buy another session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identityToken, initWidget, mqttClient, serverApi, until, scene } from './harness.mjs';

const SESSION_SECONDS = 8;
const { server, project, site, browser } = await scene({ environment: { MQCHAT_SESSION__TTL: `${SESSION_SECONDS}s` } });

test('the widget keeps working past its first session token, renewing through getToken', async () => {
  const [, conversation] = await serverApi(server, project, 'POST', '/api/v1/conversations', { type: 'direct', member_ids: ['dana', 'erin'] });
  const erin = await mqttClient(server, project, 'erin');
  await erin.client.subscribeAsync(`chat/${project.project_id}/conv/${conversation.id}`, { qos: 1 });
  const page = await (await browser.newContext()).newPage();
  let tokens = 0;
  await page.goto(site.origin + '/');
  await initWidget(page, project, () => {
    tokens += 1;
    return identityToken(project, 'dana', { name: 'Dana' });
  });
  await until(page, () => window.seen.ready === 1);
  await page.evaluate(() => window.MqChat.on('session.renewed', () => (window.seen.renewedAt ??= Date.now())));
  const firstExpiry = await page.evaluate(() => window.MqChat.client.session.current.expires_at);
  // Wait until the first session token has expired on the server's clock.
  while (Date.now() / 1000 < firstExpiry + 2) await new Promise((resolve) => setTimeout(resolve, 250));
  assert.ok(tokens >= 2, `getToken called ${tokens} times`);
  // Renewed ahead of time (a quarter of the lifetime left), not after a refusal.
  const renewedAt = await page.evaluate(() => window.seen.renewedAt);
  assert.ok(renewedAt / 1000 < firstExpiry, `renewed at ${renewedAt / 1000}, first token expired at ${firstExpiry}`);
  assert.ok((await page.evaluate(() => window.MqChat.client.session.current.expires_at)) > firstExpiry);
  await until(page, () => window.MqChat.client.state === 'connected');
  const sent = await page.evaluate((id) => window.MqChat.sendMessage(id, 'still here').then((message) => message.status), conversation.id);
  assert.equal(sent, 'sent');
  await erin.next((entry) => entry.body.type === 'message.created' && entry.body.data.content === 'still here');
  // And messages still arrive in the page.
  await erin.command('message.send', { conversation_id: conversation.id, content: 'welcome back' });
  await until(page, () => window.seen.messages.includes('welcome back'));
  assert.deepEqual(await page.evaluate(() => window.seen.errors), []);
  await erin.end();
});

test('a session token presented to sdk/init is refused', async () => {
  const init = (token) =>
    fetch(`${server.url}/api/v1/sdk/init`, { method: 'POST', headers: { 'x-public-key': project.public_key, authorization: `Bearer ${token}` } });
  const first = await init(await identityToken(project, 'dana'));
  assert.equal(first.status, 200);
  const session = (await first.json()).data.session_token;
  const again = await init(session);
  assert.equal(again.status, 401);
  const body = await again.json();
  assert.equal(body.error.code, 'invalid_token');
  assert.match(body.error.message, /session token/);
});
