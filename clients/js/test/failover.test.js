// Failover (issue 10): two nodes on one real redis-server behind the nginx configuration of
// docs/deployment.md (taken from the document itself), round-robin, no sticky sessions. A bare
// EventSource and the SDK's SSE fallback connect through nginx with tickets; the node holding the
// stream is killed with SIGKILL (no drain, no disconnect event), and the stream resumes through
// nginx on the other node with no gap and no duplicate. A ticket already redeemed is refused by
// every node.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  Node,
  RESULTS,
  apiPublish,
  blockWebSocket,
  freePort,
  installClient,
  launchBrowser,
  mintToken,
  openSdkPage,
  until,
  watchPage,
} from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const DEPLOYMENT_GUIDE = resolve(here, '..', '..', '..', 'docs', 'deployment.md');
const WAIT = 30000;

let redis; // { proc, port, dir }
let nodes = []; // [Node, Node]
let nginx; // { proc, port, dir }
let front; // nginx as an origin: { base }
let browser;

/** Spawns `cmd`, its output going to test-results/`logName`; `proc.exited` resolves on exit. */
function spawnLogged(cmd, args, logName) {
  const log = createWriteStream(join(RESULTS, logName));
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  proc.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  proc.once('error', (err) => log.write(`spawn failed: ${err.message}\n`));
  return proc;
}

const hasExited = (proc) => proc.exitCode !== null || proc.signalCode !== null;

async function stopProcess(proc) {
  if (!proc || hasExited(proc)) return;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await proc.exited;
  clearTimeout(timer);
}

/** Waits until `ready()` holds, failing at once (with `logFile`'s text) if `proc` exits. */
async function waitStarted(proc, ready, what, logFile) {
  const r = await until(async () => (hasExited(proc) ? 'exited' : (await ready()) && 'ready'), { timeout: WAIT, interval: 50, what });
  if (r === 'exited') {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    throw new Error(`${what}: the process exited (${proc.exitCode ?? proc.signalCode}):\n${log}`);
  }
}

/** One round trip of the Redis protocol: PING → +PONG. */
function redisPing(port) {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.setTimeout(2000, () => {
      s.destroy();
      ok(false);
    });
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) {
        s.destroy();
        ok(buf.startsWith('+PONG'));
      }
    });
    s.on('error', () => ok(false));
  });
}

function tcpOpen(port) {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      ok(true);
    });
    s.on('error', () => ok(false));
  });
}

async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-failover-redis-'));
  const logName = `failover-redis-${port}.log`;
  const proc = spawnLogged('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], logName);
  redis = { proc, port, dir };
  await waitStarted(proc, () => redisPing(port), `redis-server on ${port} (scripts/test.sh installs it)`, join(RESULTS, logName));
}

/** The first nginx block of docs/deployment.md, as the Rust test `ops::nginx` runs it. */
function documentedNginxConfig() {
  const doc = readFileSync(DEPLOYMENT_GUIDE, 'utf8');
  const fence = '```nginx\n';
  const start = doc.indexOf(fence);
  assert.ok(start >= 0, 'deployment.md has an nginx block');
  const rest = doc.slice(start + fence.length);
  return rest.slice(0, rest.indexOf('```'));
}

/** Replaces the one occurrence of `from` (the documented config must still say it). */
function replaceOnce(text, from, to) {
  const parts = text.split(from);
  assert.equal(parts.length, 2, `the documented nginx config contains ${JSON.stringify(from)} exactly once`);
  return parts.join(to);
}

/** nginx in the foreground, one process, the documented config with every node as upstream. */
async function startNginx(upstreams) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sb-failover-nginx-'));
  let site = documentedNginxConfig();
  site = replaceOnce(site, 'server 127.0.0.1:8000;', upstreams.map((n) => `server 127.0.0.1:${n.port};`).join('\n    '));
  site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${port};`);
  // Nothing else in the documented config may change: it still has its SSE location unbuffered.
  assert.match(site, /location = \/sse \{[^}]*proxy_buffering off;/);
  assert.doesNotMatch(site, /sticky|ip_hash|hash /, 'no sticky sessions');
  const conf = [
    'master_process off;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 256; }',
    'http {',
    `access_log ${dir}/access.log;`,
    `client_body_temp_path ${dir}/client_body;`,
    `proxy_temp_path ${dir}/proxy;`,
    `fastcgi_temp_path ${dir}/fastcgi;`,
    `uwsgi_temp_path ${dir}/uwsgi;`,
    `scgi_temp_path ${dir}/scgi;`,
    site,
    '}',
    '',
  ].join('\n');
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const bin = process.env.NGINX || ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p)) || 'nginx';
  const logName = `failover-nginx-${port}.log`;
  const proc = spawnLogged(bin, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], logName);
  nginx = { proc, port, dir };
  await waitStarted(proc, () => tcpOpen(port), `nginx on ${port} (scripts/test.sh installs nginx-light)`, join(dir, 'error.log'));
  front = { base: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws` };
}

