// tilegate MapLibre GL JS demo.
//
// The page asks its own backend (same-origin POST /app/token) for a short-lived
// token, keeps it fresh with clients/js/tilegate-client.js and sends it as
// `Authorization: Bearer …` on every vector tile request to the gateway.
//
// URL switches:
//   ?noclient=1  load the map without the client: tile requests carry no token (401)
//   ?ttl=N       ask /app/token?ttl=N for tokens living N seconds (exercise refreshes)
//   ?region=1    ask for a token limited to a region and zoom range (REGION below):
//                tiles outside it are answered 204 by the gateway and stay empty
//
// For tests, window.__tilegate holds counters (see README.md) and
// window.__tilegateMap the maplibregl.Map.

const params = new URLSearchParams(location.search);
const noClient = params.get('noclient') === '1';
const ttl = /^\d{1,6}$/.test(params.get('ttl') ?? '') ? params.get('ttl') : null;
// The Alps, zoom 2-6: a narrowed tile grant (docs/grants.md). The source below is
// left unbounded on purpose, so MapLibre also asks for tiles outside the grant
// and the page shows how they behave (204: drawn empty, no error, no new token).
// A real page would set the source's minzoom/maxzoom/bounds to the grant too.
const REGION = Object.freeze({ minzoom: 2, maxzoom: 6, bounds: [[5.5, 45.5, 11, 48]] });
const region = params.get('region') === '1' ? REGION : null;

const gatewayMeta = document.querySelector('meta[name="tilegate-gateway"]')?.content.trim();
const gateway = new URL(gatewayMeta || location.origin, location.href).origin;
const tileTemplate = `${gateway}/tiles/{z}/{x}/{y}.pbf`;
const tilePathPrefix = '/tiles/';

const state = {
  mode: noClient ? 'noclient' : 'client',
  ready: false, // map 'load' fired
  tileRequests: 0, // tile requests MapLibre issued to the gateway
  tilesWithoutToken: 0, // of those, sent with no Authorization header
  tilesLoaded: 0,
  tileErrors: 0,
  tileErrorStatuses: {}, // HTTP status -> count
  tokenFetches: 0, // every token received, the first included
  tokenRefreshes: 0, // tokens received after the first
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

// === token client ===

/** transformRequest that only counts gateway tile requests (no token). */
function countingTransform(url, resourceType) {
  if (resourceType === 'Tile' && isGatewayTile(url)) state.tileRequests += 1;
  return undefined;
}

function isGatewayTile(url) {
  try {
    const u = new URL(url, location.href);
    return u.origin === gateway && u.pathname.startsWith(tilePathPrefix);
  } catch {
    return false;
  }
}

async function setUpClient() {
  const { createTokenProvider, fetchFromBackend, maplibreTransformRequest } = await import(
    '../../clients/js/tilegate-client.js'
  );
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

  // MapLibre's transformRequest is synchronous: have a token before the map asks.
  await provider.getToken();

  const addToken = maplibreTransformRequest(provider, {
    gatewayOrigins: [gateway],
    pathPrefixes: [tilePathPrefix],
    // The vendored MapLibre (>= 5.21) awaits an async transformRequest: a tile asked
    // for while no valid token is cached (tab woke up late) waits for the refresh.
    waitForToken: true,
    onMissingToken: () => {
      state.tilesWithoutToken += 1;
    },
  });
  return (url, resourceType) => {
    countingTransform(url, resourceType);
    return addToken(url, resourceType);
  };
}

// === map ===

// Pastel country fills; the tiles give neighbours different `colour`s (0…5).
const palette = ['#efe0b9', '#cfe3b6', '#f3cba5', '#dccbe6', '#f6e7a1', '#c9e0da', '#eab9b6'];

function style() {
  const colour = ['%', ['to-number', ['get', 'colour'], 0], palette.length];
  return {
    version: 8,
    // No glyphs or sprites: the demo runs offline, so there are no text or icon layers.
    sources: {
      demo: {
        type: 'vector',
        tiles: [tileTemplate],
        minzoom: 0,
        maxzoom: 14,
        attribution: 'Natural Earth (public domain) through tilegate',
      },
    },
    layers: [
      { id: 'sea', type: 'background', paint: { 'background-color': '#a9cbe3' } },
      {
        id: 'countries',
        type: 'fill',
        source: 'demo',
        'source-layer': 'countries',
        paint: {
          'fill-color': ['match', colour, ...palette.flatMap((c, i) => [i, c]), palette[0]],
          'fill-antialias': false,
        },
      },
      {
        id: 'coastline',
        type: 'line',
        source: 'demo',
        'source-layer': 'land',
        paint: {
          'line-color': '#5b7f9c',
          'line-width': ['interpolate', ['linear'], ['zoom'], 1, 0.6, 6, 1.4],
        },
      },
      {
        id: 'boundaries',
        type: 'line',
        source: 'demo',
        'source-layer': 'boundaries',
        paint: {
          'line-color': '#8c6f86',
          'line-width': ['interpolate', ['linear'], ['zoom'], 1, 0.5, 6, 1.2],
          'line-dasharray': [3, 2],
        },
      },
    ],
  };
}

async function main() {
  render();
  if (typeof maplibregl === 'undefined') {
    fail('vendor/maplibre-gl.js did not load');
    return;
  }
  let transformRequest = countingTransform;
  if (!noClient) {
    try {
      transformRequest = await setUpClient();
    } catch (err) {
      fail(`token: ${err.message} (no map without a token)`);
      return;
    }
  }

  const map = new maplibregl.Map({
    container: 'map',
    style: style(),
    center: [8.54, 47.37],
    zoom: 3,
    transformRequest,
    attributionControl: { compact: true },
  });
  window.__tilegateMap = map;
  map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');

  map.on('load', () => {
    state.ready = true;
    render();
  });
  map.on('sourcedata', (e) => {
    if (e.sourceId === 'demo' && e.tile && e.dataType === 'source') {
      state.tilesLoaded += 1;
      render();
    }
  });
  map.on('error', (e) => {
    if (e.sourceId === 'demo' && e.tile) {
      state.tileErrors += 1;
      const status = e.error?.status ?? 'network';
      state.tileErrorStatuses[status] = (state.tileErrorStatuses[status] ?? 0) + 1;
      const c = e.tile.tileID?.canonical;
      const where = c ? `${c.z}/${c.x}/${c.y}` : '?';
      state.lastError = `tile ${where}: ${status === 401 ? '401 (no or bad token)' : (e.error?.message ?? status)}`;
    } else {
      state.lastError = e.error?.message ?? String(e.error ?? 'map error');
    }
    render();
  });
}

main();
