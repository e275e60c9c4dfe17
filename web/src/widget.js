// The chat widget: a launcher and a panel in a shadow root (the page's CSS
// cannot reach in, ours cannot leak out), drawn from the headless client's
// state and events. Text from users is only ever set as text, never HTML.
import { strings } from './i18n.js';
import { STYLE } from './style.js';

const SIZES = { small: 48, medium: 56, large: 64 };
const FONT_SCALE = { small: 13, medium: 14, large: 16 };

export class Widget {
  constructor(client, options, config) {
    this.client = client;
    this.options = options;
    this.config = config || {};
    const look = this.config.widget_config || {};
    this.look = look;
    this.t = strings(options.locale, look.locale, typeof navigator !== 'undefined' ? navigator.language : 'en');
    this.isOpen = false;
    this.view = 'list';
    this.active = null;
    this.rows = new Map();
    this.typingUsers = new Map();
    this.unsubscribe = [];
    this.timers = new Set();
    this.editing = null;
  }

  mount() {
    const container = resolveContainer(this.options.container);
    this.inline = Boolean(container) || this.look.position === 'inline';
    this.host = document.createElement('div');
    this.host.setAttribute('data-mqchat', '');
    (container || document.body).appendChild(this.host);
    this.root = this.host.attachShadow({ mode: 'open' });
    adoptStyle(this.root);
    this._applyLook();
    this._build();
    this._listen();
    if (this.inline) this.open();
    return this;
  }

  _applyLook() {
    const look = this.look;
    const vars = {
      '--mq-primary': look.primary_color || '#4f46e5',
      '--mq-bubble': look.bubble_color || '#eef2ff',
      '--mq-background': look.background_color || '#ffffff',
      '--mq-text': look.text_color || '#111827',
      '--mq-font': look.font_family && look.font_family !== 'system' ? `"${look.font_family}", system-ui, sans-serif` : 'system-ui, sans-serif',
      '--mq-font-size': `${FONT_SCALE[look.font_size] || 14}px`,
      '--mq-launcher': `${SIZES[look.launcher_size] || 56}px`,
    };
    for (const [name, value] of Object.entries(vars)) this.host.style.setProperty(name, value);
    this.host.className = this.inline ? 'inline' : look.position === 'bottom-left' ? 'left' : 'right';
  }

