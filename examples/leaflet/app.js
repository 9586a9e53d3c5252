// tilegate Leaflet demo: Leaflet 1.9 with Leaflet.VectorGrid drawing the
// gateway's vector tiles on canvas.
//
// The page asks its own backend (same-origin POST /app/token) for a short-lived
// token and keeps it fresh with clients/js/tilegate-client.js. VectorGrid
// fetches each tile with fetch(), so the token goes in an
// `Authorization: Bearer …` header (not in the URL, as Leaflet's image tiles
// would need): TokenVectorGrid below sets it for every tile request from the
// token current at that moment, waiting for a refresh when none is valid.
//
// URL switches (as the MapLibre page):
//   ?noclient=1  load the map without the client: tile requests carry no token (401)
//   ?ttl=N       ask /app/token?ttl=N for tokens living N seconds (exercise refreshes)
//   ?region=1    ask for a token limited to a region and zoom range (REGION below):
//                tiles outside it are answered 204 by the gateway and stay empty
//
// For tests, window.__tilegate holds the same counters as the MapLibre page
// (see README.md), window.__tilegateMap the L.Map and window.__tilegateLayer
// the tile layer.

const params = new URLSearchParams(location.search);
const noClient = params.get('noclient') === '1';
const ttl = /^\d{1,6}$/.test(params.get('ttl') ?? '') ? params.get('ttl') : null;
// The Alps, zoom 2-6: a narrowed tile grant (docs/grants.md), the MapLibre
// page's. The layer below is left unbounded on purpose, so Leaflet also asks
// for tiles outside the grant and the page shows how they behave (204: drawn
// empty, no error, no new token). A real page would set the layer's
// minZoom/maxNativeZoom/bounds to the grant too.
const REGION = Object.freeze({ minzoom: 2, maxzoom: 6, bounds: [[5.5, 45.5, 11, 48]] });
const region = params.get('region') === '1' ? REGION : null;

const gatewayMeta = document.querySelector('meta[name="tilegate-gateway"]')?.content.trim();
const gateway = new URL(gatewayMeta || location.origin, location.href).origin;
const tileTemplate = `${gateway}/tiles/{z}/{x}/{y}.pbf`;
const tilePathPrefix = '/tiles/';

const state = {
  mode: noClient ? 'noclient' : 'client',
  ready: false, // the first tiles of the first view are in
  tileRequests: 0, // tile requests sent to the gateway
  tilesWithoutToken: 0, // of those, sent with no Authorization header (client mode; should stay 0)
  tilesLoaded: 0, // tiles drawn from a 200/204 answer
  tileErrors: 0, // tile answers other than 200/204, and network failures
  tileErrorStatuses: {}, // HTTP status or 'network' -> count
  tokenFetches: 0,
  tokenRefreshes: 0,
  tokenExpiresAt: null, // epoch ms
  grant: region, // the tile grant asked for (?region=1), else null
  lastError: null,
};
window.__tilegate = state;

// === status panel ===

const $ = (id) => document.getElementById(id);

function render() {
  $('s-mode').textContent = noClient
    ? 'no client (expect 401s)'
    : `client${ttl ? `, ttl=${ttl}s` : ''}${region ? `, region z${region.minzoom}-${region.maxzoom} ${region.bounds[0].join(',')}` : ''}`;
  $('s-token').textContent =
    state.tokenExpiresAt === null
      ? noClient
        ? 'none'
        : 'fetching…'
      : `expires in ${Math.max(0, Math.round((state.tokenExpiresAt - Date.now()) / 1000))} s`;
  $('s-tiles').textContent = `${state.tilesLoaded} loaded, ${state.tileRequests} requested, ${state.tileErrors} errors`;
  $('s-refreshes').textContent = String(state.tokenRefreshes);
  const err = $('s-error');
  err.hidden = state.lastError === null;
  err.textContent = state.lastError ?? '';
}
setInterval(render, 1000);

function fail(message) {
  state.lastError = message;
  render();
  console.error(`[tilegate demo] ${message}`);
}

function isGatewayTile(url) {
  try {
    const u = new URL(url, location.href);
    return u.origin === gateway && u.pathname.startsWith(tilePathPrefix);
  } catch {
    return false;
  }
}

// === counting tile answers ===
// VectorGrid draws a tile whose answer is not 2xx as empty and reports
// nothing, so the page watches the gateway's tile answers itself: a wrapper
// around fetch() that only counts (it changes no request).

