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
import http from 'node:http';

const gateway = (process.env.TILEGATE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const apiKey = process.env.TILEGATE_API_KEY;
const scope = process.env.TILEGATE_SCOPE ?? 'tiles:read';
const ttl = Number(process.env.TILEGATE_TTL ?? 600);
if (!apiKey) {
  console.error('TILEGATE_API_KEY is not set');
  process.exit(64);
}

/** [status, body] for the browser: a token, or why there is none. */
async function exchange() {
  let answer;
  try {
    answer = await fetch(`${gateway}/v1/auth/token`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ ttl, scope }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch {
    return [502, { error: 'token_unavailable', error_description: 'tilegate unreachable' }];
  }
  if (!answer.ok) {
    // tilegate said no: pass on its status, not its body.
    return [502, { error: 'token_unavailable', error_description: `tilegate answered ${answer.status}` }];
  }
  const token = await answer.json();
  return [200, { access_token: token.access_token, token_type: 'Bearer', expires_in: token.expires_in }];
}

const server = http.createServer(async (req, res) => {
  if (new URL(req.url, 'http://backend').pathname !== '/token' || !['GET', 'POST'].includes(req.method)) {
    res.writeHead(404).end();
    return;
  }
  // A real app checks its user's session here before handing out a token.
  const [status, body] = await exchange();
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(body));
});
server.listen(Number(process.env.PORT ?? 8001), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
