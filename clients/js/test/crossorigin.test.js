// Cross-origin (issue 10): a page on the app's origin uses the SDK against a node on another
// origin (WebSocket, SSE fallback and long-poll) and receives; a page on an origin the node does
// not allow is refused on every transport.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, blockWebSocket, installClient, launchBrowser, mintToken, openSdkPage, until } from './harness.js';

let app; // serves the application's pages (its own origin)
let evil; // another origin, not allowed
let rt; // the push node, on a third origin
let browser;

before(async () => {
  app = await new Node({ name: 'xo-app' }).start();
  evil = await new Node({ name: 'xo-evil' }).start();
  rt = await new Node({
    name: 'xo-rt',
    env: { SWITCHBOARD_ALLOWED_ORIGINS: `["${app.base}"]` },
  }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const n of [rt, app, evil]) await n?.stop();
});

for (const [transport, initScript] of [
  ['websocket', undefined],
  ['sse', blockWebSocket],
]) {
  test(`the SDK on the app's origin receives from the node's origin over ${transport}`, async () => {
    const context = await browser.newContext();
    const { page, problems } = await openSdkPage(context, app, { initScript });
    assert.equal(await page.evaluate(() => location.origin), app.base);
    const channel = `xo:${transport}`;
    await installClient(page, { wsUrl: rt.wsUrl, channel, options: { minReconnectDelay: 50, maxReconnectDelay: 400 } });
    await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 20000 });
    assert.equal(await page.evaluate(() => window.client.transport), transport);
    await apiPublish(rt, channel, { hello: transport });
    await until(async () => (await page.evaluate(() => window.rec.data.length)) === 1, { what: 'the publication' });
    assert.deepEqual(await page.evaluate(() => window.rec.data), [{ hello: transport }]);
    if (transport === 'sse') {
      // Commands go over POST /cmd, cross-origin too.
      const r = await page.evaluate((ch) => window.client.history(ch).then((h) => h.publications.length), channel);
      assert.equal(r, 1);
    }
    assert.deepEqual(problems, []);
    await context.close();
  });
}

test("long-polling from the app's origin, with a bearer token (preflighted)", async () => {
  const context = await browser.newContext();
  const { page } = await openSdkPage(context, app);
  const token = mintToken({ sub: 'poller' });
  const poll = (query) =>
    page.evaluate(
      async ({ url, token }) => {
        const r = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
        return r.json();
      },
      { url: `${rt.base}/poll?${query}`, token },
    );
  const first = await poll('channel=xo:poll');
  assert.deepEqual(first.publications, []);
  await apiPublish(rt, 'xo:poll', { n: 1 });
  const next = await poll(`channel=xo:poll&since=${first.cursor}&timeout=5`);
  assert.equal(next.publications.length, 1);
  assert.deepEqual(next.publications[0].data, { n: 1 });
  await context.close();
});

test('a page on an origin the node does not allow is refused on every transport', async () => {
  const context = await browser.newContext();
  const { page } = await openSdkPage(context, evil);
  const token = mintToken({ sub: 'evil' });
  const outcome = await page.evaluate(
    async ({ rtBase, wsUrl, token }) => {
      const ws = await new Promise((done) => {
        const s = new WebSocket(wsUrl);
        s.onopen = () => done('open');
        s.onclose = () => done('refused');
      });
      const fetchResult = (url, init) =>
        fetch(url, init).then(
          (r) => `read ${r.status}`,
          () => 'refused',
        );
      const poll = await fetchResult(`${rtBase}/poll?channel=xo:poll`, { headers: { Authorization: `Bearer ${token}` } });
      const ticket = await fetchResult(`${rtBase}/auth/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
      const sse = await new Promise((done) => {
        const es = new EventSource(`${rtBase}/sse?channel=xo:poll`);
        es.onopen = () => done('open');
        es.onerror = () => {
          es.close();
          done('refused');
        };
      });
      return { ws, poll, ticket, sse };
    },
    { rtBase: rt.base, wsUrl: rt.wsUrl, token },
  );
  assert.deepEqual(outcome, { ws: 'refused', poll: 'refused', ticket: 'refused', sse: 'refused' });
  await context.close();
});
