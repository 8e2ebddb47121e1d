// WebSocket blocked: the SDK falls back to SSE for receiving and POST /cmd for commands.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, blockWebSocket, installClient, launchBrowser, openSdkPage } from './harness.js';

let node;
let browser;

before(async () => {
  node = await new Node({ name: 'fallback' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test('falls back to SSE, receives, resumes and publishes over /cmd', async () => {
  const context = await browser.newContext();
  const { page, problems } = await openSdkPage(context, node, {
    initScript: blockWebSocket,
    tokenOptions: { sub: 'sse-user' },
  });
  const channel = 'fallback:a';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 50, maxReconnectDelay: 400 },
  });
  await page.waitForFunction(() => window.client.state === 'connected' && window.sub.state === 'subscribed', null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.client.transport), 'sse');
  assert.ok((await page.evaluate(() => window.__wsAttempts)) >= 2, 'tried WebSocket first');
  assert.equal(await page.evaluate(() => window.client.user), 'sse-user', 'welcome names the user');

  for (let n = 1; n <= 20; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.rec.data.length >= 20, null, { timeout: 15000 });

  // Drop the stream: the SDK reconnects with a new ticket and the last cursor.
  await page.evaluate(() => window.client._debugDropConnection());
  for (let n = 21; n <= 40; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.client.state === 'connected', null, { timeout: 15000 });

  // Subscribing to a second channel reopens the stream; the first one must not lose anything.
  await page.evaluate(() => {
    window.recB = [];
    window.subB = window.client.subscribe('fallback:b', { onPublication: (ctx) => window.recB.push(ctx.data) });
  });
  for (let n = 41; n <= 60; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.subB.state === 'subscribed', null, { timeout: 15000 });
  await apiPublish(node, 'fallback:b', { b: 1 });
  for (let n = 61; n <= 70; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.rec.data.length >= 70 && window.recB.length >= 1, null, { timeout: 15000 });

  // Commands go over POST /cmd.
  const pos = await page.evaluate(() => window.client.publish('fallback:a', { n: 'from-browser' }));
  assert.equal(typeof pos.offset, 'number');
  assert.equal(typeof pos.epoch, 'string');
  await page.waitForFunction(() => window.rec.data.some((d) => d.n === 'from-browser'), null, { timeout: 15000 });
  const hist = await page.evaluate(() => window.client.history('fallback:a', { limit: 5, reverse: true }));
  assert.equal(hist.publications[0].data.n, 'from-browser');
  assert.equal(hist.publications[0].offset, pos.offset);
  const err = await page.evaluate(() => window.client.publish('bad channel!', 1).then(() => null, (e) => e.code));
  assert.equal(err, 'invalid_channel');

  // A channel this user may not read (another user's personal channel) refuses the whole SSE
  // stream (HTTP 403): the SDK finds the culprit, fails that subscription alone, and the others
  // carry on.
  await page.evaluate(() => {
    window.client.subscribe('secret:inbox#someone-else', { onError: (ctx) => (window.deniedCode = ctx.error.code) });
  });
  await page.waitForFunction(() => window.deniedCode, null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.deniedCode), 'permission_denied');
  assert.equal(await page.evaluate(() => window.client.getSubscription('secret:inbox#someone-else')), null);
  await apiPublish(node, channel, { n: 'after-denied' });
  await page.waitForFunction(() => window.rec.data.some((d) => d.n === 'after-denied'), null, { timeout: 20000 });

  const rec = await page.evaluate(() => window.rec);
  assert.deepEqual(rec.data.map((d) => d.n), [...Array.from({ length: 70 }, (_, i) => i + 1), 'from-browser', 'after-denied']);
  assert.equal(rec.infos[rec.data.findIndex((d) => d.n === 'from-browser')]?.user, 'sse-user', 'a client publication carries its publisher');
  assert.ok(rec.transports.every((t) => t === 'sse'), `transports: ${rec.transports}`);
  assert.equal(rec.resets.length, 0);
  assert.deepEqual(await page.evaluate(() => window.recB), [{ b: 1 }]);
  assert.deepEqual(problems, []);
  await context.close();
});
