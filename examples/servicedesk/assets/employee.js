// The employee page: requests assigned to me (live from `requests:assigned#<me>`), my
// notifications (live from `notifications:inbox#<me>`), and the desk's numbers.
import {
  $, CATEGORY, NEXT, NEXT_LABEL, RequestStore, STATUS, api, connect, el, flash, liveCounts,
  liveInbox, loadPeople, me, nameOf, pill, priorityTag, setStat, subscribeThenLoad, timeEl, toast,
} from './common.js';

await loadPeople();
const client = connect();
const inbox = liveInbox(client, { lists: [{ list: $('inbox-panel'), empty: $('inbox-panel-empty') }] });
$('mark-read-panel').addEventListener('click', inbox.markRead);
liveCounts(client, (c) => {
  setStat('stat-open', c.open);
  setStat('stat-unassigned', c.unassigned);
});

const list = $('requests');

function card(r) {
  const next = NEXT[r.status];
  return el(
    'li',
    { className: 'request', dataset: { id: r.id, status: r.status, version: r.version } },
    el('div', { className: 'request-top' }, el('span', { className: 'request-id' }, `#${r.id}`), el('span', { className: 'request-title' }, r.title), pill(r.status)),
    r.description ? el('p', { className: 'request-desc' }, r.description) : null,
    el(
      'div',
      { className: 'request-meta' },
      el('span', { className: 'cat' }, CATEGORY[r.category] ?? r.category),
      priorityTag(r.priority),
      el('span', {}, 'From ', el('b', {}, nameOf(r.customer))),
      timeEl(r.created_at),
      next
        ? el('button', {
            className: `btn btn-sm act-next push-right ${next === 'completed' ? 'btn-success' : 'btn-primary'}`,
            type: 'button',
            onclick: async (e) => {
              e.currentTarget.disabled = true;
              try {
                store.upsert(await api(`/api/requests/${r.id}/status`, { method: 'POST', body: { status: next } }));
              } catch (err) {
                toast(err.message, 'error');
                e.currentTarget.disabled = false;
              }
            },
          }, NEXT_LABEL[r.status])
        : null,
    ),
  );
}

let loaded = false;
const store = new RequestStore({
  keep: (r) => r.assignee === me.id,
  render: (r, how, old) => {
    const existing = list.querySelector(`li[data-id="${r.id}"]`);
    if (how === 'removed') {
      existing?.remove();
      if (loaded) toast(`#${r.id} was reassigned to ${nameOf(r.assignee)}`, 'info', `request-${r.id}`);
    } else {
      const node = card(r);
      if (existing) existing.replaceWith(node);
      else list.insertBefore(node, [...list.children].find((li) => Number(li.dataset.id) < r.id) ?? null);
      if (loaded) flash(node);
      if (old && old.status !== r.status && loaded) toast(`#${r.id} is now ${STATUS[r.status]}`, 'info', `request-${r.id}`);
    }
    const open = [...store.items.values()].filter((x) => x.status !== 'completed').length;
    setStat('stat-mine', open);
    $('request-count').textContent = store.items.size ? `${open} open` : '';
    $('requests-empty').hidden = store.items.size > 0;
  },
});

subscribeThenLoad(client, `requests:assigned#${me.id}`, {
  load: async () => {
    store.replaceAll((await api('/api/requests')).requests);
    loaded = true;
    setStat('stat-mine', [...store.items.values()].filter((x) => x.status !== 'completed').length);
    $('requests-empty').hidden = store.items.size > 0;
  },
  onPublication: (d) => d.type === 'request' && store.upsert(d.request),
});
