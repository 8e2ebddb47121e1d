// Switchboard landing page: chat, live ticker and a playground, all on the browser SDK.
import { Switchboard } from '/sdk/switchboard.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const NAME_RE = /^[A-Za-z0-9_.@-]{1,32}$/; // what /dev/token accepts as a user id

function randomName() {
  const words = ['otter', 'heron', 'lynx', 'fox', 'wren', 'orca', 'ibex', 'kite', 'puma', 'yak'];
  return `${words[Math.floor(Math.random() * words.length)]}-${Math.floor(100 + Math.random() * 900)}`;
}

function storedName() {
  try {
    return localStorage.getItem('switchboard-demo-name');
  } catch {
    return null;
  }
}

let name = [params.get('name'), storedName()].find((n) => n && NAME_RE.test(n)) || randomName();

// Stable, readable colour per user.
function userColor(user) {
  let h = 0;
  for (const c of user) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${h % 360} 55% 42%)`;
}

// ---- client -----------------------------------------------------------------------------------

const client = new Switchboard(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, {
  getToken: async () => {
    const res = await fetch(`/dev/token?user=${encodeURIComponent(name)}`, { cache: 'no-store' });
    if (!res.ok) throw new Error(`GET /dev/token: HTTP ${res.status}`);
    return (await res.json()).token;
  },
  transports: params.get('transport') === 'sse' ? ['sse'] : undefined,
  debug: params.has('debug'),
  name: 'demo',
});
window.switchboard = client; // for the browser console (and tests)

// ---- connection state -------------------------------------------------------------------------

const stateEl = $('state');
const stateText = $('state-text');
const retry = $('state-retry');
let lastDisconnect = null;
let tick = null;

function renderState() {
  let label;
  let kind = client.state;
  clearInterval(tick);
  tick = null;
  if (client.state === 'connected') {
    label = `connected via ${client.transport === 'websocket' ? 'ws' : client.transport}`;
  } else if (client.state === 'connecting') {
    const wait = client.nextReconnectAt ? client.nextReconnectAt - Date.now() : 0;
    if (client.nextReconnectAt && wait > 0) {
      kind = 'reconnecting';
      label = `reconnecting in ${Math.ceil(wait / 1000)}s`;
      tick = setInterval(renderState, 250);
    } else {
      label = lastDisconnect ? 'reconnecting…' : 'connecting…';
      if (lastDisconnect) kind = 'reconnecting';
    }
  } else {
    label = lastDisconnect && lastDisconnect.code !== 1000 ? `disconnected (${lastDisconnect.reason || lastDisconnect.code})` : 'disconnected';
  }
  stateEl.dataset.state = kind;
  stateEl.dataset.transport = client.transport || '';
  stateEl.title = lastDisconnect ? `last disconnect: ${lastDisconnect.code} ${lastDisconnect.reason}` : '';
  stateText.textContent = label;
  retry.hidden = client.state !== 'disconnected';
}

retry.addEventListener('click', () => client.connect());

function renderWho() {
  const who = $('who');
  who.replaceChildren('signed in as ', el('b', { text: name }));
}

// ---- playground log -------------------------------------------------------------------------

const pgLog = $('pg-log');

function log(kind, text) {
  const li = el(
    'li',
    { dataset: { kind } },
    el('span', { class: 't', text: fmtTime(Date.now()) }),
    el('span', { class: `k k-${kind}`, text: kind }),
    el('span', { class: 'd', text }),
  );
  pgLog.prepend(li);
  while (pgLog.childElementCount > 200) pgLog.lastElementChild.remove();
}

const short = (v) => {
  const s = JSON.stringify(v);
  return s && s.length > 160 ? `${s.slice(0, 157)}…` : s;
};

$('pg-clear').addEventListener('click', () => pgLog.replaceChildren());
$('pg-drop').addEventListener('click', () => {
  log('state', 'dropping the connection (simulated network failure)');
  client._debugDropConnection();
});

client.on('state', (ctx) => {
  if (ctx.newState === 'connected') lastDisconnect = null;
  renderState();
});
client.on('connecting', (ctx) => {
  renderState();
  if (ctx.attempt > 0) log('connecting', `retry #${ctx.attempt} in ${(ctx.delay / 1000).toFixed(1)}s (${ctx.reason || ctx.code})`);
});
client.on('connected', (ctx) => {
  renderState();
  log('connected', `via ${ctx.transport} as ${ctx.user ?? name}${ctx.client ? ` (client ${ctx.client.slice(0, 8)})` : ''}`);
});
client.on('disconnected', (ctx) => {
  lastDisconnect = ctx;
  renderState();
  log('disconnect', `${ctx.code} ${ctx.reason}${ctx.reconnect ? ', will reconnect' : ''}`);
});
client.on('error', (ctx) => log('error', `${ctx.type}: ${ctx.error.message}`));
client.on('transport', (ctx) => log('state', `switched to ${ctx.transport}: ${ctx.reason}`));