async function stopNginx() {
  if (!nginx) return;
  await stopProcess(nginx.proc);
  // Keep nginx's logs with the nodes' (which upstream served what, and upstream errors).
  for (const f of ['error.log', 'access.log']) {
    const from = join(nginx.dir, f);
    if (existsSync(from)) copyFileSync(from, join(RESULTS, `failover-nginx-${nginx.port}-${f}`));
  }
  rmSync(nginx.dir, { recursive: true, force: true });
}

before(async () => {
  await startRedis();
  const prefix = `failover-${randomBytes(4).toString('hex')}`;
  nodes = ['failover-a', 'failover-b'].map(
    (name) =>
      new Node({
        name,
        env: {
          SWITCHBOARD_ENGINE: 'redis',
          SWITCHBOARD_REDIS_URL: `redis://127.0.0.1:${redis.port}`,
          SWITCHBOARD_REDIS_PREFIX: prefix,
          // Client ids start with the node's name: that is how the test knows which node holds
          // a stream.
          SWITCHBOARD_NAME: name,
        },
      }),
  );
  // Ports first: nginx's upstream block lists both.
  for (const n of nodes) n.port = await freePort();
  await Promise.all(nodes.map((n) => n.start()));
  await startNginx(nodes);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopNginx().catch(() => {});
  for (const n of nodes) await n.stop().catch(() => {});
  if (redis) {
    await stopProcess(redis.proc);
    rmSync(redis.dir, { recursive: true, force: true });
  }
});

/** Restarts a node killed by an earlier test (same port, so nginx's upstream list holds). */
async function bothRunning() {
  for (const n of nodes) if (!n.proc) await n.start();
}

/** The node whose sessions have ids like `<name>-…`. */
function nodeOf(clientId) {
  const n = nodes.find((node) => typeof clientId === 'string' && clientId.startsWith(`${node.name}-`));
  assert.ok(n, `client id ${clientId} names one of the nodes`);
  return n;
}

/** kill -9: no drain, no `disconnect` event, connections cut by the kernel. */
async function kill9(node) {
  const proc = node.proc;
  assert.ok(proc && !hasExited(proc), `${node.name} is running`);
  proc.kill('SIGKILL');
  const { signal } = await proc.exited;
  assert.equal(signal, 'SIGKILL');
  await node.stop(); // forgets the dead process
}

/** A WebSocket handshake (`GET /ws?ticket=`) by hand: the status and body of the answer. */
function wsHandshake(base, ticket) {
  return new Promise((ok, fail) => {
    const req = request(`${base}/ws?ticket=${encodeURIComponent(ticket)}`, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      },
    });
    req.setTimeout(WAIT, () => req.destroy(new Error('WebSocket handshake timed out')));
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      ok({ status: res.statusCode, type: '', body: '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => ok({ status: res.statusCode, type: res.headers['content-type'] || '', body }));
    });
    req.on('error', fail);
    req.end();
  });
}

