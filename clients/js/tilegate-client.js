// tilegate-client: keep a short-lived tilegate token fresh in a browser (or Node)
// and hand it to MapLibre GL JS, Leaflet or fetch. Dependency-free ES module.
//
// The long-lived secret (API key, client secret) stays on the app's backend; the
// page asks that backend for a short-lived token (see fetchFromBackend) and this
// module caches it, shares one fetch between concurrent callers, refreshes it
// before it expires and retries with exponential backoff when the fetch fails.

/** Largest delay setTimeout accepts (2^31-1 ms, about 24.8 days). */
const MAX_TIMER_MS = 2147483647;

/** Defaults of createTokenProvider; documented in README.md and the .d.ts. */
export const DEFAULTS = Object.freeze({
  refreshMargin: 0.2,
  minRefreshSeconds: 1,
  expiryLeewaySeconds: 5,
  jitter: 0.1,
  retry: Object.freeze({
    initialDelayMs: 500,
    maxDelayMs: 30000,
    maxAttempts: 6,
    factor: 2,
    jitter: 0.2,
  }),
});

const noop = () => {};

// === errors ===

/**
 * A token could not be obtained. `retryable` says whether trying again may help
 * (network failure, 5xx, 408, 429) or not (4xx, malformed answer).
 */
export class TokenFetchError extends Error {
  constructor(message, { status, retryable = true, error, errorDescription, retryAfterMs, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'TokenFetchError';
    this.status = status;
    this.retryable = retryable;
    this.error = error;
    this.errorDescription = errorDescription;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The provider was stopped; every later or pending getToken() rejects with this. */
export class ProviderStoppedError extends Error {
  constructor() {
    super('token provider stopped');
    this.name = 'ProviderStoppedError';
    this.retryable = false;
  }
}

// === response parsing ===

/**
 * Decode the payload of a JWT without verifying it (the gateway verifies).
 * Returns null for anything that is not a three-part base64url JSON token.
 */
export function decodeJwtPayload(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3 || parts[1] === '') return null;
  try {
    let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    b64 += '='.repeat((4 - (b64.length % 4)) % 4);
    const bin = globalThis.atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/** Absolute expiry to epoch milliseconds: unix seconds (number or digits) or an RFC 3339 string. */
function absoluteToMs(value) {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number' || (typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value))) {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) return undefined;
    // The contract says seconds; a value this large can only be milliseconds.
    return n > 1e11 ? n : n * 1000;
  }
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isFinite(ms) ? ms : undefined;
  }
  return undefined;
}

/**
 * Normalise a token endpoint answer into
 * `{ token, tokenType, scope, lifetimeMs, receivedAt, expiresAt }` (times in epoch ms
 * of the local clock; lifetimeMs may be Infinity for a token that never expires).
 *
 * Accepted shapes:
 *  - tilegate `POST /v1/auth/token` and RFC 6749: `{access_token, token_type, expires_in, expires_at?, scope?}`
 *  - tilegate `POST /oauth/token` (JSON grant): `{accessToken, expiresAt}` (unix seconds)
 *  - camelCase `{accessToken, expiresIn}`, and named tokens `{token, expiresAt|expires_at|null}`
 *
 * `expires_in` is preferred because it is relative and so immune to a wrong client
 * clock. An absolute expiry is compared with the local clock; when the token is a
 * JWT carrying `iat`, the lifetime is also bounded by `exp - iat` (both server
 * times), which keeps a client clock that runs slow from over-trusting the token
 * and one that runs fast from seeing every token as already expired.
 */
export function normalizeTokenResponse(body, nowMs = Date.now()) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new TokenFetchError('token response is not a JSON object', { retryable: false });
  }
  const token = body.access_token ?? body.accessToken ?? body.token;
  if (typeof token !== 'string' || token.trim() === '') {
    throw new TokenFetchError('token response has no access_token/accessToken', { retryable: false });
  }
  const tokenType = body.token_type ?? body.tokenType ?? 'Bearer';
  if (typeof tokenType === 'string' && tokenType.toLowerCase() !== 'bearer') {
    throw new TokenFetchError(`unsupported token_type "${tokenType}"`, { retryable: false });
  }
  const scope = typeof body.scope === 'string' ? body.scope : undefined;

