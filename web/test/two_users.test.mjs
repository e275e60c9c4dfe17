// Two people on a site served from another origin chat through the widget:
// a message arrives, typing shows and clears, the unread badge counts,
// an edit and a reaction reach the other side, and presence follows the
// tabs. Run against the embedded broker, and against Mosquitto with
// mqchat's plugin (the Rust test sets MQCHAT_TEST_BROKER).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { identityToken, initWidget, serverApi, shadowTexts, until, scene } from './harness.mjs';

const { server, project, site, browser } = await scene();

test('two users chat through the widget on an allowed origin', async () => {
  const [status] = await serverApi(server, project, 'PATCH', '/api/v1/project', { allowed_origins: [site.origin] });
  assert.equal(status, 200);
  const [created, conversation] = await serverApi(server, project, 'POST', '/api/v1/conversations', {
    type: 'direct',
    member_ids: ['alice', 'bob'],
  });
  assert.equal(created, 201);

  const open = async (sub, name) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (error) => console.error(`${sub} page error:`, error.message));
    await page.goto(site.origin + '/');
    await initWidget(page, project, () => identityToken(project, sub, { name }));
    await until(page, () => window.seen.ready === 1 || window.seen.errors.length > 0);
    assert.deepEqual(await page.evaluate(() => window.seen.errors), []);
    return page;
  };
  const alice = await open('alice', 'Alice');
  const bob = await open('bob', 'Bob');

  // Alice opens the conversation and types: Bob, looking at it, sees it.
  await bob.evaluate((id) => window.MqChat.openConversation(id), conversation.id);
  await alice.evaluate((id) => window.MqChat.openConversation(id), conversation.id);
  // Each sees the other online (retained presence of a direct conversation's peer).
  await until(bob, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.presence.online')?.textContent === 'online');
  const shadow = (page, selector) => page.locator('[data-mqchat]').locator(selector);
  await shadow(alice, 'textarea').pressSequentially('Hel');
  await until(bob, () => /Alice is typing/.test(document.querySelector('[data-mqchat]').shadowRoot.querySelector('.typing').textContent));

  // Sending clears the indicator at once and delivers the message.
  await shadow(alice, 'textarea').pressSequentially('lo Bob');
  await shadow(alice, 'textarea').press('Enter');
  await until(bob, () => [...document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.message p')].some((p) => p.textContent === 'Hello Bob'));
  await until(bob, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.typing').textContent === '');
  assert.deepEqual(await bob.evaluate(() => window.seen.messages), ['Hello Bob']);
  // Alice's own copy is confirmed (no longer pending), shown once.
  await until(alice, () => document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.message.mine.sent').length === 1);
  assert.deepEqual(await shadowTexts(alice, '.message p'), ['Hello Bob']);

  // Bob closes the panel; Alice's next message shows on his launcher's badge.
  await bob.evaluate(() => window.MqChat.close());
  await alice.evaluate((id) => window.MqChat.sendMessage(id, 'Are you there?'), conversation.id);
  await until(bob, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.badge').textContent === '1');
  assert.equal(await bob.evaluate(() => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.badge').hidden), false);
  // Opening it marks the conversation read and the badge goes away.
  await shadow(bob, '.launcher').click();
  await until(bob, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.badge').hidden);

  // Alice edits her first message; Bob sees the new text marked edited.
  await shadow(alice, '.message.mine .action:has-text("Edit")').first().click();
  await shadow(alice, 'textarea').fill('Hello, Bob!');
  await shadow(alice, 'textarea').press('Enter');
  await until(bob, () => {
    const rows = [...document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.message')];
    return rows.some((row) => row.querySelector('p')?.textContent === 'Hello, Bob!' && row.querySelector('.edited'));
  });

  // Bob reacts; Alice sees the reaction counted.
  await shadow(bob, '.message.theirs .action[aria-label="React with 👍"]').first().click();
  await until(alice, () => [...document.querySelector('[data-mqchat]').shadowRoot.querySelectorAll('.reaction')].some((chip) => chip.textContent === '👍 1'));

  // A picture: uploaded from the page, shown inline on the other side.
  await alice.evaluate(async (id) => {
    const png = Uint8Array.from(atob('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='), (c) => c.charCodeAt(0));
    await window.MqChat.client.sendMessageWithAttachments(id, 'a dot', [new File([png], 'dot.png', { type: 'image/png' })]);
  }, conversation.id);
  await until(bob, () => {
    const image = document.querySelector('[data-mqchat]').shadowRoot.querySelector('img.image[alt="dot.png"]');
    return image && image.complete && image.naturalWidth === 1;
  });

  if (process.env.MQCHAT_SCREENSHOTS) {
    mkdirSync(process.env.MQCHAT_SCREENSHOTS, { recursive: true });
    await alice.setViewportSize({ width: 1280, height: 800 });
    await alice.screenshot({ path: `${process.env.MQCHAT_SCREENSHOTS}/widget-desktop.png` });
    await bob.setViewportSize({ width: 360, height: 740 });
    await bob.screenshot({ path: `${process.env.MQCHAT_SCREENSHOTS}/widget-phone.png` });
  }

  // Alice's tab goes away: Bob sees her offline.
  await alice.context().close();
  await until(bob, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.presence.offline')?.textContent === 'offline');
});

test('the widget answers the keyboard: Escape closes and focus returns to the launcher', async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  await page.goto(site.origin + '/');
  await initWidget(page, project, () => identityToken(project, 'carol', { name: 'Carol' }));
  await until(page, () => window.seen.ready === 1);
  const launcher = page.locator('[data-mqchat]').locator('.launcher');
  await launcher.focus();
  await page.keyboard.press('Enter');
  await until(page, () => !document.querySelector('[data-mqchat]').shadowRoot.querySelector('.panel').hidden);
  // On a phone the open panel fills the viewport.
  const box = await page.locator('[data-mqchat]').locator('.panel').boundingBox();
  assert.equal(Math.round(box.width), 360);
  await page.keyboard.press('Escape');
  await until(page, () => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.panel').hidden);
  assert.equal(await page.evaluate(() => document.querySelector('[data-mqchat]').shadowRoot.activeElement?.className), 'launcher');
  await context.close();
});
