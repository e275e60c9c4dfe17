// Sessions: where mqchat's API is, whether this page's origin may use it,
// and a session token that is renewed before it runs out (when less than
// a quarter of its lifetime remains) from what can mint one: the site's
// identity token (`token` / `getToken`) or the visitor key this browser
// keeps. A session token never renews itself.
import { ChatError } from './errors.js';

const RENEW_AT = 0.75;
const VISITOR_KEY_BYTES = 32;

export class Session {
  constructor(options, emit) {
    this.options = options;
    this.emit = emit;
    this.apiUrl = String(options.apiUrl || options.scriptOrigin || (typeof location !== 'undefined' ? location.origin : '')).replace(/\/+$/, '');
    this.current = null;
    this.config = null;
    this.onRenewed = null;
    this._timer = null;
    this._stopped = false;
  }

  /** The project's public settings; refuses early, in plain words, a page whose origin is not allowed. */
  async loadConfig() {
    if (this.config) return this.config;
    const url = `${this.apiUrl}/api/v1/sdk/config?public_key=${encodeURIComponent(this.options.publicKey)}`;
    const config = await this._fetch(url, {});
    if (!config.origin_allowed) {
      const origin = typeof location !== 'undefined' ? location.origin : 'this page';
      throw new ChatError('origin_not_allowed', `mqchat refused ${origin}: add it to the project's allowed_origins (PATCH /api/v1/project)`);
    }
    this.config = config;
    return config;
  }

  async start() {
    const config = await this.loadConfig();
    let session;
    if (this.options.token || this.options.getToken) {
      session = await this._fromIdentityToken();
    } else if (config.visitors) {
      session = await this._asVisitor();
      const user = this.options.user;
      if (user && user.userId) {
        this._use(session);
        session = (await this.identify(user)).session;
      }
    } else {
      throw new ChatError('auth_required', 'pass token or getToken: this project takes no visitors');
    }
    this._use(session);
    return session;
  }

  _use(session) {
    this.current = session;
    clearTimeout(this._timer);
    if (this._stopped) return;
    const lifetimeMs = Math.max(0, (session.expires_at - session.issued_at) * 1000);
    this._timer = setTimeout(() => {
      this.renew().catch((error) => this.emit('error', error));
    }, lifetimeMs * RENEW_AT);
  }

  /** A fresh session token from the same source; the connection moves onto it. */
  async renew() {
    if (this._stopped) return this.current;
    const fresh = this.current && this.current.visitor ? await this._asVisitor() : await this._fromIdentityToken();
    this._use(fresh);
    this.emit('session.renewed', { user_id: fresh.user_id, expires_at: fresh.expires_at });
    if (this.onRenewed) this.onRenewed(fresh);
    return fresh;
  }

  async _fromIdentityToken() {
    let token = this.options.token;
    if (this.options.getToken) {
      token = await this.options.getToken();
    } else if (this.current && tokenExpired(token)) {
      this.emit('auth:required', { reason: 'the identity token has expired; pass getToken to renew sessions' });
      throw new ChatError('auth_required', 'the identity token has expired');
    }
    if (!token) throw new ChatError('auth_required', 'no identity token');
    const body = await this._fetch(`${this.apiUrl}/api/v1/sdk/init`, {
      method: 'POST',
      headers: { 'x-public-key': this.options.publicKey, authorization: `Bearer ${token}` },
    });
    return body.data;
  }

  async _asVisitor(fresh = false) {
    try {
      const body = await this._fetch(`${this.apiUrl}/api/v1/sdk/visitor`, {
        method: 'POST',
        headers: { 'x-public-key': this.options.publicKey, 'content-type': 'application/json' },
        body: JSON.stringify({ visitor_key: visitorKey(this.options.publicKey, fresh) }),
      });
      return body.data;
    } catch (error) {
      // The site revoked this visitor: this browser starts over as a new one.
      if (error.code === 'invalid_token' && !fresh) return this._asVisitor(true);
      throw error;
    }
  }

  /** `identify({userId, name, email, userHash})`: what the visitor says of themselves. */
  async identify(user) {
    if (!this.current || !this.current.visitor) throw new ChatError('not_a_visitor', 'identify() is for visitors; signed-in users have their identity token');
    const body = await this._fetch(`${this.apiUrl}/api/v1/sdk/identify`, {
      method: 'POST',
      headers: {
        'x-public-key': this.options.publicKey,
        authorization: `Bearer ${this.current.session_token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ user_id: user.userId, name: user.name, email: user.email, user_hash: user.userHash }),
    });
    const session = body.data;
    this._use(session);
    if (this.onRenewed) this.onRenewed(session);
    return { ...session.identity, session };
  }

  /** A call to the HTTP API as the signed-in user. */
  api(method, path, body, contentType) {
    const headers = { 'x-public-key': this.options.publicKey, authorization: `Bearer ${this.current.session_token}` };
    if (body !== undefined) headers['content-type'] = contentType || 'application/json';
    const payload = body === undefined || contentType ? body : JSON.stringify(body);
    return this._fetch(`${this.apiUrl}${path}`, { method, headers, body: payload });
  }

  async _fetch(url, init) {
    let response;
    try {
      response = await fetch(url, { ...init, credentials: 'omit' });
    } catch (error) {
      throw new ChatError('network', `mqchat is unreachable at ${this.apiUrl} (or refused this page's origin): ${error && error.message}`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = body && body.error ? body.error : { code: `http_${response.status}`, message: text || response.statusText };
      throw new ChatError(error.code, error.message);
    }
    return body;
  }

  stop() {
    this._stopped = true;
    clearTimeout(this._timer);
  }
}

/** The visitor key of this browser for the project, made on first use (or anew when `fresh`). */
function visitorKey(publicKey, fresh) {
  const name = `mqchat:visitor:${publicKey}`;
  let key = null;
  try {
    key = fresh ? null : localStorage.getItem(name);
  } catch {
    key = null;
  }
  if (key) return key;
  const bytes = crypto.getRandomValues(new Uint8Array(VISITOR_KEY_BYTES));
  key = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  try {
    localStorage.setItem(name, key);
  } catch {
    // Storage refused (private mode): a visitor for this page load only.
  }
  return key;
}

function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now();
  } catch {
    return false;
  }
}
