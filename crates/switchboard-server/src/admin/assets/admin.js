// Switchboard admin console: plain JS, no dependencies beyond the node's own SDK.
//
// The page holds no secret of its own: the login cookie is HttpOnly, and every state-changing
// call sends the login's CSRF token (from /admin/api/session) in X-CSRF-Token. Live views
// connect through the SDK with single-use tickets from /admin/api/ticket: the stats stream
// (every node publishes a snapshot each second) and the tail of the channel the operator picks.
// Everything from the network is written with textContent, never parsed as HTML.
import { Switchboard } from '/sdk/switchboard.js';

const $ = (id) => document.getElementById(id);
const WINDOW_MS = 120_000; // what the charts show
const STALE_MS = 5_000; // a node silent this long is left out of the totals
const MAX_TAIL = 200; // entries kept in the tail

let login = null; // {csrf, node, stats_channel, ...}
let statsClient = null;
let tailClient = null;
let tailChannel = null;
let refreshTimer = null;
const latest = new Map(); // node -> its latest snapshot (with `seen`, local ms)
const points = []; // {t, sessions, pubs, dels}

class LoginRequired extends Error {}

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    if (login) headers['X-CSRF-Token'] = login.csrf;
  }
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (res.status === 401) {
    showLogin('Your login has ended; log in again.');
    throw new LoginRequired('login required');
  }
  if (!res.ok) {
    const err = new Error(data?.error?.message || `HTTP ${res.status}`);
    err.code = data?.error?.code;
    err.status = res.status;
    throw err;
  }
  return data;
}

async function ticket(channels) {
  const r = await api('/admin/api/ticket', { method: 'POST', body: { channels } });
  return r.ticket;
}

function newClient(channels, name) {
  return new Switchboard(new URL('/ws', location.href).toString(), {
    getTicket: () => ticket(channels),
    name,
  });
}

function text(el, value) {
  el.textContent = value == null ? '' : String(value);
}

function td(value, cls) {
  const c = document.createElement('td');
  if (cls) c.className = cls;
  text(c, value);
  return c;
}

