import { test, describe } from 'node:test';
import assert from 'node:assert/strict';

import { createTokenProvider, TokenFetchError, ProviderStoppedError } from '../tilegate-client.js';
import { FakeClock, deferred, flush, snakeResponse, camelResponse } from './helpers.js';

/** A fetchToken that hands out tok-1, tok-2, … living `ttl` seconds, and counts calls. */
function counter(clock, ttl = 100, shape = snakeResponse) {
  const f = async () => {
    f.calls += 1;
    f.times.push(clock.now());
    return shape(`tok-${f.calls}`, ttl, clock.now());
  };
  f.calls = 0;
  f.times = [];
  return f;
}

describe('caching', () => {
  test('a valid token is fetched once and served from memory', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock);
    const p = createTokenProvider({ fetchToken, ...clock.options() });
    assert.equal(p.currentToken(), null);
    assert.equal(await p.getToken(), 'tok-1');
    await clock.advance(10_000);
    assert.equal(await p.getToken(), 'tok-1');
    assert.equal(p.currentToken(), 'tok-1');
    assert.equal(fetchToken.calls, 1);
    p.stop();
  });

  test('an expired token is not served; the next getToken fetches again', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock, 100);
    const p = createTokenProvider({ fetchToken, autoRefresh: false, expiryLeewaySeconds: 5, ...clock.options() });
    await p.getToken();
    await clock.advance(94_999);
    assert.equal(p.currentToken(), 'tok-1');
    await clock.advance(1); // 95 s: inside the 5 s leeway
    assert.equal(p.currentToken(), null);
    assert.equal(p.currentTokenInfo(), null);
    assert.equal(await p.getToken(), 'tok-2');
    assert.equal(fetchToken.calls, 2);
    p.stop();
  });

  test('the leeway never exceeds 10% of a short lifetime', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: counter(clock, 2), autoRefresh: false, ...clock.options() });
    await p.getToken();
    await clock.advance(1_799);
    assert.equal(p.currentToken(), 'tok-1');
    await clock.advance(1);
    assert.equal(p.currentToken(), null);
    p.stop();
  });

  test('getToken({minValiditySeconds}) fetches when the cached token is too close to expiry', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock, 100);
    const p = createTokenProvider({ fetchToken, autoRefresh: false, ...clock.options() });
    await p.getToken();
    await clock.advance(50_000);
    assert.equal(await p.getToken({ minValiditySeconds: 30 }), 'tok-1');
    assert.equal(await p.getToken({ minValiditySeconds: 60 }), 'tok-2');
    p.stop();
  });

  test('invalidate() drops the token', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock);
    const p = createTokenProvider({ fetchToken, ...clock.options() });
    await p.getToken();
    p.invalidate();
    assert.equal(p.currentToken(), null);
    assert.deepEqual(clock.pending(), []);
    assert.equal(await p.getToken(), 'tok-2');
    p.stop();
  });
});

describe('single flight', () => {
  test('concurrent callers share one fetch', async () => {
    const clock = new FakeClock();
    const d = deferred();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: () => {
        calls += 1;
        return d.promise;
      },
      ...clock.options(),
    });
    const waiting = Array.from({ length: 5 }, () => p.getToken());
    const refreshing = p.refresh();
    await flush();
    assert.equal(calls, 1);
    d.resolve(snakeResponse('shared', 60, clock.now()));
    assert.deepEqual(await Promise.all(waiting), Array(5).fill('shared'));
    assert.equal((await refreshing).token, 'shared');
    assert.equal(calls, 1);
    p.stop();
  });

  test('a failed fetch is shared too, and the next call starts a new one', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        if (calls === 1) throw new TokenFetchError('nope', { status: 403, retryable: false });
        return snakeResponse('second', 60, clock.now());
      },
      ...clock.options(),
    });
    const results = await Promise.allSettled([p.getToken(), p.getToken()]);
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected']);
    assert.equal(results[0].reason.status, 403);
    assert.equal(calls, 1);
    assert.equal(await p.getToken(), 'second');
    p.stop();
  });

  test('while a background refresh runs, getToken returns the still-valid token at once', async () => {
    const clock = new FakeClock();
    const d = deferred();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: () => {
        calls += 1;
        return calls === 1 ? snakeResponse('first', 100, clock.now()) : d.promise;
      },
      jitter: 0,
      ...clock.options(),
    });
    await p.getToken();
    await clock.advance(80_000); // proactive refresh starts and hangs on `d`
    assert.equal(calls, 2);
    assert.equal(await p.getToken(), 'first');
    d.resolve(snakeResponse('second', 100, clock.now()));
    await flush();
    assert.equal(await p.getToken(), 'second');
    p.stop();
  });
});

