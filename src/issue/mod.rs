//! The token endpoints served inline: API-key exchange, the
//! service-account JSON grant and the OAuth 2.0 token endpoint, client
//! management, named tokens and generator tokens, `/me`, introspection,
//! revocation, JWKS and metadata (RFCs 7662, 7009, 8414). Errors are
//! [`IssueError`], mapped to responses by the listener (`server::rescue`).

mod clients;
pub(crate) mod exchange;
mod me;
pub(crate) mod named;
pub(crate) mod oauth;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use moka::sync::Cache;

use crate::auth::Verifier;
use crate::body::{ClientBody, ClientBodyError};
use crate::config::Config;
use crate::credentials::scopes::{subset, within};
use crate::credentials::signing::TokenClaims;
use crate::credentials::{CachedKey, CredentialError, Local, Op, Secrets};
use crate::http::Resp;
use crate::store::{GeneratorToken, Store, StoreError};

/// Scope carried by login tokens; it manages a user's own credentials.
pub use crate::config::MANAGE_SCOPE;

/// The issuing side's error type.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    InvalidTtl(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The API-key exchange's 403 for scopes beyond the key's.
    #[error("{0}")]
    ScopeExceeded(String),
    /// 403 `tiles_exceeded`: a tile grant beyond the credential's.
    #[error("{0}")]
    TilesExceeded(String),
    /// 403 `origins_exceeded`: allowed origins beyond the credential's.
    #[error("{0}")]
    OriginsExceeded(String),
    /// 400 `invalid_tiles`: a `tiles` field that is not a tile grant.
    #[error("{0}")]
    InvalidTiles(String),
    /// RFC 6749 `invalid_scope` (400).
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidClient(&'static str),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("grant_type is not supported")]
    UnsupportedGrantType,
    #[error("{0}")]
    InvalidToken(&'static str),
    /// No bearer token where one is required: 401 `invalid_request`, as on
    /// a proxied route.
    #[error("a bearer token is required")]
    TokenMissing,
    /// An API key sent as a bearer token (401 `invalid_token`); `exchange`
    /// is the exchange endpoint's path.
    #[error("this is an API key, not a token; exchange it at POST {exchange}")]
    ApiKeyAsToken { exchange: Arc<str> },
    #[error("{0}")]
    InsufficientScope(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 with `Allow: {allow}`.
    #[error("method not allowed; this endpoint allows {allow}")]
    MethodNotAllowed { allow: String },
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The client stopped sending its body (`server.body_read_timeout`).
    #[error("the request body was not received in time")]
    RequestTimeout,
    #[error("too many failed attempts; retry later")]
    TooManyRequests(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A credential action's refusal (a missing record, a conflict).
    #[error(transparent)]
    Credential(CredentialError),
    #[error("{0}")]
    Server(&'static str),
}

impl From<CredentialError> for IssueError {
    fn from(e: CredentialError) -> IssueError {
        match e {
            CredentialError::Store(s) => IssueError::Store(s),
            CredentialError::NoSigningKey => IssueError::Server("no active signing key"),
            CredentialError::SigningFailed => IssueError::Server("signing failed"),
            CredentialError::KeyGeneration(_) => IssueError::Server("signing key generation failed"),
            other => IssueError::Credential(other),
        }
    }
}

pub use crate::routing::Endpoint;

/// State of the token endpoints: the failure throttle. (The secret caches
/// they read through are `credentials::Secrets`, which revocations clear.)
pub struct Issuer {
    failures: arc_swap::ArcSwap<Failures>,
    /// Addresses over their failure quota, for a minute.
    blocked: Cache<AddrKey, ()>,
    /// Credential identifiers over their failure quota, for a minute.
    blocked_credentials: Cache<Credential, ()>,
    /// (credential, address) pairs that authenticated recently: a blocked
    /// credential is still checked from these addresses, so the owner is
    /// not locked out by someone else's failures.
    proven: Cache<(Credential, AddrKey), ()>,
    /// Keys the credential hashes (per process: nobody can aim two
    /// identifiers at one counter).
    hasher: std::hash::RandomState,
}

/// The failure throttle's counters; a reload replaces them whole.
struct Failures {
    by_address: DefaultKeyedRateLimiter<AddrKey>,
    /// `None` when `limits.auth_failures_per_credential` is 0.
    by_credential: Option<DefaultKeyedRateLimiter<Credential>>,
}

/// The key of a per-address count: an IPv4 address (also when it arrives
/// IPv4-mapped on a dual-stack socket) or an IPv6 /64, the smallest block
/// one subscriber usually holds. The failure throttle counts by it, and so
/// does the listeners' per-address connection cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrKey {
    V4(u32),
    V6(u64),
}

impl AddrKey {
    pub fn of(ip: IpAddr) -> AddrKey {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(u32::from(v4)),
                None => AddrKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// A presented credential identifier (a username, an OAuth client id), as
/// a keyed hash of its kind and text: the counters never hold the
/// identifier itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credential(u64);

/// What a [`Credential`] identifies.
#[derive(Clone, Copy, Debug, Hash)]
pub enum CredentialKind {
    /// A username of the password grant.
    Username,
    /// An OAuth client id (client secret, Basic or form, or a client
    /// assertion's issuer).
    Client,
}

/// How long an address that authenticated as a credential stays exempt
/// from that credential's block.
const PROVEN_FOR: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an address or credential over its quota is refused.
const BLOCKED_FOR: Duration = Duration::from_secs(60);

impl Failures {
    fn new(cfg: &Config) -> Failures {
        Failures {
            by_address: limiter(cfg.limits.auth_failures_per_minute),
            by_credential: (cfg.limits.auth_failures_per_credential > 0)
                .then(|| limiter(cfg.limits.auth_failures_per_credential)),
        }
    }
}

impl Issuer {
    pub fn new(cfg: &Config) -> Issuer {
        Issuer {
            failures: arc_swap::ArcSwap::from_pointee(Failures::new(cfg)),
            blocked: Cache::builder().max_capacity(100_000).time_to_live(BLOCKED_FOR).build(),
            blocked_credentials: Cache::builder().max_capacity(100_000).time_to_live(BLOCKED_FOR).build(),
            proven: Cache::builder().max_capacity(100_000).time_to_live(PROVEN_FOR).build(),
            hasher: std::hash::RandomState::new(),
        }
    }

    pub fn reconfigure(&self, cfg: &Config) {
        self.failures.store(Arc::new(Failures::new(cfg)));
    }

    /// Forget the failure counters' keys whose quota has refilled (the
    /// server's upkeep task calls this periodically), so that a stream of
    /// new addresses or identifiers leaves nothing behind. The block and
    /// proof caches are bounded and expire by themselves.
    pub fn prune(&self) {
        let f = self.failures.load();
        f.by_address.retain_recent();
        f.by_address.shrink_to_fit();
        if let Some(c) = &f.by_credential {
            c.retain_recent();
            c.shrink_to_fit();
        }
    }

    /// Refuse early when this address (IPv4, or IPv6 /64) failed too often
    /// recently.
    fn check_blocked(&self, ip: IpAddr) -> Result<(), IssueError> {
        if self.blocked.contains_key(&AddrKey::of(ip)) {
            crate::metrics::auth_throttled();
            return Err(IssueError::TooManyRequests(BLOCKED_FOR.as_secs()));
        }
        Ok(())
    }

    /// Count a failed authentication; past the quota the address is blocked
    /// for a minute and this answer is already a 429.
    fn record_failure(&self, ip: IpAddr, e: IssueError) -> IssueError {
        let key = AddrKey::of(ip);
        if self.failures.load().by_address.check_key(&key).is_err() {
            self.blocked.insert(key, ());
            crate::metrics::auth_throttled();
            return IssueError::TooManyRequests(BLOCKED_FOR.as_secs());
        }
        e
    }

    /// The throttle's key for a presented identifier.
    pub fn credential(&self, kind: CredentialKind, id: &str) -> Credential {
        use std::hash::BuildHasher;
        Credential(self.hasher.hash_one((kind, id)))
    }

    /// Refuse, before the secret is checked, an attempt on a credential
    /// that failed too often recently, unless this address proved it.
    fn check_credential(&self, ip: IpAddr, c: Credential) -> Result<(), IssueError> {
        if self.blocked_credentials.contains_key(&c) && !self.proven.contains_key(&(c, AddrKey::of(ip))) {
            crate::metrics::auth_throttled();
            return Err(IssueError::TooManyRequests(BLOCKED_FOR.as_secs()));
        }
        Ok(())
    }

    /// Count a failed attempt on credential `c` from `ip`: against the
    /// address (as [`Self::record_failure`]) and against the credential,
    /// from every address together. Past the credential's quota it is
    /// blocked for a minute, and this answer is a 429 unless the address
    /// proved the credential before.
    fn credential_failure(&self, ip: IpAddr, c: Credential, e: IssueError) -> IssueError {
        let e = self.record_failure(ip, e);
        if let Some(l) = &self.failures.load().by_credential {
            if l.check_key(&c).is_err() {
                self.blocked_credentials.insert(c, ());
                if !self.proven.contains_key(&(c, AddrKey::of(ip))) {
                    crate::metrics::auth_throttled();
                    return IssueError::TooManyRequests(BLOCKED_FOR.as_secs());
                }
            }
        }
        e
    }

    /// A correct secret for `c` from `ip`: this address stays exempt from
    /// `c`'s block for a week.
    fn credential_proven(&self, ip: IpAddr, c: Credential) {
        self.proven.insert((c, AddrKey::of(ip)), ());
    }
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> DefaultKeyedRateLimiter<K> {
    let n = std::num::NonZeroU32::new(per_minute.max(1)).expect("max(1)");
    RateLimiter::keyed(Quota::per_minute(n))
}

/// Read a request body up to `limit` bytes (413 beyond). A declared
/// `Content-Length` over the limit is refused before anything is read. A
/// body that goes `server.body_read_timeout` without a byte is a 408. What
/// is left unread after a 413 is drained by the caller's [`ClientBody`]
/// (lingering close), so the answer reaches a client still sending.
pub async fn read_body(body: &mut ClientBody, limit: usize) -> Result<Bytes, IssueError> {
    if http_body::Body::size_hint(body).lower() > limit as u64 {
        return Err(IssueError::PayloadTooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e {
            ClientBodyError::TimedOut => IssueError::RequestTimeout,
            ClientBodyError::Read(_) => IssueError::InvalidRequest("the request body could not be read".into()),
        })?;
        if let Ok(d) = frame.into_data() {
            if buf.len() + d.len() > limit {
                return Err(IssueError::PayloadTooLarge);
            }
            buf.extend_from_slice(&d);
        }
    }
    Ok(buf.freeze())
}

/// Most parameters a form body or query string, and most members a JSON
/// body, may have on a token endpoint. The endpoints read at most eight;
/// beyond this the request is refused (400) before anything else is done
/// with it, so no request costs more than a few dozen parameters' work.
pub const MAX_PARAMS: usize = 64;

/// A JSON request body: `None` when empty (defaults apply), else a JSON
/// object. A body needs `Content-Type: application/json` (or `…+json`), and
/// a repeated top-level key is refused rather than resolved to one of its
/// values, so no proxy in front can read a different request than we do.
pub fn json_object(
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, IssueError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    match media_type(parts).as_deref() {
        Some(t) if t == "application/json" || t.ends_with("+json") => {}
        _ => {
            return Err(IssueError::InvalidRequest(
                "Content-Type must be application/json".into(),
            ))
        }
    }
    parse_object(body).map(Some)
}

/// An optional string member of a JSON body (absent or null: `None`);
/// any other type is `InvalidRequest(what)`.
pub fn optional_str<'a>(
    m: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a str>, IssueError> {
    match m.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(IssueError::InvalidRequest(what.into())),
    }
}

/// A JSON object with unique top-level keys.
pub fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, IssueError> {
    serde_json::from_slice::<UniqueKeys>(body).map(|o| o.0).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY_MEMBERS) {
            IssueError::InvalidRequest(format!("the request body has more than {MAX_PARAMS} members"))
        } else {
            IssueError::InvalidRequest("request body must be one JSON object with unique keys".into())
        }
    })
}

const TOO_MANY_MEMBERS: &str = "too many members";

struct UniqueKeys(serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<UniqueKeys, A::Error> {
                let mut m = serde_json::Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    if m.len() == MAX_PARAMS {
                        return Err(serde::de::Error::custom(TOO_MANY_MEMBERS));
                    }
                    if m.contains_key(&k) {
                        return Err(serde::de::Error::custom("repeated key"));
                    }
                    let v = a.next_value()?;
                    m.insert(k, v);
                }
                Ok(UniqueKeys(m))
            }
        }
        d.deserialize_map(V)
    }
}

