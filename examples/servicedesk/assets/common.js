// Shared by every page: the REST helper, the Switchboard client (token from /app/token), the
// connection indicator, the live dashboard numbers and the notification inbox.
import { Switchboard } from '/sdk/switchboard.js';

export const me = {
  id: document.body.dataset.user,
  role: document.body.dataset.role,
  name: document.body.dataset.name,
};

export const $ = (id) => document.getElementById(id);

/** Builds an element: el('li', {className: 'x', dataset: {id: 1}}, 'text', child). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

/** Calls the app's REST API; throws an Error with the server's message on failure. */
export async function api(path, { method = 'GET', body } = {}) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(data.error?.message || `HTTP ${res.status}`);
    err.status = res.status;
    err.code = data.error?.code;
    throw err;
  }
  return data;
}

// ---- labels and small widgets -------------------------------------------------------------

export const STATUS = { in_review: 'In Review', in_progress: 'In Progress', completed: 'Completed' };
export const STATUSES = Object.keys(STATUS);
export const NEXT = { in_review: 'in_progress', in_progress: 'completed' };
export const NEXT_LABEL = { in_review: 'Start work', in_progress: 'Mark completed' };
export const CATEGORY = { it: 'IT', facilities: 'Facilities', access: 'Access & badges', hr: 'HR' };
export const PRIORITY = { low: 'Low', normal: 'Normal', high: 'High' };

let people = new Map();
/** Display names of the demo users (loaded once). */
export async function loadPeople() {
  const { users } = await api('/api/users');
  people = new Map(users.map((u) => [u.id, u]));
  return people;
}
export const nameOf = (id) => people.get(id)?.name ?? id;
export const employees = () => [...people.values()].filter((u) => u.role === 'employee');

export function initials(name) {
  return name.split(/\s+/).map((w) => w[0]).slice(0, 2).join('');
}

export function pill(status) {
  return el('span', { className: `pill pill-${status}`, dataset: { status } }, el('span', { className: 'pill-dot' }), STATUS[status] ?? status);
}