async function mintTicket(base, token) {
  const res = await fetch(`${base}/auth/ticket`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return (await res.json()).ticket;
}

function assertUnauthorizedJson(r, what) {
  assert.equal(r.status, 401, `${what}: HTTP ${r.status} ${r.body}`);
  assert.match(r.type, /^application\/json/, `${what}: content type`);
  assert.equal(JSON.parse(r.body).error?.code, 'unauthorized', `${what}: ${r.body}`);
}

/** `ticket` was redeemed already: every node, asked directly, refuses it on /sse and /ws. */
async function assertReplayRefusedEverywhere(ticket, channel) {
  assert.equal(typeof ticket, 'string');
  assert.ok(ticket.length > 0);
  for (const node of nodes) {
    const res = await fetch(`${node.base}/sse?channel=${encodeURIComponent(channel)}&ticket=${encodeURIComponent(ticket)}`);
    assertUnauthorizedJson({ status: res.status, type: res.headers.get('content-type') || '', body: await res.text() }, `${node.name} GET /sse with a used ticket`);
    assertUnauthorizedJson(await wsHandshake(node.base, ticket), `${node.name} GET /ws with a used ticket`);
  }
}

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function publishRange(target, channel, from, to) {
  for (let n = from; n <= to; n++) await apiPublish(target, channel, { n });
}

test('a ticket minted on one node is accepted once by the other, then refused by both', async () => {
  await bothRunning();
  const token = mintToken({ sub: 'failover-tickets' });
  for (const [minter, redeemer] of [nodes, [...nodes].reverse()]) {
    const ticket = await mintTicket(minter.base, token);
    const first = await wsHandshake(redeemer.base, ticket);
    assert.equal(first.status, 101, `${redeemer.name} accepts a ticket of ${minter.name}: HTTP ${first.status} ${first.body}`);
    await assertReplayRefusedEverywhere(ticket, 'failover:tickets');
  }
});

test('a bare EventSource resumes through nginx on the other node when its node is killed (SIGKILL)', { timeout: 90000 }, async () => {
  await bothRunning();
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const problems = watchPage(page, 'eventsource');
    await page.goto(`${front.base}/health`);
    const channel = 'failover:bare';
    const token = mintToken({ sub: 'failover-es' });
    const ticket = await page.evaluate(
      async ({ token, channel }) => {
        const res = await fetch('/auth/ticket', { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
        const { ticket } = await res.json();
        window.got = [];
        window.welcomes = [];
        window.resets = [];
        window.opens = 0;
        window.errors = 0;
        const es = new EventSource(`/sse?channel=${encodeURIComponent(channel)}&ticket=${ticket}`);
        es.onopen = () => window.opens++;
        es.onerror = () => window.errors++;
        es.addEventListener('welcome', (e) => window.welcomes.push(JSON.parse(e.data).client));
        es.addEventListener('reset', (e) => window.resets.push(e.data));
        es.onmessage = (e) => {
          const m = JSON.parse(e.data);
          window.got.push({ offset: m.offset, n: m.data.n });
        };
        window.es = es;
        return ticket;
      },
      { token, channel },
    );
    await until(() => page.evaluate(() => window.welcomes.length === 1), { timeout: WAIT, what: 'the welcome through nginx' });
    const holder = nodeOf(await page.evaluate(() => window.welcomes[0]));
    const survivor = nodes.find((n) => n !== holder);

    // The browser redeemed its ticket (on the node nginx chose): no node takes it again.
    await assertReplayRefusedEverywhere(ticket, channel);

    // Before the kill: publications through nginx (either node) arrive live.
    await publishRange(front, channel, 1, 10);
    await until(() => page.evaluate(() => window.got.length >= 10), { timeout: WAIT, what: 'publications 1-10' });

    await kill9(holder);
    // While the browser is away (it waits the stream's `retry:`, at least 2 s), the survivor
    // takes more publications.
    await publishRange(survivor, channel, 11, 20);
    assert.equal(await page.evaluate(() => window.welcomes.length), 1, 'publications 11-20 were made while the browser was away');

    // The browser reconnects by itself: same URL (its ticket is spent) plus Last-Event-ID; nginx
    // sends it to the survivor (the dead node refuses connections).
    await until(() => page.evaluate(() => window.welcomes.length === 2), { timeout: WAIT, what: 'the EventSource to come back' });
    const welcomes = await page.evaluate(() => window.welcomes);
    assert.equal(nodeOf(welcomes[1]), survivor, `resumed on ${survivor.name}: ${welcomes}`);
    await publishRange(survivor, channel, 21, 30);
    await until(() => page.evaluate(() => window.got.length >= 30), { timeout: WAIT, what: 'publications 21-30' });

    const got = await page.evaluate(() => window.got);
    assert.deepEqual(
      got.map((p) => p.n),
      range(1, 30),
      'every publication once, in order',
    );
    assert.deepEqual(
      got.map((p) => p.offset),
      range(1, 30),
    );
    assert.deepEqual(await page.evaluate(() => window.resets), [], 'resumed, not reset');
    assert.equal(await page.evaluate(() => window.opens), 2, 'one reconnect, accepted at the first try');
    assert.equal(await page.evaluate(() => window.es.readyState), 1, 'the stream is open');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});

// In the page before any script: records what every EventSource receives (so the stream itself,
// not only the SDK's de-duplication, is checked) and can hold POST /auth/ticket requests (so the
// test publishes while the SDK is certainly away).
const recordStreamsAndGateTickets = () => {
  const NativeEventSource = window.EventSource;
  window.__streams = [];
  window.EventSource = class RecordedEventSource extends NativeEventSource {
    constructor(url, init) {
      super(url, init);
      const s = { url: String(url), pubs: [], welcome: null };
      window.__streams.push(s);
      this.addEventListener('welcome', (e) => (s.welcome = JSON.parse(e.data)));
      this.addEventListener('message', (e) => {
        const m = JSON.parse(e.data);
        if (m.op === 'pub') s.pubs.push(m.offset);
      });
    }
  };
  const nativeFetch = window.fetch.bind(window);
  window.__ticketGate = null;
  window.__ticketsHeld = 0;
  window.holdTickets = () => {
    let open = () => {};
    const promise = new Promise((r) => (open = r));
    window.__ticketGate = { promise, open };
  };
  window.releaseTickets = () => {
    const gate = window.__ticketGate;
    window.__ticketGate = null;
    gate?.open();
  };
  window.fetch = async (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    const gate = window.__ticketGate;
    if (gate && url.includes('/auth/ticket')) {
      window.__ticketsHeld++;
      await gate.promise;
    }
    return nativeFetch(input, init);
  };
};

test("the SDK's SSE fallback resumes through nginx on the other node when its node is killed (SIGKILL)", { timeout: 90000 }, async () => {
  await bothRunning();
  const context = await browser.newContext();
  try {
    const { page, problems } = await openSdkPage(context, front, {
      initScript: `(${blockWebSocket})();\n(${recordStreamsAndGateTickets})();`,
      tokenOptions: { sub: 'failover-sdk' },
    });
    const channel = 'failover:sdk';
    await installClient(page, { wsUrl: front.wsUrl, channel, options: { minReconnectDelay: 50, maxReconnectDelay: 400 } });
    await until(() => page.evaluate(() => window.client.state === 'connected' && window.sub.state === 'subscribed'), {
      timeout: WAIT,
      what: 'the SDK subscribed',
    });
    assert.equal(await page.evaluate(() => window.client.transport), 'sse');
    const holder = nodeOf(await page.evaluate(() => window.client.clientId));
    const survivor = nodes.find((n) => n !== holder);

    // The SDK's ticket (in its EventSource URL) is spent: no node takes it again.
    const firstUrl = new URL(await page.evaluate(() => window.__streams[0].url));
    await assertReplayRefusedEverywhere(firstUrl.searchParams.get('ticket'), channel);

    await publishRange(front, channel, 1, 10);
    await until(() => page.evaluate(() => window.rec.data.length >= 10), { timeout: WAIT, what: 'publications 1-10' });

    // Kill the node; the SDK notices the stream failed and asks for a new ticket, which the test
    // holds until the survivor has taken publications 11-20.
    await page.evaluate(() => window.holdTickets());
    await kill9(holder);
    await until(() => page.evaluate(() => window.__ticketsHeld >= 1), { timeout: WAIT, what: 'the SDK to notice the dead stream' });
    await publishRange(survivor, channel, 11, 20);
    assert.equal(await page.evaluate(() => window.rec.data.length), 10, 'publications 11-20 were made while the SDK was away');
    await page.evaluate(() => window.releaseTickets());

    await until(() => page.evaluate(() => window.client.state === 'connected' && window.sub.state === 'subscribed' && window.rec.data.length >= 20), {
      timeout: WAIT,
      what: 'the SDK to resume',
    });
    assert.equal(nodeOf(await page.evaluate(() => window.client.clientId)), survivor, `resumed on ${survivor.name}`);
    await publishRange(survivor, channel, 21, 30);
    await until(() => page.evaluate(() => window.rec.data.length >= 30), { timeout: WAIT, what: 'publications 21-30' });

    const rec = await page.evaluate(() => window.rec);
    assert.deepEqual(
      rec.data.map((d) => d.n),
      range(1, 30),
      'every publication once, in order',
    );
    assert.deepEqual(rec.offsets, range(1, 30));
    assert.deepEqual(rec.resets, [], 'resumed, not reset');
    assert.deepEqual(rec.errors, []);
    assert.ok(rec.transports.every((t) => t === 'sse'), `transports: ${rec.transports}`);
    const resumed = rec.subscribed.at(-1);
    assert.equal(resumed.recovered, true, 'the second subscription recovered');
    // What the streams themselves carried: the new stream resumed from the SDK's cursor with the
    // missed publications first, nothing twice, nothing skipped (the SDK's own gap filling and
    // de-duplication had nothing to do).
    const streams = await page.evaluate(() => window.__streams);
    assert.deepEqual(
      streams.flatMap((s) => s.pubs),
      range(1, 30),
      `offsets per stream: ${JSON.stringify(streams.map((s) => s.pubs))}`,
    );
    const last = streams.at(-1);
    assert.equal(nodeOf(last.welcome?.client), survivor);
    const lastUrl = new URL(last.url);
    assert.ok(lastUrl.searchParams.get('since'), 'the SDK resumed with a cursor');
    assert.notEqual(lastUrl.searchParams.get('ticket'), firstUrl.searchParams.get('ticket'), 'with a new ticket');
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