/// `application/x-www-form-urlencoded` pairs (a form body or a query
/// string), strictly: a percent-escape that decodes to invalid UTF-8 is
/// refused instead of turning into U+FFFD. Malformed escapes such as `%ZZ`
/// stay literal, as in every URL parser. More than [`MAX_PARAMS`] pairs are
/// refused before the extra ones are decoded. Linear in the input.
pub fn form_pairs(input: &[u8]) -> Result<Vec<(String, String)>, IssueError> {
    let decode = |part: &[u8]| -> Result<String, IssueError> {
        let plus: Vec<u8> = part.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&plus).collect();
        String::from_utf8(bytes).map_err(|_| IssueError::InvalidRequest("parameters must be UTF-8".into()))
    };
    let mut out = Vec::new();
    for p in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_PARAMS {
            return Err(IssueError::InvalidRequest(format!("more than {MAX_PARAMS} parameters")));
        }
        let (k, v) = match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &b""[..]),
        };
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

/// The media type of a request, lower-cased, without parameters.
fn media_type(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

/// Serve one inline endpoint; `rescue` turns a refusal into its response
/// (the listener's one error mapping, which sits above this layer).
pub async fn serve(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    parts: http::request::Parts,
    body: &mut ClientBody,
    rescue: fn(IssueError) -> Resp,
) -> Resp {
    let cfg = ctx.cfg;
    let origin = parts.headers.get(http::header::ORIGIN).cloned();
    // The one origin check (`routing::Origins`), as for routes.
    let cors_ok = origin
        .as_ref()
        .is_some_and(|o| cfg.endpoints.cors_origins.allows(o.as_bytes()));
    let preflight =
        parts.method == Method::OPTIONS && parts.headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut resp = if preflight {
        let mut r = crate::http::empty(if cors_ok {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::FORBIDDEN
        });
        if cors_ok {
            let h = r.headers_mut();
            h.insert(
                http::header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            h.insert(
                http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type"),
            );
            h.insert(http::header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        r
    } else {
        dispatch(ctx, ep, parts, body).await.unwrap_or_else(rescue)
    };
    if let (true, Some(o)) = (cors_ok, origin) {
        let h = resp.headers_mut();
        h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(http::header::VARY, HeaderValue::from_static("origin"));
        h.insert(
            http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("www-authenticate"),
        );
    }
    resp
}

async fn dispatch(
    ctx: &Ctx<'_>,
    ep: Endpoint,
    parts: http::request::Parts,
    body: &mut ClientBody,
) -> Result<Resp, IssueError> {
    match ep {
        Endpoint::ApiKeyExchange => exchange::api_key_exchange(ctx, parts, body).await,
        Endpoint::OAuthToken => oauth::token(ctx, parts, body).await,
        Endpoint::Me => me::me(ctx, &parts).await,
        Endpoint::Jwks => me::jwks(ctx, &parts),
        Endpoint::Metadata => me::metadata(ctx, &parts),
        Endpoint::Introspect => oauth::introspect(ctx, parts, body).await,
        Endpoint::Revoke => oauth::revoke(ctx, parts, body).await,
        Endpoint::Clients => clients::collection(ctx, parts, body).await,
        Endpoint::Client(id) => clients::item(ctx, &parts, &id).await,
        Endpoint::NamedToken => named::create(ctx, &parts).await,
        Endpoint::NamedTokens => named::list(ctx, &parts).await,
        Endpoint::NamedTokenItem(id) => named::item(ctx, &parts, &id).await,
        Endpoint::GeneratorToken => named::generator(ctx, &parts).await,
    }
}

/// What every endpoint handler gets: narrow handles on the replica's
/// state, built by the server per request.
pub struct Ctx<'a> {
    /// Verifies bearer tokens; holds the signing keys and the revocation set.
    pub verifier: &'a Verifier,
    pub store: &'a Arc<Store>,
    /// The failure throttle.
    pub issuer: &'a Issuer,
    /// The verified-secret caches.
    pub secrets: &'a Secrets,
    pub cfg: &'a Config,
    /// The client the failure throttle counts: the connection's client,
    /// or behind a trusted proxy the one its `X-Forwarded-For` names.
    pub client: IpAddr,
}

impl Ctx<'_> {
    fn ip(&self) -> IpAddr {
        self.client
    }

    /// A bearer JWT of ours or a trusted issuer, verified through the cache
    /// and the revocation set.
    ///
    /// A token that was sent and fails counts toward the failure throttle,
    /// as every other credential on these endpoints does; an address over
    /// it is refused before its token is looked at.
    async fn bearer_token(&self, parts: &http::request::Parts) -> Result<Arc<crate::auth::Verified>, IssueError> {
        self.issuer.check_blocked(self.ip())?;
        let tok = crate::auth::extract::bearer(&parts.headers)
            .map_err(|_| self.failed(IssueError::InvalidToken("malformed Authorization header")))?
            .ok_or(IssueError::TokenMissing)?;
        self.verifier.verify(tok).await.map_err(|e| {
            self.failed(match e {
                crate::auth::AuthError::Invalid(r) => IssueError::InvalidToken(r.description()),
                crate::auth::AuthError::ApiKeyAsToken { exchange } => IssueError::ApiKeyAsToken { exchange },
                _ => IssueError::InvalidToken("the token is not valid"),
            })
        })
    }

    /// Count a failed authentication of this client (429 past the quota).
    fn failed(&self, e: IssueError) -> IssueError {
        self.issuer.record_failure(self.ip(), e)
    }

    /// A verified token of a user carrying the manage scope (login tokens).
    async fn login_user(
        &self,
        parts: &http::request::Parts,
    ) -> Result<(Arc<crate::auth::Verified>, String), IssueError> {
        // Without a token these endpoints keep answering `invalid_token`
        // (only `/me` answers as a proxied route does).
        let v = self.bearer_token(parts).await.map_err(|e| match e {
            IssueError::TokenMissing => IssueError::InvalidToken("a bearer token is required"),
            e => e,
        })?;
        if !v.own || !v.has_scope(MANAGE_SCOPE) {
            return Err(IssueError::InsufficientScope(
                "this endpoint needs a login token (scope clients:manage)",
            ));
        }
        let uid = v
            .uid()
            .ok_or(IssueError::InsufficientScope("the token does not name a user"))?
            .to_owned();
        Ok((v, uid))
    }

    /// Look up an API key by its plain text, through the secret cache.
    async fn api_key(&self, plaintext: &str) -> Result<Option<Arc<CachedKey>>, IssueError> {
        Ok(self.secrets.api_key(self.store, plaintext).await?)
    }

    /// Record use of a key at most once a minute (not on every exchange).
    fn touch(&self, k: &CachedKey, now: i64) {
        k.touch(self.store, now);
    }

    async fn generator(&self, plaintext: &str) -> Result<Option<Arc<GeneratorToken>>, IssueError> {
        Ok(self.secrets.generator(self.store, plaintext).await?)
    }

    /// Sign with the active signing key.
    fn sign(&self, claims: &TokenClaims<'_>) -> Result<String, IssueError> {
        Ok(claims.sign(&self.verifier.keys())?)
    }

    /// A credential action run by `actor` in this replica (its revocation
    /// set and secret caches updated at once).
    fn op<'s>(&'s self, actor: &'s str) -> Op<'s> {
        let local = Local {
            revocations: &self.verifier.revocations,
            secrets: self.secrets,
            verifier: self.verifier,
        };
        Op::on(self.store, self.cfg, local, actor)
    }

    fn require(&self, parts: &http::request::Parts, m: &[Method]) -> Result<(), IssueError> {
        if m.contains(&parts.method) {
            Ok(())
        } else {
            Err(IssueError::MethodNotAllowed {
                allow: m.iter().map(Method::as_str).collect::<Vec<_>>().join(", "),
            })
        }
    }

    /// Public URL of an endpoint path (issuer + path).
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.cfg.tokens.issuer.trim_end_matches('/'), path)
    }
}

