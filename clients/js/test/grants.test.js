// Narrowed tile grants: the page asks its backend for one, and tiles outside
// the grant (404, 403 tile_not_granted, 204, empty 200) never cost a token.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import {
  authFetch,
  createTokenProvider,
  fetchFromBackend,
  leafletTileLayer,
  maplibreTransformRequest,
} from '../tilegate-client.js';

const grant = { minzoom: 2, maxzoom: 8, bounds: [[-10, 35.9, 3.4, 43.8]], layers: ['basemap'] };

describe('fetchFromBackend tiles option', () => {
  const recorder = () => {
    const f = async (url, init) => {
      f.calls.push(init);
      return new Response('{"access_token":"t","expires_in":60}', { headers: { 'content-type': 'application/json' } });
    };
    f.calls = [];
    return f;
  };

  test('tiles alone becomes the JSON body {tiles}', async () => {
    const fetch = recorder();
    await fetchFromBackend('/app/token', { fetch, tiles: grant });
    assert.equal(fetch.calls[0].headers.get('content-type'), 'application/json');
    assert.deepEqual(JSON.parse(fetch.calls[0].body), { tiles: grant });
  });

  test('tiles is merged into a plain-object body and wins over its tiles', async () => {
    const fetch = recorder();
    await fetchFromBackend('/app/token', { fetch, body: { ttl: 300, tiles: { maxzoom: 20 } }, tiles: { maxzoom: 5 } });
    assert.deepEqual(JSON.parse(fetch.calls[0].body), { ttl: 300, tiles: { maxzoom: 5 } });
  });

  test('tiles that is not an object, or beside a non-object body, is a TypeError before any request', async () => {
    const fetch = recorder();
    await assert.rejects(fetchFromBackend('/t', { fetch, tiles: [1, 2] }), TypeError);
    await assert.rejects(fetchFromBackend('/t', { fetch, tiles: 'z<8' }), TypeError);
    await assert.rejects(fetchFromBackend('/t', { fetch, body: 'ttl=1', tiles: grant }), TypeError);
    assert.equal(fetch.calls.length, 0);
  });

  test('a 403 tiles_exceeded from the backend is a non-retryable TokenFetchError naming the code', async () => {
    const fetch = async () =>
      new Response('{"error":"tiles_exceeded","error_description":"zoom"}', { status: 403, headers: { 'content-type': 'application/json' } });
    await assert.rejects(fetchFromBackend('/t', { fetch, tiles: { maxzoom: 30 } }), (err) => {
      assert.equal(err.status, 403);
      assert.equal(err.error, 'tiles_exceeded');
      assert.equal(err.retryable, false);
      return true;
    });
  });
});

describe('out-of-grant tiles never refresh the token', () => {
  // A gateway stand-in: /tiles/in/… is inside the grant (200); /tiles/<mode>/… is
  // outside it, answered the way the route's out_of_grant mode answers; a wrong
  // token is 401. The backend's /token counts how many tokens it handed out.
  let server;
  let base;
  let issued = 0;
  const tileRequests = [];
  const outOfGrant = {
    not_found: [404, '{"error":"not_found","error_description":"no route for this request"}'],
    forbidden: [403, '{"error":"tile_not_granted","error_description":"the token\'s tile grant does not cover this area"}'],
    no_content: [204, ''],
    empty: [200, ''],
  };

  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname === '/token') {
        issued += 1;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: 600 }));
        return;
      }
      const token = req.headers.authorization?.replace(/^Bearer /, '') ?? url.searchParams.get('access_token');
      tileRequests.push({ path: url.pathname, token });
      if (token !== `tok-${issued}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_token"}');
        return;
      }
      const mode = url.pathname.split('/')[2];
      const [status, body] = mode === 'in' ? [200, 'tile'] : outOfGrant[mode];
      res.writeHead(status, body ? { 'content-type': 'application/json' } : {}).end(body);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => server.close());

  const newProvider = () =>
    createTokenProvider({ fetchToken: () => fetchFromBackend(`${base}/token`, { tiles: grant }), watchVisibility: false });

  test('authFetch: 404, 403 tile_not_granted, 204 and empty 200 come back as they are, on the same token', async () => {
    const p = newProvider();
    const first = await p.getToken();
    const before = issued;
    for (const [mode, [status]] of Object.entries(outOfGrant)) {
      const res = await authFetch(p, `${base}/tiles/${mode}/9/1/1.pbf`);
      assert.equal(res.status, status, mode);
      await res.arrayBuffer();
    }
    assert.equal(issued, before, 'no token was fetched for out-of-grant tiles');
    assert.equal(p.currentToken(), first, 'the token was not invalidated');
    const inside = await authFetch(p, `${base}/tiles/in/5/15/12.pbf`);
    assert.equal(inside.status, 200);
    assert.equal(issued, before);
    // Only a 401 costs a token: the retry goes out with a new one.
    issued += 1; // the stand-in now accepts only a newer token
    const n = tileRequests.length;
    const retried = await authFetch(p, `${base}/tiles/in/5/15/12.pbf`);
    assert.equal(retried.status, 200);
    assert.equal(tileRequests.length, n + 2);
    assert.notEqual(p.currentToken(), first);
    p.stop();
  });

  test('MapLibre: requests built by transformRequest keep the token across out-of-grant answers', async () => {
    const p = newProvider();
    const first = await p.getToken();
    const before = issued;
    const tr = maplibreTransformRequest(p, { gatewayOrigins: [base] });
    for (const [mode, [status]] of Object.entries(outOfGrant)) {
      // What MapLibre does for a tile: transformRequest, then fetch with its headers.
      const { url, headers } = tr(`${base}/tiles/${mode}/9/1/1.pbf`, 'Tile');
      const res = await fetch(url, { headers });
      assert.equal(res.status, status, mode);
      await res.arrayBuffer();
      assert.equal(tr(`${base}/tiles/in/5/15/12.pbf`, 'Tile').headers.Authorization, `Bearer ${first}`, mode);
    }
    assert.equal(issued, before, 'no token was fetched for out-of-grant tiles');
    p.stop();
  });

  test('Leaflet: tile URLs keep the token across out-of-grant answers', async () => {
    class TileLayer {
      constructor(url, options) {
        this._url = url;
        this.options = options;
      }
      getTileUrl(c) {
        return this._url.replace('{z}', c.z).replace('{x}', c.x).replace('{y}', c.y);
      }
      static extend(props) {
        const Child = class extends this {};
        Object.assign(Child.prototype, props);
        return Child;
      }
    }
    const p = newProvider();
    const first = await p.getToken();
    const before = issued;
    for (const [mode, [status]] of Object.entries(outOfGrant)) {
      const layer = leafletTileLayer({ TileLayer }, p, `${base}/tiles/${mode}/{z}/{x}/{y}.png`);
      const res = await fetch(layer.getTileUrl({ z: 9, x: 1, y: 1 }));
      assert.equal(res.status, status, mode);
      await res.arrayBuffer();
    }
    const layer = leafletTileLayer({ TileLayer }, p, `${base}/tiles/in/{z}/{x}/{y}.png`);
    assert.equal(new URL(layer.getTileUrl({ z: 5, x: 15, y: 12 })).searchParams.get('access_token'), first);
    assert.equal(issued, before, 'no token was fetched for out-of-grant tiles');
    p.stop();
  });
});
