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
use bytes::Bytes;
use http::{HeaderValue, Method};
use jsonwebtoken::{Algorithm, Validation};
use moka::sync::Cache;
use serde::Deserialize;

use crate::clock::now_unix;
use crate::config::Config;
use crate::grants::{Dimension, Grant, GrantClaim};
use crate::metrics::GrantOutcome;
use crate::routing::{IssuerSet, LimitKey, Policy, TileRefusal, TileRoute};
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token where the route needs one: 401 without an `error` attribute.
    #[error("a bearer token is required")]
    Missing,
    /// 401 `invalid_token`.
    #[error("{}", .0.description())]
    Invalid(Reason),
    /// 401 `invalid_token`: an API key sent where a token belongs (never
    /// verified, never echoed); `exchange` is the exchange endpoint's path.
    #[error("this is an API key, not a token; exchange it at POST {exchange}")]
    ApiKeyAsToken { exchange: Arc<str> },
    /// 403 `insufficient_scope`: `missing` are the route's scopes the token
    /// lacks, `required` all of the route's (space-separated).
    #[error("the token lacks the {} {missing} this route requires", scope_word(.missing))]
    InsufficientScope { missing: Box<str>, required: Box<str> },
    /// 403 `insufficient_scope`: read-only token or route, other method.
    #[error("read-only access allows GET, HEAD and OPTIONS only")]
    ReadOnly,
    /// 403 `origin_not_allowed`: on a route with `bind_origin`, the
    /// request's `Origin` (or `Referer`) is not one the token allows, or
    /// it has neither and the route refuses that.
    #[error("the token may not be used from this origin")]
    OriginNotAllowed,
}

/// Values of the identity headers of one request, made from a
/// [`Verified`] by [`Verified::identity`]: slices of its text (no copy, no
/// allocation).
#[derive(Debug, Clone)]
pub struct IdentityValues {
    pub subject: HeaderValue,
    pub org: Option<HeaderValue>,
    pub scopes: HeaderValue,
    pub uid: Option<HeaderValue>,
    /// `self`, or the name of the external issuer that vouched.
    pub issuer: HeaderValue,
}

/// A token's strings, in the order they sit end to end in [`Verified`]'s
/// text. The first three are always there; the others may be absent.
#[derive(Debug, Clone, Copy)]
enum Field {
    Sub,
    Scope,
    TokenType,
    OrgId,
    Uid,
    Username,
    Jti,
    Cid,
}

const FIELDS: usize = 8;

/// A verified token: what the rest of the request path knows of it.
///
/// For an external issuer's token (`own == false`) only `sub` (namespaced
/// `<issuer name>|<sub>`), `scope` (what the issuer may grant), `exp` and
/// `iat` come from the token; `org_id`, `uid`, `username`, `jti`, `cid` are
/// `None`, `read_only` is false and `token_type` is `external`, whatever
/// the token claims.
///
/// The cache keeps one per token, so it is small: the token's strings sit
/// end to end in one buffer (`text`, by [`Field`]), of which the identity
/// header values are slices; 144 bytes beside it (a test holds it there).
pub struct Verified {
    text: Bytes,
    /// Where each field but the last ends in `text` (the last ends with it).
    ends: [u32; FIELDS - 1],
    /// Which fields are present, one bit per [`Field`].
    present: u8,
    pub read_only: bool,
    /// Signed by the gateway itself.
    pub own: bool,
    /// How long the verdict may be cached, in milliseconds (capped at
    /// `u32::MAX`, 49 days: a longer-lived token is verified again then).
    cache_ms: u32,
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub issuer: Arc<str>,
    /// [`IssuerSet::SELF`] or the external issuer's id (routes check it).
    pub issuer_id: u64,
    source: Source,
}

/// A gateway token's tile grant and allowed origins.
struct OwnLimits {
    /// `None`: any tile.
    grant: Option<Grant>,
    /// `None`: any origin.
    origins: Option<Box<[Box<str>]>>,
}

