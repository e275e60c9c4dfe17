// The browser benchmark (run by scripts/bench-browser): bundle size beside
// mqtt.js's own browser build; time from MqChat.init to onReady in Chromium
// over LOADS page loads; CLIENTS headless clients in one page, each in its
// own conversation, sending for SECONDS: messages/s with every acknowledged
// message delivered back, and the page's JS heap per client — and the same
// workload from CLIENTS mqtt.js clients in Node, measured in the same run.
// Prints one JSON object.
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { createProject, identityToken, launchBrowser, mqttClient, pageServer, serverApi, startServer, widgetPage } from '../test/harness.mjs';

const LOADS = Number(process.env.LOADS || 50);
const CLIENTS = Number(process.env.CLIENTS || 200);
const SECONDS = Number(process.env.SECONDS || 20);
const IN_FLIGHT = Number(process.env.IN_FLIGHT || 4);

const size = (path) => {
  const bytes = readFileSync(path);
  return { raw: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
};
const require = createRequire(import.meta.url);
const results = {
  bundle: { 'v1.js': size('dist/v1.js'), 'v1.mjs': size('dist/v1.mjs'), 'mqtt.js dist/mqtt.min.js': size(require.resolve('mqtt/dist/mqtt.min')) },
};

const server = await startServer({ MQCHAT_LOG: 'warn,mqchat::app=info', MQCHAT_GATEWAY__MAX_PUBLISH_RATE: '0' });
const project = createProject();
const site = await pageServer({ '/': widgetPage(server) });
const browser = await launchBrowser();
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

try {
  // init → ready
  const token = await identityToken(project, 'loader');
  const context = await browser.newContext();
  const times = [];
  for (let i = 0; i < LOADS; i++) {
    const page = await context.newPage();
    await page.goto(site.origin + '/');
    times.push(
      await page.evaluate(
        ({ publicKey, token }) =>
          new Promise((resolve, reject) => {
            const start = performance.now();
            window.MqChat.init({ publicKey, token, onReady: () => resolve(performance.now() - start), onError: reject });
          }),
        { publicKey: project.public_key, token },
      ),
    );
    await page.close();
  }
  times.sort((a, b) => a - b);
  results.init_to_ready_ms = { loads: LOADS, p50: +percentile(times, 50).toFixed(1), p95: +percentile(times, 95).toFixed(1), max: +times.at(-1).toFixed(1) };

  // CLIENTS clients, one conversation each.
  const users = [];
  for (let i = 0; i < CLIENTS; i++) {
    const user = `bench-${i}`;
    const [status, conversation] = await serverApi(server, project, 'POST', '/api/v1/conversations', { type: 'group', member_ids: [user] });
    if (status !== 201) throw new Error(`conversation ${status}`);
    users.push({ user, conversation: conversation.id, token: await identityToken(project, user) });
  }

  const page = await context.newPage();
  await page.goto(site.origin + '/');
  const cdp = await context.newCDPSession(page);
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await cdp.send('Runtime.getHeapUsage')).usedSize;
  };
  const heapBefore = await heap();
  await page.evaluate(
    async ({ publicKey, users }) => {
      window.bench = await Promise.all(
        users.map(async ({ token, conversation }) => {
          const client = window.MqChat.createClient({ publicKey, token });
          const entry = { client, conversation, acked: 0, delivered: 0, failed: 0 };
          client.on('message.created', (message) => {
            if (message.status === 'sent') entry.delivered += 1;
          });
          await client.connect();
          return entry;
        }),
      );
    },
    { publicKey: project.public_key, users },
  );
  const heapClients = await heap();
  const browserRun = await page.evaluate(
    async ({ seconds, inFlight }) => {
      const until = performance.now() + seconds * 1000;
      const start = performance.now();
      const lane = async (entry) => {
        while (performance.now() < until) {
          try {
            await entry.client.sendMessage(entry.conversation, 'benchmark message');
            entry.acked += 1;
          } catch {
            entry.failed += 1;
          }
        }
      };
      await Promise.all(window.bench.flatMap((entry) => Array.from({ length: inFlight }, () => lane(entry))));
      const elapsed = (performance.now() - start) / 1000;
      const deadline = performance.now() + 10000;
      const sum = (key) => window.bench.reduce((total, entry) => total + entry[key], 0);
      while (sum('delivered') < sum('acked') && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      return { elapsed, acked: sum('acked'), delivered: sum('delivered'), failed: sum('failed') };
    },
    { seconds: SECONDS, inFlight: IN_FLIGHT },
  );
  results.browser_clients = {
    clients: CLIENTS,
    in_flight_per_client: IN_FLIGHT,
    seconds: +browserRun.elapsed.toFixed(1),
    messages_per_second: Math.round(browserRun.acked / browserRun.elapsed),
    acknowledged: browserRun.acked,
    delivered: browserRun.delivered,
    failed: browserRun.failed,
    heap_per_client_kib: +((heapClients - heapBefore) / CLIENTS / 1024).toFixed(1),
  };
  await page.evaluate(() => window.bench.forEach((entry) => entry.client.destroy()));
  await page.close();

  // The same workload from Node: mqtt.js over TCP, commands by hand.
  const node = await Promise.all(users.map(async ({ user, conversation }) => ({ conversation, peer: await mqttClient(server, project, user), acked: 0, delivered: 0 })));
  for (const entry of node) {
    await entry.peer.client.subscribeAsync(`chat/${project.project_id}/conv/${entry.conversation}`, { qos: 1 });
    entry.peer.client.on('message', (topic) => {
      if (topic.endsWith(entry.conversation)) entry.delivered += 1;
    });
  }
  const until = Date.now() + SECONDS * 1000;
  const start = Date.now();
  let n = 0;
  await Promise.all(
    node.flatMap((entry) =>
      Array.from({ length: IN_FLIGHT }, async () => {
        while (Date.now() < until) {
          await entry.peer.command('message.send', { conversation_id: entry.conversation, content: 'benchmark message', client_msg_id: `n${++n}` });
          entry.acked += 1;
        }
      }),
    ),
  );
  const elapsed = (Date.now() - start) / 1000;
  const sum = (key) => node.reduce((total, entry) => total + entry[key], 0);
  const deadline = Date.now() + 10000;
  while (sum('delivered') < sum('acked') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  results.node_mqttjs_clients = {
    clients: CLIENTS,
    in_flight_per_client: IN_FLIGHT,
    seconds: +elapsed.toFixed(1),
    messages_per_second: Math.round(sum('acked') / elapsed),
    acknowledged: sum('acked'),
    delivered: sum('delivered'),
  };
  await Promise.all(node.map((entry) => entry.peer.end()));
} finally {
  await browser.close();
  await site.close();
  await server.stop();
}
console.log(JSON.stringify(results, null, 2));
