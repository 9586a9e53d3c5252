import { test } from 'node:test';
import assert from 'node:assert/strict';

import { createTokenProvider, maplibreTransformRequest } from '../tilegate-client.js';
import { FakeClock, flush } from './helpers.js';

async function readyProvider(token = 'jwt-1') {
  const clock = new FakeClock();
  let calls = 0;
  const p = createTokenProvider({
    fetchToken: async () => {
      calls += 1;
      return { access_token: calls === 1 ? token : `${token}-${calls}`, expires_in: 600 };
    },
    ...clock.options(),
  });
  await p.getToken();
  return { p, clock, calls: () => calls };
}

test('adds the bearer header to gateway URLs only', async () => {
  const { p } = await readyProvider();
  const tr = maplibreTransformRequest(p, { gatewayOrigins: ['https://gw.example.com'] });
  assert.deepEqual(tr('https://gw.example.com/tiles/1/0/0.pbf', 'Tile'), {
    url: 'https://gw.example.com/tiles/1/0/0.pbf',
    headers: { Authorization: 'Bearer jwt-1' },
  });
  for (const url of [
    'https://other.example.com/tiles/1/0/0.pbf',
    'http://gw.example.com/tiles/1/0/0.pbf', // scheme differs
    'https://gw.example.com:8443/tiles/1/0/0.pbf', // port differs
    'https://gw.example.com.evil.test/tiles/1/0/0.pbf', // look-alike host
    'https://gw.example.com@evil.test/tiles/1/0/0.pbf', // userinfo trick
    'https://evil.test/?u=https://gw.example.com/tiles',
    'data:application/json,{}',
    'blob:https://gw.example.com/1234',
    'not a url',
  ]) {
    assert.equal(tr(url, 'Tile'), undefined, url);
  }
  p.stop();
});

test('origins are normalised: trailing slash, paths, default ports, case', async () => {
  const { p } = await readyProvider();
  const tr = maplibreTransformRequest(p, { gatewayOrigins: ['HTTPS://GW.example.com:443/some/path/', new URL('http://127.0.0.1:8080')] });
  assert.ok(tr('https://gw.example.com/tiles/0/0/0.pbf')?.headers);
  assert.ok(tr('http://127.0.0.1:8080/tiles/0/0/0.pbf')?.headers);
  assert.equal(tr('http://127.0.0.1:8081/tiles/0/0/0.pbf'), undefined);
  p.stop();
});

test('relative gateway origins and URLs resolve against baseUrl', async () => {
  const { p } = await readyProvider();
  const tr = maplibreTransformRequest(p, { gatewayOrigins: ['/'], baseUrl: 'http://localhost:3000/index.html' });
  assert.equal(tr('/tiles/2/1/1.pbf', 'Tile').headers.Authorization, 'Bearer jwt-1');
  assert.equal(tr('http://localhost:3000/tiles/2/1/1.pbf', 'Tile').url, 'http://localhost:3000/tiles/2/1/1.pbf');
  assert.equal(tr('http://localhost:3001/tiles/2/1/1.pbf', 'Tile'), undefined);
  p.stop();
});

test('pathPrefixes and resourceTypes narrow what gets the token', async () => {
  const { p } = await readyProvider();
  const tr = maplibreTransformRequest(p, {
    gatewayOrigins: ['https://gw.example.com'],
    pathPrefixes: ['/tiles/'],
    resourceTypes: ['Tile', 'Source'],
  });
  assert.ok(tr('https://gw.example.com/tiles/1/1/1.pbf', 'Tile'));
  assert.equal(tr('https://gw.example.com/tiles/1/1/1.pbf', 'Glyphs'), undefined);
  assert.equal(tr('https://gw.example.com/style.json', 'Style'), undefined);
  assert.equal(tr('https://gw.example.com/tilesX/1/1/1.pbf', 'Tile'), undefined);
  p.stop();
});

