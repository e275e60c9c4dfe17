// A visitor (not logged in) chats with the site's agent; identify() with
// a userHash verifies who they claim to be, per the project's mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mqttClient, serverApi, shadowTexts, until, userHash, scene } from './harness.mjs';

const { server, project, site, browser, onClose } = await scene();
const agent = await mqttClient(server, project, 'agent-ann');
onClose(() => agent.end());

const change = async (body) => {
  const [status, updated] = await serverApi(server, project, 'PATCH', '/api/v1/project', body);
  assert.equal(status, 200, JSON.stringify(updated));
  return updated;
};

async function visitorPage() {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (error) => console.error('visitor page error:', error.message));
  await page.goto(site.origin + '/');
  return page;
}

async function startVisitor(page, user) {
  await page.evaluate(
    ({ publicKey, user }) =>
      window.MqChat.init({
        publicKey,
        user,
        onReady: () => (window.seen.ready += 1),
        onError: (error) => window.seen.errors.push({ code: error.code, message: error.message }),
      }),
    { publicKey: project.public_key, user },
  );
  await until(page, () => window.seen.ready === 1 || window.seen.errors.length > 0);
}

test('visitors are refused until the project takes them', async () => {
  const page = await visitorPage();
  await startVisitor(page);
  const [error] = await page.evaluate(() => window.seen.errors);
  assert.equal(error.code, 'auth_required');
  await page.context().close();
});

test('a visitor opens a support conversation and the agent answers', async () => {
  await change({ visitors: true, allowed_origins: [site.origin] });
  const [status, marked] = await serverApi(server, project, 'PATCH', '/api/v1/users/agent-ann', { agent: true });
  assert.equal(status, 200);
  assert.equal(marked.agent, true);

  const page = await visitorPage();
  await startVisitor(page);
  assert.deepEqual(await page.evaluate(() => window.seen.errors), []);
  const visitorId = await page.evaluate(() => window.MqChat.client.user.id);
  assert.match(visitorId, /^visitor:[0-9a-f]{32}$/);

  await page.evaluate(() => window.MqChat.open());
  const opened = await agent.next((entry) => entry.body.type === 'conversation.created');
  const conversation = opened.body.data.conversation;
  assert.equal(conversation.type, 'support');
  assert.deepEqual([...conversation.member_ids].sort(), ['agent-ann', visitorId].sort());
  await agent.client.subscribeAsync(`chat/${project.project_id}/conv/${conversation.id}`, { qos: 1 });

  const composer = page.locator('[data-mqchat]').locator('textarea');
  await composer.fill('Where is my order?');
  await composer.press('Enter');
  const asked = await agent.next((entry) => entry.body.type === 'message.created' && entry.body.data.content === 'Where is my order?');
  assert.equal(asked.body.data.sender.id, visitorId);

  await agent.command('message.send', { conversation_id: conversation.id, content: 'On its way!' });
  await until(page, () => [...document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.message.theirs p')].some((p) => p.textContent === 'On its way!'));

  // The same browser comes back later: same visitor, same conversation.
  await page.reload();
  await startVisitor(page);
  assert.equal(await page.evaluate(() => window.MqChat.client.user.id), visitorId);
  await page.evaluate(() => window.MqChat.open());
  await until(page, () => document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.message').length === 2);
  assert.deepEqual(await shadowTexts(page, '.message p'), ['Where is my order?', 'On its way!']);
  await page.context().close();
});

test('identify() with the right userHash marks the visitor verified, a wrong one unverified (optional)', async () => {
  const updated = await change({ identity_verification: 'optional' });
  const secret = updated.identity_verification_secret;
  assert.match(secret, /^iv_/);

  const good = await visitorPage();
  await startVisitor(good, { userId: 'usr_123', name: 'Jane', email: 'jane@example.com', userHash: userHash(secret, 'usr_123') });
  assert.deepEqual(await good.evaluate(() => window.seen.errors), []);
  const goodId = await good.evaluate(() => window.MqChat.client.user.id);
  let [, user] = await serverApi(server, project, 'GET', `/api/v1/users/${goodId}`);
  assert.deepEqual([user.identified_as, user.identity_verified, user.name, user.email, user.visitor], ['usr_123', true, 'Jane', 'jane@example.com', true]);

  const wrong = await visitorPage();
  await startVisitor(wrong);
  const result = await wrong.evaluate(() => window.MqChat.identify({ userId: 'usr_123', userHash: 'ab'.repeat(32) }));
  assert.deepEqual(result.verified, false);
  const wrongId = await wrong.evaluate(() => window.MqChat.client.user.id);
  [, user] = await serverApi(server, project, 'GET', `/api/v1/users/${wrongId}`);
  assert.deepEqual([user.identified_as, user.identity_verified], ['usr_123', false]);
  await good.context().close();
  await wrong.context().close();
});

test('in required mode a wrong userHash is refused and the widget does not load', async () => {
  const updated = await change({ identity_verification: 'required' });
  const page = await visitorPage();
  await startVisitor(page, { userId: 'usr_9', userHash: userHash(updated.identity_verification_secret, 'usr_8') });
  const [error] = await page.evaluate(() => window.seen.errors);
  assert.equal(error.code, 'identity_not_verified');
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-mqchat]').length), 0);
  assert.equal(await page.evaluate(() => window.MqChat.client), null);

  const right = await visitorPage();
  await startVisitor(right, { userId: 'usr_9', userHash: userHash(updated.identity_verification_secret, 'usr_9') });
  assert.deepEqual(await right.evaluate(() => window.seen.errors), []);
  assert.equal(await right.evaluate(() => document.querySelectorAll('[data-mqchat]').length), 1);
  await page.context().close();
  await right.context().close();
});