// ---- chat -------------------------------------------------------------------------------------

const CHAT = 'chat:lobby';
const chatLog = $('chat-log');
const chatWrap = chatLog.parentElement;
const messages = new Map(); // offset -> message, within the current epoch
const presence = new Map(); // client id -> user

function addMessage(p) {
  if (messages.has(p.offset)) return;
  const data = p.data && typeof p.data === 'object' ? p.data : { text: String(p.data) };
  const user = p.info?.user || data.user || 'server';
  messages.set(p.offset, { offset: p.offset, user, text: typeof data.text === 'string' ? data.text : JSON.stringify(data), ts: data.ts || Date.now() });
  renderMessages();
}

function renderMessages() {
  const stick = chatWrap.scrollHeight - chatWrap.scrollTop - chatWrap.clientHeight < 40;
  const sorted = [...messages.values()].sort((a, b) => a.offset - b.offset).slice(-200);
  chatLog.replaceChildren(
    ...sorted.map((m, i) => {
      const prev = sorted[i - 1];
      // Consecutive messages from one author within two minutes share a header.
      const cont = prev && prev.user === m.user && m.ts - prev.ts < 120000;
      const li = el('li', { class: `${m.user === name ? 'mine' : ''}${cont ? ' cont' : ''}`, dataset: { offset: m.offset, user: m.user } });
      if (!cont) {
        const author = el('span', { class: 'author', text: m.user });
        author.style.color = userColor(m.user);
        li.append(el('div', { class: 'msg-head' }, author, el('time', { class: 'time', text: fmtTime(m.ts) })));
      }
      li.append(el('span', { class: 'text', text: m.text }));
      return li;
    }),
  );
  $('chat-empty').hidden = sorted.length > 0;
  if (stick) chatWrap.scrollTop = chatWrap.scrollHeight;
}

async function loadChatHistory() {
  try {
    const res = await client.history(CHAT, { limit: 50, reverse: true });
    for (const p of res.publications) addMessage(p);
  } catch (err) {
    if (err.code !== 'not_available') log('error', `chat history: ${err.code}: ${err.message}`);
  }
}

function renderPresence() {
  const byUser = new Map();
  for (const user of presence.values()) byUser.set(user, (byUser.get(user) || 0) + 1);
  const users = [...byUser.keys()].sort((a, b) => (a === name ? -1 : b === name ? 1 : a.localeCompare(b)));
  $('presence').replaceChildren(
    ...users.map((u) => {
      const n = byUser.get(u);
      const li = el('li', { class: u === name ? 'me' : '', dataset: { user: u }, title: `${u}: ${n} connection${n > 1 ? 's' : ''}` }, u);
      if (n > 1) li.append(el('span', { class: 'n', text: `×${n}` }));
      return li;
    }),
  );
  $('presence-count').textContent = String(users.length);
}

async function loadPresence() {
  try {
    const res = await client.presence(CHAT);
    presence.clear();
    for (const c of res.clients) presence.set(c.client, c.user);
    renderPresence();
  } catch (err) {
    log('error', `presence: ${err.code}: ${err.message}`);
  }
}

client.subscribe(CHAT, {
  onSubscribed: (ctx) => {
    if (ctx.first || !ctx.recovered) loadChatHistory();
    loadPresence();
  },
  onPublication: (ctx) => addMessage(ctx),
  onJoin: (ctx) => {
    presence.set(ctx.client.client, ctx.client.user);
    renderPresence();
  },
  onLeave: (ctx) => {
    presence.delete(ctx.client.client);
    renderPresence();
  },
  onReset: () => {
    // The stream lost continuity (e.g. the node restarted): reload from history.
    messages.clear();
    renderMessages();
    loadChatHistory();
    loadPresence();
  },
  onError: (ctx) => log('error', `${CHAT}: ${ctx.error.code}: ${ctx.error.message}`),
});

