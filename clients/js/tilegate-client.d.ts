// Type declarations for tilegate-client.js.

/** tilegate `POST /v1/auth/token` (and RFC 6749 token endpoint) answer. */
export interface SnakeCaseTokenResponse {
  access_token: string;
  token_type?: string;
  /** Seconds from now. Preferred over expires_at (immune to client clock skew). */
  expires_in?: number | string;
  /** RFC 3339 UTC, or unix seconds. */
  expires_at?: string | number;
  scope?: string;
}

/** tilegate `POST /oauth/token` JSON grant answer. */
export interface CamelCaseTokenResponse {
  accessToken: string;
  /** Unix seconds. */
  expiresAt?: number | string;
  expiresIn?: number | string;
  tokenType?: string;
  scope?: string;
}

/** Named token answer (`POST /oauth/v1/user/token`); expiry null means "never". */
export interface NamedTokenResponse {
  token: string;
  expiresAt?: number | string | null;
  expires_at?: number | string | null;
  scope?: string;
}

export type TokenResponse = SnakeCaseTokenResponse | CamelCaseTokenResponse | NamedTokenResponse;

/** A normalised token. Times are epoch milliseconds of the local clock. */
export interface TokenInfo {
  readonly token: string;
  readonly tokenType: 'Bearer';
  readonly scope: string | undefined;
  /** When the token stops being valid (local clock). Infinity for a token that never expires. */
  readonly expiresAt: number;
  readonly receivedAt: number;
  readonly lifetimeMs: number;
}

export interface FetchTokenContext {
  /** Why the fetch runs: 'demand' (getToken), 'scheduled' (proactive refresh), 'manual' (refresh()), 'resume' (tab visible / online again). */
  reason: 'demand' | 'scheduled' | 'manual' | 'resume';
  /** 1 for the first attempt of a fetch cycle, 2 for the first retry, … */
  attempt: number;
}

export interface RetryOptions {
  /** Delay after the first failure. Default 500. */
  initialDelayMs?: number;
  /** Cap of the backoff delay, and the pause before a new background cycle after a cycle failed. Default 30000. */
  maxDelayMs?: number;
  /** Attempts per fetch cycle, first one included (Infinity allowed). Default 6. */
  maxAttempts?: number;
  /** Growth factor of the delay. Default 2. */
  factor?: number;
  /** Each delay is shortened by up to this fraction at random (0..1). Default 0.2. */
  jitter?: number;
}

export interface TokenProviderOptions {
  /** Return a token response of any supported shape; throw (ideally a TokenFetchError) on failure. */
  fetchToken: (ctx: FetchTokenContext) => Promise<TokenResponse> | TokenResponse;
  /** How long before expiry to refresh: a fraction of the lifetime if < 1, seconds if >= 1. Default 0.2. */
  refreshMargin?: number;
  /** Never refresh sooner than this many seconds after a token arrived. Default 1. */
  minRefreshSeconds?: number;
  /** A token counts as expired this long before its expiry (capped at 10% of its lifetime). Default 5. */
  expiryLeewaySeconds?: number;
  /** Proactive refresh happens up to this fraction of its delay earlier, at random (0..1). Default 0.1. */
  jitter?: number;
  retry?: RetryOptions;
  /** Refresh in the background before expiry. Default true. */
  autoRefresh?: boolean;
  /** In a browser, check for an overdue refresh on visibilitychange / online. Default true. */
  watchVisibility?: boolean;
  /** Called on every failed attempt. */
  onError?: (error: unknown, ctx: FetchTokenContext & { willRetry: boolean }) => void;
  /** Clock in epoch ms. Default Date.now. */
  now?: () => number;
  /** Random source in [0, 1). Default Math.random. */
  random?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (id: any) => void;
}

export interface TokenProvider {
  /** A token valid for at least minValiditySeconds more; cached, single-flight, retried with backoff. */
  getToken(options?: { minValiditySeconds?: number }): Promise<string>;
  /** The cached token if still valid, else null. Synchronous; never fetches. */
  currentToken(): string | null;
  currentTokenInfo(): TokenInfo | null;
  /** Fetch a new token now (joins a running fetch). */
  refresh(): Promise<TokenInfo>;
  /** Forget the cached token (e.g. after a 401); the next getToken() fetches. */
  invalidate(): void;
  /** Called for every new token; returns an unsubscribe function. */
  onToken(listener: (info: TokenInfo) => void): () => void;
  /** Stop timers and listeners, drop the token; pending and later getToken() calls reject. */
  stop(): void;
  readonly stopped: boolean;
}

export declare const DEFAULTS: Readonly<{
  refreshMargin: number;
  minRefreshSeconds: number;
  expiryLeewaySeconds: number;
  jitter: number;
  retry: Readonly<Required<RetryOptions>>;
}>;

