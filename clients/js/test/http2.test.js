// HTTP/2 (issue 10): over HTTPS, ten EventSources of one origin all receive live, multiplexed on
// one HTTP/2 connection. The same page with HTTP/2 disabled shows why it matters: HTTP/1.1 allows
// six connections per origin, so the seventh stream stalls.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Node, apiPublish, launchBrowser, mintToken } from './harness.js';

// The test certificate is self-signed; Node's own fetch (the harness) must accept it.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

class TlsNode extends Node {
  get base() {
    return `https://localhost:${this.port}`;
  }
}

let node;
const STREAMS = 10;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-h2-'));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  node = await new TlsNode({ name: 'h2', env: { SWITCHBOARD_TLS_CERT: cert, SWITCHBOARD_TLS_KEY: key } }).start();
});

after(async () => {
  await node?.stop();
});

/** Opens STREAMS EventSources (each with its own ticket) in a page of the node's origin. */
async function openStreams(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`${node.base}/health`);
  const tickets = [];
  for (let i = 0; i < STREAMS; i++) {
    const r = await fetch(`${node.base}/auth/ticket`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${mintToken({ sub: `tab${i}` })}` },
    });
    tickets.push((await r.json()).ticket);
  }
  await page.evaluate((tickets) => {
    window.streams = tickets.map((t, i) => {
      const s = { open: false, got: [] };
      const es = new EventSource(`/sse?channel=h2:live&channel=h2:tab${i}&ticket=${t}`);
      es.addEventListener('welcome', () => (s.open = true));
      es.onmessage = (e) => s.got.push(JSON.parse(e.data).data);
      s.es = es;
      return s;
    });
  }, tickets);
  return { context, page };
}

const state = (page) =>
  page.evaluate(() => ({
    open: window.streams.filter((s) => s.open).length,
    received: window.streams.filter((s) => s.got.length > 0).length,
    connecting: window.streams.filter((s) => s.es.readyState === 0).length,
    protocols: [...new Set(performance.getEntriesByType('resource').map((e) => e.nextHopProtocol))],
  }));

async function waitFor(page, pred, what) {
  const end = Date.now() + 20000;
  for (;;) {
    const s = await state(page);
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s)}`);
    await page.waitForTimeout(50);
  }
}

test('over HTTP/2 ten EventSources of one origin all receive live', async () => {
  const browser = await launchBrowser(['--ignore-certificate-errors']);
  try {
    const { page } = await openStreams(browser);
    await waitFor(page, (s) => s.open === STREAMS, 'every stream to open');
    await apiPublish(node, 'h2:live', { n: 1 });
    const s = await waitFor(page, (s) => s.received === STREAMS, 'every stream to receive');
    assert.deepEqual(s.protocols, ['h2'], 'the page talked HTTP/2 only');
  } finally {
    await browser.close();
  }
});

test('over HTTP/1.1 the seventh EventSource of an origin stalls', async () => {
  const browser = await launchBrowser(['--ignore-certificate-errors', '--disable-http2']);
  try {
    const { page } = await openStreams(browser);
    await waitFor(page, (s) => s.open === 6, 'six streams to open');
    await apiPublish(node, 'h2:live', { n: 2 });
    // The six open streams received the publication: a full round trip after which the other
    // four are still waiting for a connection.
    const s = await waitFor(page, (s) => s.received === 6, 'the six open streams to receive');
    assert.equal(s.open, 6);
    assert.equal(s.connecting, STREAMS - 6);
  } finally {
    await browser.close();
  }
});

/** The value of `switchboard_websocket_handshakes_total{http=…}` summed over compression. */
async function wsHandshakes(http) {
  const text = await (await fetch(`${node.base}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('switchboard_websocket_handshakes_total{') && l.includes(`http="${http}"`))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

test('over HTTP/2 a WebSocket rides the same connection (RFC 8441)', async () => {
  const browser = await launchBrowser(['--ignore-certificate-errors']);
  try {
    const { page } = await openStreams(browser);
    await waitFor(page, (s) => s.open === STREAMS, 'every stream to open');
    const before = { h1: await wsHandshakes('1.1'), h2: await wsHandshakes('2') };
    await page.evaluate((token) => {
      window.wsGot = [];
      const ws = new WebSocket(`wss://${location.host}/ws`);
      ws.onopen = () => {
        ws.send(JSON.stringify({ id: 1, op: 'connect', token }));
        ws.send(JSON.stringify({ id: 2, op: 'subscribe', channel: 'h2:live' }));
      };
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.id === 2) window.wsSubscribed = !m.error;
        if (m.op === 'pub') window.wsGot.push(m.data);
      };
    }, mintToken({ sub: 'h2ws' }));
    await page.waitForFunction(() => window.wsSubscribed === true, null, { timeout: 20000 });
    await apiPublish(node, 'h2:live', { n: 3 });
    await page.waitForFunction(() => window.wsGot.length === 1, null, { timeout: 20000 });
    assert.deepEqual(await page.evaluate(() => window.wsGot), [{ n: 3 }]);
    assert.deepEqual(
      { h1: (await wsHandshakes('1.1')) - before.h1, h2: (await wsHandshakes('2')) - before.h2 },
      { h1: 0, h2: 1 },
      'Chromium opened the WebSocket as an HTTP/2 stream',
    );
  } finally {
    await browser.close();
  }
});
