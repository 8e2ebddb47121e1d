// Switchboard browser SDK: a dependency-free ES module.
//
// Speaks the protocol in docs/protocol.md over WebSocket, and falls back to Server-Sent Events
// (receiving) plus `POST /cmd` (commands) when a WebSocket cannot be opened. One resume model on
// both: every subscription remembers the position `{offset, epoch}` of the last publication it
// delivered and presents it after a reconnect, so nothing is lost and nothing is delivered twice;
// when the node cannot prove continuity the subscription's `reset` handler fires.

const DEFAULTS = {
  transports: ['websocket', 'sse'],
  debug: false,
  minReconnectDelay: 500,
  maxReconnectDelay: 20000,
  pingGrace: 10000,
  timeout: 10000,
  name: '',
};

/** Close codes after which reconnecting would fail the same way. */
export function isTerminalCode(code) {
  return (code >= 4500 && code <= 4999) || code === 1002 || code === 1003 || code === 1007;
}

/** Error carrying a protocol error code (`permission_denied`, ...) or an SDK one
 * (`disconnected`, `timeout`, `network`). */
export class SwitchboardError extends Error {
  constructor(code, message, extra) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(event, fn) {
    if (typeof fn !== 'function') return this;
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return this;
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
    return this;
  }

  once(event, fn) {
    const wrap = (...args) => {
      this.off(event, wrap);
      fn(...args);
    };
    return this.on(event, wrap);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        // A throwing listener must not break delivery to the others or the SDK's state.
        console.error(`switchboard: "${event}" listener threw`, err);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// SSE cursors. The node encodes every channel's position in each event's `id:`; the SDK decodes
// it to keep per-subscription positions on SSE too, and re-encodes a cursor for exactly the
// channels of a new stream when the set of subscriptions changes (the node rejects a cursor that
// names channels the stream does not have). Layout (crates/switchboard-protocol/src/cursor.rs):
// `1` + base64url(no padding) of, per channel: fnv1a32(name) as 4 bytes big-endian, the offset as
// LEB128, the epoch length (1 byte) and the epoch's ASCII bytes. When a cursor cannot be decoded
// the SDK falls back to passing the node's cursor back unchanged.

const textEncoder = new TextEncoder();

export function channelHash(name) {
  let h = 0x811c9dc5;
  for (const b of textEncoder.encode(name)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function base64urlEncode(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function base64urlDecode(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error('bad base64url');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encodes `[{channel, offset, epoch}]` as a cursor string. */
export function encodeCursor(entries) {
  const bytes = [];
  for (const { channel, offset, epoch } of entries) {
    const h = channelHash(channel);
    bytes.push((h >>> 24) & 0xff, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff);
    let v = offset;
    while (v >= 0x80) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    const ep = textEncoder.encode(String(epoch)).slice(0, 32);
    bytes.push(ep.length, ...ep);
  }
  return '1' + base64urlEncode(bytes);
}

/** Decodes a cursor into a Map channel → {offset, epoch} for the given channel names; entries
 * of unknown channels are skipped. Returns null when the text is not a cursor of this layout. */
export function decodeCursor(text, channels) {
  // SSE ids are `<cursor>.<resume secret>`; only the cursor part encodes positions.
  if (typeof text === 'string') text = text.split('.')[0];
  if (typeof text !== 'string' || text[0] !== '1' || text.length > 2048) return null;
  let bin;
  try {
    bin = base64urlDecode(text.slice(1));
  } catch {
    return null;
  }
  const byHash = new Map(channels.map((c) => [channelHash(c), c]));
  const out = new Map();
  let i = 0;
  while (i < bin.length) {
    if (i + 4 > bin.length) return null;
    const h = ((bin[i] << 24) | (bin[i + 1] << 16) | (bin[i + 2] << 8) | bin[i + 3]) >>> 0;
    i += 4;
    let offset = 0;
    let scale = 1;
    for (;;) {
      if (i >= bin.length || scale > 2 ** 63) return null;
      const b = bin[i++];
      offset += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) break;
      scale *= 0x80;
    }
    if (i >= bin.length) return null;
    const len = bin[i++];
    if (len > 32 || i + len > bin.length) return null;
    const epoch = String.fromCharCode(...bin.subarray(i, i + len));
    i += len;
    const channel = byHash.get(h);
    if (channel !== undefined) out.set(channel, { offset, epoch });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function httpBaseFrom(wsUrl) {
  const loc = globalThis.location;
  const u = new URL(wsUrl, loc ? loc.href : undefined);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  const path = u.pathname.replace(/\/ws\/?$/, '').replace(/\/$/, '');
  return `${u.protocol}//${u.host}${path}`;
}

function wsUrlFrom(url) {
  const loc = globalThis.location;
  const u = new URL(url, loc ? loc.href : undefined);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/** One channel subscription. Created by {@link Switchboard#subscribe}. */
export class Subscription extends Emitter {
  constructor(client, channel, opts) {
    super();
    this.client = client;
    this.channel = channel;
    this.state = 'subscribing';
    this._pos = null; // {offset, epoch}: the last position delivered (or the reply's position)
    this._buffer = null; // live publications held while a subscribe/recovery reply is pending
    this._everSubscribed = false;
    if (opts.since && typeof opts.since.offset === 'number' && opts.since.epoch != null) {
      this._pos = { offset: opts.since.offset, epoch: String(opts.since.epoch) };
    }
    const map = {
      onPublication: 'publication',
      onJoin: 'join',
      onLeave: 'leave',
      onReset: 'reset',
      onSubscribed: 'subscribed',
      onError: 'error',
    };
    for (const [k, ev] of Object.entries(map)) if (typeof opts[k] === 'function') this.on(ev, opts[k]);
  }

  /** Position of the last publication delivered: `{offset, epoch}`, or null before the first
   * subscribe reply. */
  get position() {
    const p = this._pos;
    return p && typeof p.offset === 'number' && p.epoch != null ? { offset: p.offset, epoch: p.epoch } : null;
  }

  unsubscribe() {
    this.client._removeSubscription(this);
  }

  publish(data) {
    return this.client.publish(this.channel, data);
  }

  history(opts) {
    return this.client.history(this.channel, opts);
  }

  presence() {
    return this.client.presence(this.channel);
  }

  _setState(s) {
    if (this.state === s) return;
    const old = this.state;
    this.state = s;
    this._emit('state', { channel: this.channel, newState: s, oldState: old });
  }

  // Delivers one publication unless it is a duplicate; returns false when a gap was found (the
  // publication is then not delivered and the caller recovers).
  _deliver(p, opts = {}) {
    const off = p.offset;
    const known = this._pos && typeof this._pos.offset === 'number' && typeof off === 'number';
    if (known && off <= this._pos.offset) {
      this.client._log('skip duplicate', this.channel, off, '<=', this._pos.offset);
      return true;
    }
    if (known && opts.checkGap && off > this._pos.offset + 1 && this._pos.epoch != null) return false;
    if (typeof off === 'number') {
      if (this._pos) this._pos.offset = off;
      else this._pos = { offset: off, epoch: opts.epoch ?? null };
    }
    const ctx = { channel: this.channel, offset: off, data: p.data };
    if (p.info !== undefined) ctx.info = p.info;
    this._emit('publication', ctx);
    return true;
  }
}

/** The client. See switchboard.d.ts for the documented API. */
export class Switchboard extends Emitter {
  constructor(url, opts = {}) {
    super();
    this._opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) this._opts[k] = v;
    this.url = wsUrlFrom(url);
    this._httpBase = opts.httpUrl ? String(opts.httpUrl).replace(/\/$/, '') : httpBaseFrom(url);
    this.state = 'disconnected';
    this.transport = null; // 'websocket' | 'sse' while connected
    this.clientId = null;
    this.user = null;
    this._subs = new Map();
    this._pending = new Map(); // id -> request, sent over the current WebSocket
    this._queue = []; // requests waiting for a connection
    this._nextId = 1;
    this._attempt = 0;
    this._gen = 0;
    this._t = null; // the current transport object
    this._reconnectTimer = null;
    this._token = opts.token ?? null;
    this._needToken = typeof opts.getToken === 'function';
    this._tokenPromise = null;
    this._attemptTicket = null; // from `getTicket`, for the connection attempt under way
    this._lastRefreshAt = 0;
    this._wsFailures = 0;
    const transports = this._opts.transports;
    this._useSse = !transports.includes('websocket') || typeof globalThis.WebSocket !== 'function';
    this.nextReconnectAt = null;
    if (typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', () => {
        if (this._reconnectTimer) {
          this._log('browser is online: reconnecting now');
          clearTimeout(this._reconnectTimer);
          this._startAttempt();
        }
      });
    }
  }

  // ---- public API ---------------------------------------------------------------------------

  connect() {
    if (this.state !== 'disconnected') return;
    this._attempt = 0;
    // A fresh start gets a fresh token (the app may have changed who is signed in).
    if (typeof this._opts.getToken === 'function') this._needToken = true;
    this._setState('connecting');
    this._emit('connecting', { code: 0, reason: 'connect called', attempt: 0, delay: 0 });
    this._startAttempt();
  }

  disconnect() {
    if (this.state === 'disconnected') return;
    this._gen++;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this.nextReconnectAt = null;
    const t = this._t;
    if (t) {
      this._closeTransport(t);
      this._t = null;
    }
    this._failPending(new SwitchboardError('disconnected', 'client disconnected'));
    this._failQueue(new SwitchboardError('disconnected', 'client disconnected'));
    for (const sub of this._subs.values()) sub._setState('subscribing');
    this.transport = null;
    this._setState('disconnected');
    this._emit('disconnected', { code: 1000, reason: 'disconnect called', reconnect: false });
  }

  /** Resolves once connected (or rejects after `timeout` ms). */
  ready(timeout = this._opts.timeout) {
    if (this.state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.off('connected', onConn);
        this.off('state', onState);
      };
      const onConn = () => {
        done();
        resolve();
      };
      const onState = (ctx) => {
        if (ctx.newState === 'disconnected') {
          done();
          reject(new SwitchboardError('disconnected', 'client disconnected'));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new SwitchboardError('timeout', 'not connected in time'));
      }, timeout);
      this.on('connected', onConn);
      this.on('state', onState);
    });
  }

  subscribe(channel, opts = {}) {
    if (this._subs.has(channel)) {
      throw new SwitchboardError('already_subscribed', `already subscribed to ${channel}`);
    }
    const sub = new Subscription(this, channel, opts);
    this._subs.set(channel, sub);
    const t = this._t;
    if (t && t.connected) {
      if (t.kind === 'websocket') this._wsSubscribe(t, sub);
      else this._sseChannelsChanged(t);
    }
    return sub;
  }

  getSubscription(channel) {
    return this._subs.get(channel) || null;
  }

  subscriptions() {
    return new Map(this._subs);
  }

  publish(channel, data) {
    return this._command({ op: 'publish', channel, data });
  }

  history(channel, opts = {}) {
    const cmd = { op: 'history', channel };
    if (opts.since) cmd.since = { offset: opts.since.offset, epoch: opts.since.epoch };
    if (opts.limit != null) cmd.limit = opts.limit;
    if (opts.reverse) cmd.reverse = true;
    return this._command(cmd);
  }

  presence(channel) {
    return this._command({ op: 'presence', channel });
  }

  // ---- debug hooks (used by tests and the demo page) -----------------------------------------

  /** The current transport object (`{kind:'websocket', ws}` or `{kind:'sse', es}`), or null. */
  get _transport() {
    return this._t;
  }

  /** Drops the current connection as if the network failed; the client reconnects and resumes. */
  _debugDropConnection() {
    const t = this._t;
    if (t) this._abandon(t, { code: 1006, reason: 'connection dropped (debug)', reconnect: true });
  }

  _log(...args) {
    if (this._opts.debug) console.debug(`[switchboard${this._opts.name ? ' ' + this._opts.name : ''}]`, ...args);
  }

  // ---- state --------------------------------------------------------------------------------

  _setState(s) {
    if (this.state === s) return;
    const old = this.state;
    this.state = s;
    this._log('state', old, '->', s);
    this._emit('state', { newState: s, oldState: old });
  }

  async _ensureToken() {
    const getToken = this._opts.getToken;
    if (typeof getToken !== 'function') return this._token;
    if (!this._needToken && this._token != null) return this._token;
    if (!this._tokenPromise) {
      this._tokenPromise = Promise.resolve()
        .then(() => getToken())
        .then(
          (tok) => {
            this._token = tok;
            this._needToken = false;
            this._tokenPromise = null;
            return tok;
          },
          (err) => {
            this._tokenPromise = null;
            throw err;
          },
        );
    }
    return this._tokenPromise;
  }

  async _startAttempt() {
    const gen = ++this._gen;
    this._reconnectTimer = null;
    this.nextReconnectAt = null;
    let fresh = false;
    try {
      fresh = this._needToken || this._token == null;
      await this._ensureToken();
    } catch (err) {
      if (gen !== this._gen) return;
      this._emit('error', { type: 'token', error: err });
      this._scheduleReconnect({ code: 0, reason: 'getToken failed' });
      return;
    }
    if (gen !== this._gen) return;
    // A page that holds no token (a cookie session, e.g. the admin console) connects with a
    // single-use ticket per attempt: `/ws?ticket=` or `/sse?ticket=`.
    this._attemptTicket = null;
    if (typeof this._opts.getTicket === 'function') {
      try {
        const ticket = await this._opts.getTicket();
        if (gen !== this._gen) return;
        this._attemptTicket = ticket;
      } catch (err) {
        if (gen !== this._gen) return;
        this._emit('error', { type: 'ticket', error: err });
        this._scheduleReconnect({ code: 0, reason: 'getTicket failed' });
        return;
      }
    }
    if (this._useSse) this._openSse();
    else this._openWs();
    if (this._t) this._t.freshToken = fresh && typeof this._opts.getToken === 'function';
  }

  _scheduleReconnect(ctx) {
    const { minReconnectDelay: base, maxReconnectDelay: cap } = this._opts;
    // Full jitter: spread reconnects uniformly so a node restart does not bring every client
    // back at the same instant.
    // A draining node says how long to wait (`delay_ms`, already jittered per client).
    const hinted = Number.isFinite(ctx.delay) && ctx.delay >= 0 ? Math.min(ctx.delay, cap) : null;
    const delay = hinted ?? Math.floor(Math.random() * Math.min(cap, base * 2 ** Math.min(this._attempt, 30)));
    this._attempt++;
    this._setState('connecting');
    this.nextReconnectAt = Date.now() + delay;
    this._log('reconnect in', delay, 'ms', ctx);
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._startAttempt(), delay);
    this._emit('connecting', { code: ctx.code, reason: ctx.reason, attempt: this._attempt, delay });
  }

  _onConnected(t, info) {
    t.connected = true;
    this._attempt = 0;
    this.clientId = info.client ?? null;
    this.user = info.user ?? null;
    this.transport = t.kind;
    this._setState('connected');
    this._emit('connected', { client: this.clientId, user: this.user, transport: t.kind });
    const queued = this._queue.splice(0);
    for (const req of queued) this._dispatch(t, req);
  }

  // Called when a transport is gone (closed by the peer, failed, or abandoned by us).
  _transportLost(t, ctx) {
    if (t !== this._t) return;
    this._closeTransport(t);
    this._t = null;
    this.transport = null;
    this._failPending(new SwitchboardError('disconnected', `connection lost: ${ctx.reason || ctx.code}`));
    for (const sub of this._subs.values()) {
      sub._buffer = null;
      if (sub.state === 'subscribed') sub._setState('subscribing');
    }
    if (ctx.code === 4004) this._needToken = true;
    if (ctx.code === 4501 && !ctx.reconnect && !t.freshToken && typeof this._opts.getToken === 'function') {
      // The cached token may simply have expired while we were away: retry once with a new one.
      this._needToken = true;
      ctx = { ...ctx, reconnect: true };
    }
    if (t.connected) this._emit('disconnected', { code: ctx.code, reason: ctx.reason, reconnect: ctx.reconnect });
    if (ctx.reconnect) {
      this._scheduleReconnect(ctx);
    } else {
      this._gen++;
      this._failQueue(new SwitchboardError('disconnected', `disconnected: ${ctx.reason || ctx.code}`));
      this._setState('disconnected');
      if (!t.connected) this._emit('disconnected', { code: ctx.code, reason: ctx.reason, reconnect: false });
    }
  }

  _abandon(t, ctx) {
    this._log('abandon transport', t.kind, ctx);
    this._transportLost(t, ctx);
  }

  _closeTransport(t) {
    clearTimeout(t.handshakeTimer);
    clearTimeout(t.pingTimer);
    t.closed = true;
    if (t.ws) {
      const ws = t.ws;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
    if (t.es) {
      t.es.close();
      t.es = null;
    }
  }

  // ---- commands -----------------------------------------------------------------------------

  _command(cmd) {
    return new Promise((resolve, reject) => {
      const req = { cmd, resolve, reject, timer: null, id: 0 };
      if (this.state === 'disconnected') {
        reject(new SwitchboardError('disconnected', 'client is not connected'));
        return;
      }
      req.timer = setTimeout(() => {
        this._queue = this._queue.filter((r) => r !== req);
        if (req.id) this._pending.delete(req.id);
        reject(new SwitchboardError('timeout', `${cmd.op} timed out`));
      }, this._opts.timeout);
      const t = this._t;
      if (t && t.connected) this._dispatch(t, req);
      else this._queue.push(req);
    });
  }

  _settle(req, msg) {
    clearTimeout(req.timer);
    if (msg.error) {
      const e = msg.error;
      req.reject(new SwitchboardError(e.code || 'internal', e.message || e.code, { status: msg.status }));
    } else {
      req.resolve(msg.ok ?? {});
    }
  }

  _dispatch(t, req) {
    if (t.kind === 'websocket') {
      req.id = this._nextId++;
      this._pending.set(req.id, req);
      this._wsSend(t, { id: req.id, ...req.cmd });
    } else {
      this._httpCommand(req);
    }
  }

  _failPending(err) {
    for (const req of this._pending.values()) {
      clearTimeout(req.timer);
      req.reject(err);
    }
    this._pending.clear();
  }

  _failQueue(err) {
    for (const req of this._queue.splice(0)) {
      clearTimeout(req.timer);
      req.reject(err);
    }
  }

  async _httpCommand(req) {
    const send = async () => {
      const token = await this._ensureToken();
      const headers = { 'Content-Type': 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const id = this._nextId++;
      return fetch(`${this._httpBase}/cmd`, { method: 'POST', headers, body: JSON.stringify({ id, ...req.cmd }) });
    };
    try {
      let res = await send();
      if (res.status === 401 && typeof this._opts.getToken === 'function') {
        this._needToken = true;
        res = await send();
      }
      let body;
      try {
        body = await res.json();
      } catch {
        body = { error: { code: 'internal', message: `HTTP ${res.status} without a JSON body` } };
      }
      if (!body || (body.ok === undefined && !body.error)) {
        body = { error: { code: 'internal', message: `unexpected /cmd response (HTTP ${res.status})` } };
      }
      this._settle(req, { ...body, status: res.status });
    } catch (err) {
      clearTimeout(req.timer);
      req.reject(new SwitchboardError('network', `POST /cmd failed: ${err && err.message}`));
    }
  }

  // ---- WebSocket ----------------------------------------------------------------------------

  _openWs() {
    const t = { kind: 'websocket', ws: null, opened: false, connected: false, disconnectPush: null };
    this._t = t;
    let ws;
    let url = this.url;
    if (this._attemptTicket) {
      const u = new URL(url);
      u.searchParams.set('ticket', this._attemptTicket);
      url = u.toString();
      this._attemptTicket = null;
    }
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this._log('WebSocket constructor failed', err);
      this._wsOpenFailed(t, { code: 1006, reason: 'WebSocket could not be created' });
      return;
    }
    t.ws = ws;
    t.handshakeTimer = setTimeout(
      () => this._abandon(t, { code: 1006, reason: 'connect timed out', reconnect: true }),
      this._opts.timeout,
    );
    ws.onopen = () => {
      t.opened = true;
      this._wsFailures = 0;
      const id = this._nextId++;
      const cmd = { id, op: 'connect' };
      if (this._token) cmd.token = this._token;
      t.connectId = id;
      this._wsSend(t, cmd);
    };
    ws.onmessage = (e) => this._onWsMessage(t, e.data);
    ws.onerror = () => this._log('WebSocket error');
    ws.onclose = (e) => {
      if (t !== this._t) return;
      if (!t.opened) {
        this._wsOpenFailed(t, { code: e.code, reason: e.reason || 'WebSocket could not open' });
        return;
      }
      const push = t.disconnectPush;
      const code = push ? push.code : e.code;
      const reason = push ? push.reason : e.reason || `closed (${e.code})`;
      const reconnect = push && typeof push.reconnect === 'boolean' ? push.reconnect : !isTerminalCode(code);
      this._transportLost(t, { code, reason, reconnect, delay: push?.delay });
    };
  }

  async _wsOpenFailed(t, ctx) {
    if (t !== this._t) return;
    this._closeTransport(t);
    this._wsFailures++;
    const gen = this._gen;
    if (this._opts.transports.includes('sse') && (this._wsFailures >= 2 || typeof WebSocket !== 'function')) {
      // Two failed opens in a row: is the node down, or is WebSocket blocked on the way (proxy,
      // firewall, extension)? Only fall back when plain HTTP to the node still works.
      let reachable = false;
      try {
        await fetch(`${this._httpBase}/health`, { cache: 'no-store' });
        reachable = true;
      } catch {
        reachable = false;
      }
      if (t !== this._t || gen !== this._gen) return;
      if (reachable) {
        this._log('WebSocket cannot open but HTTP works: falling back to SSE');
        this._useSse = true;
        this._emit('transport', { transport: 'sse', reason: 'websocket unavailable' });
      }
    }
    this._transportLost(t, { ...ctx, reconnect: true });
  }

  _wsSend(t, obj) {
    try {
      t.ws.send(JSON.stringify(obj));
    } catch (err) {
      this._log('send failed', err);
    }
  }

  _armPingTimer(t) {
    clearTimeout(t.pingTimer);
    if (!t.pingInterval) return;
    t.pingTimer = setTimeout(
      () => this._abandon(t, { code: 4001, reason: 'no ping from the node', reconnect: true }),
      t.pingInterval * 1000 + this._opts.pingGrace,
    );
  }

  _onWsMessage(t, raw) {
    if (t !== this._t) return;
    this._armPingTimer(t);
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      this._log('unparsable frame', raw);
      return;
    }
    for (const m of Array.isArray(msg) ? msg : [msg]) {
      if (t !== this._t) return;
      this._onWsOne(t, m);
    }
  }

  _onWsOne(t, m) {
    if (!m || typeof m !== 'object') return;
    if (m.id !== undefined && m.id !== null) {
      if (m.id === t.connectId) {
        this._onWsConnectReply(t, m);
        return;
      }
      const req = this._pending.get(m.id);
      if (!req) return;
      this._pending.delete(m.id);
      this._settle(req, m);
      return;
    }
    switch (m.op) {
      case 'pub':
        this._onPub(m, { checkGap: true });
        break;
      case 'join':
      case 'leave': {
        const sub = this._subs.get(m.channel);
        if (sub) sub._emit(m.op, { channel: m.channel, client: m.client });
        break;
      }
      case 'ping':
        break;
      case 'expiring':
        this._onExpiring(t, m);
        break;
      case 'disconnect':
        t.disconnectPush = { code: m.code, reason: m.reason, reconnect: m.reconnect, delay: m.delay_ms };
        break;
      default:
        if (m.error) this._emit('error', { type: 'protocol', error: new SwitchboardError(m.error.code, m.error.message) });
    }
  }

  _onWsConnectReply(t, m) {
    clearTimeout(t.handshakeTimer);
    if (m.error) {
      const code = m.error.code;
      const terminal = code === 'unauthorized' || code === 'permission_denied' || code === 'bad_request';
      this._emit('error', { type: 'connect', error: new SwitchboardError(code, m.error.message) });
      this._abandon(t, { code: terminal ? 4501 : 1011, reason: m.error.message || code, reconnect: !terminal });
      return;
    }
    const ok = m.ok || {};
    t.pingInterval = ok.ping_interval || 0;
    this._armPingTimer(t);
    for (const sub of this._subs.values()) this._wsSubscribe(t, sub);
    this._onConnected(t, ok);
  }

  _wsCall(t, cmd) {
    return new Promise((resolve, reject) => {
      const req = { cmd, resolve, reject, id: this._nextId++ };
      req.timer = setTimeout(() => {
        this._pending.delete(req.id);
        reject(new SwitchboardError('timeout', `${cmd.op} timed out`));
      }, this._opts.timeout);
      this._pending.set(req.id, req);
      this._wsSend(t, { id: req.id, ...cmd });
    });
  }

  async _onExpiring(t, m) {
    if (typeof this._opts.getToken !== 'function' || t.refreshing) return;
    t.refreshing = true;
    try {
      // Never refresh in a tight loop, even if the token source hands out very short tokens.
      const wait = this._lastRefreshAt + 1000 - Date.now();
      if (wait > 0) await sleep(Math.min(wait, Math.max(0, (m.in || 0) * 1000 - 500)));
      if (t !== this._t) return;
      this._needToken = true;
      const token = await this._ensureToken();
      if (t !== this._t) return;
      this._lastRefreshAt = Date.now();
      await this._wsCall(t, { op: 'refresh', token });
      this._log('token refreshed');
    } catch (err) {
      if (t === this._t) this._emit('error', { type: 'refresh', error: err });
    } finally {
      t.refreshing = false;
    }
  }

  _wsSubscribe(t, sub) {
    sub._setState('subscribing');
    sub._buffer = [];
    const cmd = { op: 'subscribe', channel: sub.channel };
    const resuming = !!(sub._pos && sub._pos.epoch != null);
    if (resuming) cmd.since = { offset: sub._pos.offset, epoch: sub._pos.epoch };
    this._wsCall(t, cmd).then(
      (ok) => {
        if (t !== this._t || this._subs.get(sub.channel) !== sub) return;
        this._onSubscribed(sub, ok, resuming, 'websocket');
      },
      (err) => {
        if (t !== this._t || this._subs.get(sub.channel) !== sub) return;
        this._onSubscribeError(t, sub, err);
      },
    );
  }

  _onSubscribed(sub, ok, resuming, transport) {
    const pos = ok.position || { offset: 0, epoch: null };
    const buffered = sub._buffer || [];
    sub._buffer = null;
    sub._setState('subscribed');
    const first = !sub._everSubscribed;
    sub._everSubscribed = true;
    if (resuming && ok.recovered === false) {
      sub._pos = { offset: pos.offset, epoch: pos.epoch };
      sub._emit('subscribed', { channel: sub.channel, position: sub.position, recovered: false, transport, first });
      sub._emit('reset', { channel: sub.channel, position: sub.position, reason: 'history does not reach back' });
    } else {
      if (!sub._pos || sub._pos.epoch !== pos.epoch) sub._pos = { offset: null, epoch: pos.epoch };
      sub._emit('subscribed', { channel: sub.channel, position: { ...pos }, recovered: resuming, transport, first });
      for (const p of ok.publications || []) sub._deliver(p);
      if (sub._pos.offset === null || sub._pos.offset < pos.offset) sub._pos.offset = pos.offset;
    }
    for (const p of buffered) sub._deliver(p);
  }

  _onSubscribeError(t, sub, err) {
    const retry = err.code === 'internal' || err.code === 'rate_limited' || err.code === 'timeout';
    sub._emit('error', { channel: sub.channel, error: err });
    if (retry && t.kind === 'websocket') {
      const delay = this._opts.minReconnectDelay + Math.random() * this._opts.minReconnectDelay * 4;
      setTimeout(() => {
        if (t === this._t && this._subs.get(sub.channel) === sub) this._wsSubscribe(t, sub);
      }, delay);
    } else {
      this._subs.delete(sub.channel);
      sub._setState('unsubscribed');
    }
  }

  _removeSubscription(sub) {
    if (this._subs.get(sub.channel) !== sub) return;
    this._subs.delete(sub.channel);
    sub._setState('unsubscribed');
    const t = this._t;
    if (t && t.connected) {
      if (t.kind === 'websocket') this._wsCall(t, { op: 'unsubscribe', channel: sub.channel }).catch(() => {});
      else this._sseChannelsChanged(t);
    }
  }

  // A live publication (WebSocket push or SSE message).
  _onPub(m, opts) {
    const sub = this._subs.get(m.channel);
    if (!sub || sub.state === 'unsubscribed') return;
    if (sub._buffer) {
      sub._buffer.push(m);
      return;
    }
    if (!sub._deliver(m, opts)) this._recoverGap(sub, m);
  }

  // A publication arrived with an offset beyond the next one: fetch the missing ones from
  // history before going on (never a silent gap). Live publications wait in the buffer.
  _recoverGap(sub, m) {
    const since = { offset: sub._pos.offset, epoch: sub._pos.epoch };
    this._log('gap on', sub.channel, 'after', since.offset, 'got', m.offset, ': reading history');
    const buf = [m];
    sub._buffer = buf;
    const t = this._t;
    this.history(sub.channel, { since }).then(
      (res) => {
        if (this._subs.get(sub.channel) !== sub || sub._buffer !== buf) return;
        sub._buffer = null;
        for (const p of res.publications || []) sub._deliver(p);
        for (const p of buf) sub._deliver(p);
      },
      (err) => {
        if (this._subs.get(sub.channel) !== sub || sub._buffer !== buf) return;
        sub._buffer = null;
        if (err.code === 'unrecoverable_position' || err.code === 'not_available') {
          sub._pos = { offset: buf[0].offset - 1, epoch: sub._pos.epoch };
          sub._emit('reset', { channel: sub.channel, position: sub.position, reason: `gap: ${err.code}` });
          for (const p of buf) sub._deliver(p);
        } else if (t && t === this._t) {
          // Could not read history now: reconnect, which resumes from the last position.
          this._abandon(t, { code: 4003, reason: 'gap recovery failed', reconnect: true });
        }
      },
    );
  }

  // ---- Server-Sent Events -------------------------------------------------------------------

  async _ticket() {
    if (typeof this._opts.getTicket === 'function') {
      const ticket = this._attemptTicket;
      this._attemptTicket = null;
      return ticket || this._opts.getTicket();
    }
    for (let i = 0; i < 2; i++) {
      const token = await this._ensureToken();
      if (!token) return null;
      const res = await fetch(`${this._httpBase}/auth/ticket`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}` },
      });
      if (res.status === 401 && i === 0 && typeof this._opts.getToken === 'function') {
        this._needToken = true;
        continue;
      }
      if (!res.ok) {
        throw new SwitchboardError(res.status === 401 ? 'unauthorized' : 'internal', `POST /auth/ticket: HTTP ${res.status}`);
      }
      return (await res.json()).ticket;
    }
    throw new SwitchboardError('unauthorized', 'POST /auth/ticket: HTTP 401');
  }

  _openSse() {
    const t = { kind: 'sse', es: null, connected: false, stream: 0, channels: [], rawCursor: null, rawCursorKey: null };
    this._t = t;
    this._openSseStream(t);
  }

  _sseCursor(t, channels) {
    const entries = [];
    let complete = true;
    for (const ch of channels) {
      const sub = this._subs.get(ch);
      if (sub && sub._pos && typeof sub._pos.offset === 'number' && sub._pos.epoch != null) {
        entries.push({ channel: ch, offset: sub._pos.offset, epoch: sub._pos.epoch });
      } else complete = false;
    }
    if (entries.length) return encodeCursor(entries);
    // Positions unknown (cursor layout not understood): hand the node's cursor back when it was
    // made for exactly these channels.
    if (!complete && t.rawCursor && t.rawCursorKey === [...channels].sort().join('\n')) return t.rawCursor;
    return null;
  }

  async _openSseStream(t) {
    const stream = ++t.stream;
    if (t.es) {
      t.es.close();
      t.es = null;
    }
    clearTimeout(t.handshakeTimer);
    const channels = [...this._subs.keys()];
    if (channels.length === 0) {
      // /sse needs a channel: stay connected (commands go over /cmd) until one is subscribed.
      t.channels = [];
      if (!t.connected) this._onConnected(t, {});
      return;
    }
    for (const ch of channels) this._subs.get(ch)._setState('subscribing');
    let ticket;
    try {
      ticket = await this._ticket();
    } catch (err) {
      if (t !== this._t || stream !== t.stream) return;
      this._emit('error', { type: 'ticket', error: err });
      const terminal = err.code === 'unauthorized';
      this._abandon(t, { code: terminal ? 4501 : 1006, reason: err.message, reconnect: !terminal });
      return;
    }
    if (t !== this._t || stream !== t.stream) return;
    // After a stream was refused over its cursor, start over without one: those channels cannot
    // prove continuity, so they get `reset` once the new stream is up.
    const forcedReset = new Set();
    if (this._sseDropCursor) {
      for (const ch of channels) {
        const sub = this._subs.get(ch);
        if (sub._pos) forcedReset.add(ch);
        sub._pos = null;
      }
    }
    const cursor = this._sseCursor(t, channels);
    const qs = new URLSearchParams();
    for (const ch of channels) qs.append('channel', ch);
    if (ticket) qs.set('ticket', ticket);
    if (cursor) qs.set('since', cursor);
    t.channels = channels;
    t.resuming = new Set(channels.filter((ch) => this._subs.get(ch)._pos?.epoch != null));
    t.resetSeen = new Set();
    const es = new EventSource(`${this._httpBase}/sse?${qs}`);
    t.es = es;
    let welcomed = false;
    t.handshakeTimer = setTimeout(
      () => this._abandon(t, { code: 1006, reason: 'SSE welcome timed out', reconnect: true }),
      this._opts.timeout,
    );
    const live = () => t === this._t && stream === t.stream;
    const parse = (e) => {
      try {
        return JSON.parse(e.data);
      } catch {
        this._log('unparsable SSE data', e.data);
        return null;
      }
    };
    es.addEventListener('welcome', (e) => {
      if (!live()) return;
      clearTimeout(t.handshakeTimer);
      welcomed = true;
      this._sseDropCursor = false;
      const w = parse(e) || {};
      this._noteCursor(t, e.lastEventId);
      if (!t.connected) this._onConnected(t, w);
      const listed = Array.isArray(w.channels) ? w.channels : channels;
      for (const ch of listed) {
        const sub = this._subs.get(ch);
        if (!sub || sub.state === 'subscribed') continue;
        sub._setState('subscribed');
        const first = !sub._everSubscribed;
        sub._everSubscribed = true;
        sub._emit('subscribed', {
          channel: ch,
          position: sub.position,
          recovered: t.resuming.has(ch) && !t.resetSeen.has(ch) && !forcedReset.has(ch),
          transport: 'sse',
          first,
        });
      }
      for (const ch of forcedReset) {
        const sub = this._subs.get(ch);
        if (sub) sub._emit('reset', { channel: ch, position: sub.position, reason: 'stream refused the resume cursor' });
      }
    });
    es.onmessage = (e) => {
      if (!live()) return;
      const m = parse(e);
      if (!m || m.op !== 'pub') return;
      const sub = this._subs.get(m.channel);
      const pos = this._cursorPositions(t, e.lastEventId);
      const ep = pos && pos.get(m.channel);
      if (sub && ep && sub._pos && sub._pos.epoch != null && sub._pos.epoch !== ep.epoch) {
        // A new epoch without a reset event: its offsets say nothing about the old ones.
        sub._pos = { offset: null, epoch: ep.epoch };
      }
      this._onPub(m, { checkGap: true, epoch: ep ? ep.epoch : null });
      if (sub && ep && sub._pos) sub._pos.epoch = ep.epoch;
    };
    for (const op of ['join', 'leave']) {
      es.addEventListener(op, (e) => {
        if (!live()) return;
        const m = parse(e);
        const sub = m && this._subs.get(m.channel);
        if (sub) sub._emit(op, { channel: m.channel, client: m.client });
      });
    }
    es.addEventListener('reset', (e) => {
      if (!live()) return;
      const m = parse(e) || {};
      const pos = this._cursorPositions(t, e.lastEventId);
      for (const ch of m.channels || []) {
        const sub = this._subs.get(ch);
        if (!sub) continue;
        t.resetSeen.add(ch);
        const p = pos && pos.get(ch);
        sub._pos = p ? { offset: p.offset, epoch: p.epoch } : { offset: null, epoch: null };
        sub._buffer = null;
        sub._emit('reset', { channel: ch, position: sub.position, reason: m.reason || 'not recovered' });
      }
      this._noteCursor(t, e.lastEventId);
    });
    es.addEventListener('disconnect', (e) => {
      if (!live()) return;
      const m = parse(e) || {};
      const code = typeof m.code === 'number' ? m.code : 1006;
      const reconnect = typeof m.reconnect === 'boolean' ? m.reconnect : !isTerminalCode(code);
      this._abandon(t, { code, reason: m.reason || 'stream ended', reconnect, delay: m.delay_ms });
    });
    es.onerror = () => {
      if (!live()) return;
      // EventSource would retry by itself with the consumed ticket (401): take over instead,
      // with a new ticket and the last cursor.
      if (welcomed) this._abandon(t, { code: 1006, reason: 'SSE stream failed', reconnect: true });
      else this._sseRefused(t, stream, channels, cursor);
    };
  }

  // The stream failed before its welcome. EventSource hides the HTTP status, so ask once more with
  // fetch (Bearer token instead of a ticket) to learn why, and act on it instead of retrying the
  // same request forever.
  async _sseRefused(t, stream, channels, cursor) {
    const live = () => t === this._t && stream === t.stream;
    clearTimeout(t.handshakeTimer);
    if (t.es) {
      t.es.close();
      t.es = null;
    }
    let status = 0;
    try {
      const token = await this._ensureToken();
      const qs = new URLSearchParams();
      for (const ch of channels) qs.append('channel', ch);
      if (cursor) qs.set('since', cursor);
      const ctrl = new AbortController();
      const res = await fetch(`${this._httpBase}/sse?${qs}`, {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        cache: 'no-store',
        signal: ctrl.signal,
      });
      status = res.status;
      ctrl.abort();
    } catch {
      status = 0;
    }
    if (!live()) return;
    this._log('SSE stream refused; diagnosis: HTTP', status);
    if (status === 400 && cursor) this._sseDropCursor = true;
    else if (status === 401) this._needToken = true;
    else if (status === 400 || status === 403) await this._dropRefusedChannels(channels);
    if (!live()) return;
    this._abandon(t, { code: 1006, reason: `SSE stream refused (${status ? `HTTP ${status}` : 'unreachable'})`, reconnect: true });
  }

  // Finds the subscriptions the node refuses (presence needs the same right as subscribing) and
  // ends them with an error, so one bad channel does not keep every other one off the air.
  async _dropRefusedChannels(channels) {
    await Promise.all(
      channels.map(async (ch) => {
        try {
          await new Promise((resolve, reject) => this._httpCommand({ cmd: { op: 'presence', channel: ch }, resolve, reject }));
        } catch (err) {
          const sub = this._subs.get(ch);
          if (!sub || !['permission_denied', 'invalid_channel'].includes(err.code)) return;
          this._subs.delete(ch);
          sub._setState('unsubscribed');
          sub._emit('error', { channel: ch, error: err });
        }
      }),
    );
  }

  _cursorPositions(t, cursor) {
    if (!cursor) return null;
    t.rawCursor = cursor;
    t.rawCursorKey = [...t.channels].sort().join('\n');
    return decodeCursor(cursor, t.channels);
  }

  // Takes positions from a welcome/reset cursor for subscriptions that have none yet. Positions
  // the SDK already holds are what it delivered, which is what resume must start from.
  _noteCursor(t, cursor) {
    const pos = this._cursorPositions(t, cursor);
    if (!pos) return;
    for (const [ch, p] of pos) {
      const sub = this._subs.get(ch);
      if (sub && (!sub._pos || sub._pos.epoch == null || sub._pos.offset == null)) {
        sub._pos = { offset: p.offset, epoch: p.epoch };
      }
    }
  }

  _sseChannelsChanged(t) {
    if (t.reopenQueued) return;
    t.reopenQueued = true;
    // Batch subscription changes made in the same tick into one new stream.
    queueMicrotask(() => {
      t.reopenQueued = false;
      if (t !== this._t || !t.connected) return;
      const now = [...this._subs.keys()].sort().join('\n');
      if (now === [...t.channels].sort().join('\n') && t.es) return;
      this._openSseStream(t);
    });
  }
}

export default Switchboard;