  _build() {
    const t = this.t;
    const frame = h('div', { class: `frame ${this.host.className}` });
    if (!this.inline) {
      this.badge = h('span', { class: 'badge', hidden: '', 'aria-live': 'polite' });
      const customIcon = this.config.launcher_icon_url
        ? h('img', { class: 'custom-icon', src: this.client.session.apiUrl + this.config.launcher_icon_url, alt: '' })
        : null;
      this.launcher = h('button', { class: 'launcher', type: 'button', 'aria-label': t.open, 'aria-expanded': 'false', part: 'launcher' }, customIcon || icon(), this.badge);
      this.launcher.addEventListener('click', () => this.toggle());
      frame.appendChild(this.launcher);
    }
    this.heading = h('h2', { id: 'mq-title' }, this.look.title || (this.client.user && this.client.user.visitor ? t.support : t.title));
    this.presence = h('span', { class: 'presence', hidden: '' });
    this.backButton = h('button', { class: 'icon-button', type: 'button', 'aria-label': t.back, hidden: '' }, '‹');
    this.backButton.addEventListener('click', () => this.showList());
    const header = h('header', {}, this.backButton, h('div', { class: 'heading' }, this.heading, this.presence));
    if (!this.inline) {
      this.closeButton = h('button', { class: 'icon-button', type: 'button', 'aria-label': t.close }, '×');
      this.closeButton.addEventListener('click', () => this.close());
      header.appendChild(this.closeButton);
    }
    this.banner = h('div', { class: 'banner', role: 'status', hidden: '' });
    this.list = h('ul', { class: 'conversations', 'aria-label': t.conversations });
    this.earlier = h('button', { class: 'earlier', type: 'button', hidden: '' }, t.earlier);
    this.earlier.addEventListener('click', () => this._loadEarlier());
    this.log = h('ol', { class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-label': t.messages });
    this.typingLine = h('div', { class: 'typing', 'aria-live': 'polite' });
    this.thread = h('div', { class: 'thread', hidden: '' }, this.earlier, this.log, this.typingLine);
    this.input = h('textarea', { rows: '1', placeholder: this.look.placeholder || t.placeholder, 'aria-label': this.look.placeholder || t.placeholder });
    this.file = h('input', { type: 'file', hidden: '', multiple: '' });
    const attach = h('button', { class: 'icon-button', type: 'button', 'aria-label': t.attach }, '+');
    attach.addEventListener('click', () => this.file.click());
    this.file.addEventListener('change', () => this._sendFiles());
    this.sendButton = h('button', { class: 'send', type: 'submit' }, t.send);
    this.composer = h('form', { class: 'composer', hidden: '' }, attach, this.file, this.input, this.sendButton);
    this.composer.addEventListener('submit', (event) => {
      event.preventDefault();
      this._submit();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        this._submit();
      }
    });
    this.input.addEventListener('input', () => {
      if (this.active && this.input.value.trim()) this.client.typing(this.active);
    });
    const footer = this.look.show_branding === false ? null : h('div', { class: 'branding' }, this.t.poweredBy);
    this.panel = h(
      'section',
      { class: 'panel', role: this.inline ? 'region' : 'dialog', 'aria-labelledby': 'mq-title', hidden: this.inline ? null : '', part: 'panel' },
      header,
      this.banner,
      this.list,
      this.thread,
      this.composer,
      footer,
    );
    frame.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !this.inline) {
        event.stopPropagation();
        this.close();
      }
    });
    frame.appendChild(this.panel);
    this.root.appendChild(frame);
    this._renderList();
    this._updateBadge();
    this._updateBanner(this.client.state);
  }

  _listen() {
    const on = (event, handler) => this.unsubscribe.push(this.client.on(event, handler));
    on('message.created', (message) => this._onMessage(message));
    on('message.failed', (message) => this._renderMessage(message));
    on('message.updated', (message) => this._renderMessage(message));
    on('message.deleted', (message) => this._renderMessage(message));
    on('reaction.added', (reaction) => this._onReaction(reaction, 1));
    on('reaction.removed', (reaction) => this._onReaction(reaction, -1));
    on('typing', (typing) => this._onTyping(typing));
    on('presence', (presence) => this._onPresence(presence));
    on('unread.changed', () => {
      this._updateBadge();
      this._renderList();
    });
    on('conversation.created', () => this._renderList());
    on('conversation.joined', () => this._renderList());
    on('conversation.left', (data) => {
      if (data.conversation_id === this.active) this.showList();
      this._renderList();
    });
    on('connection', (state) => this._updateBanner(state));
    on('ready', () => this._renderList());
  }

  open() {
    if (this.isOpen && !this.inline) return;
    this.isOpen = true;
    this.panel.hidden = false;
    if (this.launcher) this.launcher.setAttribute('aria-expanded', 'true');
    this.host.classList.add('open');
    if (this.client.user && this.client.user.visitor && !this.active) {
      this.client
        .openSupport()
        .then((conversation) => this.openConversation(conversation.id))
        .catch((error) => this._error(error));
    } else if (this.active) {
      this._markRead();
      this.input.focus();
    } else {
      this.showList();
    }
  }

  close() {
    if (this.inline || !this.isOpen) return;
    this.isOpen = false;
    this.panel.hidden = true;
    this.host.classList.remove('open');
    if (this.launcher) {
      this.launcher.setAttribute('aria-expanded', 'false');
      this.launcher.focus();
    }
  }

  toggle() {
    if (this.isOpen) this.close();
    else this.open();
  }

  showList() {
    if (this.client.user && this.client.user.visitor) return;
    this.active = null;
    this.view = 'list';
    this.list.hidden = false;
    this.thread.hidden = true;
    this.composer.hidden = true;
    this.backButton.hidden = true;
    this.presence.hidden = true;
    this.heading.textContent = this.look.title || this.t.title;
    this._renderList();
    const first = this.list.querySelector('button') || this.closeButton;
    if (first && this.isOpen) first.focus();
  }

  async openConversation(conversationId) {
    if (!this.isOpen) this.open();
    this.active = conversationId;
    this.view = 'thread';
    this.list.hidden = true;
    this.thread.hidden = false;
    this.composer.hidden = false;
    this.backButton.hidden = Boolean(this.client.user && this.client.user.visitor);
    this.rows.clear();
    this.log.textContent = '';
    this.typingLine.textContent = '';
    this.typingUsers.clear();
    const conversation = this.client.conversations.get(conversationId);
    this.heading.textContent = this._conversationName(conversation);
    this._followPresence(conversation);
    this.input.focus();
    try {
      const page = await this.client.loadHistory(conversationId, { limit: 50 });
      if (this.active !== conversationId) return;
      for (const message of page.messages) this._renderMessage(message);
      this.earlier.hidden = !page.has_more;
      this._scrollDown();
      this._markRead();
    } catch (error) {
      this._error(error);
    }
  }

  async _loadEarlier() {
    const first = this.log.querySelector('li[data-seq]');
    if (!first || !this.active) return;
    const page = await this.client.loadHistory(this.active, { beforeSeq: Number(first.dataset.seq), limit: 50 });
    for (const message of page.messages.slice().reverse()) this._renderMessage(message, true);
    this.earlier.hidden = !page.has_more;
  }

  _conversationName(conversation) {
    if (!conversation) return this.look.title || this.t.title;
    if (conversation.title) return conversation.title;
    if (conversation.type === 'support') return this.look.title || this.t.support;
    const others = (conversation.member_ids || []).filter((id) => id !== this.client.user.id);
    return others.join(', ') || this.t.title;
  }

  _followPresence(conversation) {
    this.presence.hidden = true;
    this.presenceOf = null;
    if (!conversation || conversation.type !== 'direct') return;
    const other = (conversation.member_ids || []).find((id) => id !== this.client.user.id);
    if (!other) return;
    this.presenceOf = other;
    this.client.watchPresence(other).catch(() => {});
  }

  _onPresence(presence) {
    if (presence.user_id !== this.presenceOf) return;
    const online = presence.status === 'online';
    this.presence.hidden = false;
    this.presence.className = `presence ${online ? 'online' : 'offline'}`;
    this.presence.textContent = online ? this.t.online : this.t.offline;
  }

  _renderList() {
    if (!this.list || this.view !== 'list') return;
    this.list.textContent = '';
    const conversations = this.client.listConversations();
    if (!conversations.length) {
      this.list.appendChild(h('li', { class: 'empty' }, this.t.empty));
      return;
    }
    for (const conversation of conversations) {
      const unread = conversation.unread || 0;
      const preview = conversation.last_message ? previewOf(conversation.last_message, this.t) : '';
      const button = h(
        'button',
        { type: 'button', class: 'conversation', 'data-conversation': conversation.id },
        h('span', { class: 'name' }, this._conversationName(conversation)),
        h('span', { class: 'preview' }, preview),
        unread ? h('span', { class: 'count', 'aria-label': this.t.unread(unread) }, String(unread)) : null,
      );
      button.addEventListener('click', () => this.openConversation(conversation.id));
      this.list.appendChild(h('li', {}, button));
    }
  }

  _onMessage(message) {
    if (message.conversation_id === this.active) {
      this._renderMessage(message);
      this._scrollDown();
      if (message.sender && message.sender.id) this._stopTyping(message.sender.id);
      if (message.status === 'sent') this._markRead();
    }
    this._updateBadge();
    this._renderList();
  }

  _markRead() {
    if (!this.active || !this.isOpen || document.visibilityState === 'hidden') return;
    const conversation = this.client.conversations.get(this.active);
    if (!conversation || !conversation.unread) return;
    const last = conversation.last_message;
    if (last && last.id) this.client.markRead(this.active, last.id).catch((error) => this._error(error));
  }

  _key(message) {
    if (message.client_msg_id && this.rows.has(`c:${message.client_msg_id}`)) return `c:${message.client_msg_id}`;
    if (message.id && this.rows.has(`i:${message.id}`)) return `i:${message.id}`;
    return message.client_msg_id ? `c:${message.client_msg_id}` : `i:${message.id}`;
  }

  _renderMessage(message, prepend = false) {
    if (message.conversation_id !== this.active) return;
    const key = this._key(message);
    const mine = Boolean(message.sender && message.sender.id === this.client.user.id);
    const previous = this.rows.get(key);
    const row = h('li', {
      class: `message ${mine ? 'mine' : 'theirs'} ${message.system ? 'system' : ''} ${message.status || 'sent'}`,
      'data-id': message.id || '',
      'data-seq': typeof message.seq === 'number' ? String(message.seq) : null,
    });
    row.message = { ...(previous && previous.message), ...message };
    const shown = row.message;
    if (!mine && !shown.system) row.appendChild(h('span', { class: 'author' }, (shown.sender && (shown.sender.name || shown.sender.id)) || this.t.someone));
    const conversation = this.client.conversations.get(this.active);
    if (!mine && shown.sender && shown.sender.name && conversation && conversation.type === 'direct' && !conversation.title) {
      // A direct conversation is named after the other member, by name once one of their messages shows it.
      this.heading.textContent = shown.sender.name;
    }
    const bubble = h('div', { class: 'bubble' });
    if (shown.is_deleted) {
      bubble.appendChild(h('em', {}, this.t.deleted));
    } else {
      if (shown.content) bubble.appendChild(h('p', {}, shown.content));
      for (const attachment of shown.attachments || []) bubble.appendChild(attachmentView(attachment));
    }
    row.appendChild(bubble);
    const meta = h('div', { class: 'meta' });
    if (shown.edited && !shown.is_deleted) meta.appendChild(h('span', { class: 'edited' }, this.t.edited));
    if (shown.status === 'failed') meta.appendChild(h('span', { class: 'failed' }, this.t.failed));
    const reactions = h('span', { class: 'reactions' });
    for (const group of shown.reactions || []) {
      if (!group.count) continue;
      const chip = h('button', { type: 'button', class: 'reaction', 'aria-pressed': String((group.user_ids || []).includes(this.client.user.id)) }, `${group.emoji} ${group.count}`);
      chip.addEventListener('click', () => this._toggleReaction(row.message, group.emoji));
      reactions.appendChild(chip);
    }
    meta.appendChild(reactions);
    if (shown.id && !shown.is_deleted && !shown.system) {
      const react = h('button', { type: 'button', class: 'action', 'aria-label': this.t.react }, '👍');
      react.addEventListener('click', () => this._toggleReaction(row.message, '👍'));
      meta.appendChild(react);
      if (mine) {
        const edit = h('button', { type: 'button', class: 'action' }, this.t.edit);
        edit.addEventListener('click', () => this._startEdit(row.message));
        const remove = h('button', { type: 'button', class: 'action' }, this.t.remove);
        remove.addEventListener('click', () => this.client.deleteMessage(row.message.id).catch((error) => this._error(error)));
        meta.append(edit, remove);
      }
    }
    row.appendChild(meta);
    if (previous) {
      previous.replaceWith(row);
      if (message.id && key.startsWith('c:')) this.rows.set(`i:${message.id}`, row);
    } else if (prepend) {
      this.log.insertBefore(row, this.log.firstChild);
    } else {
      this.log.appendChild(row);
    }
    this.rows.set(key, row);
    if (message.id) this.rows.set(`i:${message.id}`, row);
  }

  _onReaction(reaction, delta) {
    const row = this.rows.get(`i:${reaction.message_id}`);
    if (!row) return;
    const message = row.message;
    const groups = (message.reactions || []).map((group) => ({ ...group, user_ids: [...(group.user_ids || [])] }));
    let group = groups.find((candidate) => candidate.emoji === reaction.emoji);
    if (!group) {
      group = { emoji: reaction.emoji, count: 0, user_ids: [] };
      groups.push(group);
    }
    const has = group.user_ids.includes(reaction.user_id);
    if (delta > 0 && !has) group.user_ids.push(reaction.user_id);
    if (delta < 0 && has) group.user_ids = group.user_ids.filter((id) => id !== reaction.user_id);
    group.count = group.user_ids.length;
    this._renderMessage({ ...message, reactions: groups.filter((candidate) => candidate.count > 0) });
  }

  _toggleReaction(message, emoji) {
    const group = (message.reactions || []).find((candidate) => candidate.emoji === emoji);
    const mine = group && (group.user_ids || []).includes(this.client.user.id);
    const action = mine ? this.client.removeReaction(message.id, emoji) : this.client.addReaction(message.id, emoji);
    action.catch((error) => this._error(error));
  }

  _startEdit(message) {
    this.editing = message.id;
    this.input.value = message.content;
    this.sendButton.textContent = this.t.save;
    this.input.focus();
  }

  _onTyping(typing) {
    if (typing.conversation_id !== this.active) return;
    if (!typing.typing) return this._stopTyping(typing.user_id);
    const expires = typing.expires_at ? Date.parse(typing.expires_at) - Date.now() : 5000;
    const previous = this.typingUsers.get(typing.user_id);
    if (previous) this._clearTimer(previous.timer);
    const timer = this._later(() => this._stopTyping(typing.user_id), Math.max(500, Math.min(expires, 10000)));
    this.typingUsers.set(typing.user_id, { name: typing.name || typing.user_id, timer });
    this._renderTyping();
  }

  _stopTyping(userId) {
    const entry = this.typingUsers.get(userId);
    if (!entry) return;
    this._clearTimer(entry.timer);
    this.typingUsers.delete(userId);
    this._renderTyping();
  }

  _renderTyping() {
    const names = [...this.typingUsers.values()].map((entry) => entry.name);
    this.typingLine.textContent = names.length ? this.t.typing(names.join(', ')) : '';
  }

  async _submit() {
    const text = this.input.value.trim();
    if (!text || !this.active) return;
    this.input.value = '';
    if (this.editing) {
      const id = this.editing;
      this.editing = null;
      this.client.setTyping(this.active, false);
      this.sendButton.textContent = this.t.send;
      return this.client.editMessage(id, text).catch((error) => this._error(error));
    }
    this.client.sendMessage(this.active, text).catch((error) => this._error(error));
  }

  async _sendFiles() {
    const files = [...(this.file.files || [])];
    this.file.value = '';
    if (!files.length || !this.active) return;
    this.client.sendMessageWithAttachments(this.active, this.input.value.trim(), files).catch((error) => this._error(error));
    this.input.value = '';
  }

  _updateBadge() {
    if (!this.badge) return;
    const total = this.client.totalUnread();
    this.badge.hidden = total === 0;
    this.badge.textContent = total > 99 ? '99+' : String(total);
    this.badge.setAttribute('aria-label', this.t.unread(total));
  }

  _updateBanner(state) {
    if (!this.banner) return;
    const text = state === 'reconnecting' ? this.t.reconnecting : state === 'connecting' || state === 'authenticating' ? this.t.connecting : '';
    this.banner.textContent = text;
    this.banner.hidden = !text;
  }

  _scrollDown() {
    this.log.scrollTop = this.log.scrollHeight;
    this.thread.scrollTop = this.thread.scrollHeight;
  }

  _error(error) {
    if (this.options.onError) this.options.onError(error);
  }

  _later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }

  _clearTimer(timer) {
    clearTimeout(timer);
    this.timers.delete(timer);
  }

  destroy() {
    for (const stop of this.unsubscribe) stop();
    this.unsubscribe = [];
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.host) this.host.remove();
    this.host = null;
  }
}

