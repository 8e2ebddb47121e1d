// Short-lived tokens: the SDK asks getToken for fresh ones (refresh on `expiring`, or reconnect
// after 4004) and nothing is lost meanwhile.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, installClient, launchBrowser, openSdkPage, sleep } from './harness.js';

let node;
let browser;

before(async () => {
  node = await new Node({ name: 'token' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

test('tokens expiring every 6 s are replaced and publications keep arriving', async () => {
  const context = await browser.newContext();
  const { page, problems, stats } = await openSdkPage(context, node, { tokenOptions: { sub: 'short', ttl: 6 } });
  const channel = 'token:stream';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 100, maxReconnectDelay: 1000 },
  });
  await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 15000 });
  assert.ok(stats.getTokenCalls >= 1);

  // Publish for well past two token lifetimes (6 s + the server's 5 s leeway at most).
  const total = 90;
  const started = Date.now();
  for (let n = 1; n <= total; n++) {
    await apiPublish(node, channel, { n });
    await sleep(200); // pacing the publisher, not synchronisation
  }
  await page.waitForFunction((total) => window.rec.data.length >= total, total, { timeout: 30000 });
  const elapsed = (Date.now() - started) / 1000;
  const rec = await page.evaluate(() => window.rec);
  assert.deepEqual(rec.data.map((d) => d.n), Array.from({ length: total }, (_, i) => i + 1));
  assert.ok(elapsed > 15, `ran ${elapsed}s`);
  assert.ok(stats.getTokenCalls >= 3, `getToken was called ${stats.getTokenCalls} times in ${elapsed}s`);
  assert.equal(rec.resets.length, 0);
  assert.equal(await page.evaluate(() => window.client.state), 'connected');
  // A session that outlived its token without a refresh would have been closed with 4004: either
  // way the SDK must never stop (no terminal disconnect).
  assert.ok(rec.disconnects.every((d) => d.reconnect), JSON.stringify(rec.disconnects));
  assert.deepEqual(problems, []);
  await context.close();
});

test('a session closed with 4004 reconnects with a fresh token and resumes', async () => {
  const context = await browser.newContext();
  const { page, problems, stats } = await openSdkPage(context, node, { tokenOptions: { sub: 'lapsed', ttl: 6 } });
  const channel = 'token:lapsed';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 100, maxReconnectDelay: 1000 },
  });
  await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 15000 });
  // The token service goes down: refreshes fail, so the node ends the session at expiry.
  await page.evaluate(() => (window.tokenFailures = 1e9));
  let n = 0;
  let lapsed = false;
  const deadline = Date.now() + 30000;
  while (!lapsed) {
    assert.ok(Date.now() < deadline, 'the node did not close the session at token expiry');
    await apiPublish(node, channel, { n: ++n });
    await sleep(200); // pacing the publisher, not synchronisation
    lapsed = await page.evaluate(() => window.rec.disconnects.some((d) => d.code === 4004));
  }
  const callsAtExpiry = stats.getTokenCalls;
  // The token service is back: the SDK gets a new token before reconnecting, and resumes.
  await page.evaluate(() => (window.tokenFailures = 0));
  for (let i = 0; i < 10; i++) await apiPublish(node, channel, { n: ++n });
  await page.waitForFunction((n) => window.rec.data.length >= n, n, { timeout: 30000 });
  const rec = await page.evaluate(() => window.rec);
  assert.deepEqual(rec.data.map((d) => d.n), Array.from({ length: n }, (_, i) => i + 1));
  const expired = rec.disconnects.find((d) => d.code === 4004);
  assert.equal(expired.reconnect, true);
  assert.ok(stats.getTokenCalls > callsAtExpiry, 'a fresh token was fetched after 4004');
  assert.equal(await page.evaluate(() => window.client.state), 'connected');
  assert.equal(rec.resets.length, 0);
  assert.ok(rec.errors.some((e) => e.startsWith('refresh') || e.startsWith('token')), 'failed refreshes are reported');
  assert.deepEqual(problems, []);
  await context.close();
});

test('an invalid token is terminal: the client stops instead of retrying', async () => {
  const context = await browser.newContext();
  const { page, problems, stats } = await openSdkPage(context, node, { tokenOptions: { sub: 'forger', secret: 'not-the-secret' } });
  await installClient(page, { wsUrl: node.wsUrl, channel: 'token:forged', options: { minReconnectDelay: 50 } });
  await page.waitForFunction(() => window.rec.disconnects.length > 0, null, { timeout: 15000 });
  const rec = await page.evaluate(() => window.rec);
  assert.equal(rec.disconnects.length, 1);
  assert.equal(rec.disconnects[0].code, 4501);
  assert.equal(rec.disconnects[0].reconnect, false);
  assert.equal(await page.evaluate(() => window.client.state), 'disconnected');
  assert.equal(await page.evaluate(() => window.client.nextReconnectAt), null, 'no retry scheduled');
  assert.equal(stats.getTokenCalls, 1, 'a token fetched for this very attempt is not retried');
  assert.ok(!rec.states.includes('connected'));
  assert.deepEqual(problems, []);
  await context.close();
});
