import { test } from 'node:test';
import assert from 'node:assert/strict';

import { appendTokenToUrl, leafletTileUrl, bindLeafletLayer, leafletTileLayer, createTokenProvider } from '../tilegate-client.js';
import { FakeClock } from './helpers.js';

test('appendTokenToUrl: no query string', () => {
  assert.equal(appendTokenToUrl('https://gw/tiles/{z}/{x}/{y}.pbf', 'abc'), 'https://gw/tiles/{z}/{x}/{y}.pbf?access_token=abc');
});

test('appendTokenToUrl: keeps an existing query string and its order', () => {
  assert.equal(
    appendTokenToUrl('https://{s}.gw/tiles/{z}/{x}/{y}.png?style=dark&lang=en', 'abc'),
    'https://{s}.gw/tiles/{z}/{x}/{y}.png?style=dark&lang=en&access_token=abc',
  );
  assert.equal(appendTokenToUrl('/t/{z}/{x}/{y}?', 'abc'), '/t/{z}/{x}/{y}?access_token=abc');
  assert.equal(appendTokenToUrl('/t?a=1&&b=2&', 'abc'), '/t?a=1&b=2&access_token=abc');
});

test('appendTokenToUrl: replaces an earlier token, whatever its encoding', () => {
  assert.equal(appendTokenToUrl('/t?access_token=old&x=1', 'new'), '/t?x=1&access_token=new');
  assert.equal(appendTokenToUrl('/t?access%5Ftoken=old&x=1', 'new'), '/t?x=1&access_token=new');
  assert.equal(appendTokenToUrl('/t?access_tokenX=keep', 'new'), '/t?access_tokenX=keep&access_token=new');
});

test('appendTokenToUrl: percent-encodes the token and the parameter name', () => {
  assert.equal(appendTokenToUrl('/t', 'a+b/c=d&e f?#'), '/t?access_token=a%2Bb%2Fc%3Dd%26e%20f%3F%23');
  assert.equal(appendTokenToUrl('/t', 'x', 'my key'), '/t?my%20key=x');
  const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ0b2tfc2hvcnRfMSJ9.sig-_';
  assert.equal(appendTokenToUrl('/t', jwt), `/t?access_token=${jwt}`, 'a JWT needs no escaping');
});

test('appendTokenToUrl: keeps the fragment after the query', () => {
  assert.equal(appendTokenToUrl('/t?a=1#frag?x', 'k'), '/t?a=1&access_token=k#frag?x');
  assert.equal(appendTokenToUrl('/t#frag', 'k'), '/t?access_token=k#frag');
});

test('appendTokenToUrl: a custom parameter name and no token', () => {
  assert.equal(appendTokenToUrl('/t?token=old', 'new', 'token'), '/t?token=new');
  assert.equal(appendTokenToUrl('/t?token=old&a=1', null, 'token'), '/t?a=1');
  assert.equal(appendTokenToUrl('/t?token=old', undefined, 'token'), '/t');
  assert.throws(() => appendTokenToUrl('/t', 'x', ''), TypeError);
});

async function provider(clock) {
  let n = 0;
  const p = createTokenProvider({
    fetchToken: async () => ({ access_token: `tok ${++n}`, expires_in: 100 }),
    jitter: 0,
    ...clock.options(),
  });
  await p.getToken();
  return p;
}

test('leafletTileUrl uses the current token', async () => {
  const clock = new FakeClock();
  const p = await provider(clock);
  assert.equal(leafletTileUrl(p, '/tiles/{z}/{x}/{y}.png?v=2'), '/tiles/{z}/{x}/{y}.png?v=2&access_token=tok%201');
  assert.equal(leafletTileUrl(p, '/tiles/{z}/{x}/{y}.png', { param: 't' }), '/tiles/{z}/{x}/{y}.png?t=tok%201');
  p.stop();
});

test('bindLeafletLayer sets the URL now and on every refresh, with noRedraw', async () => {
  const clock = new FakeClock();
  const p = await provider(clock);
  const calls = [];
  const layer = { setUrl: (url, noRedraw) => calls.push([url, noRedraw]) };
  const unbind = bindLeafletLayer(p, layer, 'https://gw/tiles/{z}/{x}/{y}.png');
  assert.deepEqual(calls, [['https://gw/tiles/{z}/{x}/{y}.png?access_token=tok%201', true]]);
  await clock.advance(80_000);
  assert.deepEqual(calls[1], ['https://gw/tiles/{z}/{x}/{y}.png?access_token=tok%202', true]);
  unbind();
  await clock.advance(80_000);
  assert.equal(calls.length, 2);
  p.stop();
});

test('leafletTileLayer appends the token current at tile-request time', async () => {
  // A minimal stand-in for Leaflet's L.TileLayer / Class.extend.
  class TileLayer {
    constructor(url, options) {
      this._url = url;
      this.options = options;
    }
    getTileUrl(c) {
      return this._url.replace('{z}', c.z).replace('{x}', c.x).replace('{y}', c.y);
    }
    static extend(props) {
      const Parent = this;
      const Child = class extends Parent {};
      Object.assign(Child.prototype, props);
      return Child;
    }
  }
  const L = { TileLayer };
  const clock = new FakeClock();
  const p = await provider(clock);
  const layer = leafletTileLayer(L, p, 'https://gw/tiles/{z}/{x}/{y}.png?v=1', { param: 'token', maxZoom: 18 });
  assert.ok(layer instanceof TileLayer);
  assert.deepEqual(layer.options, { maxZoom: 18 });
  assert.equal(layer.getTileUrl({ z: 3, x: 4, y: 5 }), 'https://gw/tiles/3/4/5.png?v=1&token=tok%201');
  await clock.advance(80_000);
  assert.equal(layer.getTileUrl({ z: 3, x: 4, y: 5 }), 'https://gw/tiles/3/4/5.png?v=1&token=tok%202');
  assert.throws(() => leafletTileLayer({}, p, '/t'), TypeError);
  p.stop();
});