export function priorityTag(p) {
  return el('span', { className: `prio prio-${p}` }, PRIORITY[p] ?? p);
}

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
export function ago(ms) {
  const s = Math.round((ms - Date.now()) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return 'just now';
  if (abs < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  return rtf.format(Math.round(s / 86400), 'day');
}

/** A <time> that keeps its "5 minutes ago" current. */
export function timeEl(ms) {
  return el('time', { dateTime: new Date(ms).toISOString(), title: new Date(ms).toLocaleString(), dataset: { ts: ms } }, ago(ms));
}
setInterval(() => {
  for (const t of document.querySelectorAll('time[data-ts]')) t.textContent = ago(Number(t.dataset.ts));
}, 30000);

/**
 * Shows a short message. Toasts with the same `key` (e.g. one request) replace each other, so a
 * burst of changes to one thing shows only the latest.
 */
export function toast(text, kind = 'info', key = null) {
  const box = $('toasts');
  const t = el('div', { className: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  const old = key && [...box.children].find((x) => x.dataset.key === key);
  if (key) t.dataset.key = key;
  if (old) {
    clearTimeout(old.timers?.[0]);
    clearTimeout(old.timers?.[1]);
    old.replaceWith(t);
    t.style.animation = 'none';
  } else box.append(t);
  t.timers = [setTimeout(() => t.classList.add('toast-out'), 4200), setTimeout(() => t.remove(), 4600)];
}

/** Briefly highlights a node that changed live. */
export function flash(node) {
  node.classList.remove('flash');
  void node.offsetWidth; // restart the animation
  node.classList.add('flash');
}

// ---- the Switchboard connection -----------------------------------------------------------

/** Connects to the node embedded in this app, with tokens minted by the app for this user. */
export function connect() {
  const client = new Switchboard('/ws', {
    getToken: async () => (await api('/app/token')).token,
    name: me.id,
  });
  const box = $('conn');
  const text = $('conn-text');
  const retry = $('conn-retry');
  let wasConnected = false;
  let timer = null;
  const show = (state, label, title = '') => {
    box.dataset.state = state;
    text.textContent = label;
    box.title = title;
    retry.hidden = state !== 'offline';
  };
  const render = () => {
    clearInterval(timer);
    timer = null;
    if (client.state === 'connected') {
      wasConnected = true;
      show('connected', 'Live', `Connected over ${client.transport}: updates arrive as they happen`);
    } else if (client.state === 'connecting' && !wasConnected) {
      show('connecting', 'Connecting…');
    } else if (client.state === 'connecting') {
      const tick = () => {
        const left = client.nextReconnectAt ? Math.ceil((client.nextReconnectAt - Date.now()) / 1000) : 0;
        show('reconnecting', left > 0 ? `Reconnecting in ${left}s…` : 'Reconnecting…', 'The connection dropped; missed updates are replayed on reconnect');
      };
      tick();
      timer = setInterval(tick, 500);
    } else {
      show('offline', 'Offline', 'Not connected; updates are paused');
    }
  };
  client.on('state', render);
  client.on('connecting', render);
  retry.addEventListener('click', () => client.connect());
  window.addEventListener('online', () => client.state === 'disconnected' && client.connect());
  client.connect();
  window.client = client; // for the browser tests and curious developers
  return client;
}

/**
 * Subscribes to `channel`, then loads the state over REST once subscribed (and again whenever
 * the node says it could not resume), so no change falls between the load and the pushes.
 */
export function subscribeThenLoad(client, channel, { load, onPublication }) {
  const reload = () => load().catch((e) => toast(`Could not load: ${e.message}`, 'error'));
  return client.subscribe(channel, {
    onSubscribed: (ctx) => ctx.first && reload(),
    onReset: reload,
    onPublication: (ctx) => onPublication(ctx.data),
    onError: (ctx) => toast(`${channel}: ${ctx.error.message}`, 'error'),
  });
}

/**
 * Requests keyed by id, merged by `version` so a REST reply and a push can arrive in any order.
 * `keep(request)` says whether the request belongs in this view.
 */
export class RequestStore {
  constructor({ keep = () => true, render }) {
    this.items = new Map();
    this.keep = keep;
    this.render = render;
  }

  /** Applies a newer copy; returns 'added', 'updated', 'removed' or null (stale / no change). */
  upsert(r) {
    const old = this.items.get(r.id);
    if (old && old.version >= r.version) return null;
    if (!this.keep(r)) {
      if (!old) return null;
      this.items.delete(r.id);
      this.render(r, 'removed', old);
      return 'removed';
    }
    this.items.set(r.id, r);
    const how = old ? 'updated' : 'added';
    this.render(r, how, old);
    return how;
  }

  replaceAll(list) {
    const seen = new Set(list.map((r) => r.id));
    for (const [id, old] of this.items) {
      if (!seen.has(id)) {
        this.items.delete(id);
        this.render(old, 'removed', old);
      }
    }
    for (const r of list) this.upsert(r);
  }

  sorted() {
    return [...this.items.values()].sort((a, b) => b.id - a.id);
  }
}

// ---- dashboard numbers ----------------------------------------------------------------------

/** Live counts from `dashboard:counts`; `render(counts)` runs on every newer set. */
export function liveCounts(client, render) {
  let rev = -1;
  const apply = (counts) => {
    if (counts.rev < rev) return;
    rev = counts.rev;
    const n = $('open-count');
    if (n.textContent !== String(counts.open)) {
      if (n.textContent !== '–') flash($('desk-load'));
      n.textContent = counts.open;
    }
    render?.(counts);
  };
  subscribeThenLoad(client, 'dashboard:counts', {
    load: async () => apply((await api('/api/dashboard')).counts),
    onPublication: (d) => d.type === 'counts' && apply(d.counts),
  });
}

/** Sets a stat card's number, flashing it when it changes. */
export function setStat(id, value) {
  const card = $(id);
  if (!card) return;
  const v = card.querySelector('.stat-value');
  if (v.textContent === String(value)) return;
  const first = !('count' in card.dataset);
  v.textContent = value;
  card.dataset.count = value;
  if (!first) flash(card);
}

// ---- notifications --------------------------------------------------------------------------

/**
 * The bell: unread badge and dropdown, live from `notifications:inbox#<me>`. Extra lists (the
 * employee page's panel) can be registered with `lists`.
 */
export function liveInbox(client, { lists = [] } = {}) {
  const items = new Map();
  let unread = 0;
  const badge = $('bell-badge');
  const bell = $('bell');
  const pop = $('inbox');
  const targets = [{ list: $('inbox-list'), empty: $('inbox-empty') }, ...lists];

  const render = () => {
    badge.textContent = unread > 99 ? '99+' : String(unread);
    badge.dataset.count = unread;
    badge.hidden = unread === 0;
    bell.classList.toggle('has-unread', unread > 0);
    bell.setAttribute('aria-label', unread ? `Notifications (${unread} unread)` : 'Notifications');
    const sorted = [...items.values()].sort((a, b) => b.id - a.id).slice(0, 20);
    for (const { list, empty } of targets) {
      list.replaceChildren(
        ...sorted.map((n) =>
          el(
            'li',
            { className: n.read ? 'note' : 'note note-unread', dataset: { id: n.id, request: n.request_id } },
            el('span', { className: 'note-dot' }),
            el('span', { className: 'note-body' }, el('span', { className: 'note-text' }, n.text), timeEl(n.created_at)),
          ),
        ),
      );
      empty.hidden = sorted.length > 0;
    }
  };

  const markRead = async () => {
    try {
      await api('/api/notifications/read', { method: 'POST' });
    } catch (e) {
      toast(e.message, 'error');
    }
  };

  subscribeThenLoad(client, `notifications:inbox#${me.id}`, {
    load: async () => {
      const r = await api('/api/notifications');
      for (const n of r.notifications) items.set(n.id, n);
      unread = r.unread;
      render();
    },
    onPublication: (d) => {
      if (d.type === 'notification') {
        const fresh = !items.has(d.notification.id);
        items.set(d.notification.id, d.notification);
        unread = d.unread;
        render();
        if (fresh) {
          flash(bell);
          toast(d.notification.text, 'note', `request-${d.notification.request_id}`);
        }
      } else if (d.type === 'read') {
        for (const n of items.values()) n.read = true;
        unread = 0;
        render();
      }
    },
  });

  bell.addEventListener('click', (e) => {
    e.stopPropagation();
    pop.hidden = !pop.hidden;
    bell.setAttribute('aria-expanded', String(!pop.hidden));
  });
  document.addEventListener('click', (e) => {
    if (!pop.hidden && !pop.contains(e.target)) {
      pop.hidden = true;
      bell.setAttribute('aria-expanded', 'false');
    }
  });
  $('mark-read').addEventListener('click', markRead);
  return { markRead };
}
