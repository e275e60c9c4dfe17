// Embedding: the script tag starts the widget by itself, from data-mqchat-*
// attributes or window.mqchatSettings (which wins); destroy() leaves no
// element, listener or socket behind; the ES module build works too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identityToken, serverApi, until, scene } from './harness.mjs';

let token;
const instrument = `<script>
  window.seen = { sockets: [] };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native { constructor(...args) { super(...args); window.seen.sockets.push(this); } };
</script>`;
const { server, project, site, browser } = await scene({
  pages: async (server, project) => {
    token = await identityToken(project, 'hana', { name: 'Hana' });
    const tag = (attributes) => `<script src="${server.url}/sdk/v1.js" ${attributes}></script>`;
    return {
      '/attributes': `<!doctype html><body>${instrument}${tag(`data-mqchat-public-key="${project.public_key}" data-mqchat-token="${token}" data-mqchat-locale="en"`)}</body>`,
      '/settings': `<!doctype html><body>${instrument}<script>window.mqchatSettings = { publicKey: "${project.public_key}", token: "${token}", locale: "fr" };</script>${tag(`data-mqchat-public-key="pk_wrong" data-mqchat-locale="en"`)}</body>`,
      '/strict-csp': `<!doctype html><head><meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src ${server.url}; connect-src ${server.url} ws://${server.ws}; img-src ${server.url}; style-src 'self'"></head><body>${tag(`data-mqchat-public-key="${project.public_key}" data-mqchat-token="${token}"`)}</body>`,
      '/inline': `<!doctype html><body><div id="chat" style="width: 400px; height: 500px"></div>${tag(`data-mqchat-public-key="${project.public_key}" data-mqchat-token="${token}" data-mqchat-container="#chat"`)}</body>`,
      '/blank': `<!doctype html><body>${instrument}</body>`,
      '/module': `<!doctype html><body>${instrument}<script type="module">
        import MqChat, { createClient } from "${server.url}/sdk/v1.mjs";
        const client = createClient({ publicKey: "${project.public_key}", token: "${token}" });
        client.on("ready", () => { window.seen.moduleReady = client.user.id; window.seen.sameApi = typeof MqChat.init; });
        client.connect();
      </script></body>`,
    };
  },
});

const launcherLabel = (page) => page.evaluate(() => document.querySelector('[data-mqchat]')?.shadowRoot.querySelector('.launcher')?.getAttribute('aria-label'));

test('the script tag starts the widget from its data attributes', async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/attributes');
  await until(page, () => window.MqChat?.client?.state === 'connected' && document.querySelector('[data-mqchat]'));
  assert.equal(await launcherLabel(page), 'Open chat');
  await page.context().close();
});

test('window.mqchatSettings takes precedence over the attributes', async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/settings');
  await until(page, () => window.MqChat?.client?.state === 'connected' && document.querySelector('[data-mqchat]'));
  assert.equal(await launcherLabel(page), 'Ouvrir la discussion');
  assert.equal(await page.evaluate(() => window.MqChat.client.user.id), 'hana');
  await page.context().close();
});

test('the project\'s widget look applies, and a container renders it inline', async () => {
  const [status] = await serverApi(server, project, 'PATCH', '/api/v1/project', {
    widget: { title: 'Talk to Hana\'s shop', primary_color: '#FF0000', placeholder: 'Ask us anything' },
  });
  assert.equal(status, 200);
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/inline');
  await until(page, () => window.MqChat?.client?.state === 'connected' && document.querySelector('#chat [data-mqchat]'));
  const look = await page.evaluate(() => {
    const root = document.querySelector('#chat [data-mqchat]').shadowRoot;
    return {
      launcher: root.querySelector('.launcher'),
      panelHidden: root.querySelector('.panel').hidden,
      title: root.querySelector('h2').textContent,
      header: getComputedStyle(root.querySelector('header')).backgroundColor,
      placeholder: root.querySelector('textarea').placeholder,
    };
  });
  assert.deepEqual(look, { launcher: null, panelHidden: false, title: "Talk to Hana's shop", header: 'rgb(255, 0, 0)', placeholder: 'Ask us anything' });
  await serverApi(server, project, 'PATCH', '/api/v1/project', { widget: { title: null, primary_color: null, placeholder: null } });
  await page.context().close();
});