/// Who vouched for a [`Verified`], and what only that kind carries (one
/// field, so the verdict stays small).
enum Source {
    /// The gateway's own token, with what limits it beyond scopes (`None`:
    /// nothing), parsed once, when verified.
    Own(Option<Box<OwnLimits>>),
    /// The external issuer and its epoch when this verdict was made: a
    /// cached verdict whose issuer moved on is verified again.
    External(Arc<issuers::IssuerKeys>, u64),
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("sub", &self.sub())
            .field("org_id", &self.org_id())
            .field("uid", &self.uid())
            .field("username", &self.username())
            .field("scope", &self.scope())
            .field("token_type", &self.token_type())
            .field("jti", &self.jti())
            .field("cid", &self.cid())
            .field("read_only", &self.read_only)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("issuer", &self.issuer)
            .field("own", &self.own)
            .field("issuer_id", &self.issuer_id)
            .field("cache_for", &self.cache_for())
            .field("grant", &self.grant().map(|g| g.to_claim()))
            .finish_non_exhaustive()
    }
}

/// Builds a [`Verified`]'s text, field by field in [`Field`] order.
struct Text {
    buf: Vec<u8>,
    ends: [u32; FIELDS],
    present: u8,
    next: usize,
}

impl Text {
    fn new(capacity: usize) -> Text {
        Text {
            buf: Vec::with_capacity(capacity),
            ends: [0; FIELDS],
            present: 0,
            next: 0,
        }
    }

    /// Add the next field (`None`: absent); `header`: it becomes an
    /// identity header value, so it must be a valid one.
    fn push(&mut self, f: Field, value: Option<&str>, header: bool) -> Result<(), Reason> {
        debug_assert_eq!(f as usize, self.next, "fields in order");
        if let Some(v) = value {
            if header && HeaderValue::from_str(v).is_err() {
                return Err(Reason::Malformed);
            }
            self.buf.extend_from_slice(v.as_bytes());
            self.present |= 1 << f as u8;
        }
        self.ends[self.next] = u32::try_from(self.buf.len()).map_err(|_| Reason::TooLarge)?;
        self.next += 1;
        Ok(())
    }

    /// The buffer (in its shared form already: one allocation now, so no
    /// request pays it when it first slices a header value), the ends, and
    /// the present bits.
    fn finish(self) -> (Bytes, [u32; FIELDS - 1], u8) {
        debug_assert_eq!(self.next, FIELDS, "every field pushed");
        let text = Bytes::from(self.buf.into_boxed_slice());
        drop(text.clone());
        let mut ends = [0; FIELDS - 1];
        ends.copy_from_slice(&self.ends[..FIELDS - 1]);
        (text, ends, self.present)
    }
}

