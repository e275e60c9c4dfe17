// mqtt.js 5 as an MQTT 5 client (protocolVersion 5, in Node), over TCP and
// WebSocket: reason codes per refused filter and publish, a command
// answered on its response topic with its correlation data, and a 3.1.1
// member (mqtt.js in 3.1.1 mode) seeing what the MQTT 5 client sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import mqtt from 'mqtt';
import { startServer, createProject, serverApi, identityToken, mqttClient, PATIENCE_MS } from './harness.mjs';

const server = await startServer();
const project = createProject();
after(() => server.stop());

const [status, conversation] = await serverApi(server, project, 'POST', '/api/v1/conversations', {
  type: 'group',
  member_ids: ['alice', 'bob'],
});
assert.equal(status, 201);
const conversationTopic = `chat/${project.project_id}/conv/${conversation.id}`;

async function within(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} in time`)), PATIENCE_MS);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

for (const transport of ['mqtt', 'ws']) {
  test(`mqtt.js in MQTT 5 mode over ${transport}`, async () => {
    const url = transport === 'mqtt' ? `mqtt://${server.mqtt}` : `ws://${server.ws}/mqtt`;
    const alice = mqtt.connect(url, {
      protocolVersion: 5,
      username: project.public_key,
      password: await identityToken(project, 'alice', { name: 'Alice' }),
      clientId: `alice-v5-${transport}`,
      reconnectPeriod: 0,
      properties: { topicAliasMaximum: 4 },
    });
    const [connack] = await within(once(alice, 'connect'), 'CONNACK');
    assert.equal(connack.properties.topicAliasMaximum, 10);
    const bob = await mqttClient(server, project, 'bob');
    await bob.client.subscribeAsync(conversationTopic, { qos: 1 });
    try {
      const replies = `chat/${project.project_id}/user/alice/inbox/replies`;
      const granted = await alice.subscribeAsync(replies, { qos: 1 });
      assert.deepEqual(granted.map((grant) => grant.qos), [1]);
      await assert.rejects(
        alice.subscribeAsync('#', { qos: 1 }),
        (error) => error.packet?.granted?.[0] === 135 && /Not authorized/.test(error.message),
        'SUBACK 0x87 for a refused filter',
      );

      await assert.rejects(
        alice.publishAsync(conversationTopic, 'forged', { qos: 1 }),
        (error) => error.code === 135,
        'PUBACK 0x87 for a publish the ACL refuses',
      );

      const reply = new Promise((resolve) => alice.on('message', (topic, payload, packet) => topic === replies && resolve({ payload, packet })));
      const correlationData = Buffer.from(`req-${transport}`);
      const command = { id: `send-${transport}`, op: 'message.send', conversation_id: conversation.id, content: `hello over ${transport}` };
      await alice.publishAsync(`chat/${project.project_id}/user/alice/outbox`, JSON.stringify(command), {
        qos: 1,
        properties: { responseTopic: replies, correlationData },
      });
      const { payload, packet } = await within(reply, 'reply');
      assert.deepEqual(packet.properties.correlationData, correlationData);
      const body = JSON.parse(payload.toString());
      assert.equal(body.ok, true, JSON.stringify(body));
      assert.equal(body.reply_to, command.id);

      const created = await bob.next((entry) => entry.topic === conversationTopic && entry.body.data?.content === command.content);
      assert.equal(created.body.data.sender.id, 'alice');
    } finally {
      alice.end(true);
      bob.client.end(true);
    }
  });
}
