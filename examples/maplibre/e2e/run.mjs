// Headless Chromium check of the tilegate demo pages: the MapLibre page at `/`
// and the Leaflet page at `/leaflet/` (examples/leaflet), the same checks on each.
//
//   TILEGATE_DEMO_URL=http://127.0.0.1:8000 node run.mjs
//
// Environment:
//   TILEGATE_DEMO_URL        base URL of the demo pages (required): the app, not the gateway;
//                            `tilegate demo` serves it at http://127.0.0.1:8000
//   TILEGATE_E2E_SCREENSHOT  where to save a PNG of the MapLibre map (default: $TMPDIR/tilegate-e2e.png);
//                            the Leaflet map's goes beside it with `-leaflet` before the extension
//   TILEGATE_E2E_PAGES       which pages to drive, comma-separated (default: maplibre,leaflet)
//   TILEGATE_E2E_TTL         token lifetime in seconds for a refresh run (default 0: skip it);
//                            the page is loaded with ?ttl=N and panned after the first token expired
//   TILEGATE_E2E_TIMEOUT_MS  per-wait timeout (default 30000)
//   CHROMIUM_PATH            browser binary (default /usr/bin/chromium)
//   TILEGATE_E2E_CHROMIUM_ARGS  extra browser flags, space-separated (e.g. "--enable-unsafe-swiftshader"
//                            if WebGL is unavailable without a GPU)
//
// Checks: tiles load with no tile error, every request to /tiles/ carries
// `Authorization: Bearer …` and no token in the query, a pan loads more tiles, and
// `?noclient=1` sees 401 answers on tiles sent without a token. On each
// page, `?region=1` (a token limited to a region and zoom range): the token's
// `tiles` claim is the one asked for, tiles inside it load (200), tiles outside
// it (by area and by zoom) are 204, with no tile error, no console error and no
// second token. Exit status 0 when every check passed, 1 otherwise; a summary is
// printed as JSON.

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
const leafletScreenshotPath = screenshotPath.replace(/(\.[^./]*)?$/, (ext) => `-leaflet${ext || '.png'}`);
const pagesToRun = (process.env.TILEGATE_E2E_PAGES || 'maplibre,leaflet').split(',').map((p) => p.trim());

/**
 * The two pages: where they are and how to move their map. Both keep the same
 * counters in window.__tilegate and the map in window.__tilegateMap.
 */
const kinds = {
  maplibre: { path: '/' },
  leaflet: { path: '/leaflet/' },
};

const failures = [];
const summary = { base, screenshots: [], runs: {} };

function check(ok, message) {
  if (ok) {
    console.log(`  ok   ${message}`);
  } else {
    console.log(`  FAIL ${message}`);
    failures.push(message);
  }
}

const pageUrl = (kind, query) => new URL(`${kinds[kind].path}${query}`, base).toString();
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

/** Wait until the map has nothing left to load (MapLibre: or render). */
async function waitIdle(page, kind) {
  if (kind === 'leaflet') await page.waitForTimeout(50); // let Leaflet start the tiles of a move
  return page.evaluate(
    ([ms, kind]) =>
      new Promise((resolve, reject) => {
        const map = window.__tilegateMap;
        const timer = setTimeout(() => reject(new Error('map did not become idle')), ms);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        if (kind === 'leaflet') {
          const layer = window.__tilegateLayer;
          if (!layer.isLoading()) done();
          else layer.once('load', done);
        } else if (map.loaded() && map.areTilesLoaded()) done();
        else map.once('idle', done);
      }),
    [timeout, kind],
  );
}

async function panAround(page, kind, moves) {
  for (const [dx, dy] of moves) {
    await page.evaluate(
      ([x, y, kind]) => window.__tilegateMap.panBy([x, y], kind === 'leaflet' ? { animate: false } : { duration: 0 }),
      [dx, dy, kind],
    );
    await waitIdle(page, kind);
  }
}

async function zoomIn(page, kind) {
  await page.evaluate(
    (kind) => (kind === 'leaflet' ? window.__tilegateMap.zoomIn(1, { animate: false }) : window.__tilegateMap.zoomIn({ duration: 0 })),
    kind,
  );
  await waitIdle(page, kind);
}