impl Verified {
    #[inline]
    fn range(&self, f: Field) -> std::ops::Range<usize> {
        let i = f as usize;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        let end = self.ends.get(i).map_or(self.text.len(), |e| *e as usize);
        start..end
    }
    #[inline]
    fn bytes(&self, f: Field) -> &[u8] {
        &self.text[self.range(f)]
    }
    #[inline]
    fn str(&self, f: Field) -> &str {
        // Pushed as `&str`s and cut where they end: always UTF-8.
        std::str::from_utf8(self.bytes(f)).unwrap_or_default()
    }
    #[inline]
    fn optional(&self, f: Field) -> Option<&str> {
        (self.present & (1 << f as u8) != 0).then(|| self.str(f))
    }
    pub fn sub(&self) -> &str {
        self.str(Field::Sub)
    }
    /// The granted scopes, space-separated.
    pub fn scope(&self) -> &str {
        self.str(Field::Scope)
    }
    pub fn token_type(&self) -> &str {
        self.str(Field::TokenType)
    }
    pub fn org_id(&self) -> Option<&str> {
        self.optional(Field::OrgId)
    }
    pub fn uid(&self) -> Option<&str> {
        self.optional(Field::Uid)
    }
    pub fn username(&self) -> Option<&str> {
        self.optional(Field::Username)
    }
    pub fn jti(&self) -> Option<&str> {
        self.optional(Field::Jti)
    }
    /// Id of the credential the token was derived from.
    pub fn cid(&self) -> Option<&str> {
        self.optional(Field::Cid)
    }
    /// The token's tile grant; `None` when it has none (unlimited).
    #[inline]
    pub fn grant(&self) -> Option<&Grant> {
        match &self.source {
            Source::Own(Some(l)) => l.grant.as_ref(),
            _ => None,
        }
    }
    /// The origins the token may be used from; `None` when it names none
    /// (any origin).
    #[inline]
    pub fn origins(&self) -> Option<&[Box<str>]> {
        match &self.source {
            Source::Own(Some(l)) => l.origins.as_deref(),
            _ => None,
        }
    }
    fn cache_for(&self) -> Duration {
        Duration::from_millis(u64::from(self.cache_ms))
    }
    #[inline]
    pub fn has_scope(&self, s: &str) -> bool {
        self.bytes(Field::Scope)
            .split(|b| *b == b' ')
            .any(|x| x == s.as_bytes())
    }
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope().split(' ').filter(|s| !s.is_empty())
    }
    /// Whether the token or its credential is revoked. The ids are read
    /// only when something is revoked at all.
    #[inline]
    fn revoked(&self, revocations: &Revocations) -> bool {
        revocations.is_revoked_by(|| (self.jti(), self.cid()))
    }
    fn header(&self, f: Field) -> HeaderValue {
        // Checked as a header value when verified (`Text::push`).
        HeaderValue::from_maybe_shared(self.text.slice(self.range(f))).unwrap_or(HeaderValue::from_static(""))
    }
    fn optional_header(&self, f: Field) -> Option<HeaderValue> {
        (self.present & (1 << f as u8) != 0).then(|| self.header(f))
    }
    /// The identity header values for a request carrying this token.
    pub fn identity(&self) -> IdentityValues {
        match &self.source {
            Source::Own(_) => IdentityValues {
                subject: self.header(Field::Sub),
                org: self.optional_header(Field::OrgId),
                scopes: self.header(Field::Scope),
                uid: self.optional_header(Field::Uid),
                issuer: HeaderValue::from_static(crate::config::SELF_ISSUER),
            },
            Source::External(issuer, _) => IdentityValues {
                subject: self.header(Field::Sub),
                org: issuer.org.clone(),
                scopes: self.header(Field::Scope),
                uid: None,
                issuer: issuer.header.clone(),
            },
        }
    }
    /// Who `rate_limit_per_subject` counts this token against. External
    /// issuers' tokens never carry `cid` or `uid`; their subject is
    /// namespaced.
    pub fn limit_key(&self) -> LimitKey<'_> {
        match (self.own, self.cid(), self.uid()) {
            (true, Some(cid), _) => LimitKey::Credential(cid),
            (true, None, Some(uid)) => LimitKey::Principal(uid),
            _ => LimitKey::Subject(self.sub()),
        }
    }
    /// `self` or the external issuer's configured name.
    pub fn issuer_name(&self) -> &str {
        match &self.source {
            Source::Own(_) => crate::config::SELF_ISSUER,
            Source::External(issuer, _) => &issuer.name,
        }
    }
    /// Whether a cached verdict still stands: always for the gateway's own
    /// tokens (key retirement clears the cache), for an external token
    /// while its issuer's epoch is unchanged.
    #[inline]
    fn current(&self) -> bool {
        match &self.source {
            Source::Own(_) => true,
            Source::External(issuer, epoch) => issuer.epoch() == *epoch,
        }
    }
}

/// Milliseconds of a cache duration, capped (see `Verified::cache_ms`).
fn cache_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
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
        Err(insufficient(scopes, v))
    }
}