const chatError = $('chat-error');
$('chat-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  input.value = '';
  chatError.hidden = true;
  try {
    await client.publish(CHAT, { text, ts: Date.now() });
  } catch (err) {
    input.value = input.value || text;
    chatError.textContent = `Not sent: ${err.message} (${err.code})`;
    chatError.hidden = false;
  }
});

$('chat-name').value = name;
$('name-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const next = $('chat-name').value.trim();
  if (!NAME_RE.test(next) || next === name) return;
  name = next;
  try {
    localStorage.setItem('switchboard-demo-name', name);
  } catch {
    /* private mode */
  }
  renderWho();
  renderMessages();
  log('state', `reconnecting as ${name}`);
  // The token names the user: reconnect to get one for the new name.
  client.disconnect();
  client.connect();
});

// ---- ticker -----------------------------------------------------------------------------------

const TICKER = 'demo:ticker';
const tickerBody = $('ticker').tBodies[0];
const symbols = new Map(); // symbol -> {row, prices[], first}
let tickerCount = 0;
let rateWindow = [];
let latency = null;
let msTimestamps = false; // only show latency when the publisher's `ts` has millisecond precision

function sparkPoints(prices) {
  const min = Math.min(...prices);
  const max = Math.max(...prices);
  const span = max - min || 1;
  const step = prices.length > 1 ? 78 / (prices.length - 1) : 0;
  return prices.map((p, i) => `${(1 + i * step).toFixed(1)},${(20 - ((p - min) / span) * 18).toFixed(1)}`).join(' ');
}

function onTick(ctx) {
  const d = ctx.data || {};
  if (typeof d.symbol !== 'string' || typeof d.price !== 'number') return;
  tickerCount++;
  rateWindow.push(Date.now());
  if (typeof d.ts === 'number' && d.ts % 1000 !== 0) msTimestamps = true;
  if (typeof d.ts === 'number' && msTimestamps) {
    const l = Math.max(0, Date.now() - d.ts);
    latency = latency === null ? l : latency * 0.8 + l * 0.2;
  }
  let s = symbols.get(d.symbol);
  if (!s) {
    const row = el(
      'tr',
      { dataset: { symbol: d.symbol } },
      el('td', { class: 'sym', text: d.symbol }),
      el('td', { class: 'num price' }),
      el('td', { class: 'num chg' }),
      el('td', { class: 'spark-col' }),
    );
    row.cells[3].innerHTML = '<svg class="spark" viewBox="0 0 80 22" preserveAspectRatio="none"><polyline points=""/></svg>';
    s = { row, prices: [], first: d.price };
    symbols.set(d.symbol, s);
    const after = [...tickerBody.rows].find((r) => r.dataset.symbol > d.symbol);
    tickerBody.insertBefore(row, after || null);
    $('ticker-empty').hidden = true;
  }
  const prev = s.prices.length ? s.prices[s.prices.length - 1] : d.price;
  s.prices.push(d.price);
  if (s.prices.length > 40) s.prices.shift();
  const dir = d.price > prev ? 'up' : d.price < prev ? 'down' : null;
  const change = d.price - s.first;
  const pct = s.first ? (change / s.first) * 100 : 0;
  const { row } = s;
  row.cells[1].textContent = d.price.toFixed(2);
  row.cells[2].textContent = `${change >= 0 ? '▲' : '▼'} ${Math.abs(pct).toFixed(2)}%`;
  row.classList.toggle('up', change >= 0);
  row.classList.toggle('down', change < 0);
  row.querySelector('polyline').setAttribute('points', sparkPoints(s.prices));
  if (dir) {
    row.classList.remove('flash-up', 'flash-down');
    void row.offsetWidth; // restart the transition
    row.classList.add(`flash-${dir}`);
    clearTimeout(s.flash);
    s.flash = setTimeout(() => row.classList.remove('flash-up', 'flash-down'), 150);
  }
  row.dataset.price = String(d.price);
  row.dataset.dir = dir || '';
}

