//! The verify side: token extraction and query scrubbing, the [`Verifier`]
//! (jsonwebtoken against the gateway's own keys and external issuers), its
//! moka cache keyed by a SHA-256 of the token, the revocation set, and the
//! route rule (scopes, read-only). Errors are [`AuthError`]; `http.rs` maps
//! them to RFC 6750 responses.

pub mod extract;
mod flight;
pub mod issuers;
pub mod keys;
pub mod revocation;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderValue, Method};
use jsonwebtoken::{Algorithm, Validation};
use moka::sync::Cache;
use serde::Deserialize;

use crate::clock::now_unix;
use crate::config::Config;
use crate::routing::{IssuerSet, Policy};
use crate::store::Store;
use issuers::ExternalIssuers;
use keys::KeySet;
use revocation::Revocations;

/// Why a token was refused (the `error_description` a client sees).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Malformed,
    TooLarge,
    Ambiguous,
    BadSignature,
    Algorithm,
    UnknownKey,
    UnknownIssuer,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    MissingClaim,
    Revoked,
    CriticalHeader,
    /// An external token lives longer than its issuer's `max_lifetime`.
    LifetimeTooLong,
    /// The route does not accept tokens of this issuer.
    NotAccepted,
}

impl Reason {
    pub fn description(self) -> &'static str {
        match self {
            Reason::Malformed => "the token is malformed",
            Reason::TooLarge => "the token is too large",
            Reason::Ambiguous => "more than one token in the request",
            Reason::BadSignature => "the token signature is invalid",
            Reason::Algorithm => "the token algorithm is not accepted",
            Reason::UnknownKey => "the token was signed by an unknown key",
            Reason::UnknownIssuer => "the token issuer is not trusted",
            Reason::Expired => "the token has expired",
            Reason::NotYetValid => "the token is not valid yet",
            Reason::Issuer => "the token issuer is wrong",
            Reason::Audience => "the token audience is wrong",
            Reason::MissingClaim => "the token lacks a required claim",
            Reason::Revoked => "the token has been revoked",
            Reason::CriticalHeader => "the token has critical header extensions",
            Reason::LifetimeTooLong => "the token lives longer than its issuer may grant",
            // Says nothing of which issuers the route accepts.
            Reason::NotAccepted => "the token is not accepted here",
        }
    }

    /// Whether a rejection for this reason may be remembered in the negative
    /// cache: not for reasons that time or a key refresh can change.
    fn cacheable(self) -> bool {
        !matches!(
            self,
            Reason::NotYetValid | Reason::UnknownKey | Reason::UnknownIssuer | Reason::NotAccepted
        )
    }
}

/// The verify side's error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token where the route needs one: 401 without an `error` attribute.
    #[error("a bearer token is required")]
    Missing,
    /// 401 `invalid_token`.
    #[error("{}", .0.description())]
    Invalid(Reason),
    /// 403 `insufficient_scope`.
    #[error("the token lacks a scope this route requires")]
    InsufficientScope,
    /// 403 `insufficient_scope`: read-only token or route, other method.
    #[error("read-only access allows GET, HEAD and OPTIONS only")]
    ReadOnly,
}

/// Values of the identity headers, computed once per verification.
#[derive(Debug, Clone)]
pub struct IdentityValues {
    pub subject: HeaderValue,
    pub org: Option<HeaderValue>,
    pub scopes: HeaderValue,
    pub uid: Option<HeaderValue>,
    /// `self`, or the name of the external issuer that vouched.
    pub issuer: HeaderValue,
}

/// A verified token: what the rest of the request path knows of it.
///
/// For an external issuer's token (`own == false`) only `sub` (namespaced
/// `<issuer name>|<sub>`), `scope` (what the issuer may grant), `exp` and
/// `iat` come from the token; `org_id`, `uid`, `username`, `jti`, `cid` are
/// `None`, `read_only` is false and `token_type` is `external`, whatever
/// the token claims.
#[derive(Debug)]
pub struct Verified {
    pub sub: Box<str>,
    pub org_id: Option<Box<str>>,
    pub uid: Option<Box<str>>,
    pub username: Option<Box<str>>,
    pub scope: Box<str>,
    pub token_type: Box<str>,
    pub jti: Option<Box<str>>,
    /// Id of the credential the token was derived from.
    pub cid: Option<Box<str>>,
    pub read_only: bool,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub issuer: Arc<str>,
    /// Signed by the gateway itself.
    pub own: bool,
    /// [`IssuerSet::SELF`] or the external issuer's id (routes check it).
    pub issuer_id: u64,
    pub identity: IdentityValues,
    cache_for: Duration,
    /// The external issuer and its epoch when this verdict was made: a
    /// cached verdict whose issuer moved on is verified again.
    source: Option<(Arc<issuers::IssuerKeys>, u64)>,
}