async function clientRun(browser, kind, name, query, refreshTtl = 0, screenshot = null) {
  console.log(`${name}: ${pageUrl(kind, query)}`);
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on('pageerror', (err) => failures.push(`${name}: page error: ${err.message}`));
  const tiles = watchTiles(page);
  await page.goto(pageUrl(kind, query), { waitUntil: 'load', timeout });
  await page
    .waitForFunction(() => window.__tilegate?.ready && window.__tilegate.tilesLoaded > 0, null, { timeout })
    .catch(async (e) => {
      const state = await page.evaluate(() => window.__tilegate ?? null).catch(() => null);
      throw new Error(
        `${name}: no tile loaded within ${timeout} ms on ${pageUrl(kind, query)} ` +
          (state
            ? `(page state: ${JSON.stringify(state)})`
            : '(the page has no tilegate state: is TILEGATE_DEMO_URL the demo page, port 8000, rather than the gateway?)') +
          `: ${e.message.split('\n')[0]}`,
      );
    });
  await waitIdle(page, kind);
  const firstLoad = (await counters(page)).tilesLoaded;
  if (screenshot) {
    // The first view: the page as a visitor sees it.
    await page.screenshot({ path: screenshot });
    summary.screenshots.push(screenshot);
    console.log(`screenshot: ${screenshot}`);
  }

  await panAround(page, kind, [[400, 0], [0, 300], [-600, -150], [250, 250]]);
  await zoomIn(page, kind);

  if (refreshTtl > 0) {
    // Outlive the first token, then make MapLibre ask for new tiles.
    await page.waitForTimeout(refreshTtl * 1500);
    await panAround(page, kind, [[500, 0], [0, -400]]);
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

/** The grant ?region=1 asks for (REGION in examples/maplibre/app.js and examples/leaflet/app.js). */
const REGION = { minzoom: 2, maxzoom: 6, bounds: [[5.5, 45.5, 11, 48]] };

/** z/x/y of a /tiles/{z}/{x}/{y}.pbf URL. */
function tileOf(url) {
  const m = new URL(url).pathname.match(/^\/tiles\/(\d+)\/(\d+)\/(\d+)\.pbf$/);
  return m ? { z: Number(m[1]), x: Number(m[2]), y: Number(m[3]) } : null;
}

/** Whether the grant covers tile z/x/y: zoom in range and a box overlapping the tile with positive area. */
function inGrant(grant, { z, x, y }) {
  if (z < grant.minzoom || z > grant.maxzoom) return false;
  const n = 2 ** z;
  const lon = (i) => (i / n) * 360 - 180;
  const lat = (j) => (Math.atan(Math.sinh(Math.PI * (1 - (2 * j) / n))) * 180) / Math.PI;
  const [tw, te, tn, ts] = [lon(x), lon(x + 1), lat(y), lat(y + 1)];
  return grant.bounds.some(([w, s, e, nn]) => w < te && e > tw && s < tn && nn > ts);
}

function claimsOf(authorization) {
  try {
    return JSON.parse(Buffer.from(authorization.replace(/^Bearer /, '').split('.')[1], 'base64url').toString());
  } catch {
    return null;
  }
}

async function regionRun(browser, kind, name) {
  console.log(`${name}: ${pageUrl(kind, '?region=1')}`);
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  const consoleErrors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => consoleErrors.push(`page error: ${err.message}`));
  const tiles = watchTiles(page);
  await page.goto(pageUrl(kind, '?region=1'), { waitUntil: 'load', timeout });
  await page.waitForFunction(() => window.__tilegate?.ready && window.__tilegate.tilesLoaded > 0, null, { timeout });
  await waitIdle(page, kind);
  // Around the region at zoom 3, then into it past the grant's maxzoom (6).
  await panAround(page, kind, [[300, 0], [-600, 0], [300, 200], [0, -200]]);
  for (let i = 0; i < 4; i++) await zoomIn(page, kind);
  await page.waitForTimeout(300);
  const c = await counters(page);
  const answered = tiles.filter((t) => typeof t.status === 'number').map((t) => ({ ...t, tile: tileOf(t.url) }));
  const ok = answered.filter((t) => t.status === 200);
  const empty = answered.filter((t) => t.status === 204);
  const zooms = [...new Set(answered.map((t) => t.tile?.z))].sort((a, b) => a - b);
  const tokens = new Set(tiles.map((t) => t.authorization));
  const claims = claimsOf([...tokens][0] ?? '');
  summary.runs[name] = { counters: c, tileRequests: tiles.length, ok: ok.length, noContent: empty.length, zooms, consoleErrors };

  check(c.grant !== null && claims !== null, `${name}: the page asked for a grant and sent a JWT`);
  check(
    JSON.stringify(claims?.tiles) === JSON.stringify(REGION),
    `${name}: the token's tiles claim is the region asked for (${JSON.stringify(claims?.tiles)})`,
  );
  check(ok.length > 0, `${name}: ${ok.length} tiles inside the grant loaded (200)`);
  const wrongOk = ok.filter((t) => !t.tile || !inGrant(REGION, t.tile));
  check(wrongOk.length === 0, `${name}: every 200 tile is inside the grant (${wrongOk.map((t) => t.url).join(' ')})`);
  const outArea = empty.filter((t) => t.tile && t.tile.z <= REGION.maxzoom);
  const outZoom = empty.filter((t) => t.tile && t.tile.z > REGION.maxzoom);
  check(outArea.length > 0, `${name}: ${outArea.length} tiles outside the area got 204`);
  check(outZoom.length > 0, `${name}: ${outZoom.length} tiles above maxzoom ${REGION.maxzoom} got 204 (zooms seen: ${zooms.join(',')})`);
  const wrongEmpty = empty.filter((t) => !t.tile || inGrant(REGION, t.tile));
  check(wrongEmpty.length === 0, `${name}: every 204 tile is outside the grant (${wrongEmpty.map((t) => t.url).join(' ')})`);
  const other = answered.filter((t) => t.status !== 200 && t.status !== 204);
  check(other.length === 0, `${name}: no answer but 200 and 204 (${other.map((t) => t.status).join(', ')})`);
  check(c.tileErrors === 0, `${name}: the map reported no tile error (${c.tileErrors}, ${JSON.stringify(c.tileErrorStatuses)})`);
  check(consoleErrors.length === 0, `${name}: no console error (${consoleErrors.join(' | ')})`);
  check(
    c.tokenFetches === 1 && c.tokenRefreshes === 0 && tokens.size === 1,
    `${name}: out-of-grant tiles triggered no token refresh (${c.tokenFetches} fetched, ${tokens.size} distinct on tiles)`,
  );
  await page.close();
}

async function noClientRun(browser, kind, name) {
  console.log(`${name}: ${pageUrl(kind, '?noclient=1')}`);
  const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
  const tiles = watchTiles(page);
  await page.goto(pageUrl(kind, '?noclient=1'), { waitUntil: 'load', timeout });
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
  for (const kind of pagesToRun) {
    if (!kinds[kind]) throw new Error(`TILEGATE_E2E_PAGES: unknown page ${kind}`);
    // Run names keep the MapLibre page's old ones: client, client-ttlN, noclient.
    const prefix = kind === 'maplibre' ? '' : `${kind}-`;
    const shot = kind === 'maplibre' ? screenshotPath : leafletScreenshotPath;
    await (await clientRun(browser, kind, `${prefix}client`, '', 0, shot)).close();
    if (ttl > 0) await (await clientRun(browser, kind, `${prefix}client-ttl${ttl}`, `?ttl=${ttl}`, ttl)).close();
    await noClientRun(browser, kind, `${prefix}noclient`);
    await regionRun(browser, kind, `${prefix}region`);
  }
} catch (err) {
  failures.push(`aborted: ${err.message}`);
  console.log(`  FAIL aborted: ${err.stack ?? err}`);
} finally {
  await browser.close();
}

summary.failures = failures;
console.log(JSON.stringify(summary, null, 2));
process.exit(failures.length === 0 ? 0 : 1);