  let lifetimeMs;
  const expiresIn = body.expires_in ?? body.expiresIn;
  if (expiresIn !== undefined && expiresIn !== null && expiresIn !== '' && Number.isFinite(Number(expiresIn))) {
    lifetimeMs = Number(expiresIn) * 1000;
  } else {
    const claims = decodeJwtPayload(token);
    let absMs = absoluteToMs(body.expiresAt ?? body.expires_at);
    if (absMs === undefined && claims && Number.isFinite(claims.exp)) absMs = claims.exp * 1000;
    if (absMs === undefined) {
      lifetimeMs = Infinity; // e.g. a named token created with validTime=-1
    } else {
      const local = absMs - nowMs;
      if (claims && Number.isFinite(claims.iat)) {
        const full = absMs - claims.iat * 1000;
        lifetimeMs = local > 0 ? Math.min(local, full) : full;
      } else {
        lifetimeMs = local;
      }
    }
  }
  if (!(lifetimeMs > 0)) {
    throw new TokenFetchError('token response is already expired (is the client clock right?)', { retryable: false });
  }
  return {
    token,
    tokenType: 'Bearer',
    scope,
    lifetimeMs,
    receivedAt: nowMs,
    expiresAt: nowMs + lifetimeMs,
  };
}

// === fetching from the app backend ===