describe('proactive refresh', () => {
  test('refreshes at lifetime × (1 − refreshMargin), before expiry, and notifies listeners', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock, 100);
    const p = createTokenProvider({ fetchToken, jitter: 0, ...clock.options() });
    const seen = [];
    p.onToken((info) => seen.push(info.token));
    const t0 = clock.now();
    await p.getToken();
    assert.deepEqual(clock.pending(), [t0 + 80_000]);
    await clock.advance(79_999);
    assert.equal(fetchToken.calls, 1);
    await clock.advance(1);
    assert.equal(fetchToken.calls, 2);
    assert.equal(p.currentToken(), 'tok-2');
    assert.deepEqual(seen, ['tok-1', 'tok-2']);
    // Keeps going: a token is always there for synchronous readers.
    for (let i = 0; i < 10; i++) {
      await clock.advance(20_000);
      assert.notEqual(p.currentToken(), null);
    }
    assert.equal(fetchToken.calls, 4);
    p.stop();
  });

  test('refreshMargin >= 1 is a number of seconds', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: counter(clock, 3600), refreshMargin: 300, jitter: 0, ...clock.options() });
    const t0 = clock.now();
    await p.getToken();
    assert.deepEqual(clock.pending(), [t0 + 3_300_000]);
    p.stop();
  });

  test('minRefreshSeconds bounds the refresh rate of very short tokens', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: counter(clock, 2), minRefreshSeconds: 1.9, jitter: 0, ...clock.options() });
    const t0 = clock.now();
    await p.getToken();
    assert.deepEqual(clock.pending(), [t0 + 1_900]);
    p.stop();
  });

  test('autoRefresh: false arms no timer', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: counter(clock), autoRefresh: false, ...clock.options() });
    await p.getToken();
    assert.deepEqual(clock.pending(), []);
    p.stop();
  });

  test('a token that never expires arms no timer', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: async () => ({ token: 'named', expiresAt: null }), ...clock.options() });
    assert.equal(await p.getToken(), 'named');
    assert.deepEqual(clock.pending(), []);
    await clock.advance(365 * 24 * 3600 * 1000);
    assert.equal(p.currentToken(), 'named');
    p.stop();
  });

  test('a timer that fires early re-arms instead of refreshing', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock, 100);
    const early = { ...clock.options(), setTimeout: (fn, ms) => clock.setTimeout(fn, ms / 2) };
    const p = createTokenProvider({ fetchToken, jitter: 0, ...early });
    await p.getToken();
    await clock.advance(79_000);
    assert.equal(fetchToken.calls, 1);
    await clock.advance(1_000);
    assert.equal(fetchToken.calls, 2);
    p.stop();
  });
});

describe('jitter', () => {
  test('the refresh delay is d × (1 − jitter × random), within [d × (1 − jitter), d]', async () => {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const clock = new FakeClock();
      const p = createTokenProvider({ fetchToken: counter(clock, 100), jitter: 0.1, random: () => r, ...clock.options() });
      const t0 = clock.now();
      await p.getToken();
      const [due] = clock.pending();
      assert.equal(due - t0, Math.floor(80_000 - 80_000 * 0.1 * r), `random ${r}`);
      p.stop();
    }
  });

  test('with Math.random, 200 providers spread over the jitter window and none leaves it', async () => {
    const delays = [];
    for (let i = 0; i < 200; i++) {
      const clock = new FakeClock();
      const p = createTokenProvider({ fetchToken: counter(clock, 100), jitter: 0.2, ...clock.options() });
      const t0 = clock.now();
      await p.getToken();
      delays.push(clock.pending()[0] - t0);
      p.stop();
    }
    assert.ok(delays.every((d) => d >= 64_000 && d <= 80_000), 'inside [64 s, 80 s]');
    assert.ok(new Set(delays).size > 150, 'actually random');
    assert.ok(Math.min(...delays) < 68_000 && Math.max(...delays) > 76_000, 'covers the window');
  });
});

