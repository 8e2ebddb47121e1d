// The customer page: file a request (plain POST to the REST API) and watch your requests move,
// live from `requests:customer#<me>`.
import {
  $, CATEGORY, RequestStore, STATUS, STATUSES, api, connect, el, flash, liveCounts, liveInbox,
  loadPeople, me, nameOf, pill, priorityTag, subscribeThenLoad, timeEl, toast,
} from './common.js';

await loadPeople();
const client = connect();
liveCounts(client);
liveInbox(client);

const list = $('requests');

function steps(status) {
  const at = STATUSES.indexOf(status);
  return el(
    'ol',
    { className: 'steps', 'aria-label': `Progress: ${STATUS[status]}` },
    STATUSES.map((s, i) =>
      el('li', { className: i < at || status === 'completed' ? 'step done' : i === at ? 'step current' : 'step' }, el('span', { className: 'step-dot' }), STATUS[s]),
    ),
  );
}

function card(r) {
  return el(
    'li',
    { className: 'request', dataset: { id: r.id, status: r.status, version: r.version } },
    el(
      'div',
      { className: 'request-top' },
      el('span', { className: 'request-id' }, `#${r.id}`),
      el('span', { className: 'request-title' }, r.title),
      pill(r.status),
    ),
    r.description ? el('p', { className: 'request-desc' }, r.description) : null,
    steps(r.status),
    el(
      'div',
      { className: 'request-meta' },
      el('span', { className: 'cat' }, CATEGORY[r.category] ?? r.category),
      priorityTag(r.priority),
      el('span', {}, 'Filed ', timeEl(r.created_at)),
      r.assignee
        ? el('span', { className: 'assignee' }, 'Handled by ', el('b', {}, nameOf(r.assignee)))
        : el('span', { className: 'assignee muted' }, 'Not assigned yet'),
    ),
  );
}

let loaded = false;
const store = new RequestStore({
  keep: (r) => r.customer === me.id,
  render: (r, how, old) => {
    const existing = list.querySelector(`li[data-id="${r.id}"]`);
    if (how === 'removed') existing?.remove();
    else {
      const node = card(r);
      if (existing) existing.replaceWith(node);
      else {
        const after = [...list.children].find((li) => Number(li.dataset.id) < r.id);
        list.insertBefore(node, after ?? null);
      }
      // Status and assignment changes also arrive as notifications, which show the toast.
      if (old || loaded) flash(node);
    }
    const n = store.items.size;
    $('request-count').textContent = n ? `${n} total · ${[...store.items.values()].filter((x) => x.status !== 'completed').length} open` : '';
    $('requests-empty').hidden = n > 0;
  },
});

subscribeThenLoad(client, `requests:customer#${me.id}`, {
  load: async () => {
    store.replaceAll((await api('/api/requests')).requests);
    loaded = true;
    $('requests-empty').hidden = store.items.size > 0;
  },
  onPublication: (d) => d.type === 'request' && store.upsert(d.request),
});

// ---- the form: a plain REST call; the list updates from its reply (and the push) --------------
const form = $('new-request');
const error = $('form-error');
form.addEventListener('submit', async (e) => {
  e.preventDefault();
  error.hidden = true;
  const data = new FormData(form);
  const body = Object.fromEntries(data.entries());
  if (body.title.trim().length < 3) {
    error.textContent = 'Please describe what you need in a few words (at least 3 characters).';
    error.hidden = false;
    $('f-title').focus();
    return;
  }
  const button = $('submit');
  button.disabled = true;
  button.textContent = 'Submitting…';
  try {
    const r = await api('/api/requests', { method: 'POST', body });
    store.upsert(r);
    form.reset();
    toast(`Request #${r.id} submitted. We'll keep you posted here.`, 'success', `request-${r.id}`);
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = 'Submit request';
  }
});