function parseRetryAfter(value, nowMs) {
  if (!value) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

/**
 * Ask the app's OWN backend for a short-lived token and return the parsed JSON
 * (either tilegate shape; createTokenProvider normalises it). Never point this at
 * tilegate with a long-lived key from the browser: the key would be public.
 *
 * Defaults: `method: 'POST'`, `credentials: 'same-origin'`, `cache: 'no-store'`,
 * `Accept: application/json`. A plain-object `body` is sent as JSON. `init.fetch`
 * replaces the global fetch (tests, custom clients).
 *
 * `init.tiles` asks for a narrowed tile grant (`{minzoom, maxzoom, bounds:
 * [[w, s, e, n]], layers}`): it is sent as the JSON body's `tiles` field (merged
 * into a plain-object `body`), for a backend that forwards it to tilegate's
 * exchange. It can only narrow the API key's grant; a wider one is refused there.
 *
 * Throws TokenFetchError: retryable for network errors, 5xx, 408, 429 and a body that
 * is not JSON; not retryable for other 4xx.
 */
export async function fetchFromBackend(url, init = {}) {
  const { fetch: fetchImpl = globalThis.fetch, body: givenBody, headers, tiles, ...rest } = init;
  if (typeof fetchImpl !== 'function') throw new TypeError('fetchFromBackend: no fetch implementation');
  let body = givenBody;
  if (tiles !== undefined && tiles !== null) {
    if (typeof tiles !== 'object' || Array.isArray(tiles)) throw new TypeError('fetchFromBackend: tiles must be an object');
    if (body === undefined || body === null) body = { tiles };
    else if (Object.getPrototypeOf(body) === Object.prototype) body = { ...body, tiles };
    else throw new TypeError('fetchFromBackend: tiles needs a plain-object body (or none)');
  }
  const h = new Headers(headers);
  if (!h.has('accept')) h.set('Accept', 'application/json');
  let sendBody = body;
  if (body !== undefined && body !== null && Object.getPrototypeOf(body) === Object.prototype) {
    sendBody = JSON.stringify(body);
    if (!h.has('content-type')) h.set('Content-Type', 'application/json');
  }
  const request = { method: 'POST', credentials: 'same-origin', cache: 'no-store', ...rest, headers: h };
  if (sendBody !== undefined) request.body = sendBody;

  let res;
  try {
    res = await fetchImpl(url, request);
  } catch (err) {
    throw new TokenFetchError(`token request failed: ${err?.message ?? err}`, { retryable: true, cause: err });
  }
  let json;
  let jsonError;
  try {
    json = await res.json();
  } catch (err) {
    jsonError = err;
  }
  if (!res.ok) {
    const status = res.status;
    const error = typeof json?.error === 'string' ? json.error : undefined;
    const errorDescription = typeof json?.error_description === 'string' ? json.error_description : undefined;
    throw new TokenFetchError(`token endpoint answered ${status}${error ? ` (${error})` : ''}`, {
      status,
      retryable: status >= 500 || status === 408 || status === 429,
      error,
      errorDescription,
      retryAfterMs: parseRetryAfter(res.headers?.get?.('retry-after'), Date.now()),
    });
  }
  if (jsonError !== undefined) {
    throw new TokenFetchError('token endpoint answered a body that is not JSON', { status: res.status, retryable: true, cause: jsonError });
  }
  return json;
}

// === the provider ===

/**
 * Create a token provider. See README.md for every option; the short form:
 *
 *   const provider = createTokenProvider({ fetchToken: () => fetchFromBackend('/app/token') });
 *   await provider.getToken();               // first token; later reads may be synchronous
 *   provider.currentToken();                 // valid token or null, never blocks
 */
export function createTokenProvider(options = {}) {
  const {
    fetchToken,
    refreshMargin = DEFAULTS.refreshMargin,
    minRefreshSeconds = DEFAULTS.minRefreshSeconds,
    expiryLeewaySeconds = DEFAULTS.expiryLeewaySeconds,
    jitter = DEFAULTS.jitter,
    autoRefresh = true,
    watchVisibility = true,
    onError,
    now = () => Date.now(),
    random = Math.random,
    setTimeout: setTimer = (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: clearTimer = (id) => globalThis.clearTimeout(id),
  } = options;
  const retry = { ...DEFAULTS.retry, ...(options.retry ?? {}) };

  if (typeof fetchToken !== 'function') throw new TypeError('createTokenProvider: fetchToken must be a function');
  if (!(refreshMargin >= 0)) throw new RangeError('refreshMargin must be >= 0');
  if (!(jitter >= 0 && jitter <= 1)) throw new RangeError('jitter must be within 0..1');
  if (!(retry.maxAttempts >= 1)) throw new RangeError('retry.maxAttempts must be >= 1');

  let current = null; // normalised token info
  let inflight = null; // Promise<info> of the one running fetch cycle
  let refreshTimer = null;
  let refreshDueAt = null; // epoch ms at which the next proactive refresh is due
  let stopped = false;
  const sleeps = new Set(); // pending backoff sleeps, so stop() can end them
  const listeners = new Set();
  const unwatch = [];

  const arm = (fn, ms) => {
    const id = setTimer(fn, Math.max(0, Math.min(ms, MAX_TIMER_MS)));
    // In Node, a pending refresh must not keep the process alive.
    if (id && typeof id === 'object' && typeof id.unref === 'function') id.unref();
    return id;
  };

  const leewayMs = (info) => Math.min(expiryLeewaySeconds * 1000, info.lifetimeMs / 10);
  const usable = (info, extraMs = 0) =>
    info !== null && now() + extraMs < info.expiresAt - leewayMs(info);

  function report(err, ctx) {
    if (typeof onError !== 'function') return;
    try {
      onError(err, ctx);
    } catch {
      /* a faulty error handler must not break the refresh loop */
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => {
      const entry = { resolve };
      entry.id = arm(() => {
        sleeps.delete(entry);
        resolve();
      }, ms);
      sleeps.add(entry);
    });
  }

  /** Delay before attempt `attempt + 1`, given `attempt` failures so far. */
  function backoffDelay(attempt, err) {
    let d = Math.min(retry.maxDelayMs, retry.initialDelayMs * retry.factor ** (attempt - 1));
    d -= d * retry.jitter * random();
    if (err && Number.isFinite(err.retryAfterMs)) d = Math.max(d, Math.min(err.retryAfterMs, retry.maxDelayMs));
    return d;
  }

  async function fetchCycle(reason) {
    for (let attempt = 1; ; attempt++) {
      if (stopped) throw new ProviderStoppedError();
      try {
        const body = await fetchToken({ reason, attempt });
        if (stopped) throw new ProviderStoppedError();
        return normalizeTokenResponse(body, now());
      } catch (err) {
        if (err instanceof ProviderStoppedError || stopped) throw new ProviderStoppedError();
        const retryable = err?.retryable !== false;
        const willRetry = retryable && attempt < retry.maxAttempts;
        report(err, { reason, attempt, willRetry });
        if (!willRetry) throw err;
        await sleep(backoffDelay(attempt, err));
      }
    }
  }

  function cancelRefreshTimer() {
    if (refreshTimer !== null) clearTimer(refreshTimer);
    refreshTimer = null;
    refreshDueAt = null;
  }

  function scheduleAt(dueAt) {
    cancelRefreshTimer();
    if (!autoRefresh || stopped) return;
    refreshDueAt = dueAt;
    const fire = () => {
      refreshTimer = null;
      // Timers may fire early (clamped long delays) or late (throttled tabs).
      if (now() < dueAt) {
        refreshTimer = arm(fire, dueAt - now());
        return;
      }
      refreshDueAt = null;
      refresh('scheduled').catch(noop);
    };
    refreshTimer = arm(fire, dueAt - now());
  }

  /** Refresh `lifetime - margin` after receipt, up to `jitter` of that earlier, never sooner than minRefreshSeconds. */
  function scheduleProactiveRefresh(info) {
    if (!Number.isFinite(info.lifetimeMs)) return;
    const marginMs = refreshMargin < 1 ? info.lifetimeMs * refreshMargin : refreshMargin * 1000;
    let delay = info.lifetimeMs - marginMs;
    delay -= delay * jitter * random();
    delay = Math.max(Math.floor(delay), minRefreshSeconds * 1000);
    scheduleAt(info.receivedAt + delay);
  }

  function setCurrent(info) {
    current = info;
    scheduleProactiveRefresh(info);
    const snapshot = publicInfo(info);
    for (const listener of [...listeners]) {
      try {
        listener(snapshot);
      } catch {
        /* one broken listener must not starve the others */
      }
    }
  }

  function refresh(reason = 'manual') {
    if (stopped) return Promise.reject(new ProviderStoppedError());
    if (inflight === null) {
      cancelRefreshTimer();
      const cycle = fetchCycle(reason).then(
        (info) => {
          inflight = null;
          if (stopped) throw new ProviderStoppedError();
          setCurrent(info);
          return info;
        },
        (err) => {
          inflight = null;
          // Keep trying in the background while failures look transient; a hard
          // failure (4xx) waits for the next getToken() instead of hammering.
          if (!stopped && autoRefresh && err?.retryable !== false) {
            scheduleAt(now() + retry.maxDelayMs);
          }
          throw err;
        },
      );
      inflight = cycle;
    }
    return inflight;
  }

  function publicInfo(info) {
    return Object.freeze({
      token: info.token,
      tokenType: info.tokenType,
      scope: info.scope,
      expiresAt: info.expiresAt,
      receivedAt: info.receivedAt,
      lifetimeMs: info.lifetimeMs,
    });
  }

  function resumeCheck() {
    if (stopped || inflight !== null) return;
    if (refreshDueAt !== null && now() >= refreshDueAt) refresh('resume').catch(noop);
    else if (current !== null && !usable(current)) refresh('resume').catch(noop);
  }

  // Background tabs throttle timers; catch up when the page is visible or online again.
  if (watchVisibility && autoRefresh) {
    const doc = globalThis.document;
    if (doc && typeof doc.addEventListener === 'function') {
      const onVisible = () => {
        if (doc.visibilityState === 'visible') resumeCheck();
      };
      doc.addEventListener('visibilitychange', onVisible);
      unwatch.push(() => doc.removeEventListener('visibilitychange', onVisible));
    }
    const win = globalThis.window;
    if (win && typeof win.addEventListener === 'function') {
      win.addEventListener('online', resumeCheck);
      unwatch.push(() => win.removeEventListener('online', resumeCheck));
    }
  }

  return Object.freeze({
    /**
     * Resolve to a token valid for at least `minValiditySeconds` more (default: just
     * valid, minus the expiry leeway). Cached; concurrent callers share one fetch.
     */
    async getToken({ minValiditySeconds = 0 } = {}) {
      if (stopped) throw new ProviderStoppedError();
      if (usable(current, minValiditySeconds * 1000)) return current.token;
      const info = await refresh('demand');
      return info.token;
    },
    /** The cached token if still valid, else null. Synchronous; never fetches. */
    currentToken() {
      return usable(current) ? current.token : null;
    },
    /** Details of the cached valid token (expiresAt in epoch ms, scope) or null. */
    currentTokenInfo() {
      return usable(current) ? publicInfo(current) : null;
    },
    /** Fetch a new token now (joins a fetch already running). Resolves to its info. */
    async refresh() {
      return publicInfo(await refresh('manual'));
    },
    /** Forget the cached token, e.g. after the gateway answered 401; the next getToken() fetches. */
    invalidate() {
      current = null;
      cancelRefreshTimer();
    },
    /** Call `listener(info)` for every new token; returns an unsubscribe function. */
    onToken(listener) {
      if (typeof listener !== 'function') throw new TypeError('onToken: listener must be a function');
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    /** Stop timers and listeners and drop the token; pending and later getToken() calls reject. */
    stop() {
      if (stopped) return;
      stopped = true;
      cancelRefreshTimer();
      for (const entry of sleeps) {
        clearTimer(entry.id);
        entry.resolve();
      }
      sleeps.clear();
      for (const fn of unwatch.splice(0)) fn();
      listeners.clear();
      current = null;
    },
    get stopped() {
      return stopped;
    },
  });
}

// === MapLibre GL JS ===

function resolveUrl(url, base) {
  try {
    return base === undefined ? new URL(url) : new URL(url, base);
  } catch {
    return null;
  }
}

/**
 * Build a MapLibre GL JS `transformRequest(url, resourceType)` that adds
 * `Authorization: Bearer <token>` to requests whose origin is one of
 * `gatewayOrigins` (and, if given, whose path starts with one of `pathPrefixes`
 * and whose resourceType is in `resourceTypes`). Every other request is left
 * untouched, so the token never reaches another host.
 *
 * MapLibre before 5.21 calls transformRequest synchronously: await
 * provider.getToken() once before creating the map; the provider then keeps the
 * token fresh in the background. If no valid token is cached (e.g. a refresh
 * failed), the request goes out without a header (the gateway answers 401) and a
 * refresh is started. With MapLibre >= 5.21, which awaits a Promise returned by
 * transformRequest, pass `waitForToken: true`: a request that finds no valid token
 * then waits for the refresh instead (and goes out without a header only if the
 * refresh fails).
 */
export function maplibreTransformRequest(provider, options = {}) {
  const { gatewayOrigins, pathPrefixes, resourceTypes, transform, onMissingToken, waitForToken = false } = options;
  const base = options.baseUrl ?? globalThis.location?.href;
  if (!provider || typeof provider.currentToken !== 'function') {
    throw new TypeError('maplibreTransformRequest: provider must come from createTokenProvider');
  }
  if (!Array.isArray(gatewayOrigins) || gatewayOrigins.length === 0) {
    throw new TypeError('maplibreTransformRequest: gatewayOrigins must list at least one origin');
  }
  const origins = new Set();
  for (const o of gatewayOrigins) {
    const u = resolveUrl(String(o), base);
    if (u === null || u.origin === 'null') throw new TypeError(`maplibreTransformRequest: not an origin: ${o}`);
    origins.add(u.origin);
  }
  const prefixes = pathPrefixes ? [...pathPrefixes] : null;
  const types = resourceTypes ? new Set(resourceTypes) : null;

  const matches = (url, resourceType) => {
    if (types !== null && !types.has(resourceType)) return false;
    const u = resolveUrl(url, base);
    // blob:/data: URLs never reach the network (and blob: reports its creator's origin).
    if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:') || !origins.has(u.origin)) return false;
    return prefixes === null || prefixes.some((p) => u.pathname.startsWith(p));
  };

  return function transformRequest(url, resourceType) {
    const out = typeof transform === 'function' ? transform(url, resourceType) : undefined;
    const target = out?.url ?? url;
    if (!matches(target, resourceType)) return out;
    const withToken = (token) => ({ ...out, url: target, headers: { ...out?.headers, Authorization: `Bearer ${token}` } });
    const token = provider.currentToken();
    if (token !== null) return withToken(token);
    const missing = () => {
      if (typeof onMissingToken === 'function') onMissingToken(target, resourceType);
      return out;
    };
    if (provider.stopped) return missing();
    const pending = provider.getToken();
    if (!waitForToken) {
      pending.catch(noop);
      return missing();
    }
    // Never reject: MapLibre would report a confusing error instead of the gateway's 401.
    return pending.then(withToken, () => missing() ?? { url: target });
  };
}

// === Leaflet (query-parameter tokens) ===

function decodeQueryKey(key) {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

/**
 * Return `url` with query parameter `param` set to `token` (percent-encoded),
 * replacing any earlier value of that parameter and keeping every other part,
 * Leaflet `{z}/{x}/{y}/{s}` placeholders and the fragment included. With no
 * token, the parameter is only removed. Works on templates and relative URLs.
 */
export function appendTokenToUrl(url, token, param = 'access_token') {
  if (typeof url !== 'string') throw new TypeError('appendTokenToUrl: url must be a string');
  if (typeof param !== 'string' || param === '') throw new TypeError('appendTokenToUrl: param must be a non-empty string');
  const hashAt = url.indexOf('#');
  const hash = hashAt >= 0 ? url.slice(hashAt) : '';
  const beforeHash = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const queryAt = beforeHash.indexOf('?');
  const path = queryAt >= 0 ? beforeHash.slice(0, queryAt) : beforeHash;
  const query = queryAt >= 0 ? beforeHash.slice(queryAt + 1) : '';
  const kept = query.split('&').filter((pair) => pair !== '' && decodeQueryKey(pair.split('=')[0]) !== param);
  if (token) kept.push(`${encodeURIComponent(param)}=${encodeURIComponent(token)}`);
  return path + (kept.length > 0 ? `?${kept.join('&')}` : '') + hash;
}

/** `template` with the provider's current token as query parameter `param` (default `access_token`). */
export function leafletTileUrl(provider, template, { param = 'access_token' } = {}) {
  return appendTokenToUrl(template, provider.currentToken(), param);
}

/**
 * Keep a Leaflet TileLayer's URL carrying the current token: sets it now and calls
 * `layer.setUrl(url, true)` (noRedraw: tiles already shown stay) on every new
 * token. Returns a function that stops following the provider.
 */
export function bindLeafletLayer(provider, layer, template, { param = 'access_token' } = {}) {
  if (!layer || typeof layer.setUrl !== 'function') throw new TypeError('bindLeafletLayer: layer must have setUrl()');
  const apply = (info) => layer.setUrl(appendTokenToUrl(template, info ? info.token : provider.currentToken(), param), true);
  apply(null);
  return provider.onToken(apply);
}

/**
 * Create a Leaflet TileLayer whose every tile URL carries the token valid at the
 * moment the tile is requested. Pass the Leaflet namespace `L` (this module does
 * not import Leaflet). `layerOptions` go to L.TileLayer unchanged.
 */
export function leafletTileLayer(L, provider, template, { param = 'access_token', ...layerOptions } = {}) {
  if (!L || typeof L.TileLayer?.extend !== 'function') throw new TypeError('leafletTileLayer: pass the Leaflet namespace L');
  const TokenTileLayer = L.TileLayer.extend({
    getTileUrl(coords) {
      return appendTokenToUrl(L.TileLayer.prototype.getTileUrl.call(this, coords), provider.currentToken(), param);
    },
  });
  return new TokenTileLayer(template, layerOptions);
}

// === fetch ===

/**
 * fetch() with `Authorization: Bearer <token>`. On a 401 it drops the cached token,
 * gets a new one and tries once more (only when the body can be replayed, i.e. is
 * not a stream). `init.fetch` replaces the global fetch.
 *
 * Only 401 means "this token is no good". A tile outside the token's grant (404,
 * 403 `tile_not_granted`, 204 or an empty 200, per the route's `out_of_grant`) is
 * returned as is: a new token from the same backend would carry the same grant.
 */
export async function authFetch(provider, input, init = {}) {
  const { fetch: fetchImpl = globalThis.fetch, ...rest } = init;
  const send = async () => {
    const headers = new Headers(rest.headers);
    headers.set('Authorization', `Bearer ${await provider.getToken()}`);
    return fetchImpl(input, { ...rest, headers });
  };
  const res = await send();
  const replayable = rest.body === undefined || rest.body === null || typeof rest.body === 'string';
  if (res.status !== 401 || !replayable) return res;
  provider.invalidate();
  return send();
}