function fmtUptime(secs) {
  if (secs == null) return '–';
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  const s = Math.floor(secs % 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function fmtNum(v) {
  if (v == null || Number.isNaN(v)) return '–';
  if (v >= 10_000) return `${(v / 1000).toFixed(v >= 100_000 ? 0 : 1)}k`;
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

// ---- login ----------------------------------------------------------------------------------

function showLogin(message) {
  stopConsole();
  login = null;
  $('console').hidden = true;
  $('logout').hidden = true;
  $('live').hidden = true;
  $('node-name').hidden = true;
  $('login-view').hidden = false;
  const err = $('login-error');
  err.hidden = !message;
  text(err, message || '');
  $('password').focus();
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const password = $('password').value;
  const err = $('login-error');
  err.hidden = true;
  $('login-submit').disabled = true;
  try {
    const res = await fetch('/admin/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ password }),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (res.ok) {
      $('password').value = '';
      await boot();
      return;
    }
    let message = 'Wrong password.';
    if (res.status === 429) {
      message = `Too many failed attempts; try again in ${res.headers.get('Retry-After') || 'a few'} s.`;
    } else if (res.status !== 401) {
      message = `Login failed (HTTP ${res.status}).`;
    }
    err.hidden = false;
    text(err, message);
  } catch (error) {
    err.hidden = false;
    text(err, `Login failed: ${error.message}`);
  } finally {
    $('login-submit').disabled = false;
  }
});

$('logout').addEventListener('click', async () => {
  try {
    await api('/admin/logout', { method: 'POST', body: {} });
  } catch {
    // Logged out either way.
  }
  showLogin('');
});

// ---- console --------------------------------------------------------------------------------

function stopConsole() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  statsClient?.disconnect();
  statsClient = null;
  stopTail();
}

async function boot() {
  let s;
  try {
    const res = await fetch('/admin/api/session', { credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 401) {
      showLogin('');
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    s = await res.json();
  } catch (err) {
    showLogin(`The console is unavailable: ${err.message}`);
    return;
  }
  login = s;
  $('login-view').hidden = true;
  $('console').hidden = false;
  $('logout').hidden = false;
  $('live').hidden = false;
  $('node-name').hidden = false;
  text($('node-name'), `${s.node} · v${s.version}`);
  text($('engine'), `${s.engine} engine`);
  text($('stats-channel-name'), s.stats_channel);
  text($('user-node'), `on ${s.node}`);
  startStats();
  loadNodes();
  loadChannels();
  refreshTimer = setInterval(() => {
    loadNodes();
    loadChannels();
  }, 5000);
}

// ---- live stats -------------------------------------------------------------------------------

function startStats() {
  latest.clear();
  points.length = 0;
  const client = newClient([], 'admin-stats');
  statsClient = client;
  const live = $('live');
  client.on('state', ({ newState }) => {
    live.dataset.state = newState;
    text($('live-text'), newState === 'connected' ? 'live' : newState);
  });
  client.on('error', ({ error }) => {
    if (error instanceof LoginRequired) client.disconnect();
  });
  let prefilled = false;
  client.subscribe(login.stats_channel, {
    onPublication: (ctx) => onStats(ctx.data),
    onSubscribed: async () => {
      if (prefilled) return;
      prefilled = true;
      try {
        // The stats channel keeps about two minutes of snapshots: draw them at once.
        const h = await client.history(login.stats_channel, { limit: 600, reverse: true });
        const older = h.publications.map((p) => p.data).reverse();
        const first = points.length ? points[0].t : Infinity;
        const before = [];
        const table = new Map();
        for (const snap of older) if (snap && snap.ts < first) aggregate(snap, table, before);
        points.unshift(...before);
        while (points.length && points[0].t < points[points.length - 1].t - WINDOW_MS) points.shift();
        drawCharts();
      } catch {
        // Live points arrive anyway.
      }
    },
  });
  client.connect();
}

/** A live snapshot from some node. */
function onStats(snap) {
  if (!snap || typeof snap.node !== 'string') return;
  updateNodeRow(snap);
  if (aggregate(snap, latest, points)) drawCharts();
}

/**
 * Notes `snap` as its node's latest in `table`; on each snapshot of the console's own node,
 * adds a point with the totals of every node heard lately to `into` (true when it did).
 */
function aggregate(snap, table, into) {
  table.set(snap.node, { ...snap, seen: Date.now() });
  if (snap.node !== login?.node) return false;
  let sessions = 0;
  let pubs = 0;
  let dels = 0;
  for (const s of table.values()) {
    if (snap.ts - s.ts > STALE_MS) continue;
    sessions += s.sessions || 0;
    pubs += s.publications_per_sec || 0;
    dels += s.deliveries_per_sec || 0;
  }
  into.push({ t: snap.ts, sessions, pubs, dels });
  while (into.length && into[0].t < snap.ts - WINDOW_MS) into.shift();
  return true;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const SVG = 'http://www.w3.org/2000/svg';

function drawChart(id, key) {
  const fig = $(id);
  const svg = fig.querySelector('svg');
  const last = points[points.length - 1];
  const now = last ? last.t : Date.now();
  const values = points.map((p) => p[key]);
  const max = niceMax(Math.max(0, ...values));
  const x = (t) => (300 * (t - (now - WINDOW_MS))) / WINDOW_MS;
  const y = (v) => 100 - (v / max) * 94;
  svg.replaceChildren();
  for (const f of [0.25, 0.5, 0.75]) {
    const l = document.createElementNS(SVG, 'line');
    l.setAttribute('class', 'grid-line');
    l.setAttribute('x1', '0');
    l.setAttribute('x2', '300');
    l.setAttribute('y1', String(y(max * f)));
    l.setAttribute('y2', String(y(max * f)));
    svg.append(l);
  }
  if (points.length) {
    const coords = points.map((p) => `${x(p.t).toFixed(2)},${y(p[key]).toFixed(2)}`);
    const area = document.createElementNS(SVG, 'polygon');
    area.setAttribute('class', 'area');
    area.setAttribute('points', `${x(points[0].t).toFixed(2)},100 ${coords.join(' ')} ${x(now).toFixed(2)},100`);
    const line = document.createElementNS(SVG, 'polyline');
    line.setAttribute('class', 'line');
    line.setAttribute('points', coords.join(' '));
    svg.append(area, line);
  }
  const value = last ? last[key] : null;
  text(fig.querySelector('.chart-value'), fmtNum(value));
  text(fig.querySelector('.chart-max'), `max ${fmtNum(max)}`);
  fig.dataset.value = value == null ? '' : String(value);
  fig.dataset.peak = String(Math.max(0, ...values));
  fig.dataset.points = String(points.length);
}

function drawCharts() {
  drawChart('chart-sessions', 'sessions');
  drawChart('chart-pubs', 'pubs');
  drawChart('chart-dels', 'dels');
}

// ---- nodes ----------------------------------------------------------------------------------

function nodeRow(name) {
  const body = $('nodes').tBodies[0];
  let tr = [...body.rows].find((r) => r.dataset.node === name);
  if (!tr) {
    tr = document.createElement('tr');
    tr.dataset.node = name;
    for (let i = 0; i < 4; i++) tr.append(td('', i === 3 ? 'num' : ''));
    body.append(tr);
  }
  return tr;
}

function fillNodeRow(n) {
  const tr = nodeRow(n.name);
  const cells = tr.cells;
  cells[0].replaceChildren(document.createTextNode(n.name));
  if (n.name === login?.node) {
    const tag = document.createElement('span');
    tag.className = 'tag';
    tag.textContent = 'this node';
    cells[0].append(tag);
  }
  text(cells[1], n.version || '–');
  text(cells[2], fmtUptime(n.uptime_secs));
  // Total, then by transport underneath.
  const total = document.createElement('div');
  total.className = 'total';
  text(total, n.sessions ?? '–');
  const by = document.createElement('div');
  by.className = 'transports';
  const t = n.transports || {};
  const order = (k) => ['ws', 'sse'].indexOf(k) >>> 0; // ws, sse, then any other
  const kinds = Object.keys(t).sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  by.replaceChildren(
    ...kinds.flatMap((k, i) => {
      const span = document.createElement('span');
      span.className = 'transport';
      span.textContent = `${k} ${t[k]}`;
      return i ? [document.createTextNode(' · '), span] : [span];
    }),
  );
  cells[3].replaceChildren(total, by);
  tr.dataset.sessions = String(n.sessions ?? '');
  tr.dataset.transports = JSON.stringify(t);
}

function updateNodeRow(snap) {
  fillNodeRow({
    name: snap.node,
    version: snap.version,
    uptime_secs: snap.uptime_secs,
    sessions: snap.sessions,
    transports: snap.transports,
  });
  nodeRow(snap.node).classList.remove('stale');
}

async function loadNodes() {
  let r;
  try {
    r = await api('/admin/api/nodes');
  } catch {
    return;
  }
  const names = new Set(r.nodes.map((n) => n.name));
  for (const n of r.nodes) {
    // A live snapshot is fresher than the engine's announcement.
    const snap = latest.get(n.name);
    if (snap && Date.now() - snap.seen < STALE_MS) continue;
    fillNodeRow(n);
  }
  for (const tr of [...$('nodes').tBodies[0].rows]) {
    const snap = latest.get(tr.dataset.node);
    const fresh = snap && Date.now() - snap.seen < STALE_MS;
    if (!names.has(tr.dataset.node) && !fresh) tr.remove();
  }
}

// ---- channels -------------------------------------------------------------------------------

let searchTimer = null;
$('channel-search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadChannels, 200);
});

async function loadChannels() {
  const q = $('channel-search').value.trim();
  let r;
  try {
    r = await api(`/admin/api/channels?limit=100&q=${encodeURIComponent(q)}`);
  } catch {
    return;
  }
  if (q !== $('channel-search').value.trim()) return; // a newer search is on its way
  const body = $('channels').tBodies[0];
  body.replaceChildren(
    ...r.channels.map((c) => {
      const tr = document.createElement('tr');
      tr.className = 'pick';
      tr.dataset.channel = c.channel;
      tr.title = `tail ${c.channel}`;
      tr.append(td(c.channel, 'channel'), td(c.subscribers, 'num'));
      tr.addEventListener('click', () => {
        $('tail-channel').value = c.channel;
        startTail(c.channel);
      });
      return tr;
    }),
  );
  text($('channels-total'), r.total > r.channels.length ? `${r.channels.length} of ${r.total}` : `${r.total} active`);
  $('channels-empty').hidden = r.total > 0;
}

// ---- tail and publish ---------------------------------------------------------------------

const tailEntries = new Map(); // offset -> {offset, data, kind}

function setTailState(state, message) {
  const el = $('tail-state');
  el.dataset.state = state;
  text(el, message);
}

function stopTail() {
  tailClient?.disconnect();
  tailClient = null;
  tailChannel = null;
  tailEntries.clear();
}

function renderTail() {
  const log = $('tail-log');
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const entries = [...tailEntries.values()].sort((a, b) => a.offset - b.offset);
  while (entries.length > MAX_TAIL) tailEntries.delete(entries.shift().offset);
  log.replaceChildren(
    ...entries.map((e) => {
      const li = document.createElement('li');
      li.dataset.kind = e.kind;
      li.dataset.offset = String(e.offset);
      const off = document.createElement('span');
      off.className = 'offset';
      off.textContent = `#${e.offset}`;
      const data = document.createElement('span');
      data.className = 'data';
      data.textContent = JSON.stringify(e.data);
      const kind = document.createElement('span');
      kind.className = 'kind';
      kind.textContent = e.kind;
      li.append(off, data, kind);
      return li;
    }),
  );
  if (nearBottom) log.scrollTop = log.scrollHeight;
}

function addTail(offset, data, kind) {
  if (tailEntries.has(offset)) return;
  tailEntries.set(offset, { offset, data, kind });
  renderTail();
}

async function startTail(channel) {
  channel = channel.trim();
  if (!channel) return;
  stopTail();
  tailChannel = channel;
  $('tail-note').hidden = true;
  renderTail();
  text($('publish-target'), channel);
  $('publish-send').disabled = false;
  setTailState('connecting', 'connecting…');
  const client = newClient([channel], 'admin-tail');
  tailClient = client;
  client.on('error', ({ error }) => {
    if (error instanceof LoginRequired) client.disconnect();
  });
  client.subscribe(channel, {
    onSubscribed: () => tailClient === client && setTailState('live', 'live'),
    onPublication: (ctx) => tailClient === client && addTail(ctx.offset, ctx.data, 'live'),
    onError: (ctx) => tailClient === client && setTailState('error', `cannot subscribe: ${ctx.error.message}`),
  });
  client.connect();
  try {
    const h = await api(`/admin/api/history?limit=50&channel=${encodeURIComponent(channel)}`);
    if (tailClient !== client) return;
    for (const p of h.publications) addTail(p.offset, p.data, 'history');
  } catch (err) {
    if (tailClient !== client || err instanceof LoginRequired) return;
    const note = $('tail-note');
    note.hidden = false;
    text(note, err.code === 'not_available' ? 'History is off for this namespace; showing live publications only.' : `History: ${err.message}`);
  }
}

$('tail-form').addEventListener('submit', (e) => {
  e.preventDefault();
  startTail($('tail-channel').value);
});

$('publish-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const result = $('publish-result');
  if (!tailChannel) return;
  let data;
  try {
    data = JSON.parse($('publish-data').value);
  } catch (err) {
    text(result, `not JSON: ${err.message}`);
    return;
  }
  $('publish-send').disabled = true;
  try {
    const r = await api('/admin/api/publish', { method: 'POST', body: { channel: tailChannel, data } });
    text(result, `published at offset ${r.offset}`);
  } catch (err) {
    text(result, `not published: ${err.message}`);
  } finally {
    $('publish-send').disabled = !tailChannel;
  }
});

// ---- users ----------------------------------------------------------------------------------

let shownUser = null;

async function loadUser(user) {
  const r = await api(`/admin/api/sessions?user=${encodeURIComponent(user)}`);
  shownUser = user;
  const body = $('user-sessions').tBodies[0];
  body.replaceChildren(
    ...r.sessions.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.client = s.client;
      tr.append(td(s.client, 'mono'), td(s.transport), td(s.info == null ? '' : JSON.stringify(s.info), 'info'));
      return tr;
    }),
  );
  $('user-empty').hidden = r.sessions.length > 0;
  $('disconnect').disabled = false;
  $('user-sessions').dataset.user = user;
}

