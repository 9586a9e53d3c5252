// Headless Chromium check of the tilegate MapLibre demo.
//
//   TILEGATE_DEMO_URL=http://127.0.0.1:8000 node run.mjs
//
// Environment:
//   TILEGATE_DEMO_URL        base URL of the demo page (required): the app, not the gateway;
//                            `tilegate demo` serves it at http://127.0.0.1:8000
//   TILEGATE_E2E_SCREENSHOT  where to save a PNG of the map (default: $TMPDIR/tilegate-e2e.png)
//   TILEGATE_E2E_TTL         token lifetime in seconds for a refresh run (default 0: skip it);
//                            the page is loaded with ?ttl=N and panned after the first token expired
//   TILEGATE_E2E_TIMEOUT_MS  per-wait timeout (default 30000)
//   CHROMIUM_PATH            browser binary (default /usr/bin/chromium)
//   TILEGATE_E2E_CHROMIUM_ARGS  extra browser flags, space-separated (e.g. "--enable-unsafe-swiftshader"
//                            if WebGL is unavailable without a GPU)
//
// Checks: tiles load with no tile error, every request to /tiles/ carries
// `Authorization: Bearer …` and no token in the query, a pan loads more tiles, and
// `?noclient=1` sees 401 answers on tiles sent without a token. Exit status 0 when
// every check passed, 1 otherwise; a summary is printed as JSON.

import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.TILEGATE_DEMO_URL;
if (!base) {
  console.error('TILEGATE_DEMO_URL is not set: the demo page, e.g. http://127.0.0.1:8000 (`tilegate demo`)');
  process.exit(2);
}
const screenshotPath = process.env.TILEGATE_E2E_SCREENSHOT || path.join(os.tmpdir(), 'tilegate-e2e.png');
const ttl = Number(process.env.TILEGATE_E2E_TTL || 0);
const timeout = Number(process.env.TILEGATE_E2E_TIMEOUT_MS || 30000);
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const extraArgs = (process.env.TILEGATE_E2E_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean);

const failures = [];
const summary = { base, screenshot: screenshotPath, runs: {} };

function check(ok, message) {
  if (ok) {
    console.log(`  ok   ${message}`);
  } else {
    console.log(`  FAIL ${message}`);
    failures.push(message);
  }
}

const pageUrl = (query) => new URL(`/${query}`, base).toString();
const isTileUrl = (url) => {
  try {
    return new URL(url).pathname.startsWith('/tiles/');
  } catch {
    return false;
  }
};

/** Record every /tiles/ request the page (and MapLibre's worker) makes, with its answer. */
function watchTiles(page) {
  const seen = [];
  page.on('request', async (request) => {
    if (!isTileUrl(request.url())) return;
    const entry = { url: request.url(), authorization: null, status: null, wwwAuthenticate: null };
    seen.push(entry);
    // allHeaders() includes headers added below the JS layer; headers() is the fallback.
    const headers = await request.allHeaders().catch(() => request.headers());
    entry.authorization = headers.authorization ?? null;
  });
  page.on('response', async (response) => {
    if (!isTileUrl(response.url())) return;
    const entry = [...seen].reverse().find((e) => e.url === response.url() && e.status === null);
    if (!entry) return;
    entry.status = response.status();
    entry.wwwAuthenticate = (await response.allHeaders().catch(() => response.headers()))['www-authenticate'] ?? null;
  });
  page.on('requestfailed', (request) => {
    if (!isTileUrl(request.url())) return;
    const entry = [...seen].reverse().find((e) => e.url === request.url() && e.status === null);
    if (entry) entry.status = `failed: ${request.failure()?.errorText}`;
  });
  return seen;
}

const counters = (page) => page.evaluate(() => JSON.parse(JSON.stringify(window.__tilegate)));

/** Wait until MapLibre has nothing left to load or render. */
function waitIdle(page) {
  return page.evaluate(
    (ms) =>
      new Promise((resolve, reject) => {
        const map = window.__tilegateMap;
        const timer = setTimeout(() => reject(new Error('map did not become idle')), ms);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        if (map.loaded() && map.areTilesLoaded()) done();
        else map.once('idle', done);
      }),
    timeout,
  );
}

async function panAround(page, moves) {
  for (const [dx, dy] of moves) {
    await page.evaluate(([x, y]) => window.__tilegateMap.panBy([x, y], { duration: 0 }), [dx, dy]);
    await waitIdle(page);
  }
}