client.subscribe(TICKER, {
  onPublication: onTick,
  onError: (ctx) => log('error', `${TICKER}: ${ctx.error.code}: ${ctx.error.message}`),
});

setInterval(() => {
  const now = Date.now();
  rateWindow = rateWindow.filter((t) => now - t < 2000);
  $('ticker-rate').textContent = (rateWindow.length / 2).toFixed(1).replace(/\.0$/, '');
  // Latency needs millisecond timestamps from the publisher; otherwise show the symbol count.
  if (latency === null) {
    $('ticker-latency').textContent = String(symbols.size);
    $('ticker-latency-label').textContent = 'symbols';
  } else {
    $('ticker-latency').textContent = latency < 10 ? latency.toFixed(1) : String(Math.round(latency));
    $('ticker-latency-label').textContent = 'latency ms';
  }
  $('ticker-count').textContent = tickerCount.toLocaleString('en-US');
}, 500);

// ---- playground subscriptions and publish -----------------------------------------------------

const pgSubs = $('pg-subs');
const pgError = $('pg-error');
const playground = new Map(); // channel -> Subscription (only those made here)

function showPgError(text) {
  pgError.textContent = text;
  pgError.hidden = !text;
}

function renderPgSubs() {
  const items = [...playground.values()].map((sub) => {
    const x = el('button', { type: 'button', title: `Unsubscribe from ${sub.channel}`, 'aria-label': `Unsubscribe from ${sub.channel}` }, '×');
    x.addEventListener('click', () => {
      sub.unsubscribe();
      playground.delete(sub.channel);
      log('unsub', sub.channel);
      renderPgSubs();
    });
    return el('li', { dataset: { channel: sub.channel, state: sub.state } }, sub.channel, x);
  });
  pgSubs.replaceChildren(...(items.length ? items : [el('li', { class: 'none', text: 'no subscriptions' })]));
}

function pgSubscribe(channel) {
  showPgError('');
  if (client.getSubscription(channel)) {
    showPgError(`Already subscribed to ${channel}`);
    return;
  }
  const sub = client.subscribe(channel, {
    onSubscribed: (ctx) => {
      log('subscribed', `${channel} at ${ctx.position ? `${ctx.position.offset}/${ctx.position.epoch}` : '?'}${ctx.first ? '' : ctx.recovered ? ', resumed' : ''}`);
      renderPgSubs();
    },
    onPublication: (ctx) => log('pub', `${channel} #${ctx.offset}${ctx.info ? ` from ${ctx.info.user}` : ''}: ${short(ctx.data)}`),
    onJoin: (ctx) => log('join', `${channel}: ${ctx.client.user} (${ctx.client.client.slice(0, 8)})`),
    onLeave: (ctx) => log('leave', `${channel}: ${ctx.client.user} (${ctx.client.client.slice(0, 8)})`),
    onReset: (ctx) => log('reset', `${channel}: ${ctx.reason}; now at ${ctx.position ? `${ctx.position.offset}/${ctx.position.epoch}` : '?'}`),
    onError: (ctx) => {
      log('error', `${channel}: ${ctx.error.code}: ${ctx.error.message}`);
      if (client.getSubscription(channel) !== sub) {
        playground.delete(channel);
        renderPgSubs();
      }
    },
  });
  sub.on('state', renderPgSubs);
  playground.set(channel, sub);
  renderPgSubs();
}

$('pg-sub-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const channel = $('pg-channel').value.trim();
  if (channel) pgSubscribe(channel);
});

$('pg-pub-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  showPgError('');
  const channel = $('pg-pub-channel').value.trim();
  let data;
  try {
    data = JSON.parse($('pg-data').value);
  } catch (err) {
    showPgError(`Not valid JSON: ${err.message}`);
    return;
  }
  try {
    const pos = await client.publish(channel, data);
    log('published', `${channel} → offset ${pos.offset} (epoch ${pos.epoch})`);
  } catch (err) {
    showPgError(`Publish failed: ${err.message} (${err.code})`);
    log('error', `publish ${channel}: ${err.code}: ${err.message}`);
  }
});

// ---- start ------------------------------------------------------------------------------------

renderWho();
renderState();
renderMessages();
pgSubscribe('playground:test');
client.connect();
