// Test helpers: a deterministic clock with its own timers, JWT builders, deferreds.

/** Let every pending promise callback run (one real macrotask turn, repeated). */
export async function flush(turns = 3) {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A fake clock for createTokenProvider({ now, setTimeout, clearTimeout }).
 * `advance(ms)` moves time forward, firing due timers in order and letting the
 * promise callbacks they start run before the next one fires.
 */
export class FakeClock {
  constructor(start = 1_700_000_000_000) {
    this.t = start;
    this.nextId = 1;
    this.timers = new Map(); // id -> { at, fn }
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** Due times (absolute ms) of pending timers, earliest first. */
  pending() {
    return [...this.timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }

  async advance(ms) {
    const target = this.t + ms;
    await flush();
    for (;;) {
      let next = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= target && (next === null || timer.at < next[1].at)) next = [id, timer];
      }
      if (next === null) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await flush();
    }
    this.t = target;
    await flush();
  }

  /** Options to spread into createTokenProvider. */
  options() {
    return { now: this.now, setTimeout: this.setTimeout, clearTimeout: this.clearTimeout, watchVisibility: false };
  }
}

export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

/** An unsigned JWT-shaped string carrying `claims` (the client never verifies). */
export function fakeJwt(claims) {
  return `${b64url({ alg: 'ES256', typ: 'JWT' })}.${b64url(claims)}.c2lnbmF0dXJl`;
}

/** tilegate POST /v1/auth/token answer for a token issued at `nowMs` living `ttl` seconds. */
export function snakeResponse(token, ttl, nowMs) {
  return {
    access_token: token,
    token_type: 'Bearer',
    expires_in: ttl,
    expires_at: new Date(nowMs + ttl * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    scope: 'tiles:read',
  };
}

/** tilegate POST /oauth/token (JSON grant) answer. */
export function camelResponse(token, ttl, nowMs) {
  return { accessToken: token, expiresAt: Math.floor(nowMs / 1000) + ttl };
}