/// Why [`grant`] refused a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beyond {
    /// Not one of the credential's own scopes.
    Credential,
    /// One of the credential's, but beyond its principal's scope ceiling
    /// (set or lowered by the operator, possibly after the credential was made).
    Ceiling,
}

/// The scopes of a token derived from a credential with `credential`
/// scopes whose principal's ceiling is `ceiling`: the `requested` ones,
/// each of which must be the credential's and within the ceiling; or, when
/// none are requested, the credential's scopes within the ceiling (a
/// lowered ceiling narrows what older credentials give). Refused with the
/// first offending scope when a requested scope is beyond either, or when
/// nothing of a credential with scopes is left within the ceiling.
pub fn grant<'a>(
    requested: Option<&'a str>,
    credential: &'a [String],
    ceiling: &[String],
) -> Result<Vec<&'a str>, (Beyond, &'a str)> {
    let in_ceiling = |s: &str| ceiling.iter().any(|c| c == s);
    match requested {
        Some(r) => {
            let granted = subset(r, within(credential)).map_err(|bad| (Beyond::Credential, bad))?;
            match granted.iter().find(|s| !in_ceiling(s)) {
                Some(bad) => Err((Beyond::Ceiling, bad)),
                None => Ok(granted),
            }
        }
        None => {
            let granted: Vec<&str> = credential
                .iter()
                .map(String::as_str)
                .filter(|s| in_ceiling(s))
                .collect();
            match credential.first() {
                Some(first) if granted.is_empty() => Err((Beyond::Ceiling, first.as_str())),
                _ => Ok(granted),
            }
        }
    }
}

