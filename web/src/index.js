// `MqChat`: the widget's methods (init, open, close, toggle,
// openConversation, sendMessage, destroy) and the headless client,
// bound to the address the SDK was loaded from.
import { ChatClient } from './client.js';
import { ChatError, asChatError } from './errors.js';
import { Widget } from './widget.js';

export { ChatClient, ChatError };

export function createMqChat(scriptOrigin) {
  let client = null;
  let widget = null;
  let options = null;

  const withDefaults = (given) => ({ ...given, scriptOrigin: given.scriptOrigin || scriptOrigin });

  function report(error) {
    const chatError = asChatError(error);
    if (options && options.onError) options.onError(chatError);
    else if (typeof console !== 'undefined') console.error('mqchat:', chatError.code, chatError.message);
    return chatError;
  }

  const api = {
    version: '1',

    /** Mounts the widget: resolves once it is connected (`onReady`), or after `onError`. */
    async init(given) {
      api.destroy();
      options = withDefaults(given || {});
      const mine = new ChatClient(options);
      client = mine;
      try {
        await mine.connect();
        if (client !== mine) return;
        widget = new Widget(mine, options, mine.session.config).mount();
        if (options.onReady) options.onReady({ user: mine.user });
      } catch (error) {
        if (client === mine) {
          api.destroy();
          report(error);
        }
      }
    },

    open: () => widget && widget.open(),
    close: () => widget && widget.close(),
    toggle: () => widget && widget.toggle(),
    openConversation: (conversationId) => (widget ? widget.openConversation(conversationId) : Promise.resolve()),
    sendMessage(conversationId, text) {
      if (!client) return Promise.reject(new ChatError('not_initialized', 'call MqChat.init first'));
      return client.sendMessage(conversationId, text);
    },
    /** A visitor says who they are; in `required` mode a bad userHash unloads the widget. */
    async identify(user) {
      if (!client) throw new ChatError('not_initialized', 'call MqChat.init first');
      try {
        return await client.identify(user);
      } catch (error) {
        if (error.code === 'identity_not_verified') {
          const reported = report(error);
          api.destroy();
          throw reported;
        }
        throw error;
      }
    },
    on(event, handler) {
      if (!client) throw new ChatError('not_initialized', 'call MqChat.init first');
      return client.on(event, handler);
    },
    get client() {
      return client;
    },
    /** Removes the widget, its connection and every timer and handler. */
    destroy() {
      if (widget) widget.destroy();
      if (client) client.destroy();
      widget = null;
      client = null;
    },
    /** A headless client: no UI, every command and event (call `connect()`). */
    createClient: (given) => new ChatClient(withDefaults(given || {})),
  };
  return api;
}
