// The ES module build (`/sdk/v1.mjs`): the same API, no auto-init.
import { createMqChat } from './index.js';

export { ChatClient, ChatError } from './index.js';

const MqChat = createMqChat(new URL(import.meta.url).origin);
export const { createClient } = MqChat;
export default MqChat;