/// RFC 3339 UTC (`2025-12-29T15:30:00Z`).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_pairs_decode_strictly() {
        let p = |s: &str| form_pairs(s.as_bytes());
        assert_eq!(
            p("a=1&b=x+y%20z&&c&d=%E5%90%8D").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), String::new()),
                ("d".into(), "名".into())
            ]
        );
        assert_eq!(p("k=%ZZ=").unwrap(), vec![("k".into(), "%ZZ=".into())]);
        assert!(p("name=%FF").is_err());
        assert!(p("%C3=1").is_err());
        assert!(p("").unwrap().is_empty());
    }

    #[test]
    fn pairs_and_json_members_are_capped() {
        let q = |n: usize| (0..n).map(|i| format!("p{i}=v")).collect::<Vec<_>>().join("&");
        assert_eq!(form_pairs(q(MAX_PARAMS).as_bytes()).unwrap().len(), MAX_PARAMS);
        assert!(form_pairs(q(MAX_PARAMS + 1).as_bytes()).is_err());
        // The named-token query goes through the same parser.
        let named = format!("name=t&validTime=1&action=read_only&resourceType=all&{}", q(61));
        assert!(named::parse_query(Some(&named)).is_err());
        let json = |n: usize| {
            let m: serde_json::Map<String, serde_json::Value> = (0..n).map(|i| (format!("m{i}"), i.into())).collect();
            serde_json::to_vec(&m).unwrap()
        };
        assert_eq!(parse_object(&json(MAX_PARAMS)).unwrap().len(), MAX_PARAMS);
        let e = parse_object(&json(MAX_PARAMS + 1)).unwrap_err();
        assert!(e.to_string().contains("members"), "{e}");
        // A repeated key is still named as such, not as too many members.
        let e = parse_object(br#"{"a":1,"a":2}"#).unwrap_err();
        assert!(e.to_string().contains("unique"), "{e}");
    }

    #[test]
    fn grants_stay_within_credential_and_ceiling() {
        let cred = vec!["a".to_string(), "b".to_string()];
        let ceiling = vec!["a".to_string(), "c".to_string()];
        assert_eq!(grant(None, &cred, &ceiling).unwrap(), vec!["a"]);
        assert_eq!(grant(Some("a"), &cred, &ceiling).unwrap(), vec!["a"]);
        assert_eq!(grant(Some("a b"), &cred, &ceiling).unwrap_err(), (Beyond::Ceiling, "b"));
        assert_eq!(
            grant(Some("c"), &cred, &ceiling).unwrap_err(),
            (Beyond::Credential, "c")
        );
        assert_eq!(grant(None, &cred, &[]).unwrap_err(), (Beyond::Ceiling, "a"));
        assert!(grant(None, &[], &ceiling).unwrap().is_empty());
    }

    proptest::proptest! {
        /// Whatever is asked, a grant is within both the credential and the ceiling.
        #[test]
        fn grant_never_escalates(
            req in proptest::option::of(proptest::collection::vec("[a-d]", 0..5)),
            cred in proptest::collection::vec("[a-d]", 0..4),
            ceiling in proptest::collection::vec("[a-d]", 0..4),
        ) {
            let r = req.as_ref().map(|v| v.join(" "));
            if let Ok(g) = grant(r.as_deref(), &cred, &ceiling) {
                for s in g {
                    proptest::prop_assert!(cred.iter().any(|c| c == s) && ceiling.iter().any(|c| c == s));
                }
            }
        }
    }
}
