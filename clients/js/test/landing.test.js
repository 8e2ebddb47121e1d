// The landing page (development mode): live chat with presence between two browsers, and a
// screenshot for a human to look at.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Node, RESULTS, launchBrowser, watchPage } from './harness.js';

let node;
let browser;

before(async () => {
  node = await new Node({ name: 'landing' }).start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.stop();
});

async function openLanding(name, query = '') {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = watchPage(page, name);
  const res = await page.goto(`${node.base}/?name=${encodeURIComponent(name)}${query}`);
  assert.equal(res.status(), 200, 'GET / serves the landing page');
  await page.waitForSelector('#state[data-state="connected"]', { timeout: 15000 });
  return { context, page, problems };
}

const presenceOf = (page) => page.$$eval('#presence li', (lis) => lis.map((li) => li.dataset.user));

async function send(page, text) {
  await page.fill('#chat-input', text);
  await page.click('#chat-send');
}

function messageFrom(page, user, text, timeout = 15000) {
  return page.waitForFunction(
    ([user, text]) =>
      [...document.querySelectorAll('#chat-log li')].some(
        (li) => li.dataset.user === user && li.querySelector('.text')?.textContent === text,
      ),
    [user, text],
    { timeout },
  );
}

test('two browsers chat live and see each other in presence', async () => {
  const alice = await openLanding('alice');
  const bob = await openLanding('bob');
  assert.match(await alice.page.textContent('#state'), /connected via ws/);

  // Presence, live: each sees the other (join push or presence reply).
  await alice.page.waitForSelector('#presence li[data-user="bob"]', { timeout: 15000 });
  await bob.page.waitForSelector('#presence li[data-user="alice"]', { timeout: 15000 });

  const stamp = Date.now().toString(36);
  await send(alice.page, `hello from alice ${stamp}`);
  await messageFrom(bob.page, 'alice', `hello from alice ${stamp}`);
  await send(bob.page, `hi alice ${stamp}`);
  await messageFrom(alice.page, 'bob', `hi alice ${stamp}`);
  await messageFrom(alice.page, 'alice', `hello from alice ${stamp}`);
  assert.equal(await alice.page.inputValue('#chat-input'), '', 'the input is cleared after sending');

  // Order is the same on both pages.
  const texts = (page) => page.$$eval('#chat-log li .text', (els) => els.map((e) => e.textContent));
  const a = (await texts(alice.page)).filter((t) => t.endsWith(stamp));
  const b = (await texts(bob.page)).filter((t) => t.endsWith(stamp));
  assert.deepEqual(a, [`hello from alice ${stamp}`, `hi alice ${stamp}`]);
  assert.deepEqual(b, a);

  // A late joiner, on SSE this time, gets the recent messages from history (over /cmd), shows
  // up in presence, and chats with the WebSocket users.
  const carol = await openLanding('carol', '&transport=sse');
  assert.match(await carol.page.textContent('#state'), /connected via sse/);
  await messageFrom(carol.page, 'bob', `hi alice ${stamp}`);
  await alice.page.waitForSelector('#presence li[data-user="carol"]', { timeout: 15000 });
  await carol.page.waitForSelector('#presence li[data-user="alice"]', { timeout: 15000 });
  await send(carol.page, `carol here ${stamp}`);
  await messageFrom(alice.page, 'carol', `carol here ${stamp}`);
  await messageFrom(carol.page, 'carol', `carol here ${stamp}`);

  // Leaving is live too.
  await bob.context.close();
  await alice.page.waitForFunction(() => !document.querySelector('#presence li[data-user="bob"]'), null, { timeout: 15000 });
  assert.deepEqual((await presenceOf(alice.page)).sort(), ['alice', 'carol']);

  assert.deepEqual([...alice.problems, ...bob.problems, ...carol.problems], []);
  await alice.context.close();
  await carol.context.close();
});

test('landing page screenshot after ticker updates', async () => {
  const other = await openLanding('grace');
  const { context, page, problems } = await openLanding('ada');
  await send(other.page, 'Has anyone tried the SSE fallback?');
  await send(page, 'Yes: add ?transport=sse to the URL and drop the connection in the playground.');
  await messageFrom(page, 'grace', 'Has anyone tried the SSE fallback?');

  // Ticker: several symbols with prices, and a steady stream of updates.
  await page.waitForFunction(() => document.querySelectorAll('#ticker tbody tr').length >= 3, null, { timeout: 15000 });
  await page.waitForFunction(() => Number(document.getElementById('ticker-count').textContent.replace(/,/g, '')) >= 40, null, {
    timeout: 30000,
  });
  const rows = await page.$$eval('#ticker tbody tr', (trs) =>
    trs.map((tr) => ({ symbol: tr.dataset.symbol, price: tr.querySelector('.price').textContent })),
  );
  assert.ok(rows.some((r) => r.symbol === 'SWB'), JSON.stringify(rows));
  for (const r of rows) assert.match(r.price, /^\d+\.\d\d$/);

  // Playground: publish JSON to the default subscription and see it in the log.
  await page.fill('#pg-data', '{"hello": "screenshot"}');
  await page.click('#pg-publish');
  await page.waitForFunction(
    () => [...document.querySelectorAll('#pg-log li[data-kind="pub"]')].some((li) => li.textContent.includes('"screenshot"')),
    null,
    { timeout: 15000 },
  );

  await page.screenshot({ path: join(RESULTS, 'landing.png') });
  assert.deepEqual([...problems, ...other.problems], []);
  await context.close();
  await other.context.close();
});
