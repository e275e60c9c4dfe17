// The script-tag build (`/sdk/v1.js`): `window.MqChat`, and auto-init from
// `window.mqchatSettings` or the script's `data-mqchat-*` attributes (the
// settings object wins where both give a value).
import { createMqChat } from './index.js';

const script = typeof document !== 'undefined' ? document.currentScript : null;
const scriptOrigin = script && script.src ? new URL(script.src).origin : undefined;
const MqChat = createMqChat(scriptOrigin);
window.MqChat = MqChat;

const ATTRIBUTES = {
  publicKey: 'data-mqchat-public-key',
  token: 'data-mqchat-token',
  apiUrl: 'data-mqchat-api-url',
  container: 'data-mqchat-container',
  locale: 'data-mqchat-locale',
};

function settingsFromAttributes() {
  const settings = {};
  if (!script) return settings;
  for (const [key, attribute] of Object.entries(ATTRIBUTES)) {
    const value = script.getAttribute(attribute);
    if (value) settings[key] = value;
  }
  return settings;
}

const settings = { ...settingsFromAttributes(), ...(window.mqchatSettings || {}) };
if (settings.publicKey) {
  const start = () => MqChat.init(settings);
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start, { once: true });
  else start();
}
