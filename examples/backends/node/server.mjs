// App backend for a tilegate map page (Node >= 18, no dependencies).
//
// The browser asks this server for a short-lived token (GET or POST /token);
// the server trades its API key for one at tilegate's POST /v1/auth/token and
// answers {"access_token", "token_type", "expires_in"}. The API key stays here:
// it is read from the environment, never logged, never sent to the browser.
//
//   TILEGATE_URL=http://127.0.0.1:8080 TILEGATE_API_KEY=tgk_... node server.mjs
//
// Optional: PORT (8001; 0 picks a free one), TILEGATE_SCOPE (tiles:read),
// TILEGATE_TTL (600 seconds).
//
// A POST may carry a JSON body {"tiles": {minzoom, maxzoom, bounds, layers}}
// asking for a narrowed tile grant; it is passed on to tilegate, which refuses
// anything wider than the API key's own grant (the browser then gets 403
// tiles_exceeded, or 400 invalid_tiles for a grant that is not one).
import http from 'node:http';

const gateway = (process.env.TILEGATE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const apiKey = process.env.TILEGATE_API_KEY;
const scope = process.env.TILEGATE_SCOPE ?? 'tiles:read';
const ttl = Number(process.env.TILEGATE_TTL ?? 600);
if (!apiKey) {
  console.error('TILEGATE_API_KEY is not set');
  process.exit(64);
}

// tilegate's refusals of the asked grant that are the browser's to fix.
const grantErrors = new Set(['400 invalid_tiles', '403 tiles_exceeded']);

/** [status, body] for the browser: a token, or why there is none. */
async function exchange(tiles) {
  const ask = { ttl, scope };
  if (tiles !== undefined) ask.tiles = tiles; // narrowing only: tilegate enforces the key's ceiling
  let answer;
  try {
    answer = await fetch(`${gateway}/v1/auth/token`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(ask),
      signal: AbortSignal.timeout(10_000),
    });
  } catch {
    return [502, { error: 'token_unavailable', error_description: 'tilegate unreachable' }];
  }
  if (!answer.ok) {
    // tilegate said no: pass on its status, not its body.
    const code = await answer.json().then((b) => b?.error, () => undefined);
    if (grantErrors.has(`${answer.status} ${code}`)) {
      return [answer.status, { error: code, error_description: `tilegate answered ${answer.status}` }];
    }
    return [502, { error: 'token_unavailable', error_description: `tilegate answered ${answer.status}` }];
  }
  const token = await answer.json();
  return [200, { access_token: token.access_token, token_type: 'Bearer', expires_in: token.expires_in }];
}

/** The `tiles` object of a POST body, undefined without one; throws if malformed. */
async function askedTiles(req) {
  let raw = '';
  for await (const chunk of req) {
    raw += chunk;
    if (raw.length > 65536) throw new Error('body too large');
  }
  if (raw.trim() === '') return undefined;
  const body = JSON.parse(raw);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new Error('not an object');
  const tiles = body.tiles ?? undefined;
  if (tiles !== undefined && (tiles === null || typeof tiles !== 'object' || Array.isArray(tiles))) {
    throw new Error('tiles is not an object');
  }
  return tiles;
}

const server = http.createServer(async (req, res) => {
  if (new URL(req.url, 'http://backend').pathname !== '/token' || !['GET', 'POST'].includes(req.method)) {
    res.writeHead(404).end();
    return;
  }
  // A real app checks its user's session here before handing out a token.
  let tiles;
  try {
    tiles = await askedTiles(req);
  } catch {
    res.writeHead(400, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ error: 'invalid_request', error_description: 'the body must be JSON: {"tiles": {...}}' }));
    return;
  }
  const [status, body] = await exchange(tiles);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
});
server.listen(Number(process.env.PORT ?? 8001), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
