// Test harness: starts a Switchboard node, mints tokens, publishes over the REST API and drives
// Debian's Chromium with playwright-core. Pages are served by the node itself (same origin), so
// they can open ws:// to it.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const RESULTS = resolve(here, '..', 'test-results');
export const API_KEY = 'testkey';
export const JWT_SECRET = 'testsecret';
const BINARY = process.env.SWITCHBOARD_BIN || resolve(here, '..', '..', '..', 'target', 'debug', 'switchboard');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

mkdirSync(RESULTS, { recursive: true });

export async function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value (or throws on timeout). */
export async function until(fn, { timeout = 15000, interval = 50, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** A Switchboard node child process. `start()` can be called again after `stop()` (same port). */
export class Node {
  constructor({ port, env = {}, name = 'node' } = {}) {
    this.port = port;
    this.env = env;
    this.name = name;
    this.proc = null;
    this.starts = 0;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  async start() {
    if (!existsSync(BINARY)) throw new Error(`server binary not found at ${BINARY} (cargo build -p switchboard-cli)`);
    this.port ??= await freePort();
    this.starts++;
    const log = createWriteStream(join(RESULTS, `${this.name}-${this.port}-${this.starts}.log`));
    // SWITCHBOARD_BIN names the binary for this harness; the node would read it as a config key
    // (`bin`) and refuse to start.
    const { SWITCHBOARD_BIN: _bin, ...inherited } = process.env;
    const proc = spawn(BINARY, ['serve', '--listen', `127.0.0.1:${this.port}`], {
      env: {
        ...inherited,
        SWITCHBOARD_API_KEY: API_KEY,
        SWITCHBOARD_JWT_SECRET: JWT_SECRET,
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.tail = '';
    const keep = (chunk) => {
      log.write(chunk);
      this.tail = (this.tail + chunk.toString()).slice(-4000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    proc.exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
    proc.exited.then(() => log.end());
    let exited = false;
    proc.exited.then(() => (exited = true));
    const up = await until(
      async () => {
        if (exited) return 'exited';
        const res = await fetch(`${this.base}/health`);
        return res.status === 200 && 'up';
      },
      { timeout: 30000, interval: 100, what: `${this.base}/health` },
    ).catch((err) => {
      if (!exited) proc.kill('SIGKILL');
      throw new Error(`${err.message}\n--- server output ---\n${this.tail}`);
    });
    if (up === 'exited') throw new Error(`server exited early:\n${this.tail}`);
    return this;
  }

  async stop(signal = 'SIGTERM') {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await proc.exited;
    clearTimeout(timer);
  }
}

function b64url(v) {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

/** An HS256 JWT signed with the test secret. */
export function mintToken({ sub = 'tester', ttl = 3600, channels = ['*'], publish = ['*'], info, exp, secret = JWT_SECRET } = {}) {
  const claims = { sub, exp: exp ?? Math.floor(Date.now() / 1000) + ttl, channels, publish };
  if (info !== undefined) claims.info = info;
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/** POST /api/publish; returns `{offset, epoch}`. */
export async function apiPublish(node, channel, data) {
  const res = await fetch(`${node.base}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify({ channel, data }),
  });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`POST /api/publish ${channel}: HTTP ${res.status} ${body}`);
  return JSON.parse(body);
}

export async function launchBrowser(extraArgs = []) {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

/** Collects page console errors and uncaught exceptions, for assertions and diagnostics. */
export function watchPage(page, label = 'page') {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`${label} uncaught: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs failed requests and WebSocket handshakes (e.g. while a node restarts) as
    // console errors; those are network events the tests assert on themselves.
    const network = /^(Failed to load resource|WebSocket connection to .* failed)/.test(msg.text());
    if (msg.type() === 'error' && !network) problems.push(`${label} console.error: ${msg.text()}`);
    if (process.env.DEBUG_PAGES) console.log(`[${label}] ${msg.type()}: ${msg.text()}`);
  });
  return problems;
}

/**
 * A blank same-origin page with the SDK loaded as `window.Switchboard` and `window.mintToken()`
 * (backed by Node) returning fresh tokens; `getTokenCalls` counts the calls.
 */
export async function openSdkPage(context, node, { tokenOptions = {}, initScript } = {}) {
  const page = await context.newPage();
  const problems = watchPage(page, 'sdk-page');
  const stats = { getTokenCalls: 0 };
  await page.exposeFunction('mintToken', () => {
    stats.getTokenCalls++;
    return mintToken(typeof tokenOptions === 'function' ? tokenOptions() : tokenOptions);
  });
  if (initScript) await page.addInitScript(initScript);
  await page.goto(`${node.base}/health`);
  await page.setContent('<!doctype html><html><head><title>sdk test</title></head><body><pre id="out"></pre></body></html>');
  await page.addScriptTag({
    type: 'module',
    content: "import * as sdk from '/sdk/switchboard.js'; window.sdk = sdk; window.Switchboard = sdk.Switchboard;",
  });
  await page.waitForFunction(() => typeof window.Switchboard === 'function', null, { timeout: 10000 });
  return { page, problems, stats };
}

/**
 * Installs in the page a client `window.client` subscribed to `channel`, recording into
 * `window.rec`: `data` (publication payloads in delivery order), `offsets`, `states`,
 * `subscribed` contexts, `resets`, `transports` and `errors`.
 */
export async function installClient(page, { wsUrl, channel, options = {} }) {
  await page.evaluate(
    ({ wsUrl, channel, options }) => {
      const rec = { data: [], offsets: [], infos: [], states: [], subscribed: [], resets: [], transports: [], errors: [], disconnects: [] };
      window.rec = rec;
      // `window.tokenFailures = n` makes the next n getToken calls fail (token service down).
      const getToken = async () => {
        if (window.tokenFailures > 0) {
          window.tokenFailures--;
          throw new Error('token service unavailable');
        }
        return window.mintToken();
      };
      const client = new window.Switchboard(wsUrl, { getToken, ...options });
      client.on('state', (s) => rec.states.push(s.newState));
      client.on('connected', (c) => rec.transports.push(c.transport));
      client.on('disconnected', (c) => rec.disconnects.push(c));
      client.on('error', (e) => rec.errors.push(`${e.type}: ${e.error.message}`));
      window.client = client;
      window.sub = client.subscribe(channel, {
        onPublication: (ctx) => {
          rec.data.push(ctx.data);
          rec.offsets.push(ctx.offset);
          rec.infos.push(ctx.info || null);
        },
        onSubscribed: (ctx) => rec.subscribed.push(ctx),
        onReset: (ctx) => rec.resets.push(ctx),
        onError: (ctx) => rec.errors.push(`sub: ${ctx.error.code}: ${ctx.error.message}`),
      });
      client.connect();
    },
    { wsUrl, channel, options },
  );
}

/**
 * An init script for `openSdkPage`: a WebSocket that can never open, as behind a proxy that
 * refuses upgrades.
 * Counts attempts in `window.__wsAttempts`.
 */
export const blockWebSocket = () => {
  window.__wsAttempts = 0;
  window.WebSocket = class BlockedWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    constructor(url) {
      window.__wsAttempts++;
      this.url = url;
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 3;
        this.onerror?.(new Event('error'));
        this.onclose?.({ code: 1006, reason: '', wasClean: false });
      }, 5);
    }
    send() {
      throw new Error('not open');
    }
    close() {}
  };
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