impl Verified {
    #[inline]
    pub fn has_scope(&self, s: &str) -> bool {
        self.scope.split(' ').any(|x| x == s)
    }
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
    /// `self` or the external issuer's configured name.
    pub fn issuer_name(&self) -> &str {
        match &self.source {
            None => crate::config::SELF_ISSUER,
            Some((issuer, _)) => &issuer.name,
        }
    }
    /// Whether a cached verdict still stands: always for the gateway's own
    /// tokens (key retirement clears the cache), for an external token
    /// while its issuer's epoch is unchanged.
    #[inline]
    fn current(&self) -> bool {
        match &self.source {
            None => true,
            Some((issuer, epoch)) => issuer.epoch() == *epoch,
        }
    }
}

/// Check the route's rule against a verified token.
#[inline]
pub fn check_rule(policy: &Policy, method: &Method, v: &Verified) -> Result<(), AuthError> {
    let Policy::Token {
        scopes,
        read_only,
        issuers,
    } = policy
    else {
        return Ok(());
    };
    // First: a route that does not accept the issuer learns nothing else of
    // the token (not its scopes, not read-only).
    if !issuers.contains(v.issuer_id) {
        return Err(AuthError::Invalid(Reason::NotAccepted));
    }
    if (v.read_only || *read_only) && !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Err(AuthError::ReadOnly);
    }
    if scopes.iter().all(|s| v.has_scope(s)) {
        Ok(())
    } else {
        Err(AuthError::InsufficientScope)
    }
}

/// Claims the gateway reads. Types are strict: a string `exp` or a
/// non-string `iss` fails to parse and the token is refused.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// Parsed for its type only (jsonwebtoken checks the value): a
    /// non-string `iss` fails here.
    #[allow(dead_code)]
    iss: String,
    exp: Option<i64>,
    iat: Option<i64>,
    jti: Option<String>,
    org_id: Option<String>,
    scope: Option<String>,
    token_type: Option<String>,
    uid: Option<String>,
    username: Option<String>,
    cid: Option<String>,
    #[serde(default)]
    ro: bool,
}

/// Claims read from an external issuer's token: nothing else is parsed, so
/// no claim of tilegate's own (`org_id`, `uid`, `username`, `token_type`,
/// `jti`, `cid`, `ro`) can reach the identity. Types are strict as above.
#[derive(Debug, Deserialize)]
struct ForeignClaims {
    sub: String,
    #[allow(dead_code)]
    iss: String,
    exp: i64,
    iat: Option<i64>,
    scope: Option<ScopeClaim>,
    scp: Option<ScopeClaim>,
}

/// `scope` or `scp`: a space-separated string (RFC 8693 §4.2) or an array
/// of strings (as some identity providers send `scp`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn values(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match self {
            ScopeClaim::Text(s) => Box::new(s.split(' ').filter(|s| !s.is_empty())),
            ScopeClaim::List(l) => Box::new(l.iter().map(String::as_str)),
        }
    }
}

