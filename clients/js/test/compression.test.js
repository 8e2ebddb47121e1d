// permessage-deflate (issue 10): Chromium negotiates the extension with a node that enables it
// and receives, through the SDK and through a plain WebSocket, exactly the data an uncompressed
// session on a node without it receives.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Node, apiPublish, installClient, launchBrowser, mintToken, openSdkPage, until } from './harness.js';

let deflateNode;
let plainNode;
let browser;

before(async () => {
  deflateNode = await new Node({ name: 'deflate', env: { SWITCHBOARD_WEBSOCKET__COMPRESSION: 'true' } }).start();
  plainNode = await new Node({ name: 'nodeflate' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await deflateNode?.stop();
  await plainNode?.stop();
});

/** A ticker update of realistic size (~700 bytes of JSON). */
function quote(seq) {
  const levels = Array.from({ length: 8 }, (_, i) => ({ price: 64120.5 + i * 0.5, size: 0.25 * (i + 1) }));
  return { symbol: 'BTC-USD', seq, bid: 64123.5, ask: 64124, last: { price: 64123.75, size: 0.042, side: 'buy' }, bids: levels, asks: levels };
}

/** A page of `node` with a plain WebSocket subscribed to `channel`; records the negotiated
 * extensions and every publication's data. */
async function plainSocket(node, channel) {
  const page = await browser.newPage();
  await page.goto(`${node.base}/health`);
  await page.evaluate(
    ({ token, channel }) => {
      window.got = [];
      const ws = new WebSocket(`ws://${location.host}/ws`);
      ws.onopen = () => {
        window.extensions = ws.extensions;
        ws.send(JSON.stringify({ id: 1, op: 'connect', token }));
        ws.send(JSON.stringify({ id: 2, op: 'subscribe', channel }));
      };
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.id === 2) window.subscribed = !m.error;
        if (m.op === 'pub') window.got.push(m.data);
      };
    },
    { token: mintToken({ sub: 'plain' }), channel },
  );
  await page.waitForFunction(() => window.subscribed === true, null, { timeout: 15000 });
  return page;
}

/** The value of `switchboard_websocket_handshakes_total` for the given labels (0 when absent). */
async function handshakes(node, { http, compression }) {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('switchboard_websocket_handshakes_total{') && l.includes(`http="${http}"`) && l.includes(`compression="${compression}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a compressed WebSocket session receives the same data as an uncompressed one', async () => {
  const channel = 'ticker:btc';
  const compressed = await plainSocket(deflateNode, channel);
  const uncompressed = await plainSocket(plainNode, channel);
  const context = await browser.newContext();
  const { page: sdkPage } = await openSdkPage(context, deflateNode);
  await installClient(sdkPage, { wsUrl: deflateNode.wsUrl, channel });
  await sdkPage.waitForFunction(() => window.rec.subscribed.length === 1, null, { timeout: 15000 });

  assert.match(await compressed.evaluate(() => window.extensions), /^permessage-deflate/);
  assert.equal(await uncompressed.evaluate(() => window.extensions), '');

  const sent = [];
  for (let seq = 1; seq <= 10; seq++) {
    const q = quote(seq);
    sent.push(q);
    await apiPublish(deflateNode, channel, q);
    await apiPublish(plainNode, channel, q);
  }
  await until(async () => (await compressed.evaluate(() => window.got.length)) === 10, { what: 'compressed pubs' });
  await until(async () => (await uncompressed.evaluate(() => window.got.length)) === 10, { what: 'plain pubs' });
  await until(async () => (await sdkPage.evaluate(() => window.rec.data.length)) === 10, { what: 'sdk pubs' });
  const a = await compressed.evaluate(() => window.got);
  const b = await uncompressed.evaluate(() => window.got);
  const c = await sdkPage.evaluate(() => window.rec.data);
  assert.deepEqual(a, sent);
  assert.deepEqual(b, sent);
  assert.deepEqual(c, sent);
  // The node saw both Chromium sessions negotiate compression; the other node none.
  assert.equal(await handshakes(deflateNode, { http: '1.1', compression: 'deflate' }), 2);
  assert.equal(await handshakes(plainNode, { http: '1.1', compression: 'deflate' }), 0);
  assert.equal(await handshakes(plainNode, { http: '1.1', compression: 'none' }), 1);
  await context.close();
  await compressed.close();
  await uncompressed.close();
});