test('a custom launcher icon replaces the default one', async () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="30" fill="orange"/></svg>';
  const response = await fetch(`${server.url}/api/v1/project/launcher-icon`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${project.secret_key}`, 'content-type': 'image/svg+xml' },
    body: svg,
  });
  assert.equal(response.status, 200);
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/attributes');
  await until(page, () => {
    const image = document.querySelector('[data-mqchat]')?.shadowRoot.querySelector('.launcher img.custom-icon');
    return image && image.complete && image.naturalWidth === 64;
  });
  assert.equal(await page.evaluate(() => document.querySelector('[data-mqchat]').shadowRoot.querySelector('.launcher svg')), null);
  await fetch(`${server.url}/api/v1/project/launcher-icon`, { method: 'DELETE', headers: { authorization: `Bearer ${project.secret_key}` } });
  await page.context().close();
});

test('the widget works and is styled under the strict CSP of docs/SDK.md', async () => {
  const page = await (await browser.newContext()).newPage();
  const violations = [];
  page.on('console', (message) => {
    if (/Content Security Policy/.test(message.text())) violations.push(message.text());
  });
  await page.goto(site.origin + '/strict-csp');
  await until(page, () => window.MqChat?.client?.state === 'connected' && document.querySelector('[data-mqchat]'));
  const radius = await page.evaluate(() => getComputedStyle(document.querySelector('[data-mqchat]').shadowRoot.querySelector('.launcher')).borderRadius);
  assert.equal(radius, '50%');
  assert.deepEqual(violations, []);
  await page.context().close();
});

test('destroy() leaves no element, listener or socket behind', async () => {
  const page = await (await browser.newContext()).newPage();
  const cdp = await page.context().newCDPSession(page);
  const listeners = async () => {
    let total = 0;
    for (const expression of ['window', 'document', 'document.body']) {
      const { result } = await cdp.send('Runtime.evaluate', { expression });
      total += (await cdp.send('DOMDebugger.getEventListeners', { objectId: result.objectId, depth: -1, pierce: true })).listeners.length;
    }
    return total;
  };
  // What the page has without the SDK (the test driver's own listeners).
  await page.goto(site.origin + '/blank');
  await until(page, () => document.readyState === 'complete');
  const baseline = await listeners();
  await page.goto(site.origin + '/attributes');
  await until(page, () => window.MqChat?.client?.state === 'connected');
  await page.evaluate(() => window.MqChat.open());
  assert.ok((await listeners()) > baseline, 'the widget listens to its own elements');
  await page.evaluate(() => window.MqChat.destroy());
  await until(page, () => window.seen.sockets.every((socket) => socket.readyState === WebSocket.CLOSED));
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-mqchat]').length), 0);
  assert.equal(await page.evaluate(() => window.seen.sockets.length), 1);
  assert.equal(await page.evaluate(() => window.MqChat.client), null);
  assert.equal(await listeners(), baseline);
  await page.context().close();
});

test('the ES module build gives a headless client', async () => {
  const [status] = await serverApi(server, project, 'GET', '/api/v1/project');
  assert.equal(status, 200);
  const page = await (await browser.newContext()).newPage();
  await page.goto(site.origin + '/module');
  await until(page, () => window.seen.moduleReady);
  assert.equal(await page.evaluate(() => window.seen.moduleReady), 'hana');
  assert.equal(await page.evaluate(() => window.seen.sameApi), 'function');
  assert.equal(await page.evaluate(() => document.querySelectorAll('[data-mqchat]').length), 0);
  await page.context().close();
});