/// Cache key hasher: the key is already a SHA-256, so its first 8 bytes are
/// spread well, but the token is the attacker's: unkeyed, cheap grinding of
/// tokens whose prefixes share the bits the cache indexes by would cluster
/// its entries (the negative cache takes any garbage). So the prefix is
/// mixed with two random per-process keys (`(prefix ^ k0) * k1`, the
/// 128-bit product folded to 64, as foldhash does): one multiplication,
/// and which prefixes collide depends on keys the attacker never sees.
#[derive(Clone)]
pub struct PrefixHasher {
    acc: u64,
    mul: u64,
}

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        let p = u128::from(self.acc) * u128::from(self.mul);
        (p as u64) ^ ((p >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.acc ^= u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

/// Builds [`PrefixHasher`]s with this process's random keys.
#[derive(Clone)]
pub struct BuildPrefixHasher {
    k0: u64,
    k1: u64,
}

impl Default for BuildPrefixHasher {
    fn default() -> Self {
        let mut b = [0u8; 16];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            // Never seen; std's per-process random SipHash keys instead.
            let s = std::collections::hash_map::RandomState::new();
            b[..8].copy_from_slice(&s.hash_one(0u8).to_le_bytes());
            b[8..].copy_from_slice(&s.hash_one(1u8).to_le_bytes());
        }
        let (k0, k1) = b.split_at(8);
        BuildPrefixHasher {
            k0: u64::from_le_bytes(k0.try_into().unwrap_or_default()),
            // Odd, so the multiplication loses no bit.
            k1: u64::from_le_bytes(k1.try_into().unwrap_or_default()) | 1,
        }
    }
}

impl BuildHasher for BuildPrefixHasher {
    type Hasher = PrefixHasher;
    fn build_hasher(&self) -> PrefixHasher {
        PrefixHasher {
            acc: self.k0,
            mul: self.k1,
        }
    }
}

#[cfg(test)]
#[test]
fn the_cache_hasher_is_keyed_so_ground_prefixes_do_not_cluster() {
    // 4,096 keys whose first 8 bytes agree in their low 32 bits: unkeyed,
    // all of them shared the low 32 bits of the hash.
    let build = BuildPrefixHasher::default();
    let lows: std::collections::BTreeSet<u64> = (0u64..4096)
        .map(|i| {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&((i << 32) | 0xdead_beef).to_le_bytes());
            build.hash_one(key) & 0xffff
        })
        .collect();
    assert!(lows.len() > 3000, "{} distinct low 16 bits", lows.len());
    // Keyed per process: another key set orders the same key elsewhere.
    let key = [7u8; 32];
    assert_eq!(build.hash_one(key), build.hash_one(key));
    let other = BuildPrefixHasher::default();
    assert_ne!(build.hash_one(key), other.hash_one(key));
}

type Key = [u8; 32];

struct TokenExpiry;

impl moka::Expiry<Key, Arc<Verified>> for TokenExpiry {
    fn expire_after_create(&self, _: &Key, v: &Arc<Verified>, _: std::time::Instant) -> Option<Duration> {
        Some(v.cache_for)
    }
}

/// How long an entry for a token that never expires (a named token with
/// `validTime=-1`) stays cached; revocation is checked on every hit anyway.
const NO_EXP_CACHE: Duration = Duration::from_secs(300);

/// Verifies tokens, through the cache.
pub struct Verifier {
    keys: ArcSwap<KeySet>,
    external: ArcSwap<ExternalIssuers>,
    issuer: Arc<str>,
    audience: Arc<str>,
    leeway: u64,
    max_token_bytes: usize,
    cache: Cache<Key, Arc<Verified>, BuildPrefixHasher>,
    negative: Cache<Key, Reason, BuildPrefixHasher>,
    /// Misses being verified, so concurrent ones of one token wait for one
    /// verification.
    flights: flight::Flights,
    /// Verifications made by [`Verifier::verify`] (its misses that were
    /// not answered by another caller's verification).
    verifications: AtomicU64,
    pub revocations: Arc<Revocations>,
    store: Option<Arc<Store>>,
    grace_secs: i64,
    last_key_reload: AtomicI64,
    /// Signalled by a reload so the JWKS refresh loop fetches new issuers
    /// at once.
    pub(crate) issuers_changed: tokio::sync::Notify,
}

