// A plain browser WebSocket, no SDK, following docs/protocol.md: connect with a token in the
// first message, subscribe, receive pushes, publish, history, presence, refresh.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, launchBrowser, mintToken } from './harness.js';

let node;
let browser;

before(async () => {
  node = await new Node({ name: 'plainws' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test('a plain WebSocket speaks the documented protocol', async () => {
  const page = await browser.newPage();
  await page.goto(`${node.base}/health`);
  const token = mintToken({ sub: 'plain', channels: ['chat:*'], publish: ['chat:*'] });
  const fresh = mintToken({ sub: 'plain', ttl: 7200 });
  await page.evaluate(
    ({ token, fresh }) => {
      window.replies = {};
      window.pushes = [];
      const ws = new WebSocket(`ws://${location.host}/ws`);
      window.ws = ws;
      let id = 0;
      window.send = (cmd) => new Promise((resolve) => {
        const n = ++id;
        window.replies[n] = resolve;
        ws.send(JSON.stringify({ id: n, ...cmd }));
      });
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.id !== undefined) window.replies[m.id]?.(m);
        else window.pushes.push(m);
      };
      window.opened = new Promise((r) => (ws.onopen = r));
      window.tokens = { token, fresh };
    },
    { token, fresh },
  );
  const result = await page.evaluate(async () => {
    await window.opened;
    const connect = await window.send({ op: 'connect', token: window.tokens.token });
    const subscribe = await window.send({ op: 'subscribe', channel: 'chat:plain' });
    const denied = await window.send({ op: 'subscribe', channel: 'inbox:private#someone-else' });
    return { connect, subscribe, denied };
  });
  assert.equal(result.connect.ok.user, 'plain');
  assert.equal(result.subscribe.ok.recovered, true);
  assert.equal(result.denied.error.code, 'permission_denied');

  await apiPublish(node, 'chat:plain', { from: 'server' });
  await page.waitForFunction(() => window.pushes.some((p) => p.op === 'pub'));
  const after = await page.evaluate(async () => {
    const pub = window.pushes.find((p) => p.op === 'pub');
    const published = await window.send({ op: 'publish', channel: 'chat:plain', data: { from: 'browser' } });
    const history = await window.send({ op: 'history', channel: 'chat:plain' });
    const presence = await window.send({ op: 'presence', channel: 'chat:plain' });
    const refresh = await window.send({ op: 'refresh', token: window.tokens.fresh });
    return { pub, published, history, presence, refresh };
  });
  assert.deepEqual(after.pub, { op: 'pub', channel: 'chat:plain', offset: 1, data: { from: 'server' } });
  assert.equal(after.published.ok.offset, 2);
  assert.deepEqual(after.history.ok.publications.map((p) => p.data), [{ from: 'server' }, { from: 'browser' }]);
  assert.deepEqual(after.presence.ok.clients.map((c) => c.user), ['plain']);
  assert.ok(after.refresh.ok.expires_in > 3600);
  await page.close();
});
