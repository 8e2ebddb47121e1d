// The browser's own EventSource, no SDK: the stream is cut mid-flow while publishing goes on,
// and the automatic reconnect (same URL, Last-Event-ID) resumes with no gap and no duplicate.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { API_KEY, Node, apiPublish, launchBrowser, mintToken, until } from './harness.js';

let node;
let browser;

before(async () => {
  // A namespace with room for everything published while the browser is away.
  node = await new Node({ name: 'eventsource', env: { SWITCHBOARD_NAMESPACES__FEED__HISTORY_SIZE: '1000' } }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function cut(user) {
  const res = await fetch(`${node.base}/api/disconnect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify({ user, reconnect: true }),
  });
  assert.equal(res.status, 200);
}

test('a bare EventSource resumes after the stream is cut, with no gap and no duplicate', async () => {
  const page = await browser.newPage();
  await page.goto(`${node.base}/health`);
  const token = mintToken({ sub: 'es-user' });
  await page.evaluate(async (token) => {
    const { ticket } = await (await fetch('/auth/ticket', { method: 'POST', headers: { Authorization: `Bearer ${token}` } })).json();
    window.got = [];
    window.opens = 0;
    window.resets = 0;
    const es = new EventSource(`/sse?channel=feed:orders&ticket=${ticket}`);
    es.onopen = () => window.opens++;
    es.onmessage = (e) => window.got.push(JSON.parse(e.data).offset);
    es.addEventListener('reset', () => window.resets++);
  }, token);
  await page.waitForFunction(() => window.opens === 1);

  const total = 120;
  for (let i = 1; i <= total; i++) {
    await apiPublish(node, 'feed:orders', { n: i });
    if (i === 30 || i === 70) {
      const opensBefore = await page.evaluate(() => window.opens);
      await cut('es-user');
      // Keep publishing while the browser is away; it comes back on its own.
      for (let j = 0; j < 10; j++) await apiPublish(node, 'feed:orders', { extra: true });
      await page.waitForFunction((n) => window.opens > n, opensBefore, { timeout: 15000 });
    }
  }
  const expected = total + 20;
  await until(async () => (await page.evaluate(() => window.got.length)) >= expected, { what: 'every publication', timeout: 20000 });
  const got = await page.evaluate(() => window.got);
  assert.deepEqual(got, Array.from({ length: expected }, (_, i) => i + 1), 'offsets 1..N exactly once, in order');
  assert.equal(await page.evaluate(() => window.resets), 0);
  assert.ok((await page.evaluate(() => window.opens)) >= 3, 'the browser reconnected by itself twice');
  await page.close();
});
