// The servicedesk example in headless Chromium: a customer, the admin and an employee in three
// browser contexts (three separate cookie jars), each page updating live from Switchboard pushes
// while the others act through the app's REST API. Screenshots land in test-results/.
//
//   cd examples/servicedesk && npm ci && npm test
//
// Builds the app with `cargo build -p servicedesk` first (set SERVICEDESK_BIN to use another
// binary) and drives /usr/bin/chromium (or CHROMIUM_PATH).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, '..', '..', '..');
const RESULTS = resolve(here, '..', 'test-results');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const WAIT = { timeout: 15000 };
mkdirSync(RESULTS, { recursive: true });

let server;
let browser;
let base;
let bin;
let port;
let dataDir;

function buildApp() {
  if (process.env.SERVICEDESK_BIN) return process.env.SERVICEDESK_BIN;
  const r = spawnSync('cargo', ['build', '-p', 'servicedesk'], { cwd: ROOT, stdio: 'inherit' });
  assert.equal(r.status, 0, 'cargo build -p servicedesk failed');
  return join(process.env.CARGO_TARGET_DIR || join(ROOT, 'target'), 'debug', 'servicedesk');
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Starts the app on `port` with the SQLite file in `dataDir`; resolves with its base URL. */
function startApp() {
  const log = createWriteStream(join(RESULTS, 'server.log'), { flags: 'a' });
  server = spawn(bin, [], {
    env: {
      ...process.env,
      SERVICEDESK_LISTEN: `127.0.0.1:${port}`,
      SERVICEDESK_DB: join(dataDir, 'servicedesk.sqlite3'),
      SERVICEDESK_SEED: '1',
      RUST_LOG: process.env.RUST_LOG || 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.exited = new Promise((r) => server.once('exit', (code, signal) => r({ code, signal })));
  let out = '';
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the app did not start in time:\n${out}`)), 60000);
    const onData = (chunk) => {
      log.write(chunk);
      out += chunk;
      const m = out.match(/servicedesk listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    server.stdout.on('data', onData);
    server.stderr.on('data', onData);
    server.exited.then(({ code }) => {
      clearTimeout(timer);
      log.end();
      fail(new Error(`the app exited (${code}):\n${out}`));
    });
  });
}

async function stopApp() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 8000);
  await server.exited;
  clearTimeout(timer);
}

before(async () => {
  bin = buildApp();
  assert.ok(existsSync(bin), `no binary at ${bin}`);
  assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
  rmSync(join(RESULTS, 'server.log'), { force: true });
  dataDir = mkdtempSync(join(tmpdir(), 'servicedesk-test-'));
  port = await freePort();
  base = await startApp();
  browser = await chromium.launch({
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
    ],
  });
});

after(async () => {
  await browser?.close();
  await stopApp();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** A fresh browser context (own cookies) signed in as `user` through the start page. */
async function signIn(user, expectedPath) {
  // Scale 2: sharp screenshots for the docs image.
  const context = await browser.newContext({ viewport: { width: 1280, height: 820 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`${user}: uncaught ${e.message}`));
  page.on('console', (m) => {
    // While the server restarts, Chromium logs the refused connections itself; those are
    // network events the tests check through the page's own state.
    const network = /^(Failed to load resource|WebSocket connection to .* failed)/.test(m.text());
    if (m.type() === 'error' && !network) problems.push(`${user}: console.error ${m.text()}`);
    if (process.env.DEBUG_PAGES) console.log(`[${user}] ${m.type()}: ${m.text()}`);
  });
  await page.goto(`${base}/`);
  await page.click(`button.user-card[data-user="${user}"]`);
  await page.waitForURL(`${base}${expectedPath}`, WAIT);
  await page.waitForSelector('#conn[data-state="connected"]', WAIT);
  // Survives only if the page is never reloaded or left.
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  return { context, page, problems };
}

const text = (page, sel) => page.locator(sel).innerText();
const statValue = async (page, id) => Number(await text(page, `#${id} .stat-value`));

function waitForStat(page, id, value) {
  return page.waitForFunction(
    ([id, value]) => document.querySelector(`#${id} .stat-value`)?.textContent === String(value),
    [id, value],
    WAIT,
  );
}

test('customer, admin and employee pages update each other live', async () => {
  // The start page lists every demo user.
  const start = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  await start.goto(`${base}/`);
  assert.deepEqual(await start.$$eval('button.user-card', (bs) => bs.map((b) => b.dataset.user)), ['alice', 'dave', 'admin', 'bob', 'carol']);
  await start.screenshot({ path: join(RESULTS, 'start.png') });
  await start.close();

  const alice = await signIn('alice', '/customer');
  const admin = await signIn('admin', '/admin');
  const bob = await signIn('bob', '/employee');

  // Everyone has loaded: seeded data and the dashboard numbers.
  await admin.page.waitForSelector('#requests tr[data-id]', WAIT);
  await admin.page.waitForFunction(() => /^\d+$/.test(document.querySelector('#stat-open .stat-value').textContent), null, WAIT);
  await alice.page.waitForSelector('#requests li[data-id]', WAIT);
  await bob.page.waitForFunction(() => /^\d+$/.test(document.querySelector('#stat-open .stat-value').textContent), null, WAIT);
  const open0 = await statValue(admin.page, 'stat-open');
  const review0 = await statValue(admin.page, 'stat-in_review');
  const progress0 = await statValue(admin.page, 'stat-in_progress');
  const completed0 = await statValue(admin.page, 'stat-completed');
  const badge0 = Number(await bob.page.getAttribute('#bell-badge', 'data-count'));
  assert.equal(await text(alice.page, '#open-count'), String(open0));

  // 1. The customer files a request with the form (a plain POST to /api/requests).
  const title = 'Printer on floor 2 is out of toner'; // the database is fresh for every run
  await alice.page.fill('#f-title', title);
  await alice.page.selectOption('#f-category', 'facilities');
  await alice.page.click('label:has(input[name="priority"][value="high"])');
  assert.ok(await alice.page.isChecked('input[name="priority"][value="high"]'));
  await alice.page.fill('#f-description', 'The display says "Replace toner cartridge" and nothing prints since this morning.');
  await alice.page.click('#submit');
  const mine = alice.page.locator('#requests li.request', { hasText: title });
  await mine.waitFor(WAIT);
  const id = await mine.getAttribute('data-id');
  assert.match(id, /^\d+$/);
  assert.equal(await mine.getAttribute('data-status'), 'in_review');
  assert.equal(await alice.page.inputValue('#f-title'), '', 'the form is cleared');

  // The admin sees it appear, and the dashboard counts it, without a reload.
  const row = admin.page.locator(`#requests tr[data-id="${id}"]`);
  await row.waitFor(WAIT);
  assert.equal(await row.getAttribute('data-status'), 'in_review');
  assert.match(await row.innerText(), /Alice Martin/);
  await waitForStat(admin.page, 'stat-open', open0 + 1);
  await waitForStat(admin.page, 'stat-in_review', review0 + 1);
  await waitForStat(bob.page, 'stat-open', open0 + 1);
  await alice.page.waitForFunction((n) => document.getElementById('open-count').textContent === String(n), open0 + 1, WAIT);
  // ... and the admin's bell rings for the new request.
  await admin.page.waitForFunction(() => Number(document.getElementById('bell-badge').dataset.count) >= 1, null, WAIT);

  // 2. The admin assigns it to Bob: Bob's badge pops, the request lands in his list.
  await row.locator('select.assign').selectOption('bob');
  await bob.page.waitForFunction((n) => document.getElementById('bell-badge').dataset.count === String(n), badge0 + 1, WAIT);
  assert.ok(await bob.page.isVisible('#bell-badge'), 'the badge is visible');
  assert.equal(await text(bob.page, '#bell-badge'), String(badge0 + 1));
  await bob.page.locator(`#requests li[data-id="${id}"]`).waitFor(WAIT);
  assert.match(await text(bob.page, '#inbox-panel li.note-unread'), new RegExp(`Assigned to you: #${id}`));
  await mine.locator('.assignee', { hasText: 'Bob Chen' }).waitFor(WAIT);

  // 3. In Review → In Progress → Completed, each step live on the customer's page.
  await row.locator('button.act-next', { hasText: 'Start work' }).click();
  await alice.page.locator(`#requests li[data-id="${id}"][data-status="in_progress"]`).waitFor(WAIT);
  assert.equal(await mine.locator('.pill').innerText(), 'In Progress');
  await bob.page.locator(`#requests li[data-id="${id}"][data-status="in_progress"]`).waitFor(WAIT);
  await waitForStat(admin.page, 'stat-in_progress', progress0 + 1);
  await waitForStat(admin.page, 'stat-open', open0 + 1);

  // Screenshots mid-flow: the most telling state of each page.
  await bob.page.locator(`#requests li[data-id="${id}"]`).waitFor(WAIT);
  const shot = { animations: 'disabled' };
  for (const p of [alice, admin, bob]) await p.page.mouse.move(5, 400); // no hover effects
  await alice.page.screenshot({ ...shot, path: join(RESULTS, 'customer.png') });
  await admin.page.screenshot({ ...shot, path: join(RESULTS, 'admin.png') });
  await bob.page.screenshot({ ...shot, path: join(RESULTS, 'employee.png') });
  await bob.page.click('#bell');
  await bob.page.locator('#inbox .note', { hasText: `#${id}` }).waitFor(WAIT);
  await bob.page.screenshot({ ...shot, path: join(RESULTS, 'employee-inbox.png') });

  await row.locator('button.act-next', { hasText: 'Mark completed' }).click();
  await alice.page.locator(`#requests li[data-id="${id}"][data-status="completed"]`).waitFor(WAIT);
  assert.equal(await mine.locator('.pill').innerText(), 'Completed');
  await waitForStat(admin.page, 'stat-open', open0);
  await waitForStat(admin.page, 'stat-completed', completed0 + 1);
  await waitForStat(bob.page, 'stat-open', open0);
  await alice.page.waitForFunction((n) => document.getElementById('open-count').textContent === String(n), open0, WAIT);
  // The admin's "Open" view drops it; "All" still lists it as completed.
  await admin.page.waitForSelector(`#requests tr[data-id="${id}"]`, { state: 'detached', ...WAIT });
  await admin.page.click('#filter button[data-filter="all"]');
  await admin.page.locator(`#requests tr[data-id="${id}"][data-status="completed"]`).waitFor(WAIT);

  // 4. Bob reads his notifications: the badge clears (from the push, in every tab).
  await bob.page.click('#mark-read');
  await bob.page.waitForSelector('#bell-badge', { state: 'hidden', ...WAIT });

  // No page was ever reloaded.
  for (const p of [alice, admin, bob]) assert.equal(await p.page.evaluate(() => window.__sameDocument), true);
  assert.deepEqual([...alice.problems, ...admin.problems, ...bob.problems], []);
  await Promise.all([alice, admin, bob].map((p) => p.context.close()));
});

test('the connection state is visible, and a reconnect resumes what was missed', async () => {
  const alice = await signIn('alice', '/customer');
  const admin = await signIn('admin', '/admin');
  await alice.page.waitForSelector('#requests li[data-id]', WAIT);
  await admin.page.waitForSelector('#requests tr[data-id]', WAIT);
  await alice.page.evaluate(() => {
    window.__connStates = [];
    new MutationObserver(() => window.__connStates.push(document.getElementById('conn').dataset.state)).observe(document.getElementById('conn'), {
      attributes: true,
      attributeFilter: ['data-state'],
    });
  });

  // A network failure: the indicator says so, and the client comes back by itself.
  await alice.page.evaluate(() => window.client._debugDropConnection());
  await alice.page.waitForFunction(() => window.__connStates.includes('reconnecting'), null, WAIT);
  await alice.page.waitForSelector('#conn[data-state="connected"]', WAIT);

  // Offline while the admin works on one of Alice's requests: the change is replayed from the
  // channel's history on reconnect (no reload, no REST refetch needed).
  const vpn = alice.page.locator('#requests li.request', { hasText: 'VPN drops every hour' });
  const id = await vpn.getAttribute('data-id');
  assert.equal(await vpn.getAttribute('data-status'), 'in_review');
  await alice.page.evaluate(() => {
    window.__resumed = [];
    window.client.getSubscription(`requests:customer#alice`).on('subscribed', (ctx) => window.__resumed.push(ctx.recovered));
    window.client.disconnect();
  });
  await alice.page.waitForSelector('#conn[data-state="offline"]', WAIT);
  assert.equal(await text(alice.page, '#conn-text'), 'Offline');
  assert.ok(await alice.page.isVisible('#conn-retry'));
  await admin.page.locator(`#requests tr[data-id="${id}"] button.act-next`).click();
  await admin.page.locator(`#requests tr[data-id="${id}"][data-status="in_progress"]`).waitFor(WAIT);
  assert.equal(await vpn.getAttribute('data-status'), 'in_review', 'nothing arrives while offline');
  await alice.page.click('#conn-retry');
  await alice.page.waitForSelector('#conn[data-state="connected"]', WAIT);
  await alice.page.locator(`#requests li[data-id="${id}"][data-status="in_progress"]`).waitFor(WAIT);
  assert.deepEqual(await alice.page.evaluate(() => window.__resumed), [true]);
  assert.equal(await alice.page.evaluate(() => window.__sameDocument), true);

  // Pages belong to their role: the customer cannot open the admin page.
  await alice.page.goto(`${base}/admin`);
  assert.equal(new URL(alice.page.url()).pathname, '/customer');

  assert.deepEqual([...alice.problems, ...admin.problems], []);
  await Promise.all([alice, admin].map((p) => p.context.close()));
});

test('after a server restart the pages reconnect and reload their state', async () => {
  const alice = await signIn('alice', '/customer');
  const admin = await signIn('admin', '/admin');
  const vpn = alice.page.locator('#requests li.request', { hasText: 'VPN drops every hour' });
  await vpn.waitFor(WAIT);
  const id = await vpn.getAttribute('data-id');
  assert.equal(await vpn.getAttribute('data-status'), 'in_progress');
  await alice.page.evaluate(() => {
    window.__resets = [];
    window.client.getSubscription('requests:customer#alice').on('reset', (ctx) => window.__resets.push(ctx.channel));
  });

  // The server goes away: the pages say so.
  await stopApp();
  await alice.page.waitForSelector('#conn[data-state="reconnecting"]', WAIT);
  await alice.page.locator('.topbar').screenshot({ path: join(RESULTS, 'topbar-reconnecting.png'), animations: 'disabled' });

  // It comes back with the same database but a new JWT secret and empty channel history: the
  // pages get fresh tokens, learn that their channels cannot be resumed, reload over REST, and
  // carry on live.
  await startApp();
  const back = { timeout: 45000 };
  await alice.page.waitForSelector('#conn[data-state="connected"]', back);
  await admin.page.waitForSelector('#conn[data-state="connected"]', back);
  await alice.page.waitForFunction(() => window.__resets.length > 0, null, back);
  await admin.page.locator(`#requests tr[data-id="${id}"] button.act-next`, { hasText: 'Mark completed' }).click();
  await alice.page.locator(`#requests li[data-id="${id}"][data-status="completed"]`).waitFor(WAIT);
  for (const p of [alice, admin]) assert.equal(await p.page.evaluate(() => window.__sameDocument), true);
  assert.deepEqual([...alice.problems, ...admin.problems], []);
  await Promise.all([alice, admin].map((p) => p.context.close()));
});

test('side-by-side screenshot for the docs', async () => {
  const png = (name) => `data:image/png;base64,${readFileSync(join(RESULTS, name)).toString('base64')}`;
  const page = await browser.newPage({ viewport: { width: 1600, height: 560 }, deviceScaleFactor: 1.25 });
  await page.setContent(`<!doctype html><html><body style="margin:0;background:#e9ebf3;font:600 15px system-ui,sans-serif;color:#475467">
    <div style="display:flex;gap:24px;padding:24px">
      ${['customer.png', 'admin.png']
        .map(
          (f) => `<figure style="margin:0;flex:1;min-width:0">
            <img src="${png(f)}" style="width:100%;display:block;border-radius:10px;box-shadow:0 10px 30px rgba(16,24,40,.18)">
          </figure>`,
        )
        .join('')}
    </div></body></html>`);
  await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
  await page.screenshot({ path: join(RESULTS, 'servicedesk.png'), fullPage: true });
  await page.close();
});
