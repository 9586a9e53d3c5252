import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { fetchFromBackend, createTokenProvider, authFetch, TokenFetchError } from '../tilegate-client.js';

/** A fake fetch recording its calls and answering from `respond(url, init)`. */
function fakeFetch(respond) {
  const f = async (url, init) => {
    f.calls.push({ url: String(url), init });
    return respond(url, init, f.calls.length);
  };
  f.calls = [];
  return f;
}

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });

describe('fetchFromBackend', () => {
  test('POSTs to the app backend with safe defaults and returns the parsed JSON', async () => {
    const fetch = fakeFetch(() => json(200, { access_token: 't', token_type: 'Bearer', expires_in: 60 }));
    const body = await fetchFromBackend('/app/token', { fetch });
    assert.deepEqual(body, { access_token: 't', token_type: 'Bearer', expires_in: 60 });
    const { url, init } = fetch.calls[0];
    assert.equal(url, '/app/token');
    assert.equal(init.method, 'POST');
    assert.equal(init.credentials, 'same-origin');
    assert.equal(init.cache, 'no-store');
    assert.equal(init.headers.get('accept'), 'application/json');
    assert.equal(init.body, undefined);
  });

  test('a plain-object body is sent as JSON; caller headers and method win', async () => {
    const fetch = fakeFetch(() => json(200, { accessToken: 't', expiresAt: 2_000_000_000 }));
    await fetchFromBackend('/t', { fetch, method: 'PUT', headers: { 'X-CSRF': 'abc' }, body: { ttl: 600 } });
    const { init } = fetch.calls[0];
    assert.equal(init.method, 'PUT');
    assert.equal(init.headers.get('x-csrf'), 'abc');
    assert.equal(init.headers.get('content-type'), 'application/json');
    assert.equal(init.body, '{"ttl":600}');
  });

  test('4xx is not retryable and carries the OAuth error fields', async () => {
    const fetch = fakeFetch(() => json(401, { error: 'unauthorized', error_description: 'log in again' }));
    await assert.rejects(fetchFromBackend('/t', { fetch }), (err) => {
      assert.ok(err instanceof TokenFetchError);
      assert.equal(err.status, 401);
      assert.equal(err.retryable, false);
      assert.equal(err.error, 'unauthorized');
      assert.equal(err.errorDescription, 'log in again');
      return true;
    });
  });

  test('5xx, 408 and 429 are retryable; Retry-After is read', async () => {
    for (const status of [500, 503, 408, 429]) {
      const fetch = fakeFetch(() => json(status, {}, { 'retry-after': '7' }));
      await assert.rejects(fetchFromBackend('/t', { fetch }), (err) => err.retryable && err.status === status && err.retryAfterMs === 7000);
    }
  });

  test('network errors and non-JSON bodies are retryable', async () => {
    const down = fakeFetch(() => {
      throw new TypeError('fetch failed');
    });
    await assert.rejects(fetchFromBackend('/t', { fetch: down }), (err) => err.retryable && /fetch failed/.test(err.message));
    const html = fakeFetch(() => new Response('<html>captive portal</html>', { status: 200 }));
    await assert.rejects(fetchFromBackend('/t', { fetch: html }), (err) => err.retryable && /not JSON/.test(err.message));
  });
});

describe('against a real HTTP server', () => {
  let server;
  let base;
  let issued = 0;
  let failNext = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://x');
      if (req.method === 'POST' && url.pathname === '/app/token') {
        if (failNext > 0) {
          failNext -= 1;
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
          return;
        }
        issued += 1;
        const ttl = Number(url.searchParams.get('ttl') ?? 3600);
        res.writeHead(200, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            access_token: `srv-${issued}`,
            token_type: 'Bearer',
            expires_in: ttl,
            expires_at: new Date(Date.now() + ttl * 1000).toISOString(),
            scope: 'tiles:read',
          }),
        );
        return;
      }
      if (url.pathname === '/api/data') {
        const ok = req.headers.authorization === `Bearer srv-${issued}`;
        res.writeHead(ok ? 200 : 401).end(ok ? 'data' : '');
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => server.close());

  test('provider + fetchFromBackend + retry on a 503', async () => {
    failNext = 1;
    const p = createTokenProvider({
      fetchToken: () => fetchFromBackend(`${base}/app/token?ttl=120`),
      retry: { initialDelayMs: 20 },
      watchVisibility: false,
    });
    const [a, b] = await Promise.all([p.getToken(), p.getToken()]);
    assert.equal(a, b);
    assert.match(a, /^srv-\d+$/);
    assert.ok(p.currentTokenInfo().expiresAt - Date.now() > 110_000);
    p.stop();
  });

  test('authFetch sends the bearer token and retries once with a new token after a 401', async () => {
    const p = createTokenProvider({ fetchToken: () => fetchFromBackend(`${base}/app/token`), watchVisibility: false });
    await p.getToken();
    issued += 1; // the server now only accepts a newer token
    const res = await authFetch(p, `${base}/api/data`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'data');
    p.stop();
  });
});
