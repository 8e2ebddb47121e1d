// Resume across dropped connections and node restarts (WebSocket transport).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, installClient, launchBrowser, openSdkPage, sleep } from './harness.js';

let node;
let browser;

before(async () => {
  node = await new Node({ name: 'resume' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

test('200 publications arrive in order, without duplicates, across forced disconnects', async () => {
  const context = await browser.newContext();
  const { page, problems } = await openSdkPage(context, node);
  const channel = 'resume:drops';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 50, maxReconnectDelay: 400 },
  });
  await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 15000 });
  assert.equal(await page.evaluate(() => window.client.transport), 'websocket');

  let drops = 0;
  for (let n = 1; n <= 200; n++) {
    await apiPublish(node, channel, { n });
    if (n % 30 === 15) {
      // History keeps ~100 publications: let the previous reconnect finish first so no gap
      // outgrows it (publications keep flowing while the client is away).
      await page.waitForFunction(() => window.sub.state === 'subscribed' && window.client._transport !== window.dropped, null, {
        timeout: 15000,
      });
      // Alternate between a silent drop (as if the network died) and a clean client-side close.
      const how = drops % 2 === 0 ? 'drop' : 'close';
      const dropped = await page.evaluate((how) => {
        const t = window.client._transport;
        if (!t || !t.ws) return false;
        window.dropped = t;
        if (how === 'drop') window.client._debugDropConnection();
        else t.ws.close();
        return true;
      }, how);
      if (dropped) drops++;
    }
  }
  assert.ok(drops >= 5, `only ${drops} connections were dropped`);
  // A marker published last: once it is in, every earlier publication (and any duplicate) is too.
  await apiPublish(node, channel, { n: 'end' });
  await page.waitForFunction(() => window.rec.data.some((d) => d.n === 'end'), null, { timeout: 30000 });

  const rec = await page.evaluate(() => window.rec);
  assert.deepEqual(rec.data.map((d) => d.n), [...range(1, 200), 'end']);
  for (let i = 1; i < rec.offsets.length; i++) assert.equal(rec.offsets[i], rec.offsets[i - 1] + 1, 'offsets are consecutive');
  const firstConnected = rec.states.indexOf('connected');
  assert.ok(firstConnected >= 0);
  const reconnecting = rec.states.slice(firstConnected).filter((s) => s === 'connecting').length;
  assert.ok(reconnecting >= drops, `went through 'connecting' ${reconnecting} times for ${drops} drops: ${rec.states}`);
  assert.equal(rec.resets.length, 0, 'no reset: history covers every gap');
  const resubscribes = rec.subscribed.filter((s) => !s.first);
  assert.ok(resubscribes.length >= drops, 'resubscribed after every drop');
  assert.ok(resubscribes.every((s) => s.recovered), 'every resubscribe recovered');
  assert.deepEqual(problems, []);
  await context.close();
});