describe('retry with backoff', () => {
  test('retryable failures are retried with exponential delays, then succeed', async () => {
    const clock = new FakeClock();
    const times = [];
    const errors = [];
    const p = createTokenProvider({
      fetchToken: async ({ attempt }) => {
        times.push(clock.now());
        if (attempt <= 3) throw new TokenFetchError('503', { status: 503, retryable: true });
        return snakeResponse('finally', 60, clock.now());
      },
      retry: { initialDelayMs: 100, maxDelayMs: 10_000, maxAttempts: 5, jitter: 0 },
      onError: (err, ctx) => errors.push([err.status, ctx.attempt, ctx.willRetry]),
      ...clock.options(),
    });
    const t0 = clock.now();
    const got = p.getToken();
    await clock.advance(1_000);
    assert.equal(await got, 'finally');
    assert.deepEqual(times.map((t) => t - t0), [0, 100, 300, 700]);
    assert.deepEqual(errors, [[503, 1, true], [503, 2, true], [503, 3, true]]);
    p.stop();
  });

  test('delays are capped at maxDelayMs and shortened by retry.jitter', async () => {
    const clock = new FakeClock();
    const times = [];
    const p = createTokenProvider({
      fetchToken: async ({ attempt }) => {
        times.push(clock.now());
        if (attempt < 6) throw new Error('network down');
        return snakeResponse('ok', 60, clock.now());
      },
      retry: { initialDelayMs: 1_000, maxDelayMs: 4_000, maxAttempts: 6, jitter: 0.5 },
      random: () => 0.5, // every delay shortened by 25%
      ...clock.options(),
    });
    const got = p.getToken();
    await clock.advance(12_000); // 750 + 1500 + 3 × 3000 = 11 250 ms
    assert.equal(await got, 'ok');
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert.deepEqual(gaps, [750, 1_500, 3_000, 3_000, 3_000]);
    p.stop();
  });

  test('after maxAttempts the caller gets the last error; a background cycle follows after maxDelayMs', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        if (calls <= 3) throw new TokenFetchError(`fail ${calls}`, { status: 502 });
        return snakeResponse('recovered', 60, clock.now());
      },
      retry: { initialDelayMs: 10, maxDelayMs: 5_000, maxAttempts: 3, jitter: 0 },
      ...clock.options(),
    });
    const got = p.getToken();
    const rejected = assert.rejects(got, /fail 3/);
    await clock.advance(100);
    await rejected;
    assert.equal(calls, 3);
    await clock.advance(5_000);
    assert.equal(calls, 4);
    assert.equal(p.currentToken(), 'recovered');
    p.stop();
  });

  test('a non-retryable error (4xx) fails at once and schedules nothing', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        throw new TokenFetchError('denied', { status: 401, retryable: false });
      },
      ...clock.options(),
    });
    await assert.rejects(p.getToken(), (err) => err.status === 401);
    assert.equal(calls, 1);
    assert.deepEqual(clock.pending(), []);
    p.stop();
  });

  test('Retry-After stretches the backoff delay (capped at maxDelayMs)', async () => {
    const clock = new FakeClock();
    const times = [];
    const p = createTokenProvider({
      fetchToken: async ({ attempt }) => {
        times.push(clock.now());
        if (attempt === 1) throw new TokenFetchError('slow down', { status: 429, retryAfterMs: 2_000 });
        return snakeResponse('ok', 60, clock.now());
      },
      retry: { initialDelayMs: 100, jitter: 0 },
      ...clock.options(),
    });
    const got = p.getToken();
    await clock.advance(3_000);
    assert.equal(await got, 'ok');
    assert.equal(times[1] - times[0], 2_000);
    p.stop();
  });

  test('a failed proactive refresh keeps the old token while retrying in the background', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        if (calls === 2) throw new Error('blip');
        return snakeResponse(`tok-${calls}`, 100, clock.now());
      },
      jitter: 0,
      retry: { initialDelayMs: 1_000, jitter: 0 },
      ...clock.options(),
    });
    await p.getToken();
    await clock.advance(80_000);
    assert.equal(calls, 2);
    assert.equal(p.currentToken(), 'tok-1');
    await clock.advance(1_000);
    assert.equal(calls, 3);
    assert.equal(p.currentToken(), 'tok-3');
    p.stop();
  });
});