/// `scope`, or `scopes` for a space-separated list.
fn scope_word(list: &str) -> &'static str {
    if list.contains(' ') {
        "scopes"
    } else {
        "scope"
    }
}

/// The refusal naming the route's scopes `v` lacks (off the hot path).
#[cold]
fn insufficient(scopes: &[Box<str>], v: &Verified) -> AuthError {
    let missing: Vec<&str> = scopes.iter().map(|s| &**s).filter(|s| !v.has_scope(s)).collect();
    let required: Vec<&str> = scopes.iter().map(|s| &**s).collect();
    AuthError::InsufficientScope {
        missing: missing.join(" ").into(),
        required: required.join(" ").into(),
    }
}

/// Check a verified token's tile grant on a route that names tiles
/// (`tiles`: the route's tile parameters; `path`: the normalised path it
/// matched). A token without a grant, or a route without tiles, passes
/// without reading the path. Counted by outcome.
#[inline]
pub fn check_tiles(tiles: Option<&TileRoute>, v: &Verified, path: &str) -> Result<(), TileRefusal> {
    let (Some(route), Some(grant)) = (tiles, v.grant()) else {
        return Ok(());
    };
    let (tile, layer) = route.tile_of(path).inspect_err(|_| {
        crate::metrics::tile_grant(GrantOutcome::NoTile);
    })?;
    // A path some backend may read differently (escapes, `;` parameters,
    // case, `..` behind a `;`) must name the same tile in every reading:
    // the route table only made sure each reading takes the same route,
    // and a catch-all after the coordinates could otherwise carry a
    // servlet backend to another tile than the one checked here.
    if crate::routing::ambiguous(path) && !same_tile_in_every_reading(route, path, tile, layer) {
        crate::metrics::tile_grant(GrantOutcome::NoTile);
        return Err(TileRefusal::NoSuchTile);
    }
    match grant.check(tile, layer) {
        Ok(()) => {
            crate::metrics::tile_grant(GrantOutcome::Inside);
            Ok(())
        }
        Err(dimension) => {
            crate::metrics::tile_grant(match dimension {
                Dimension::Zoom => GrantOutcome::Zoom,
                Dimension::Area => GrantOutcome::Area,
                Dimension::Layer => GrantOutcome::Layer,
            });
            Err(TileRefusal::OutOfGrant {
                mode: route.out_of_grant,
                dimension,
            })
        }
    }
}

/// Whether every backend reading of `path` (`routing::readings`) names
/// `tile` of `layer` (the layer compared without case for a backend that
/// ignores case). Any reading that names no tile, or another, is a no.
#[cold]
fn same_tile_in_every_reading(route: &TileRoute, path: &str, tile: crate::grants::Tile, layer: Option<&str>) -> bool {
    let Ok(readings) = crate::routing::readings(path) else {
        return false;
    };
    readings.iter().all(|r| match route.tile_of(&r.path) {
        Ok((t, l)) => {
            t == tile
                && match (l, layer) {
                    (None, None) => true,
                    (Some(a), Some(b)) if r.folded => a.eq_ignore_ascii_case(b),
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                }
        }
        Err(_) => false,
    })
}