#[inline]
pub fn token_key(token: &str) -> Key {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

impl Verifier {
    pub fn new(cfg: &Config, keys: KeySet, store: Option<Arc<Store>>, revocations: Arc<Revocations>) -> Verifier {
        Verifier {
            keys: ArcSwap::from_pointee(keys),
            external: ArcSwap::from_pointee(ExternalIssuers::from_config(&cfg.issuers, cfg.tokens.leeway)),
            issuer: cfg.tokens.issuer.clone(),
            audience: cfg.tokens.audience.clone(),
            leeway: cfg.tokens.leeway.as_secs(),
            max_token_bytes: cfg.tokens.max_token_bytes,
            cache: Cache::builder()
                .max_capacity(cfg.cache.max_entries)
                .expire_after(TokenExpiry)
                .build_with_hasher(BuildPrefixHasher::default()),
            negative: Cache::builder()
                .max_capacity(cfg.cache.negative_max_entries)
                .time_to_live(cfg.cache.negative_ttl.max(Duration::from_millis(1)))
                .build_with_hasher(BuildPrefixHasher::default()),
            flights: flight::Flights::default(),
            verifications: AtomicU64::new(0),
            revocations,
            store,
            grace_secs: cfg.tokens.rotation_grace.as_secs() as i64,
            last_key_reload: AtomicI64::new(0),
            issuers_changed: tokio::sync::Notify::new(),
        }
    }

    /// Apply a reloaded config's issuers (cache settings need a restart).
    /// The old issuers retire, so a verdict made with their keys or rules
    /// is never served again, even one stored while the reload ran.
    pub fn reconfigure(&self, cfg: &Config) {
        let old = self
            .external
            .swap(Arc::new(ExternalIssuers::from_config(&cfg.issuers, cfg.tokens.leeway)));
        for i in &old.list {
            i.retire();
        }
        self.cache.invalidate_all();
        self.negative.invalidate_all();
        self.issuers_changed.notify_one();
    }

    pub fn external(&self) -> arc_swap::Guard<Arc<ExternalIssuers>> {
        self.external.load()
    }

    pub fn keys(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    /// Swap in a new key set. When a key left the set (past its rotation
    /// grace), cached verdicts of tokens it signed must go too: the cache is
    /// cleared (rare: once per key retirement).
    pub fn set_keys(&self, keys: KeySet) {
        let old = self.keys.swap(Arc::new(keys));
        let new = self.keys.load();
        if old.by_kid.keys().any(|k| !new.by_kid.contains_key(k)) {
            self.cache.invalidate_all();
        }
    }

    /// Re-read the signing keys from the store (after a rotation here or on
    /// another replica).
    pub async fn reload_keys(&self) -> Result<(), crate::store::StoreError> {
        let Some(store) = &self.store else { return Ok(()) };
        let recs = store.signing_keys().await?;
        match KeySet::from_records(&recs, now_unix(), self.grace_secs) {
            Ok(set) => self.set_keys(set),
            Err(e) => tracing::error!(error = %e, "signing keys unreadable; keeping the loaded ones"),
        }
        Ok(())
    }

    /// Entries in the verification cache (settles moka's pending work
    /// first; called at scrape time, not per request).
    /// Re-read the signing keys every `every` until shutdown, so a rotation
    /// made elsewhere (CLI, another replica) is signed with and published
    /// here, and keys past their grace leave the JWKS.
    pub async fn key_refresh_loop(self: Arc<Self>, every: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(200)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.reload_keys().await {
                        tracing::warn!(error = %e, "signing key refresh failed; keeping the loaded keys");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    pub fn cache_entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// The cache's answer for a token: `Ok(Some)` verified and not revoked,
    /// `Err` refused (revoked, or remembered as bad), `Ok(None)` a miss.
    /// The hit path is a SHA-256, a lock-free lookup and a revocation check.
    #[inline]
    pub fn cached(&self, token: &str) -> Result<Option<Arc<Verified>>, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::Invalid(Reason::TooLarge));
        }
        self.cached_by_key(&token_key(token))
    }

    #[inline]
    fn cached_by_key(&self, key: &Key) -> Result<Option<Arc<Verified>>, AuthError> {
        if let Some(v) = self.cache.get(key) {
            if v.current() {
                crate::metrics::cache_hit();
                if self.revocations.is_revoked(v.jti.as_deref(), v.cid.as_deref()) {
                    return Err(AuthError::Invalid(Reason::Revoked));
                }
                return Ok(Some(v));
            }
            // Its issuer dropped a key or was replaced since: verify again.
            self.cache.invalidate(key);
        }
        if let Some(reason) = self.negative.get(key) {
            crate::metrics::cache_negative_hit();
            return Err(AuthError::Invalid(reason));
        }
        Ok(None)
    }

    /// Verify a token, through the cache.
    ///
    /// On a miss, concurrent calls with one token share one verification
    /// (see [`flight`]). Cache metrics: the call that verifies counts a
    /// miss; one that waited for it and takes its verdict counts a hit (or
    /// a negative hit for a refusal), as it would have a moment later from
    /// the cache. So `miss` counts verifications made.
    pub async fn verify(&self, token: &str) -> Result<Arc<Verified>, AuthError> {
        if token.len() > self.max_token_bytes {
            return Err(AuthError::Invalid(Reason::TooLarge));
        }
        // One hash for the lookup and, on a miss, the flight and the insert.
        let key = token_key(token);
        if let Some(v) = self.cached_by_key(&key)? {
            return Ok(v);
        }
        let seat = self.flights.join(key);
        let mut verified_here = false;
        let verdict = seat
            .cell()
            .get_or_init(|| {
                verified_here = true;
                self.first_verdict(&key, token)
            })
            .await
            .clone();
        drop(seat);
        let v = match verdict {
            Ok(v) if verified_here => v,
            Err(reason) if verified_here => return Err(AuthError::Invalid(reason)),
            Ok(v) if v.current() => {
                crate::metrics::cache_hit();
                v
            }
            // Its issuer moved on while it was verified: verify again.
            Ok(_) => self.verify_and_store(&key, token).await.map_err(AuthError::Invalid)?,
            Err(reason) => {
                crate::metrics::cache_negative_hit();
                return Err(AuthError::Invalid(reason));
            }
        };
        // Every caller checks revocation, as a hit does.
        if self.revocations.is_revoked(v.jti.as_deref(), v.cid.as_deref()) {
            return Err(AuthError::Invalid(Reason::Revoked));
        }
        Ok(v)
    }

    /// The verdict of a flight's first caller: the stored one if a flight
    /// of this token ended (and stored it) between this caller's lookup
    /// and its joining, else a verification.
    async fn first_verdict(&self, key: &Key, token: &str) -> flight::Verdict {
        if let Some(v) = self.cache.get(key).filter(|v| v.current()) {
            crate::metrics::cache_hit();
            return Ok(v);
        }
        if let Some(reason) = self.negative.get(key) {
            crate::metrics::cache_negative_hit();
            return Err(reason);
        }
        self.verify_and_store(key, token).await
    }

    /// Verify, and store the verdict: a verified token unless it is not to
    /// be cached (`cache_for == 0`) or is revoked (each caller refuses it),
    /// a refusal in the negative cache if its reason may be remembered.
    async fn verify_and_store(&self, key: &Key, token: &str) -> flight::Verdict {
        crate::metrics::cache_miss();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match self.verify_uncached(token).await {
            Ok(v) => {
                let v = Arc::new(v);
                if !v.cache_for.is_zero() && !self.revocations.is_revoked(v.jti.as_deref(), v.cid.as_deref()) {
                    self.cache.insert(*key, v.clone());
                }
                Ok(v)
            }
            Err(reason) => {
                if reason.cacheable() {
                    self.negative.insert(*key, reason);
                }
                Err(reason)
            }
        }
    }

    /// Verifications [`Verifier::verify`] has made: its misses, less those
    /// answered by a verification of the same token in flight.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Verify without the cache (and without the revocation check).
    pub async fn verify_uncached(&self, token: &str) -> Result<Verified, Reason> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Reason::Malformed)?;
        if header.crit.is_some() {
            return Err(Reason::CriticalHeader);
        }
        // The key is chosen by `kid` among keys we already trust; `jku`,
        // `x5u`, `jwk` and `x5c` headers are never used to find one.
        let own_key = header
            .kid
            .as_deref()
            .and_then(|k| self.keys.load().by_kid.get(k).cloned());
        if let Some(k) = own_key {
            return self.decode_own(token, &k.decoding, k.alg);
        }
        let iss = peek_issuer(token).ok_or(Reason::Malformed)?;
        if iss == *self.issuer {
            // Maybe a key rotated on another replica: re-read the store, at
            // most once a second.
            let now = now_unix();
            if self.last_key_reload.swap(now, Ordering::Relaxed) != now {
                let _ = self.reload_keys().await;
                if let Some(k) = header
                    .kid
                    .as_deref()
                    .and_then(|k| self.keys.load().by_kid.get(k).cloned())
                {
                    return self.decode_own(token, &k.decoding, k.alg);
                }
            }
            return Err(Reason::UnknownKey);
        }
        let issuer = self.external.load().find(&iss).cloned().ok_or(Reason::UnknownIssuer)?;
        // The epoch before the key: a key dropped from here on makes this
        // verdict stale.
        let epoch = issuer.epoch();
        let (key, validation) = issuer.key_for(header.kid.as_deref(), header.alg).await?;
        let data = jsonwebtoken::decode::<ForeignClaims>(token, &key, &validation).map_err(map_jwt_error)?;
        finish_foreign(data.claims, issuer, epoch)
    }

    fn decode_own(&self, token: &str, key: &jsonwebtoken::DecodingKey, alg: Algorithm) -> Result<Verified, Reason> {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.set_required_spec_claims(&["iss", "aud", "sub"]);
        v.set_issuer(&[&*self.issuer]);
        v.set_audience(&[&*self.audience]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, key, &v).map_err(map_jwt_error)?;
        self.finish(data.claims, self.issuer.clone(), true)
    }

    fn finish(&self, c: Claims, issuer: Arc<str>, own: bool) -> Result<Verified, Reason> {
        let now = now_unix();
        let cache_for = match c.exp {
            Some(exp) if exp > now => Duration::from_secs((exp - now) as u64),
            Some(_) => Duration::ZERO,
            // Only the gateway's own named tokens may lack `exp`.
            None if own && c.token_type.as_deref() == Some("named") && c.jti.is_some() => NO_EXP_CACHE,
            None => return Err(Reason::MissingClaim),
        };
        let scope = c.scope.unwrap_or_default();
        let hv = |s: &str| HeaderValue::from_str(s).map_err(|_| Reason::Malformed);
        let identity = IdentityValues {
            subject: hv(&c.sub)?,
            org: c.org_id.as_deref().map(hv).transpose()?,
            scopes: hv(&scope)?,
            uid: c.uid.as_deref().map(hv).transpose()?,
            issuer: HeaderValue::from_static(crate::config::SELF_ISSUER),
        };
        Ok(Verified {
            sub: c.sub.into(),
            org_id: c.org_id.map(Into::into),
            uid: c.uid.map(Into::into),
            username: c.username.map(Into::into),
            scope: scope.into(),
            token_type: c.token_type.unwrap_or_else(|| "access".into()).into(),
            jti: c.jti.map(Into::into),
            cid: c.cid.map(Into::into),
            read_only: c.ro,
            exp: c.exp,
            iat: c.iat,
            issuer,
            own,
            issuer_id: IssuerSet::SELF,
            identity,
            cache_for,
            source: None,
        })
    }
}

