import { test } from 'node:test';
import assert from 'node:assert/strict';

import { normalizeTokenResponse, decodeJwtPayload, TokenFetchError } from '../tilegate-client.js';
import { fakeJwt } from './helpers.js';

const NOW = 1_767_000_000_000; // 2025-12-29T09:20:00Z
const sec = (ms) => Math.floor(ms / 1000);

test('snake_case: expires_in wins over expires_at (relative time survives a wrong clock)', () => {
  const info = normalizeTokenResponse(
    { access_token: 'a', token_type: 'Bearer', expires_in: 3600, expires_at: '2001-01-01T00:00:00Z', scope: 'tiles:read' },
    NOW,
  );
  assert.equal(info.token, 'a');
  assert.equal(info.tokenType, 'Bearer');
  assert.equal(info.scope, 'tiles:read');
  assert.equal(info.lifetimeMs, 3_600_000);
  assert.equal(info.expiresAt, NOW + 3_600_000);
  assert.equal(info.receivedAt, NOW);
});

test('snake_case: RFC 3339 expires_at alone', () => {
  const at = new Date(NOW + 120_000).toISOString();
  const info = normalizeTokenResponse({ access_token: 'a', expires_at: at }, NOW);
  assert.equal(info.expiresAt, NOW + 120_000);
});

test('snake_case: token_type is case-insensitive, anything but Bearer is refused', () => {
  assert.equal(normalizeTokenResponse({ access_token: 'a', token_type: 'bearer', expires_in: 5 }, NOW).tokenType, 'Bearer');
  assert.throws(() => normalizeTokenResponse({ access_token: 'a', token_type: 'mac', expires_in: 5 }, NOW), TokenFetchError);
});

test('camelCase /oauth/token: expiresAt in unix seconds', () => {
  const info = normalizeTokenResponse({ accessToken: 'b', expiresAt: sec(NOW) + 900 }, NOW);
  assert.equal(info.token, 'b');
  assert.equal(info.expiresAt, NOW + 900_000);
  assert.equal(info.scope, undefined);
});

test('camelCase: numeric strings and millisecond values are understood', () => {
  assert.equal(normalizeTokenResponse({ accessToken: 'b', expiresAt: String(sec(NOW) + 60) }, NOW).lifetimeMs, 60_000);
  assert.equal(normalizeTokenResponse({ accessToken: 'b', expiresAt: NOW + 60_000 }, NOW).lifetimeMs, 60_000);
  assert.equal(normalizeTokenResponse({ accessToken: 'b', expiresIn: 30 }, NOW).lifetimeMs, 30_000);
});

test('JWT iat bounds the lifetime when the client clock is slow', () => {
  // Server time is NOW; the client clock is 10 minutes behind.
  const token = fakeJwt({ iat: sec(NOW), exp: sec(NOW) + 300 });
  const clientNow = NOW - 600_000;
  const info = normalizeTokenResponse({ accessToken: token, expiresAt: sec(NOW) + 300 }, clientNow);
  assert.equal(info.lifetimeMs, 300_000, 'not 900 s');
});

test('JWT iat rescues a token that looks expired to a client clock that runs fast', () => {
  const token = fakeJwt({ iat: sec(NOW), exp: sec(NOW) + 300 });
  const clientNow = NOW + 3_600_000;
  const info = normalizeTokenResponse({ accessToken: token, expiresAt: sec(NOW) + 300 }, clientNow);
  assert.equal(info.lifetimeMs, 300_000);
  assert.equal(info.expiresAt, clientNow + 300_000);
});

test('a JWT exp is used when the answer carries no expiry', () => {
  const token = fakeJwt({ exp: sec(NOW) + 45 });
  assert.equal(normalizeTokenResponse({ access_token: token }, NOW).lifetimeMs, 45_000);
});

test('named token that never expires: Infinity', () => {
  const info = normalizeTokenResponse({ name: 'n', token: 'opaque', expiresAt: null }, NOW);
  assert.equal(info.lifetimeMs, Infinity);
  assert.equal(info.expiresAt, Infinity);
});

test('malformed answers are non-retryable TokenFetchErrors', () => {
  for (const body of [null, 'str', [], {}, { access_token: '' }, { access_token: 42, expires_in: 5 }]) {
    assert.throws(() => normalizeTokenResponse(body, NOW), (err) => err instanceof TokenFetchError && err.retryable === false);
  }
});

test('an already-expired answer is refused', () => {
  assert.throws(() => normalizeTokenResponse({ access_token: 'a', expires_in: 0 }, NOW), /already expired/);
  assert.throws(() => normalizeTokenResponse({ accessToken: 'a', expiresAt: sec(NOW) - 1 }, NOW), /already expired/);
});

test('decodeJwtPayload tolerates garbage and decodes UTF-8', () => {
  assert.deepEqual(decodeJwtPayload(fakeJwt({ sub: 'tok_short_1', name: 'Zoë' })), { sub: 'tok_short_1', name: 'Zoë' });
  for (const bad of ['', 'a.b', 'a.!!!.c', 'a..c', `x.${Buffer.from('[1]').toString('base64url')}.y`, 7]) {
    assert.equal(decodeJwtPayload(bad), null);
  }
});