/// Check a verified token's allowed origins on a route with
/// `bind_origin`: the request's `Origin`, or without one the origin of its
/// `Referer` (what `<img>` tile requests send), must match one of them; a
/// request with neither passes only where the route allows it. A token
/// that names no origins, or a route that does not bind them, passes.
#[inline]
pub fn check_origin(
    bind_origin: bool,
    allow_missing: bool,
    v: &Verified,
    headers: &http::HeaderMap,
) -> Result<(), AuthError> {
    let (true, Some(allowed)) = (bind_origin, v.origins()) else {
        return Ok(());
    };
    let origin = match headers.get(http::header::ORIGIN) {
        Some(o) => Some(o.to_str().map_err(|_| AuthError::OriginNotAllowed)?),
        None => match headers.get(http::header::REFERER) {
            Some(r) => Some(
                r.to_str()
                    .ok()
                    .and_then(crate::routing::referer_origin)
                    .ok_or(AuthError::OriginNotAllowed)?,
            ),
            None => None,
        },
    };
    match origin {
        None if allow_missing => Ok(()),
        Some(o) if allowed.iter().any(|p| crate::routing::origin_matches(p, o)) => Ok(()),
        _ => Err(AuthError::OriginNotAllowed),
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
    /// The tile grant (`crate::grants`); a malformed one refuses the token.
    tiles: Option<GrantClaim>,
    /// Allowed web origins (patterns, `crate::routing::origin_matches`).
    origins: Option<Vec<String>>,
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

/// Cache key hasher: the key is already a keyed hash ([`token_key`]), so
/// its first 8 bytes are spread well; the mixing below is kept as a second,
/// independent line of defence: unkeyed, cheap grinding of
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

pub type Key = [u8; 16];

struct TokenExpiry;

impl moka::Expiry<Key, Arc<Verified>> for TokenExpiry {
    fn expire_after_create(&self, _: &Key, v: &Arc<Verified>, _: std::time::Instant) -> Option<Duration> {
        Some(v.cache_for())
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
    /// The API-key exchange endpoint's path, named when an API key is
    /// sent as a token.
    api_key_exchange: ArcSwap<Arc<str>>,
    store: Option<Arc<Store>>,
    grace_secs: i64,
    last_key_reload: AtomicI64,
    /// Signalled by a reload so the JWKS refresh loop fetches new issuers
    /// at once.
    pub(crate) issuers_changed: tokio::sync::Notify,
}

/// This process's random key for [`token_key`], drawn once.
static TOKEN_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// The key under which the verification caches (and the credential
/// secret caches) hold a token: the first 128 bits of a BLAKE3 of the
/// whole token keyed with this process's random key.
///
/// Keyed BLAKE3 is a pseudo-random function: without the key (it never
/// leaves the process) nobody can make a token that lands on another
/// token's entry, and even unkeyed BLAKE3 truncated to 128 bits has no
/// known way to find a second token with a given token's key short of
/// 2^128 tries. It replaced a SHA-256 that was the largest single cost of
/// a cache-hit request (docs/performance.md); the key is process-local,
/// never stored or compared across replicas.
#[inline]
pub fn token_key(token: &str) -> Key {
    let key = TOKEN_KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut k).is_err() {
            // Never seen; std's per-process random SipHash keys instead.
            let s = std::collections::hash_map::RandomState::new();
            for (i, c) in k.chunks_mut(8).enumerate() {
                c.copy_from_slice(&s.hash_one(i).to_le_bytes());
            }
        }
        k
    });
    let h = blake3::keyed_hash(key, token.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    k
}

#[cfg(test)]
#[test]
fn the_cache_key_is_a_keyed_hash_of_the_whole_token() {
    let t = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
    assert_eq!(token_key(t), token_key(t), "stable within the process");
    // Every byte counts, the last one included.
    assert_ne!(token_key(t), token_key("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lm"));
    assert_ne!(token_key(t), token_key(&t[..t.len() - 1]));
    // Keyed: not what anyone can compute from the token alone.
    let unkeyed = blake3::hash(t.as_bytes());
    assert_ne!(&token_key(t)[..], &unkeyed.as_bytes()[..16]);
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
            api_key_exchange: ArcSwap::from_pointee(Arc::from(cfg.endpoints.api_key_exchange.as_str())),
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
        self.api_key_exchange
            .store(Arc::new(Arc::from(cfg.endpoints.api_key_exchange.as_str())));
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
                if v.revoked(&self.revocations) {
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
        // An API key is no JWT (a JWT starts with `eyJ`): say what it is,
        // rather than that it is malformed. Never cached (no verdict to keep).
        if token.starts_with(crate::store::API_KEY_PREFIX) {
            return Err(AuthError::ApiKeyAsToken {
                exchange: Arc::clone(&self.api_key_exchange.load()),
            });
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
        if v.revoked(&self.revocations) {
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
                if v.cache_ms != 0 && !v.revoked(&self.revocations) {
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
        let grant = match &c.tiles {
            None => None,
            Some(claim) => {
                let g = Grant::from_claim(claim).map_err(|_| Reason::Malformed)?;
                (!g.is_unlimited()).then_some(g)
            }
        };
        let origins = match &c.origins {
            None => None,
            Some(list) if list.iter().all(|o| crate::routing::valid_origin_pattern(o)) => {
                Some(list.iter().map(|o| Box::from(o.as_str())).collect::<Box<[Box<str>]>>())
            }
            Some(_) => return Err(Reason::Malformed),
        };
        let limits = (grant.is_some() || origins.is_some()).then(|| Box::new(OwnLimits { grant, origins }));
        let scope = c.scope.unwrap_or_default();
        let token_type = c.token_type.as_deref().unwrap_or("access");
        let opt = [&c.org_id, &c.uid, &c.username, &c.jti, &c.cid];
        let mut t = Text::new(
            c.sub.len()
                + scope.len()
                + token_type.len()
                + opt.iter().map(|o| o.as_ref().map_or(0, String::len)).sum::<usize>(),
        );
        t.push(Field::Sub, Some(&c.sub), true)?;
        t.push(Field::Scope, Some(&scope), true)?;
        t.push(Field::TokenType, Some(token_type), false)?;
        t.push(Field::OrgId, c.org_id.as_deref(), true)?;
        t.push(Field::Uid, c.uid.as_deref(), true)?;
        t.push(Field::Username, c.username.as_deref(), false)?;
        t.push(Field::Jti, c.jti.as_deref(), false)?;
        t.push(Field::Cid, c.cid.as_deref(), false)?;
        let (text, ends, present) = t.finish();
        Ok(Verified {
            text,
            ends,
            present,
            read_only: c.ro,
            own,
            cache_ms: cache_ms(cache_for),
            exp: c.exp,
            iat: c.iat,
            issuer,
            issuer_id: IssuerSet::SELF,
            source: Source::Own(limits),
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
    let mut t = Text::new(sub.len() + scope.len() + "external".len());
    t.push(Field::Sub, Some(&sub), true)?;
    t.push(Field::Scope, Some(&scope), true)?;
    t.push(Field::TokenType, Some("external"), false)?;
    for f in [Field::OrgId, Field::Uid, Field::Username, Field::Jti, Field::Cid] {
        t.push(f, None, false)?;
    }
    let (text, ends, present) = t.finish();
    Ok(Verified {
        text,
        ends,
        present,
        read_only: false,
        own: false,
        cache_ms: cache_ms(cache_for),
        exp: Some(c.exp),
        iat: c.iat,
        issuer: issuer.issuer.clone(),
        issuer_id: issuer.id,
        source: Source::External(issuer, epoch),
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

#[cfg(test)]
#[test]
fn a_verified_token_is_small() {
    // What a cached verdict costs beside moka's own bookkeeping: the struct
    // (inside its `Arc`), and its one text buffer with the shared header
    // `Bytes` gives it. Before, the struct alone was 424 bytes, with up to
    // twelve allocations beside it (each string twice, as a `Box<str>` and
    // as an identity header value).
    assert!(
        std::mem::size_of::<Verified>() <= 144,
        "{}",
        std::mem::size_of::<Verified>()
    );
    let claims = Claims {
        sub: "tok_short_1".into(),
        iss: "http://127.0.0.1:8080".into(),
        exp: Some(now_unix() + 3600),
        iat: Some(now_unix()),
        jti: Some("jti-1".into()),
        org_id: Some("org_1".into()),
        scope: Some("tiles:read datasets:stream".into()),
        token_type: Some("api_token".into()),
        uid: Some("sa_1".into()),
        username: None,
        cid: Some("key_1".into()),
        ro: false,
        tiles: None,
        origins: None,
    };
    let cfg = crate::config::from_str(
        "[scopes]\n\"tiles:read\" = \"r\"\n[[upstreams]]\nname = \"t\"\nbackends = [\"http://127.0.0.1:1\"]\n",
    )
    .unwrap();
    let verifier = Verifier::new(&cfg, KeySet::default(), None, Arc::new(Revocations::new()));
    let v = verifier.finish(claims, verifier.issuer.clone(), true).unwrap();
    let heap = v.text.len();
    eprintln!(
        "a cached verdict: {} bytes (in its Arc: {}), text {heap} bytes in one allocation",
        std::mem::size_of::<Verified>(),
        std::mem::size_of::<Verified>() + 16
    );
    assert_eq!(
        heap,
        "tok_short_1tiles:read datasets:streamapi_tokenorg_1sa_1jti-1key_1".len()
    );
    // Every field reads back, and the identity header values are slices.
    assert_eq!(v.sub(), "tok_short_1");
    assert_eq!(v.scope(), "tiles:read datasets:stream");
    assert!(v.has_scope("datasets:stream") && v.has_scope("tiles:read") && !v.has_scope("tiles"));
    assert_eq!(v.token_type(), "api_token");
    assert_eq!((v.org_id(), v.uid(), v.username()), (Some("org_1"), Some("sa_1"), None));
    assert_eq!((v.jti(), v.cid()), (Some("jti-1"), Some("key_1")));
    let id = v.identity();
    assert_eq!(id.subject, "tok_short_1");
    assert_eq!(id.scopes, "tiles:read datasets:stream");
    assert_eq!(id.org.as_ref().map(|h| h.as_bytes()), Some(&b"org_1"[..]));
    assert_eq!(id.uid.as_ref().map(|h| h.as_bytes()), Some(&b"sa_1"[..]));
    assert_eq!(id.issuer, crate::config::SELF_ISSUER);
    // An absent field in the middle, an empty one, and a present empty one.
    let claims = Claims {
        sub: "s".into(),
        iss: "i".into(),
        exp: Some(now_unix() + 60),
        iat: None,
        jti: Some(String::new()),
        org_id: None,
        scope: None,
        token_type: None,
        uid: None,
        username: Some("ü-name".into()),
        cid: None,
        ro: true,
        tiles: None,
        origins: None,
    };
    let v = verifier.finish(claims, verifier.issuer.clone(), true).unwrap();
    assert_eq!((v.sub(), v.scope(), v.token_type()), ("s", "", "access"));
    assert_eq!((v.org_id(), v.uid(), v.username()), (None, None, Some("ü-name")));
    assert_eq!((v.jti(), v.cid()), (Some(""), None));
    assert!(v.read_only && v.identity().org.is_none() && v.scopes().next().is_none());
    assert!(!v.has_scope("tiles:read"));
    assert!(v.grant().is_none());
    // A tile grant is parsed once, when verified; a malformed one refuses
    // the token; an unlimited one is kept as none.
    let with = |tiles: &str| Claims {
        sub: "s".into(),
        iss: "i".into(),
        exp: Some(now_unix() + 60),
        iat: None,
        jti: None,
        org_id: None,
        scope: None,
        token_type: None,
        uid: None,
        username: None,
        cid: None,
        ro: false,
        tiles: Some(serde_json::from_str(tiles).unwrap()),
        origins: None,
    };
    let v = verifier
        .finish(
            with(r#"{"maxzoom":14,"layers":["basemap"]}"#),
            verifier.issuer.clone(),
            true,
        )
        .unwrap();
    assert_eq!(v.grant().unwrap().zoom_range(), (0, 14));
    assert!(matches!(
        verifier.finish(with(r#"{"minzoom":9,"maxzoom":3}"#), verifier.issuer.clone(), true),
        Err(Reason::Malformed)
    ));
    assert!(verifier
        .finish(with("{}"), verifier.issuer.clone(), true)
        .unwrap()
        .grant()
        .is_none());
}