test('node restart: the page shows reconnecting, comes back, and onReset fires for the new epoch', async () => {
  const context = await browser.newContext();
  const { page, problems } = await openSdkPage(context, node);
  const channel = 'resume:restart';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 100, maxReconnectDelay: 1000 },
  });
  await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 15000 });
  for (let n = 1; n <= 5; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.rec.data.length === 5, null, { timeout: 15000 });
  const before = await page.evaluate(() => window.sub.position);

  // The landing page's connection indicator, if the node serves it (development mode).
  const landing = await context.newPage();
  const landingRes = await landing.goto(`${node.base}/?name=restart-watcher`);
  const hasLanding = landingRes?.status() === 200;
  if (hasLanding) await landing.waitForSelector('#state[data-state="connected"]', { timeout: 15000 });

  await node.stop();
  await page.waitForFunction(() => window.client.state === 'connecting', null, { timeout: 15000 });
  if (hasLanding) {
    await landing.waitForSelector('#state[data-state="reconnecting"]', { timeout: 15000 });
    assert.match(await landing.textContent('#state'), /reconnecting/);
  }
  await node.start();

  await page.waitForFunction(() => window.client.state === 'connected' && window.sub.state === 'subscribed', null, { timeout: 30000 });
  await page.waitForFunction(() => window.rec.resets.length >= 1, null, { timeout: 15000 });
  const rec = await page.evaluate(() => window.rec);
  assert.equal(rec.resets[0].channel, channel);
  assert.notEqual(rec.resets[0].position?.epoch, before.epoch, 'the memory engine starts a new epoch');

  // Live again after the reset.
  for (let n = 6; n <= 10; n++) await apiPublish(node, channel, { n });
  await page.waitForFunction(() => window.rec.data.length === 10, null, { timeout: 15000 });
  assert.deepEqual((await page.evaluate(() => window.rec.data)).map((d) => d.n), range(1, 10));
  assert.equal(await page.evaluate(() => window.sub.position.epoch), rec.resets[0].position.epoch);

  if (hasLanding) {
    await landing.waitForSelector('#state[data-state="connected"]', { timeout: 40000 });
    assert.match(await landing.textContent('#state'), /connected via ws/);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

// Wraps WebSocket so a test can turn one socket into a black hole (a dead link: nothing arrives,
// nothing errors) and shortens the announced ping interval to 1 s.
const deadLinkHooks = () => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.__blackhole = false;
      window.__sockets.push(this);
    }
    set onmessage(fn) {
      super.onmessage = (e) => {
        if (this.__blackhole) return;
        if (typeof e.data === 'string' && e.data.includes('"ping_interval"')) {
          fn(new MessageEvent('message', { data: e.data.replace(/"ping_interval":\d+/, '"ping_interval":1') }));
        } else fn(e);
      };
    }
    get onmessage() {
      return super.onmessage;
    }
  };
};

test('a silent link is detected from missing pings, dropped and resumed', async () => {
  const context = await browser.newContext();
  const { page, problems } = await openSdkPage(context, node, { initScript: deadLinkHooks });
  const channel = 'resume:deadlink';
  await installClient(page, {
    wsUrl: node.wsUrl,
    channel,
    options: { minReconnectDelay: 50, maxReconnectDelay: 400, pingGrace: 1500 },
  });
  await page.waitForFunction(() => window.sub.state === 'subscribed', null, { timeout: 15000 });
  // Traffic keeps the link visibly alive (any message counts, not only pings).
  let n = 0;
  for (; n < 10; n++) {
    await apiPublish(node, channel, { n: n + 1 });
    await sleep(150); // pacing the publisher, not synchronisation
  }
  assert.deepEqual(await page.evaluate(() => window.rec.disconnects), []);
  await page.evaluate(() => (window.__sockets.at(-1).__blackhole = true));
  const started = Date.now();
  while (!(await page.evaluate(() => window.rec.disconnects.length > 0))) {
    assert.ok(Date.now() - started < 15000, 'the dead link was not detected');
    await apiPublish(node, channel, { n: ++n });
    await sleep(150); // pacing the publisher, not synchronisation
  }
  const detectedAfter = Date.now() - started;
  for (let i = 0; i < 5; i++) await apiPublish(node, channel, { n: ++n });
  await page.waitForFunction((n) => window.rec.data.length >= n, n, { timeout: 15000 });
  const rec = await page.evaluate(() => window.rec);
  assert.equal(rec.disconnects[0].code, 4001);
  assert.equal(rec.disconnects[0].reconnect, true);
  assert.ok(detectedAfter >= 1000 && detectedAfter < 6000, `detected after ${detectedAfter} ms (1 s interval + 1.5 s grace)`);
  assert.deepEqual(rec.data.map((d) => d.n), Array.from({ length: n }, (_, i) => i + 1));
  assert.equal(rec.resets.length, 0);
  assert.deepEqual(problems, []);
  await context.close();
});