async function clientRun(browser, name, query, refreshTtl = 0) {
  console.log(`${name}: ${pageUrl(query)}`);
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on('pageerror', (err) => failures.push(`${name}: page error: ${err.message}`));
  const tiles = watchTiles(page);
  await page.goto(pageUrl(query), { waitUntil: 'load', timeout });
  await page
    .waitForFunction(() => window.__tilegate?.ready && window.__tilegate.tilesLoaded > 0, null, { timeout })
    .catch(async (e) => {
      const state = await page.evaluate(() => window.__tilegate ?? null).catch(() => null);
      throw new Error(
        `${name}: no tile loaded within ${timeout} ms on ${pageUrl(query)} ` +
          (state
            ? `(page state: ${JSON.stringify(state)})`
            : '(the page has no tilegate state: is TILEGATE_DEMO_URL the demo page, port 8000, rather than the gateway?)') +
          `: ${e.message.split('\n')[0]}`,
      );
    });
  await waitIdle(page);
  const firstLoad = (await counters(page)).tilesLoaded;

  await panAround(page, [[400, 0], [0, 300], [-600, -150], [250, 250]]);
  await page.evaluate(() => window.__tilegateMap.zoomIn({ duration: 0 }));
  await waitIdle(page);

  if (refreshTtl > 0) {
    // Outlive the first token, then make MapLibre ask for new tiles.
    await page.waitForTimeout(refreshTtl * 1500);
    await panAround(page, [[500, 0], [0, -400]]);
  }

  const c = await counters(page);
  const tokens = new Set(tiles.map((t) => t.authorization));
  summary.runs[name] = { counters: c, tileRequests: tiles.length, distinctTokens: tokens.size };

  check(firstLoad > 0, `${name}: first view loaded ${firstLoad} tiles`);
  check(c.tilesLoaded > firstLoad, `${name}: panning loaded more tiles (${c.tilesLoaded})`);
  check(c.tileErrors === 0, `${name}: no tile errors (${c.tileErrors}, ${JSON.stringify(c.tileErrorStatuses)})`);
  check(c.tilesWithoutToken === 0, `${name}: no tile request left without a token (${c.tilesWithoutToken})`);
  check(tiles.length > 0, `${name}: the browser issued ${tiles.length} /tiles/ requests`);
  const noAuth = tiles.filter((t) => !/^Bearer \S+$/.test(t.authorization ?? ''));
  check(noAuth.length === 0, `${name}: every /tiles/ request carried Authorization: Bearer (${noAuth.length} without)`);
  const inQuery = tiles.filter((t) => /[?&]access_token=/.test(t.url));
  check(inQuery.length === 0, `${name}: no token in a tile query string (${inQuery.length})`);
  const bad = tiles.filter((t) => t.status !== null && t.status !== 200 && t.status !== 204);
  check(bad.length === 0, `${name}: every answered tile request was 200/204 (${bad.map((t) => t.status).join(', ')})`);
  if (refreshTtl > 0) {
    check(c.tokenRefreshes >= 1, `${name}: the token was refreshed (${c.tokenRefreshes} times)`);
    check(tokens.size >= 2, `${name}: tiles went out with ${tokens.size} distinct tokens`);
  }
  return page;
}

async function noClientRun(browser) {
  const name = 'noclient';
  console.log(`${name}: ${pageUrl('?noclient=1')}`);
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const tiles = watchTiles(page);
  await page.goto(pageUrl('?noclient=1'), { waitUntil: 'load', timeout });
  await page.waitForFunction(() => window.__tilegate?.tileErrors > 0, null, { timeout });
  await page.waitForTimeout(500);
  const c = await counters(page);
  summary.runs[name] = { counters: c, tileRequests: tiles.length };
  check(c.mode === 'noclient', `${name}: page runs without the client`);
  check(c.tokenFetches === 0, `${name}: no token was fetched (${c.tokenFetches})`);
  check((c.tileErrorStatuses['401'] ?? 0) > 0, `${name}: MapLibre saw 401 tile errors (${JSON.stringify(c.tileErrorStatuses)})`);
  check(c.tilesLoaded === 0, `${name}: no tile loaded (${c.tilesLoaded})`);
  const withAuth = tiles.filter((t) => t.authorization);
  check(withAuth.length === 0, `${name}: no /tiles/ request carried Authorization (${withAuth.length})`);
  const answered = tiles.filter((t) => typeof t.status === 'number');
  check(answered.length > 0 && answered.every((t) => t.status === 401), `${name}: the gateway answered 401 (${[...new Set(answered.map((t) => t.status))].join(', ')})`);
  check(
    answered.some((t) => /^Bearer\b/i.test(t.wwwAuthenticate ?? '')),
    `${name}: 401 answers carry WWW-Authenticate: Bearer`,
  );
  await page.close();
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    ...extraArgs,
  ],
});
try {
  const page = await clientRun(browser, 'client', '');
  await page.screenshot({ path: screenshotPath });
  console.log(`screenshot: ${screenshotPath}`);
  await page.close();
  if (ttl > 0) await (await clientRun(browser, `client-ttl${ttl}`, `?ttl=${ttl}`, ttl)).close();
  await noClientRun(browser);
} catch (err) {
  failures.push(`aborted: ${err.message}`);
  console.log(`  FAIL aborted: ${err.stack ?? err}`);
} finally {
  await browser.close();
}

summary.failures = failures;
console.log(JSON.stringify(summary, null, 2));
process.exit(failures.length === 0 ? 0 : 1);