/**
 * A constructed stylesheet: no `<style>` element, so a page whose CSP has no
 * `style-src 'unsafe-inline'` still styles the widget.
 */
function adoptStyle(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    root.adoptedStyleSheets = [sheet];
    return;
  }
  const style = document.createElement('style');
  style.textContent = STYLE;
  root.appendChild(style);
}

function resolveContainer(container) {
  if (!container) return null;
  if (typeof container === 'string') return document.querySelector(container);
  return container;
}

function previewOf(message, t) {
  if (message.is_deleted) return t.deleted;
  if (message.content) return message.content.slice(0, 80);
  return (message.attachments || []).map((attachment) => attachment.filename).join(', ');
}

function attachmentView(attachment) {
  if (/^image\/(png|jpeg|gif|webp|avif|bmp)$/.test(attachment.content_type)) {
    return h('img', { class: 'image', src: attachment.url, alt: attachment.filename, loading: 'lazy' });
  }
  return h('a', { class: 'file', href: attachment.url, target: '_blank', rel: 'noopener noreferrer', download: attachment.filename }, attachment.filename);
}

function icon() {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  path.setAttribute('d', 'M4 4h16v11H7l-3 3z');
  svg.appendChild(path);
  return svg;
}

/** An element with attributes (null ones left out) and children (text or nodes). */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value !== null && value !== undefined) element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    element.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}
