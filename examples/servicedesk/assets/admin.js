// The admin page: every request, live from `requests:all`; move them along and assign them.
// Each action is a REST call; everyone's pages update from the pushes the app publishes.
import {
  $, CATEGORY, NEXT, NEXT_LABEL, RequestStore, STATUS, api, connect, el, employees, flash, initials,
  liveCounts, liveInbox, loadPeople, nameOf, pill, priorityTag, setStat, subscribeThenLoad, timeEl,
  toast,
} from './common.js';

await loadPeople();
const client = connect();
liveInbox(client);
liveCounts(client, (c) => {
  for (const k of ['open', 'in_review', 'in_progress', 'unassigned', 'completed']) setStat(`stat-${k}`, c[k]);
});

const body = $('requests');
let filter = 'open';
const visible = (r) => filter === 'all' || (filter === 'open' ? r.status !== 'completed' : r.status === 'completed');

async function act(button, path, payload, done) {
  button.disabled = true;
  try {
    const r = await api(path, { method: 'POST', body: payload });
    store.upsert(r);
    toast(done(r), 'success', `request-${r.id}`);
  } catch (e) {
    toast(e.message, 'error');
    button.disabled = false;
  }
}

function assignControl(r) {
  const select = el(
    'select',
    { className: 'assign', 'aria-label': `Assignee of request ${r.id}`, disabled: r.status === 'completed' },
    el('option', { value: '', disabled: true, selected: !r.assignee }, 'Unassigned'),
    employees().map((u) => el('option', { value: u.id, selected: r.assignee === u.id }, u.name)),
  );
  select.addEventListener('change', () =>
    act(select, `/api/requests/${r.id}/assign`, { assignee: select.value }, (x) => `#${x.id} assigned to ${nameOf(x.assignee)}`),
  );
  return el(
    'div',
    { className: 'assign-wrap' },
    r.assignee ? el('span', { className: 'avatar avatar-xs avatar-employee' }, initials(nameOf(r.assignee))) : el('span', { className: 'avatar avatar-xs avatar-none' }, '?'),
    select,
  );
}

function row(r) {
  const next = NEXT[r.status];
  return el(
    'tr',
    { dataset: { id: r.id, status: r.status, version: r.version } },
    el('td', { className: 'col-id' }, `#${r.id}`),
    el(
      'td',
      {},
      el('div', { className: 'request-title' }, r.title),
      el('div', { className: 'request-meta' }, el('span', { className: 'cat' }, CATEGORY[r.category] ?? r.category), priorityTag(r.priority), timeEl(r.created_at)),
    ),
    el('td', {}, el('span', { className: 'customer' }, nameOf(r.customer))),
    el('td', {}, pill(r.status)),
    el('td', {}, assignControl(r)),
    el(
      'td',
      { className: 'col-actions' },
      next
        ? el('button', {
            className: `btn btn-sm act-next ${next === 'completed' ? 'btn-success' : 'btn-primary'}`,
            type: 'button',
            onclick: (e) => act(e.currentTarget, `/api/requests/${r.id}/status`, { status: next }, (x) => `#${x.id} moved to ${STATUS[x.status]}`),
          }, NEXT_LABEL[r.status])
        : el('span', { className: 'muted small done-mark' }, '✓ Done'),
    ),
  );
}

function renderAll() {
  const rows = store.sorted().filter(visible).map(row);
  body.replaceChildren(...rows);
  $('requests-empty').hidden = rows.length > 0;
}

let loaded = false;
const store = new RequestStore({
  render: (r, how) => {
    renderAll();
    const tr = body.querySelector(`tr[data-id="${r.id}"]`);
    if (tr && loaded && how !== 'removed') flash(tr);
  },
});

subscribeThenLoad(client, 'requests:all', {
  load: async () => {
    store.replaceAll((await api('/api/requests')).requests);
    renderAll();
    loaded = true;
  },
  onPublication: (d) => d.type === 'request' && store.upsert(d.request),
});

for (const b of $('filter').querySelectorAll('button')) {
  b.addEventListener('click', () => {
    filter = b.dataset.filter;
    for (const x of $('filter').querySelectorAll('button')) x.setAttribute('aria-pressed', String(x === b));
    renderAll();
  });
}