export declare class TokenFetchError extends Error {
  constructor(
    message: string,
    options?: { status?: number; retryable?: boolean; error?: string; errorDescription?: string; retryAfterMs?: number; cause?: unknown },
  );
  readonly name: 'TokenFetchError';
  /** HTTP status of the token endpoint, when it answered. */
  status: number | undefined;
  /** Whether trying again may help. */
  retryable: boolean;
  /** `error` / `error_description` of the JSON error body, when present. */
  error: string | undefined;
  errorDescription: string | undefined;
  /** From a Retry-After header. */
  retryAfterMs: number | undefined;
}

export declare class ProviderStoppedError extends Error {
  readonly name: 'ProviderStoppedError';
  readonly retryable: false;
}

export declare function createTokenProvider(options: TokenProviderOptions): TokenProvider;

export declare function normalizeTokenResponse(body: unknown, nowMs?: number): TokenInfo;

export declare function decodeJwtPayload(token: string): Record<string, unknown> | null;

/**
 * A tile grant (tilegate's `tiles` claim): a dimension left out is not limited.
 * Asked of the exchange, it can only narrow the API key's grant.
 */
export interface TileGrant {
  /** 0..30, inclusive. */
  minzoom?: number;
  /** 0..30, inclusive. */
  maxzoom?: number;
  /** 1..16 boxes `[west, south, east, north]` in degrees; west > east crosses the antimeridian. */
  bounds?: Array<[number, number, number, number]>;
  /** 1..64 tileset or layer names. */
  layers?: string[];
}

export interface FetchFromBackendInit extends Omit<RequestInit, 'body'> {
  /** A plain object is sent as JSON. */
  body?: BodyInit | Record<string, unknown> | null;
  /** Sent as the JSON body's `tiles` field (merged into a plain-object body): ask for a narrowed grant. */
  tiles?: TileGrant;
  /** Replaces the global fetch. */
  fetch?: typeof fetch;
}

/** POST (by default) to the app's own backend and return its parsed JSON token response. */
export declare function fetchFromBackend(url: string | URL, init?: FetchFromBackendInit): Promise<TokenResponse>;

/** MapLibre GL JS RequestParameters (the subset this module sets). */
export interface RequestParameters {
  url: string;
  headers?: Record<string, string>;
  credentials?: 'same-origin' | 'include';
  [key: string]: unknown;
}

export interface MaplibreTransformOptions {
  /** Origins (or URLs, resolved against baseUrl) of the gateway; only these get the header. */
  gatewayOrigins: Array<string | URL>;
  /** Only paths starting with one of these get the header (e.g. ['/tiles/']). Default: every path. */
  pathPrefixes?: string[];
  /** Only these MapLibre resource types get the header (e.g. ['Tile']). Default: every type. */
  resourceTypes?: string[];
  /** An earlier transformRequest to run first; its result is kept and extended. */
  transform?: (url: string, resourceType?: string) => RequestParameters | undefined;
  /** Called when a gateway request goes out without a token (none cached or expired). */
  onMissingToken?: (url: string, resourceType?: string) => void;
  /** Base for relative URLs. Default location.href. */
  baseUrl?: string;
  /**
   * With no valid token cached, return a Promise that waits for the refresh instead of
   * sending the request without a header. Needs MapLibre GL JS >= 5.21 (async
   * transformRequest); older versions require the default, false.
   */
  waitForToken?: boolean;
}

export declare function maplibreTransformRequest(
  provider: TokenProvider,
  options: MaplibreTransformOptions & { waitForToken: true },
): (url: string, resourceType?: string) => RequestParameters | Promise<RequestParameters> | undefined;
export declare function maplibreTransformRequest(
  provider: TokenProvider,
  options: MaplibreTransformOptions,
): (url: string, resourceType?: string) => RequestParameters | undefined;

/** `url` with query parameter `param` set to `token` (replacing an earlier value); with no token, removed. */
export declare function appendTokenToUrl(url: string, token: string | null | undefined, param?: string): string;

export declare function leafletTileUrl(provider: TokenProvider, template: string, options?: { param?: string }): string;

/** The minimal Leaflet TileLayer surface bindLeafletLayer uses. */
export interface LeafletUrlLayer {
  setUrl(url: string, noRedraw?: boolean): unknown;
}

/** Keep `layer`'s URL carrying the current token (setUrl(url, true) on each new token). Returns an unsubscribe function. */
export declare function bindLeafletLayer(
  provider: TokenProvider,
  layer: LeafletUrlLayer,
  template: string,
  options?: { param?: string },
): () => void;

/** A Leaflet TileLayer (of the given Leaflet namespace) whose tile URLs carry the token current at request time. */
export declare function leafletTileLayer<TL = unknown>(
  L: any,
  provider: TokenProvider,
  template: string,
  options?: { param?: string; [layerOption: string]: unknown },
): TL;

/**
 * fetch() with the bearer token; on 401 drops the token, gets a new one and retries once (replayable bodies only).
 * Any other status, out-of-grant answers (404, 403 `tile_not_granted`, 204) included, is returned as is.
 */
export declare function authFetch(
  provider: TokenProvider,
  input: string | URL,
  init?: RequestInit & { fetch?: typeof fetch },
): Promise<Response>;