/// The verdict on an external issuer's token, whose signature, `iss`,
/// `aud`, `exp` and `nbf` were checked: the issuer's rules decide the rest.
fn finish_foreign(c: ForeignClaims, issuer: Arc<issuers::IssuerKeys>, epoch: u64) -> Result<Verified, Reason> {
    let now = now_unix();
    if c.sub.is_empty() {
        return Err(Reason::MissingClaim);
    }
    if let Some(max) = issuer.max_lifetime {
        let iat = c.iat.ok_or(Reason::MissingClaim)?;
        // A future `iat` would let `exp - iat` hide a longer life.
        if iat > now.saturating_add(issuer.leeway as i64) {
            return Err(Reason::NotYetValid);
        }
        if c.exp.saturating_sub(iat) > max {
            return Err(Reason::LifetimeTooLong);
        }
    }
    let cache_for = if c.exp > now {
        Duration::from_secs((c.exp - now) as u64).min(issuer.cache_ttl)
    } else {
        Duration::ZERO
    };
    let scope = issuer.grant(
        c.scope
            .iter()
            .flat_map(ScopeClaim::values)
            .chain(c.scp.iter().flat_map(ScopeClaim::values)),
    );
    let sub = format!("{}|{}", issuer.name, c.sub);
    let hv = |s: &str| HeaderValue::from_str(s).map_err(|_| Reason::Malformed);
    let identity = IdentityValues {
        subject: hv(&sub)?,
        org: issuer.org.clone(),
        scopes: hv(&scope)?,
        uid: None,
        issuer: issuer.header.clone(),
    };
    Ok(Verified {
        sub: sub.into(),
        org_id: None,
        uid: None,
        username: None,
        scope: scope.into(),
        token_type: "external".into(),
        jti: None,
        cid: None,
        read_only: false,
        exp: Some(c.exp),
        iat: c.iat,
        issuer: issuer.issuer.clone(),
        own: false,
        issuer_id: issuer.id,
        identity,
        cache_for,
        source: Some((issuer, epoch)),
    })
}

/// Read `iss` from the payload without trusting it (to pick the issuer
/// whose keys then verify the token).
fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    jsonwebtoken::dangerous::insecure_decode::<Iss>(token)
        .ok()
        .map(|d| d.claims.iss)
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> Reason {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => Reason::BadSignature,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::InvalidKeyFormat => Reason::Algorithm,
        K::ExpiredSignature => Reason::Expired,
        K::ImmatureSignature => Reason::NotYetValid,
        K::InvalidIssuer => Reason::Issuer,
        K::InvalidAudience => Reason::Audience,
        K::MissingRequiredClaim(_) => Reason::MissingClaim,
        _ => Reason::Malformed,
    }
}