test('an earlier transform runs first and is extended, not replaced', async () => {
  const { p } = await readyProvider();
  const tr = maplibreTransformRequest(p, {
    gatewayOrigins: ['https://gw.example.com'],
    transform: (url) => ({ url: url.replace('cdn.example.com', 'gw.example.com'), headers: { 'X-App': '1' }, credentials: 'include' }),
  });
  assert.deepEqual(tr('https://cdn.example.com/tiles/1/1/1.pbf', 'Tile'), {
    url: 'https://gw.example.com/tiles/1/1/1.pbf',
    headers: { 'X-App': '1', Authorization: 'Bearer jwt-1' },
    credentials: 'include',
  });
  const passthrough = tr('https://other.example.com/x', 'Tile');
  assert.equal(passthrough.url, 'https://other.example.com/x');
  assert.equal(passthrough.headers.Authorization, undefined);
  p.stop();
});

test('without a valid token: no header, a refresh starts, onMissingToken is told', async () => {
  const { p, clock, calls } = await readyProvider();
  const missing = [];
  const tr = maplibreTransformRequest(p, {
    gatewayOrigins: ['https://gw.example.com'],
    onMissingToken: (url, type) => missing.push([url, type]),
  });
  p.invalidate();
  assert.equal(tr('https://gw.example.com/tiles/1/1/1.pbf', 'Tile'), undefined);
  assert.deepEqual(missing, [['https://gw.example.com/tiles/1/1/1.pbf', 'Tile']]);
  await flush();
  assert.equal(calls(), 2);
  assert.equal(tr('https://gw.example.com/tiles/1/1/1.pbf', 'Tile').headers.Authorization, 'Bearer jwt-1-2');
  await clock.advance(0);
  p.stop();
});

test('reads the token afresh on every call (follows background refreshes)', async () => {
  const { p, clock } = await readyProvider();
  const tr = maplibreTransformRequest(p, { gatewayOrigins: ['https://gw.example.com'] });
  assert.equal(tr('https://gw.example.com/t', 'Tile').headers.Authorization, 'Bearer jwt-1');
  await clock.advance(600_000);
  assert.equal(tr('https://gw.example.com/t', 'Tile').headers.Authorization, 'Bearer jwt-1-2');
  p.stop();
});

test('misuse is reported early', async () => {
  const { p } = await readyProvider();
  assert.throws(() => maplibreTransformRequest(p, {}), TypeError);
  assert.throws(() => maplibreTransformRequest(p, { gatewayOrigins: [] }), TypeError);
  assert.throws(() => maplibreTransformRequest(p, { gatewayOrigins: ['no-base-relative'] }), TypeError);
  assert.throws(() => maplibreTransformRequest({}, { gatewayOrigins: ['https://gw.example.com'] }), TypeError);
  p.stop();
});

test('waitForToken: a request without a valid token waits for the refresh (MapLibre >= 5.21)', async () => {
  const { p, calls } = await readyProvider();
  const missing = [];
  const tr = maplibreTransformRequest(p, {
    gatewayOrigins: ['https://gw.example.com'],
    waitForToken: true,
    onMissingToken: (url) => missing.push(url),
  });
  assert.equal(tr('https://gw.example.com/t', 'Tile').headers.Authorization, 'Bearer jwt-1', 'sync while valid');
  p.invalidate();
  const pending = tr('https://gw.example.com/t', 'Tile');
  assert.ok(pending instanceof Promise);
  assert.deepEqual(await pending, { url: 'https://gw.example.com/t', headers: { Authorization: 'Bearer jwt-1-2' } });
  assert.equal(calls(), 2);
  assert.deepEqual(missing, []);
  assert.equal(tr('https://other.example.com/t', 'Tile'), undefined, 'other hosts stay synchronous and untouched');
  p.stop();
});

test('waitForToken: a failed refresh resolves without a header instead of rejecting', async () => {
  const clock = new FakeClock();
  const p = createTokenProvider({
    fetchToken: async () => {
      throw Object.assign(new Error('denied'), { retryable: false });
    },
    ...clock.options(),
  });
  const missing = [];
  const tr = maplibreTransformRequest(p, {
    gatewayOrigins: ['https://gw.example.com'],
    waitForToken: true,
    onMissingToken: (url) => missing.push(url),
  });
  assert.deepEqual(await tr('https://gw.example.com/t', 'Tile'), { url: 'https://gw.example.com/t' });
  assert.deepEqual(missing, ['https://gw.example.com/t']);
  p.stop();
});