const tileStatus = new Map(); // "z/x/y" -> last HTTP status or 'network'
const realFetch = window.fetch.bind(window);
window.fetch = async (input, init) => {
  const url = typeof input === 'string' ? input : input.url;
  if (!isGatewayTile(url)) return realFetch(input, init);
  state.tileRequests += 1;
  if (!noClient && !new Headers(init?.headers).has('authorization')) state.tilesWithoutToken += 1;
  const key = new URL(url).pathname.slice(tilePathPrefix.length).replace(/\.pbf$/, '');
  let status;
  try {
    const res = await realFetch(input, init);
    status = res.status;
    return res;
  } catch (err) {
    status = 'network';
    throw err;
  } finally {
    tileStatus.set(key, status);
    if (status !== 200 && status !== 204) {
      state.tileErrors += 1;
      state.tileErrorStatuses[status] = (state.tileErrorStatuses[status] ?? 0) + 1;
      state.lastError = `tile ${key}: ${status === 401 ? '401 (no or bad token)' : status}`;
    }
    render();
  }
};

// === token client ===

async function tokenProvider() {
  const { createTokenProvider, fetchFromBackend } = await import('../../clients/js/tilegate-client.js');
  const tokenUrl = ttl ? `/app/token?ttl=${ttl}` : '/app/token';
  const provider = createTokenProvider({
    fetchToken: () => fetchFromBackend(tokenUrl, region ? { tiles: region } : {}),
    // A demo page should recover on its own once the backend is back.
    retry: { maxAttempts: Infinity, maxDelayMs: 10_000 },
    onError: (err, { willRetry }) => fail(`token: ${err.message}${willRetry ? ' (retrying)' : ''}`),
  });
  provider.onToken((info) => {
    state.tokenFetches += 1;
    if (state.tokenFetches > 1) state.tokenRefreshes += 1;
    state.tokenExpiresAt = info.expiresAt;
    if (state.lastError?.startsWith('token:')) state.lastError = null;
    render();
  });
  await provider.getToken();
  return provider;
}

/** A VectorGrid.Protobuf whose every tile request carries the current token. */
function tokenVectorGrid(provider) {
  const Protobuf = L.VectorGrid.Protobuf;
  const TokenVectorGrid = Protobuf.extend({
    _getVectorTilePromise(coords, tileBounds) {
      const send = (token) => {
        // Read by the parent's fetch() call, synchronously, right below.
        this.options.fetchOptions = { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' };
        return Protobuf.prototype._getVectorTilePromise.call(this, coords, tileBounds);
      };
      const token = provider.currentToken();
      return token ? send(token) : provider.getToken().then(send);
    },
  });
  return (url, options) => new TokenVectorGrid(url, options);
}

// === map ===

// Pastel country fills; the tiles give neighbours different `colour`s.
const palette = ['#efe0b9', '#cfe3b6', '#f3cba5', '#dccbe6', '#f6e7a1', '#c9e0da', '#eab9b6'];

const layerStyles = {
  countries: (p) => ({
    fill: true,
    fillColor: palette[Number(p.colour) % palette.length],
    fillOpacity: 1,
    stroke: false,
  }),
  land: { fill: false, stroke: true, color: '#5b7f9c', weight: 0.8 },
  boundaries: { stroke: true, color: '#8c6f86', weight: 0.8, dashArray: '3, 2' },
};

async function main() {
  render();
  if (typeof L === 'undefined' || !L.VectorGrid) {
    fail('vendor/leaflet.js or vendor/Leaflet.VectorGrid.bundled.min.js did not load');
    return;
  }
  let makeLayer = (url, options) => L.vectorGrid.protobuf(url, options);
  if (!noClient) {
    try {
      makeLayer = tokenVectorGrid(await tokenProvider());
    } catch (err) {
      fail(`token: ${err.message} (no map without a token)`);
      return;
    }
  }

  const map = L.map('map', { center: [47.37, 8.54], zoom: 4, minZoom: 1, maxZoom: 14 });
  window.__tilegateMap = map;
  const layer = makeLayer(tileTemplate, {
    rendererFactory: L.canvas.tile,
    vectorTileLayerStyles: layerStyles,
    maxNativeZoom: 14,
    interactive: false,
    attribution: 'Natural Earth (public domain) through tilegate',
  });
  window.__tilegateLayer = layer;
  layer.on('tileload', (e) => {
    const s = tileStatus.get(`${e.coords.z}/${e.coords.x}/${e.coords.y}`);
    if (s === 200 || s === 204) state.tilesLoaded += 1;
    render();
  });
  layer.once('load', () => {
    state.ready = true;
    render();
  });
  layer.addTo(map);
}

main();
