// The admin console in Chromium: login (and refusal), the node and a session the test opens,
// live charts over the node's own push, a channel's tail and history, publishing from the form
// to a subscribed SDK page, disconnecting a user whose page then reconnects; 404 when the
// console is not enabled and 401 for every endpoint without the cookie. Screenshots at laptop
// and phone widths go to docs/img/ for the README.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import {
  Node,
  apiPublish,
  blockWebSocket,
  installClient,
  launchBrowser,
  mintToken,
  openSdkPage,
  until,
  watchPage,
} from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
// The README's screenshots are refreshed only on request (`UPDATE_SCREENSHOTS=1 npm test`), so a
// test run leaves the checkout unchanged; otherwise they go to the test results.
const IMG = process.env.UPDATE_SCREENSHOTS
  ? resolve(here, '..', '..', '..', 'docs', 'img')
  : resolve(here, '..', 'test-results');
const PASSWORD = 'console-test-password';
const CHANNEL = 'chat:admin-demo';

let node;
let browser;
let consoleCtx;
let consolePage;
let consoleProblems;
let sdk; // {page, problems} of the subscribed SDK page

before(async () => {
  node = await new Node({
    name: 'admin',
    env: { SWITCHBOARD_ADMIN__ENABLED: 'true', SWITCHBOARD_ADMIN__PASSWORD: PASSWORD },
  }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function openConsole(viewport = { width: 1280, height: 800 }, initScript) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  if (initScript) await page.addInitScript(initScript);
  const problems = watchPage(page, 'console');
  const res = await page.goto(`${node.base}/admin`);
  assert.equal(res.status(), 200);
  await page.waitForSelector('#login-form', { state: 'visible' });
  return { context, page, problems };
}

async function logIn(page, password) {
  await page.fill('#password', password);
  await page.click('#login-submit');
}

const chartNumber = (page, id, key) => page.$eval(`#${id}`, (el, key) => Number(el.dataset[key] || 0), key);

test('console disabled by default returns 404', async () => {
  const plain = await new Node({ name: 'admin-off' }).start();
  try {
    for (const path of ['/admin', '/admin/', '/admin/api/session', '/admin/assets/admin.js']) {
      const res = await fetch(`${plain.base}${path}`);
      assert.equal(res.status, 404, path);
    }
    const res = await fetch(`${plain.base}/admin/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: 'testkey' }),
    });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('set-cookie'), null);
    const context = await browser.newContext();
    const page = await context.newPage();
    assert.equal((await page.goto(`${plain.base}/admin`)).status(), 404);
    await context.close();
  } finally {
    await plain.stop();
  }
});

test('no admin endpoint answers without the cookie', async () => {
  const calls = [
    ['GET', '/admin/api/session'],
    ['GET', '/admin/api/nodes'],
    ['GET', '/admin/api/channels?q=chat'],
    ['GET', `/admin/api/history?channel=${CHANNEL}`],
    ['GET', '/admin/api/sessions?user=alice'],
    ['POST', '/admin/api/publish'],
    ['POST', '/admin/api/disconnect'],
    ['POST', '/admin/api/ticket'],
    ['POST', '/admin/logout'],
  ];
  for (const [method, path] of calls) {
    const res = await fetch(`${node.base}${path}`, {
      method,
      headers: { 'Content-Type': 'application/json', Origin: node.base },
      body: method === 'POST' ? JSON.stringify({ channel: CHANNEL, data: 1, user: 'alice', channels: [] }) : undefined,
    });
    assert.equal(res.status, 401, `${method} ${path}`);
    assert.equal((await res.json()).error.code, 'unauthorized');
  }
});

test('a wrong password is refused in the login form', async () => {
  const { context, page, problems } = await openConsole();
  await logIn(page, 'not the password');
  await page.waitForSelector('#login-error:not([hidden])');
  assert.match(await page.textContent('#login-error'), /wrong password/i);
  assert.ok(await page.isHidden('#console'));
  assert.deepEqual(await context.cookies(), [], 'no session cookie');
  assert.ok(!page.url().includes('password'), page.url());
  assert.deepEqual(problems, []);
  await context.close();
});

test('log in, see the node and a session the test opens, and watch the charts move', async () => {
  ({ context: consoleCtx, page: consolePage, problems: consoleProblems } = await openConsole());
  const page = consolePage;
  await logIn(page, PASSWORD);
  await page.waitForSelector('#console:not([hidden])');
  assert.ok(!page.url().includes(PASSWORD), 'the password never reaches a URL');

  // The cookie: HttpOnly (invisible to scripts), SameSite=Strict, scoped to /admin.
  const [cookie] = await consoleCtx.cookies();
  assert.equal(cookie.name, 'sb_admin');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/admin');
  assert.equal(await page.evaluate(() => document.cookie), '');

  // Live over the node's own push: the stats stream is connected and the node is listed.
  await page.waitForSelector('#live[data-state="connected"]');
  const name = (await page.textContent('#node-name')).split(' ')[0];
  await page.waitForSelector(`#nodes tr[data-node="${name}"]`);
  assert.match(await page.textContent(`#nodes tr[data-node="${name}"]`), /this node/);
  assert.match(await page.textContent(`#nodes tr[data-node="${name}"]`), /0\.1\.0/);
  await page.waitForFunction(() => Number(document.getElementById('chart-sessions').dataset.points) >= 1);
  const sessionsBefore = await chartNumber(page, 'chart-sessions', 'value');

  // A session the test opens shows up in the chart and the node's row.
  sdk = await openSdkPage(await browser.newContext(), node, { tokenOptions: { sub: 'alice', info: { name: 'Alice' } } });
  await installClient(sdk.page, { wsUrl: node.wsUrl, channel: CHANNEL });
  await sdk.page.waitForFunction(() => window.rec.subscribed.length >= 1);
  await page.waitForFunction(
    (before) => Number(document.getElementById('chart-sessions').dataset.value) >= before + 1,
    sessionsBefore,
  );
  // The node's row: sessions in all (the console's own stats session and the page's), by transport.
  await page.waitForFunction(
    (name) => {
      const tr = document.querySelector(`#nodes tr[data-node="${name}"]`);
      return Number(tr.dataset.sessions) >= 2 && JSON.parse(tr.dataset.transports).ws >= 2;
    },
    name,
  );
  assert.match(await page.textContent(`#nodes tr[data-node="${name}"]`), /ws \d+ · sse 0/);

  // Publications the test makes show up as a peak in publications/s and deliveries/s.
  const pubsPeak = await chartNumber(page, 'chart-pubs', 'peak');
  for (let i = 0; i < 30; i++) await apiPublish(node, CHANNEL, { n: i, text: `message ${i}` });
  await sdk.page.waitForFunction(() => window.rec.data.length >= 30);
  await page.waitForFunction(
    (before) => Number(document.getElementById('chart-pubs').dataset.peak) >= Math.max(before, 1) + 10,
    pubsPeak,
  );
  await page.waitForFunction(() => Number(document.getElementById('chart-dels').dataset.peak) >= 10);
  assert.deepEqual(consoleProblems, []);
});

test('tail a channel with its history, and publish from the form to a subscribed page', async () => {
  const page = consolePage;
  await page.fill('#channel-search', 'ADMIN-DEMO');
  await page.waitForSelector(`#channels tr[data-channel="${CHANNEL}"]`);
  assert.match(await page.textContent(`#channels tr[data-channel="${CHANNEL}"]`), /1$/);

  await page.click(`#channels tr[data-channel="${CHANNEL}"]`);
  assert.equal(await page.inputValue('#tail-channel'), CHANNEL);
  await page.waitForSelector('#tail-state[data-state="live"]');
  // History: the 30 publications of the previous test.
  await page.waitForFunction(() => document.querySelectorAll('#tail-log li[data-kind="history"]').length >= 30);

  // Live: a publication from the server API appears in the tail.
  const { offset } = await apiPublish(node, CHANNEL, { text: 'live from the API' });
  await page.waitForSelector(`#tail-log li[data-kind="live"][data-offset="${offset}"]`);
  assert.match(await page.textContent(`#tail-log li[data-offset="${offset}"]`), /live from the API/);

  // The form publishes; the subscribed SDK page and the tail both receive it.
  await page.fill('#publish-data', '{"text": "hello from the console"}');
  await page.click('#publish-send');
  await page.waitForFunction(() => /published at offset \d+/.test(document.getElementById('publish-result').textContent));
  await sdk.page.waitForFunction(() => window.rec.data.some((d) => d && d.text === 'hello from the console'));
  await page.waitForFunction(() =>
    [...document.querySelectorAll('#tail-log li[data-kind="live"]')].some((li) => li.textContent.includes('hello from the console')),
  );
  // Invalid JSON never leaves the page.
  await page.fill('#publish-data', '{not json');
  await page.click('#publish-send');
  await page.waitForFunction(() => document.getElementById('publish-result').textContent.startsWith('not JSON'));
  await page.fill('#publish-data', '{"text": "hello from the console"}');
  assert.deepEqual(consoleProblems, []);
});

test("disconnect a user and see the page's client reconnect", async () => {
  const page = consolePage;
  await page.fill('#user-id', 'alice');
  await page.click('#user-find');
  await page.waitForSelector('#user-sessions tbody tr');
  const [before] = await page.$$eval('#user-sessions tbody tr', (trs) => trs.map((tr) => tr.dataset.client));
  assert.equal(before, await sdk.page.evaluate(() => window.client.clientId));
  assert.match(await page.textContent('#user-sessions tbody tr'), /ws.*Alice/);

  const received = await sdk.page.evaluate(() => window.rec.data.length);
  await page.click('#disconnect');
  await page.waitForFunction(() => /1 session closed here/.test(document.getElementById('disconnect-result').textContent));
  // The page's client was told to reconnect (4006), did so and resumed its subscription.
  await sdk.page.waitForFunction(() => window.rec.disconnects.some((d) => d.code === 4006 && d.reconnect));
  await sdk.page.waitForFunction(() => window.client.state === 'connected' && window.rec.transports.length >= 2);
  const after = await sdk.page.evaluate(() => window.client.clientId);
  assert.notEqual(after, before);
  // The console lists the new session once it is back.
  await page.waitForSelector(`#user-sessions tbody tr[data-client="${after}"]`);
  // Nothing was lost or repeated across the reconnect.
  const { offset } = await apiPublish(node, CHANNEL, { text: 'after the reconnect' });
  await sdk.page.waitForFunction((n) => window.rec.data.length >= n + 1, received);
  const offsets = await sdk.page.evaluate(() => window.rec.offsets);
  assert.equal(offsets[offsets.length - 1], offset);
  assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
  assert.equal(new Set(offsets).size, offsets.length);
  assert.deepEqual([...consoleProblems, ...sdk.problems], []);
});

test('behind a proxy that refuses WebSocket, the live views run over SSE with tickets', async () => {
  const { context, page, problems } = await openConsole(undefined, blockWebSocket);
  await logIn(page, PASSWORD);
  await page.waitForSelector('#live[data-state="connected"]');
  const before = await chartNumber(page, 'chart-sessions', 'points');
  await page.waitForFunction((n) => Number(document.getElementById('chart-sessions').dataset.points) > n, before);
  assert.ok((await page.evaluate(() => window.__wsAttempts)) >= 2, 'WebSocket was tried first');
  await page.fill('#tail-channel', CHANNEL);
  await page.click('#tail-start');
  await page.waitForSelector('#tail-state[data-state="live"]');
  const { offset } = await apiPublish(node, CHANNEL, { text: 'over SSE' });
  await page.waitForSelector(`#tail-log li[data-kind="live"][data-offset="${offset}"]`);
  assert.deepEqual(problems, []);
  await context.close();
});

/** Fills the console with a few more sessions and channels so the screenshot shows a node at work. */
async function busyNode() {
  await sdk.page.exposeFunction('mintTokenFor', (sub) => mintToken({ sub, info: { name: sub } }));
  await sdk.page.evaluate(() => {
    for (const [user, channels] of [
      ['bob', ['chat:lobby', 'demo:ticker', 'orders:1042']],
      ['carol', ['chat:lobby', 'demo:ticker']],
      ['dave', ['chat:lobby', 'notifications:inbox#dave']],
    ]) {
      const c = new window.Switchboard(window.location.origin.replace(/^http/, 'ws') + '/ws', {
        getToken: () => window.mintTokenFor(user),
        name: user,
      });
      for (const ch of channels) c.subscribe(ch, {});
      c.connect();
    }
  });
  await until(async () => {
    const res = await fetch(`${node.base}/api/channels`, { headers: { 'X-API-Key': 'testkey' } });
    return (await res.json()).channels.length >= 5;
  });
}

test('screenshots at laptop and phone widths', async () => {
  mkdirSync(IMG, { recursive: true });
  await busyNode();
  const page = consolePage;
  await page.fill('#channel-search', '');
  await page.$eval('#channel-search', (el) => el.blur());
  await page.waitForFunction(() => document.querySelectorAll('#channels tbody tr').length >= 5);
  for (let i = 0; i < 2; i++) await apiPublish(node, CHANNEL, { user: 'ops', text: `deploy ${i + 1}/3 done` });
  await page.fill('#publish-data', '{"user": "ops", "text": "deploy 3/3 done"}');
  await page.click('#publish-send');
  await page.waitForFunction(() => /published at offset \d+/.test(document.getElementById('publish-result').textContent));
  // Some traffic with a shape, until the charts hold most of their two minutes.
  let publishing = true;
  const traffic = (async () => {
    for (let i = 0; publishing; i++) {
      const burst = 1 + Math.round(3 + 3 * Math.sin(i / 6));
      await Promise.all(Array.from({ length: burst }, (_, j) => apiPublish(node, 'chat:lobby', { i, j })));
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  try {
    await page.waitForFunction(() => Number(document.getElementById('chart-pubs').dataset.points) >= 60, null, { timeout: 90000 });
  } finally {
    publishing = false;
    await traffic;
  }
  await page.waitForFunction(() => document.querySelectorAll('#tail-log li').length >= 33);
  await page.screenshot({ path: join(IMG, 'admin-console.png'), fullPage: true });

  const phone = await openConsole({ width: 390, height: 844 });
  await logIn(phone.page, PASSWORD);
  await phone.page.waitForSelector('#live[data-state="connected"]');
  await phone.page.waitForFunction(() => Number(document.getElementById('chart-sessions').dataset.points) >= 10);
  await phone.page.waitForSelector('#channels tbody tr');
  // Phone layout: one column, nothing wider than the screen.
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the phone`);
  const clipped = await phone.page.$$eval('#nodes, #channels', (tables) =>
    tables.filter((t) => t.parentElement.scrollWidth > t.parentElement.clientWidth).map((t) => t.id),
  );
  assert.deepEqual(clipped, [], 'tables fit the phone without scrolling sideways');
  const columns = await phone.page.$$eval('.grid > .card', (cards) => new Set(cards.map((c) => c.getBoundingClientRect().left)).size);
  assert.equal(columns, 1, 'one column on a phone');
  await phone.page.click(`#channels tr[data-channel="${CHANNEL}"]`);
  await phone.page.waitForFunction(() => document.querySelectorAll('#tail-log li').length >= 10);
  await phone.page.screenshot({ path: join(IMG, 'admin-console-phone.png'), fullPage: true });
  assert.deepEqual(phone.problems, []);

  // Laptop layout: several columns.
  const wide = await page.$$eval('.grid > .card', (cards) => new Set(cards.map((c) => c.getBoundingClientRect().left)).size);
  assert.ok(wide >= 2, 'several columns on a laptop');

  // Logging out ends the login: the console's endpoints refuse the old cookie.
  const [cookie] = await consoleCtx.cookies();
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  const res = await fetch(`${node.base}/admin/api/session`, { headers: { Cookie: `sb_admin=${cookie.value}` } });
  assert.equal(res.status, 401);
  assert.deepEqual(consoleProblems, []);
  await phone.context.close();
  await consoleCtx.close();
  await sdk.page.context().close();
});