$('user-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('user-id').value.trim();
  if (!user) return;
  text($('disconnect-result'), '');
  try {
    await loadUser(user);
  } catch (err) {
    text($('disconnect-result'), err.message);
  }
});

$('disconnect').addEventListener('click', async () => {
  const user = shownUser;
  if (!user) return;
  const reconnect = $('disconnect-reconnect').checked;
  $('disconnect').disabled = true;
  try {
    const r = await api('/admin/api/disconnect', { method: 'POST', body: { user, reconnect } });
    const n = r.disconnected;
    text(
      $('disconnect-result'),
      `${n} session${n === 1 ? '' : 's'} closed here (and any on other nodes)${reconnect ? '; they may reconnect' : ''}.`,
    );
    // Show the sessions that came back (or did not) after the clients' reconnect delay.
    setTimeout(() => shownUser === user && loadUser(user).catch(() => {}), 1500);
  } catch (err) {
    text($('disconnect-result'), `not disconnected: ${err.message}`);
  } finally {
    $('disconnect').disabled = false;
  }
});

// ---- start ----------------------------------------------------------------------------------

const params = new URLSearchParams(location.search);
if (params.has('login')) {
  // The form posted without this script (a redirect back): say why, then tidy the URL.
  history.replaceState(null, '', '/admin');
  showLogin(params.get('login') === 'failed' ? 'Wrong password.' : '');
} else {
  boot();
}
