// Compiled by `npm run check` (never shipped): the declarations must
// type-check as a site's TypeScript would use them.
import MqChat, { type ChatClient, type Message } from './v1';

async function example(client: ChatClient): Promise<Message> {
  client.on('message.created', (message) => message.content.toUpperCase());
  client.on('typing', (typing) => typing.expires_at);
  client.on('connection', (state) => state === 'reconnecting');
  const conversation = await client.openSupport();
  return client.sendMessage(conversation.id, { content: 'hi', client_msg_id: 'c1' });
}

MqChat.init({ publicKey: 'pk_x', getToken: async () => 'jwt', container: '#chat', onError: (error) => error.code });
window.MqChat.open();
void example(MqChat.createClient({ publicKey: 'pk_x', token: 'jwt' }));
