// The headless client: a session from mqchat's HTTP API, then the MQTT
// contract of docs/PROTOCOL.md over WebSocket (mqtt.js). Every command is
// a method, every event an `on()` name; the widget is built on this alone.
import { ChatError, asChatError } from './errors.js';
import { connectMqtt } from './mqtt.js';
import { Session } from './session.js';

const COMMAND_TIMEOUT_MS = 15000;
const TYPING_REPEAT_MS = 3000;
const TYPING_IDLE_MS = 4000;
const SYNC_PAGE = 200;
const LIST_PAGE = 100;

let counter = 0;
const uniqueId = (prefix) => `${prefix}${Date.now().toString(36)}${(++counter).toString(36)}${Math.random().toString(36).slice(2, 8)}`;

export class ChatClient {
  constructor(options) {
    if (!options || !options.publicKey) throw new ChatError('invalid_options', 'publicKey is required');
    this.options = options;
    this.session = new Session(options, (event, data) => this._emit(event, data));
    this.state = 'disconnected';
    this.user = null;
    this.conversations = new Map();
    this._handlers = new Map();
    this._pending = new Map();
    this._lastSeq = new Map();
    this._readSeq = new Map();
    this._typingTimers = new Map();
    this._presence = new Set();
    this._mqtt = null;
    this._destroyed = false;
    this._connectedOnce = false;
  }

  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    const handlers = this._handlers.get(event);
    if (handlers) handlers.delete(handler);
  }

  _emit(event, data) {
    for (const handler of [...(this._handlers.get(event) || [])]) {
      try {
        handler(data);
      } catch (error) {
        if (event !== 'error') this._emit('error', new ChatError('handler_failed', `a handler of ${event} threw: ${error && error.message}`));
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('connection', state);
  }

  /** Signs in (identity token, getToken or visitor), connects, subscribes, lists conversations. */
  async connect() {
    this._setState('authenticating');
    const session = await this.session.start();
    if (this._destroyed) return;
    this.user = { id: session.user_id, visitor: session.visitor, projectId: session.project_id };
    this._topics = session.mqtt.topics;
    this._setState('connecting');
    this._mqtt = connectMqtt(session, {
      onConnect: () => this._onConnect(),
      onMessage: (topic, payload) => this._onMessage(topic, payload),
      onState: (state) => this._setState(state),
      onRefused: (error) => this._onRefused(error),
    });
    this.session.onRenewed = (fresh) => this._mqtt && this._mqtt.renew(fresh);
    await new Promise((resolve, reject) => {
      const stop = this.on('connection', (state) => {
        if (state === 'connected') {
          stop();
          resolve();
        }
      });
      this._failConnect = (error) => {
        stop();
        reject(error);
      };
    });
    this._failConnect = null;
  }

  async _onConnect() {
    const first = !this._connectedOnce;
    this._connectedOnce = true;
    try {
      await this._mqtt.subscribe([this._topics.inbox]);
      await this._loadConversations();
      if (!first) await this._resync();
      this._setState('connected');
      if (first) this._emit('ready', { user: this.user, conversations: [...this.conversations.values()] });
    } catch (error) {
      this._emit('error', asChatError(error));
    }
  }

  _onRefused(error) {
    if (this._failConnect && !this._connectedOnce) {
      this._failConnect(error);
      return;
    }
    if (error.code === 'auth') {
      // The token ran out while offline: renew and let mqtt.js retry.
      this.session.renew().catch((renewError) => this._emit('error', asChatError(renewError)));
      return;
    }
    this._emit('error', error);
  }

  async _loadConversations() {
    let page = await this.command('conversations.list', { limit: LIST_PAGE });
    const all = [...page.conversations];
    while (page.has_more && page.next) {
      page = await this.command('conversations.list', { limit: LIST_PAGE, before: page.next.before, before_id: page.next.before_id });
      all.push(...page.conversations);
    }
    for (const conversation of all) this._track(conversation);
    await this._subscribeConversations(all.map((c) => c.id));
    this._emit('unread.changed', { conversation_id: null, unread: null, total: page.total_unread ?? this.totalUnread() });
    return all;
  }

  _track(conversation) {
    const known = this.conversations.get(conversation.id) || {};
    const merged = { ...known, ...conversation };
    this.conversations.set(conversation.id, merged);
    if (!this._lastSeq.has(conversation.id)) {
      const last = conversation.last_message ? conversation.last_message.seq : conversation.last_seq;
      this._lastSeq.set(conversation.id, typeof last === 'number' ? last : 0);
    }
    // A conversation joined without a read position starts read.
    const read = typeof conversation.last_read_seq === 'number' ? conversation.last_read_seq : this._lastSeq.get(conversation.id);
    this._advanceRead(conversation.id, read);
    return merged;
  }

  /**
   * Unread counts follow from two positions the client orders itself: the
   * last seq it saw and the user's read position (which its own sends move
   * too, as on the server). A late snapshot from the server can then never
   * undo a newer message.
   */
  _advanceRead(conversationId, readSeq) {
    const read = Math.max(this._readSeq.get(conversationId) || 0, readSeq || 0);
    this._readSeq.set(conversationId, read);
    const conversation = this.conversations.get(conversationId);
    if (conversation) conversation.unread = Math.max(0, (this._lastSeq.get(conversationId) || 0) - read);
    return conversation ? conversation.unread : 0;
  }

  _subscribeConversations(ids) {
    if (!ids.length) return Promise.resolve();
    return this._mqtt.subscribe(ids.map((id) => this._conversationFilter(id)));
  }

  _conversationFilter(id) {
    return this._topics.conversation.replace('{conversation_id}', id) + '/#';
  }

  /** After a reconnect: every message missed in every conversation, each emitted once. */
  async _resync() {
    for (const id of this.conversations.keys()) {
      let more = true;
      while (more) {
        const page = await this.command('history.sync', { conversation_id: id, after_seq: this._lastSeq.get(id) || 0, limit: SYNC_PAGE });
        for (const message of page.messages) this._messageCreated(message);
        more = page.has_more && page.messages.length > 0;
      }
    }
  }

  _onMessage(topic, payload) {
    let body;
    try {
      body = JSON.parse(payload);
    } catch {
      return;
    }
    if (topic === this._topics.inbox) {
      if (body.reply_to !== undefined && !body.type) return this._onReply(body);
      return this._onUserEvent(body);
    }
    if (topic.includes('/presence/')) {
      if (body && body.user_id) this._emit('presence', body);
      return;
    }
    if (!body || typeof body.type !== 'string') return;
    const data = body.data || {};
    switch (body.type) {
      case 'message.created':
        return this._messageCreated(data);
      case 'message.updated':
      case 'message.deleted':
        return this._emit(body.type, data);
      case 'typing':
        if (data.user_id === this.user.id) return;
        return this._emit('typing', data);
      case 'member.joined':
      case 'member.left': {
        const conversation = this.conversations.get(data.conversation_id);
        if (conversation && Array.isArray(conversation.member_ids)) {
          const others = conversation.member_ids.filter((id) => id !== data.user_id);
          conversation.member_ids = body.type === 'member.joined' ? [...others, data.user_id] : others;
        }
        return this._emit(body.type, data);
      }
      case 'conversation.archived': {
        const conversation = this.conversations.get(data.conversation_id);
        if (conversation) conversation.archived = true;
        return this._emit(body.type, data);
      }
      default:
        return this._emit(body.type, data);
    }
  }

  _messageCreated(message) {
    const last = this._lastSeq.get(message.conversation_id) || 0;
    if (typeof message.seq === 'number') {
      if (message.seq <= last) return;
      this._lastSeq.set(message.conversation_id, message.seq);
    }
    const conversation = this.conversations.get(message.conversation_id);
    const mine = Boolean(message.sender && message.sender.id === this.user.id);
    if (conversation) {
      conversation.last_message = message;
      this._advanceRead(message.conversation_id, mine ? message.seq : 0);
    }
    const confirmed = { ...message, status: 'sent' };
    this._emit('message.created', confirmed);
    if (this.options.onMessage && !mine) this.options.onMessage(confirmed);
    if (!mine && conversation) {
      const position = { conversation_id: message.conversation_id, last_read_seq: this._readSeq.get(message.conversation_id) || 0 };
      this._emit('unread.changed', { ...position, unread: conversation.unread, total: this.totalUnread() });
    }
  }

  _onUserEvent(body) {
    const data = body.data || {};
    switch (body.type) {
      case 'conversation.created':
      case 'conversation.joined': {
        const conversation = this._track(data.conversation);
        this._subscribeConversations([conversation.id]).catch((error) => this._emit('error', asChatError(error)));
        return this._emit(body.type, conversation);
      }
      case 'conversation.left':
        this.conversations.delete(data.conversation_id);
        this._lastSeq.delete(data.conversation_id);
        return this._emit(body.type, data);
      case 'unread.changed': {
        // Another device of this user read: recount from its read position.
        const unread = typeof data.last_read_seq === 'number' ? this._advanceRead(data.conversation_id, data.last_read_seq) : data.unread;
        return this._emit('unread.changed', { ...data, unread, total: this.totalUnread() });
      }
      default:
        return this._emit(body.type, data);
    }
  }

  _onReply(body) {
    const pending = this._pending.get(body.reply_to);
    if (!pending) return;
    this._pending.delete(body.reply_to);
    clearTimeout(pending.timer);
    if (body.ok) pending.resolve(body.data);
    else pending.reject(new ChatError(body.error.code, body.error.message));
  }

  /** Any command of docs/PROTOCOL.md §5, answered with its reply's `data`. */
  command(op, fields = {}) {
    if (!this._mqtt) return Promise.reject(new ChatError('not_connected', 'call connect() first'));
    const id = uniqueId('r');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new ChatError('timeout', `no reply to ${op} in time`));
      }, COMMAND_TIMEOUT_MS);
      this._pending.set(id, { resolve, reject, timer });
      this._mqtt.publish(this._topics.outbox, JSON.stringify({ id, op, ...fields }), 1).catch((error) => {
        clearTimeout(timer);
        this._pending.delete(id);
        reject(asChatError(error));
      });
    });
  }

  listConversations() {
    return [...this.conversations.values()].sort((a, b) => activity(b).localeCompare(activity(a)));
  }

  totalUnread() {
    let total = 0;
    for (const conversation of this.conversations.values()) total += conversation.unread || 0;
    return total;
  }

  async createConversation({ type, title, member_ids = [] }) {
    const data = await this.command('conversation.create', { type, title, member_ids });
    await this._adopt(data.conversation);
    return data.conversation;
  }

  async joinConversation(conversationId) {
    const data = await this.command('conversation.join', { conversation_id: conversationId });
    await this._adopt(data.conversation);
    return data.conversation;
  }

  async leaveConversation(conversationId) {
    const data = await this.command('conversation.leave', { conversation_id: conversationId });
    this.conversations.delete(conversationId);
    await this._mqtt.unsubscribe([this._conversationFilter(conversationId)]);
    return data;
  }

  /** The signed-in user's support conversation with the site's agents. */
  async openSupport(title) {
    const data = await this.command('support.open', title ? { title } : {});
    await this._adopt(data.conversation);
    return data.conversation;
  }

  async _adopt(conversation) {
    const known = this.conversations.has(conversation.id);
    this._track(conversation);
    if (!known) await this._subscribeConversations([conversation.id]);
  }

  /**
   * Sends at once (an optimistic `message.created` with `status: "pending"`),
   * then resolves with the stored message. Retries reuse `client_msg_id`,
   * so a message is never stored twice.
   */
  async sendMessage(conversationId, input) {
    const fields = typeof input === 'string' ? { content: input } : { ...input };
    const clientMsgId = fields.client_msg_id || uniqueId('c');
    const draft = {
      id: null,
      conversation_id: conversationId,
      sender: { id: this.user.id, name: null, avatar_url: null },
      content: fields.content || '',
      attachments: [],
      client_msg_id: clientMsgId,
      created_at: new Date().toISOString(),
      status: 'pending',
    };
    this._emit('message.created', draft);
    this.setTyping(conversationId, false);
    try {
      const data = await this.command('message.send', { conversation_id: conversationId, ...fields, client_msg_id: clientMsgId });
      return { ...data.message, status: 'sent' };
    } catch (error) {
      this._emit('message.failed', { ...draft, status: 'failed', error: asChatError(error) });
      throw error;
    }
  }

  async editMessage(messageId, content) {
    return (await this.command('message.edit', { message_id: messageId, content })).message;
  }

  async deleteMessage(messageId) {
    return (await this.command('message.delete', { message_id: messageId })).message;
  }

  addReaction(messageId, emoji) {
    return this.command('reaction.add', { message_id: messageId, emoji });
  }

  removeReaction(messageId, emoji) {
    return this.command('reaction.remove', { message_id: messageId, emoji });
  }

  async markRead(conversationId, messageIdOrSeq) {
    const target = typeof messageIdOrSeq === 'number' ? { seq: messageIdOrSeq } : { message_id: messageIdOrSeq };
    const data = await this.command('read.mark', { conversation_id: conversationId, ...target });
    const unread = this._advanceRead(conversationId, data.last_read_seq);
    this._emit('unread.changed', { conversation_id: conversationId, last_read_seq: data.last_read_seq, unread, total: this.totalUnread() });
    return data;
  }

  /**
   * Call on every keystroke: announces typing at most every 3 s and stops
   * 4 s after the last keystroke; `setTyping(id, false)` stops at once.
   */
  typing(conversationId) {
    const timers = this._typingTimers.get(conversationId) || { last: 0, idle: null };
    const now = Date.now();
    if (now - timers.last >= TYPING_REPEAT_MS) {
      timers.last = now;
      this._publishTyping(conversationId, true);
    }
    clearTimeout(timers.idle);
    timers.idle = setTimeout(() => this.setTyping(conversationId, false), TYPING_IDLE_MS);
    this._typingTimers.set(conversationId, timers);
  }

  setTyping(conversationId, typing) {
    if (typing) return this.typing(conversationId);
    const timers = this._typingTimers.get(conversationId);
    if (!timers) return;
    clearTimeout(timers.idle);
    this._typingTimers.delete(conversationId);
    this._publishTyping(conversationId, false);
  }

  _publishTyping(conversationId, typing) {
    if (!this._mqtt) return;
    const topic = this._topics.typing.replace('{conversation_id}', conversationId);
    this._mqtt.publish(topic, JSON.stringify({ typing }), 0).catch(() => {});
  }

  /** A page of history over HTTP: `{messages (oldest first), has_more}`. */
  async loadHistory(conversationId, { beforeSeq, afterSeq, limit = 50 } = {}) {
    const query = new URLSearchParams({ limit: String(limit) });
    if (beforeSeq !== undefined) query.set('before_seq', String(beforeSeq));
    if (afterSeq !== undefined) query.set('after_seq', String(afterSeq));
    return this.session.api('GET', `/api/v1/conversations/${encodeURIComponent(conversationId)}/messages?${query}`);
  }

  /** Uploads a file (Blob or File) into a conversation: the attachment to send. */
  upload(conversationId, file, filename) {
    const name = filename || file.name || 'file';
    const query = new URLSearchParams({ conversation_id: conversationId, filename: name });
    return this.session.api('POST', `/api/v1/uploads?${query}`, file, file.type || 'application/octet-stream');
  }

  async sendMessageWithAttachments(conversationId, content, files = []) {
    const attachments = [];
    for (const file of files) attachments.push((await this.upload(conversationId, file)).id);
    return this.sendMessage(conversationId, { content: content || '', attachments });
  }

  /** A user's presence now (`{user_id, status, last_seen_at}`). */
  getPresence(userId) {
    return this.session.api('GET', `/api/v1/users/${encodeURIComponent(userId)}/presence`);
  }

  /** Follows a user's presence: `presence` events from now on (the current state first). */
  async watchPresence(userId) {
    if (this._presence.has(userId) || !this._mqtt) return;
    this._presence.add(userId);
    await this._mqtt.subscribe([this._topics.presence.replace('+', userId)]);
  }

  /** A visitor says who they are (`userHash` when the project verifies identities). */
  async identify(identity) {
    const result = await this.session.identify(identity);
    this._emit('identified', result);
    return result;
  }

  /** Closes the connection and forgets every handler and timer. */
  destroy() {
    this._destroyed = true;
    for (const timers of this._typingTimers.values()) clearTimeout(timers.idle);
    this._typingTimers.clear();
    for (const pending of this._pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(new ChatError('destroyed', 'the client was destroyed'));
    }
    this._pending.clear();
    this.session.stop();
    if (this._mqtt) this._mqtt.end();
    this._mqtt = null;
    this._setState('disconnected');
    this._handlers.clear();
  }
}

function activity(conversation) {
  return String(conversation.last_activity_at || (conversation.last_message && conversation.last_message.created_at) || conversation.created_at || '');
}