describe('response shapes', () => {
  test('tilegate /v1/auth/token shape (expires_in)', async () => {
    const clock = new FakeClock();
    const p = createTokenProvider({ fetchToken: counter(clock, 600, snakeResponse), ...clock.options() });
    await p.getToken();
    const info = p.currentTokenInfo();
    assert.equal(info.token, 'tok-1');
    assert.equal(info.scope, 'tiles:read');
    assert.equal(info.expiresAt, clock.now() + 600_000);
    p.stop();
  });

  test('tilegate /oauth/token JSON grant shape (expiresAt in unix seconds)', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const p = createTokenProvider({ fetchToken: counter(clock, 600, camelResponse), jitter: 0, ...clock.options() });
    await p.getToken();
    const info = p.currentTokenInfo();
    assert.equal(info.token, 'tok-1');
    assert.equal(info.expiresAt, 1_700_000_600_000);
    assert.deepEqual(clock.pending(), [1_700_000_480_000]);
    p.stop();
  });

  test('a malformed answer is a non-retryable error', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        return { hello: 'world' };
      },
      ...clock.options(),
    });
    await assert.rejects(p.getToken(), { name: 'TokenFetchError', retryable: false });
    assert.equal(calls, 1);
    p.stop();
  });
});

describe('stop', () => {
  test('pending and later calls reject; timers are cleared', async () => {
    const clock = new FakeClock();
    const d = deferred();
    const p = createTokenProvider({ fetchToken: () => d.promise, ...clock.options() });
    const pending = p.getToken();
    p.stop();
    d.resolve(snakeResponse('late', 60, clock.now()));
    await assert.rejects(pending, ProviderStoppedError);
    await assert.rejects(p.getToken(), ProviderStoppedError);
    assert.equal(p.currentToken(), null);
    assert.equal(p.stopped, true);
    assert.deepEqual(clock.pending(), []);
  });

  test('stop() during a backoff sleep ends the cycle', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        throw new Error('down');
      },
      retry: { initialDelayMs: 1_000, jitter: 0 },
      ...clock.options(),
    });
    const pending = p.getToken();
    await flush();
    assert.equal(clock.pending().length, 1);
    p.stop();
    await assert.rejects(pending, ProviderStoppedError);
    await clock.advance(60_000);
    assert.equal(calls, 1);
    assert.deepEqual(clock.pending(), []);
  });

  test('stop() clears the refresh timer', async () => {
    const clock = new FakeClock();
    const fetchToken = counter(clock);
    const p = createTokenProvider({ fetchToken, ...clock.options() });
    await p.getToken();
    p.stop();
    assert.deepEqual(clock.pending(), []);
    await clock.advance(1_000_000);
    assert.equal(fetchToken.calls, 1);
  });
});

describe('defaults with the real timer API (node:test mock timers)', () => {
  test('refreshes through globalThis.setTimeout with Date.now', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
    let calls = 0;
    const p = createTokenProvider({
      fetchToken: async () => {
        calls += 1;
        return { accessToken: `m-${calls}`, expiresAt: Math.floor(Date.now() / 1000) + 10 };
      },
      random: () => 0,
    });
    assert.equal(await p.getToken(), 'm-1');
    t.mock.timers.tick(7_999);
    await flush();
    assert.equal(calls, 1);
    t.mock.timers.tick(1);
    await flush();
    assert.equal(calls, 2);
    assert.equal(p.currentToken(), 'm-2');
    p.stop();
  });
});

describe('background tabs', () => {
  test('an overdue refresh runs when the page becomes visible again', async (t) => {
    // Stand-in for a browser document whose timers were throttled while hidden.
    const doc = new EventTarget();
    doc.visibilityState = 'hidden';
    globalThis.document = doc;
    t.after(() => delete globalThis.document);

    const clock = new FakeClock();
    const fetchToken = counter(clock, 100);
    const p = createTokenProvider({ fetchToken, jitter: 0, ...clock.options(), watchVisibility: true });
    await p.getToken();
    clock.timers.clear(); // the throttled timer never fires
    clock.t += 90_000;
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    assert.equal(fetchToken.calls, 1, 'still hidden: nothing happens');
    doc.visibilityState = 'visible';
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    assert.equal(fetchToken.calls, 2);
    assert.equal(p.currentToken(), 'tok-2');
    p.stop();
    doc.dispatchEvent(new Event('visibilitychange'));
    await flush();
    assert.equal(fetchToken.calls, 2, 'stop() removed the listener');
  });
});
