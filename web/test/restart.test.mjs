// The server restarts while a widget is open: the widget reconnects and
// shows what was sent meanwhile, each message once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identityToken, initWidget, serverApi, shadowTexts, until, scene } from './harness.mjs';

const { server, project, site, browser } = await scene();

const post = (conversationId, content) =>
  serverApi(server, project, 'POST', `/api/v1/conversations/${conversationId}/messages`, { content, sender_id: 'gus' });

test('after a restart the widget shows the messages sent meanwhile, each once', async () => {
  const [, conversation] = await serverApi(server, project, 'POST', '/api/v1/conversations', { type: 'direct', member_ids: ['fay', 'gus'] });
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/');
  await initWidget(page, project, () => identityToken(project, 'fay', { name: 'Fay' }));
  await until(page, () => window.seen.ready === 1);
  await page.evaluate((id) => window.MqChat.openConversation(id), conversation.id);
  await post(conversation.id, 'before');
  await until(page, () => window.seen.messages.includes('before'));

  await server.stop();
  await until(page, () => window.MqChat.client.state === 'reconnecting');
  await until(page, () => !document.querySelector('[data-mqchat]').shadowRoot.querySelector('.banner').hidden);
  // The page stays offline while the server is back and messages are sent:
  // they can only reach it through history.sync after the reconnect.
  await page.context().setOffline(true);
  await server.restart();
  for (const content of ['one', 'two', 'three']) assert.equal((await post(conversation.id, content))[0], 201);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await page.evaluate(() => window.MqChat.client.state), 'reconnecting');
  await page.context().setOffline(false);

  await until(page, () => window.MqChat.client.state === 'connected');
  await until(page, () => window.seen.messages.includes('three'));
  await post(conversation.id, 'after');
  await until(page, () => window.seen.messages.includes('after'));
  assert.deepEqual(await page.evaluate(() => window.seen.messages), ['before', 'one', 'two', 'three', 'after']);
  assert.deepEqual(await shadowTexts(page, '.message p'), ['before', 'one', 'two', 'three', 'after']);
  assert.equal(await page.evaluate(() => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.banner').hidden), true);
});
