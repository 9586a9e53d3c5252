//! Routing: the route table compiled once per config load (host, path
//! template or prefix, methods), path normalisation, and per-route CORS.
//! Matching runs on the normalised path; the most specific route wins.

mod cache;
mod inline;
mod origin;
mod path;
mod request;
mod tiles;

use std::sync::Arc;

use http::header::HeaderValue;
use http::Method;

pub use cache::make_private;
pub use inline::{Endpoint, EndpointKind, InlineTable};
pub use origin::{origin_matches, referer_origin, valid_origin_pattern};
pub use path::{ambiguous, normalize, readings, PathError, Reading};
pub use request::{host_of, one_host, preflight_method, rewrite_target, TargetError};
pub use tiles::{OutOfGrant, TileRefusal, TileRoute, TileScheme};

/// What a route demands of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No token needed.
    Public,
    /// A valid token from one of `issuers`, carrying every scope listed;
    /// `read_only` routes pass only GET/HEAD/OPTIONS.
    Token {
        scopes: Box<[Box<str>]>,
        read_only: bool,
        issuers: IssuerSet,
    },
}

/// The issuers a route accepts, as issuer ids (see [`IssuerSet::id_of`]):
/// checking a verified token against it is a compare of a few integers, no
/// string work. Ids are derived from the issuer's configured name, so they
/// mean the same before and after a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSet(Box<[u64]>);

impl IssuerSet {
    /// The id of the gateway's own tokens (`"self"`).
    pub const SELF: u64 = 0;

    /// Only the gateway's own tokens: the default of every route.
    pub fn self_only() -> IssuerSet {
        IssuerSet(Box::new([Self::SELF]))
    }

    pub fn new(ids: impl IntoIterator<Item = u64>) -> IssuerSet {
        let mut v: Vec<u64> = Vec::new();
        for id in ids {
            if !v.contains(&id) {
                v.push(id);
            }
        }
        IssuerSet(v.into_boxed_slice())
    }

    /// The id of an `[[issuers]]` name: FNV-1a 64 of the name, never
    /// [`Self::SELF`]. Configuration refuses two names with the same id.
    pub fn id_of(name: &str) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        if h == Self::SELF {
            1
        } else {
            h
        }
    }

    #[inline]
    pub fn contains(&self, id: u64) -> bool {
        self.0.contains(&id)
    }

    pub fn ids(&self) -> &[u64] {
        &self.0
    }
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Template(String),
    Prefix(String),
}

/// A set of HTTP methods as a bit mask (standard methods only; a route
/// without `methods` accepts any method, extensions included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSet(u16);

impl MethodSet {
    pub const ANY: MethodSet = MethodSet(u16::MAX);
    pub const EMPTY: MethodSet = MethodSet(0);
    const ALL: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];

    fn bit(m: &Method) -> u16 {
        match *m {
            Method::GET => 1,
            Method::HEAD => 1 << 1,
            Method::POST => 1 << 2,
            Method::PUT => 1 << 3,
            Method::DELETE => 1 << 4,
            Method::PATCH => 1 << 5,
            Method::OPTIONS => 1 << 6,
            Method::CONNECT => 1 << 7,
            Method::TRACE => 1 << 8,
            _ => 1 << 15,
        }
    }
    pub fn insert(&mut self, m: &Method) {
        self.0 |= Self::bit(m);
        if *m == Method::GET {
            // HEAD is always allowed where GET is (RFC 9110 §9.3.2).
            self.0 |= Self::bit(&Method::HEAD);
        }
    }
    #[inline]
    pub fn contains(&self, m: &Method) -> bool {
        self.0 & Self::bit(m) != 0
    }
    /// `GET, HEAD, …` for `Allow` and CORS headers.
    pub fn header_value(&self) -> String {
        let names: Vec<&str> = Self::ALL
            .iter()
            .filter(|m| self.contains(m))
            .map(|m| m.as_str())
            .collect();
        names.join(", ")
    }
}

/// The browser origins a CORS rule allows: the one origin check of the
/// gateway, for routes (`[[routes]] cors.origins`) and the inline token
/// endpoints (`endpoints.cors_origins`) alike.
///
/// Configured origins are normalised when the config is loaded (a trailing
/// `/` removed, scheme and host lower-cased: browsers send them so); the
/// browser's `Origin` is then compared byte for byte. `"*"` allows every
/// origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    any: bool,
    list: Box<[Box<str>]>,
}

impl Origins {
    pub fn new<S: AsRef<str>>(configured: &[S]) -> Origins {
        Origins {
            any: configured.iter().any(|o| o.as_ref() == "*"),
            list: configured
                .iter()
                .map(AsRef::as_ref)
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase().into())
                .collect(),
        }
    }

    /// `"*"` was configured.
    pub fn any(&self) -> bool {
        self.any
    }

    /// No origin is allowed (nothing configured).
    pub fn is_empty(&self) -> bool {
        !self.any && self.list.is_empty()
    }

    /// Whether a browser's `Origin` header value is allowed.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.any || self.list.iter().any(|o| o.as_bytes() == origin)
    }
}

/// Per-route CORS, with header values computed at load (configuration
/// checks a route's `cors` table and builds this).
#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: Origins,
    pub allow_headers: HeaderValue,
    pub expose_headers: HeaderValue,
    pub max_age: HeaderValue,
    pub allow_credentials: bool,
}

impl Cors {
    /// Add the CORS response headers for an allowed `origin`.
    pub fn decorate(&self, h: &mut http::HeaderMap, origin: &HeaderValue) {
        use http::header::*;
        if !self.allows(origin.as_bytes()) {
            return;
        }
        if self.origins.any() {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        } else {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            h.append(VARY, HeaderValue::from_static("origin"));
        }
        if self.allow_credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, self.expose_headers.clone());
    }

    /// Whether `origin` may read responses of this route.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.origins.allows(origin)
    }
}

/// One route as configured and checked (configuration builds these): what
/// it matches, what it demands of a request and where it sends it. Plain
/// data; [`RouteTable::build`] compiles a list of them.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub name: Arc<str>,
    pub host: Option<Box<str>>,
    pub matcher: PathMatch,
    pub methods: MethodSet,
    /// Index into `Config::upstreams`.
    pub upstream: usize,
    pub policy: Policy,
    /// Query parameter names that may carry a token (removed before forwarding).
    pub token_query: Box<[Box<str>]>,
    /// Public route: a client's bearer token and token query parameters
    /// reach the upstream (default: removed, so tokens never reach
    /// upstream logs).
    pub forward_tokens: bool,
    /// Token route: WebSockets and streaming responses end when the token
    /// that opened them expires or is revoked (`proxy::stream_end`).
    pub end_streams_with_token: bool,
    pub strip_prefix: Option<Box<str>>,
    pub add_prefix: Option<Box<str>>,
    pub cors: Option<Cors>,
    pub rate_limit_per_subject: u32,
    /// The path parameters that name a tile: a token's tile grant is
    /// checked on this route (`None`: grants are ignored here).
    pub tiles: Option<Arc<TileRoute>>,
    /// Token routes: responses may be kept by shared caches as the
    /// upstream says (default: made `private`, docs/grants.md).
    pub shared_cache: bool,
    /// Check a token's allowed origins against `Origin` (or `Referer`).
    pub bind_origin: bool,
    /// With `bind_origin`: let a request with neither header through.
    pub allow_missing_origin: bool,
}

/// One compiled route of a [`RouteTable`]: its [`RouteSpec`] (its fields
/// read through the route), with the state the route keeps while it
/// serves.
#[derive(Debug, Clone)]
pub struct Route {
    spec: RouteSpec,
    /// The route's request counters (made once per route, not per request).
    pub stats: Arc<crate::metrics::RouteStats>,
    /// Per-subject limiter when `rate_limit_per_subject` > 0 (made with the
    /// table, so a reload resets it, like the rest of the route).
    pub limiter: Option<SubjectLimiter>,
}

impl Route {
    fn new(spec: RouteSpec) -> Route {
        Route {
            stats: crate::metrics::RouteStats::new(spec.name.clone()),
            limiter: SubjectLimiter::new(spec.rate_limit_per_subject),
            spec,
        }
    }

    pub fn spec(&self) -> &RouteSpec {
        &self.spec
    }
}

impl std::ops::Deref for Route {
    type Target = RouteSpec;

    fn deref(&self) -> &RouteSpec {
        &self.spec
    }
}

/// Requests per second per caller on one route (governor, keyed by a hash
/// of the [`LimitKey`] so the hot path allocates nothing).
#[derive(Clone)]
pub struct SubjectLimiter(Arc<governor::DefaultKeyedRateLimiter<u64>>, std::hash::RandomState);

impl std::fmt::Debug for SubjectLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectLimiter")
    }
}

/// Who `rate_limit_per_subject` counts a request against: what the token
/// was derived from, not the token's `sub` (an API-key exchange mints a
/// new `sub` for every token, so a `sub` key would give each fresh token
/// a quota of its own). `auth::Verified::limit_key` gives a token's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitKey<'a> {
    /// The credential the gateway derived the token from (`cid`: an API
    /// key, an OAuth client, an access-generator token): every token
    /// exchanged from one key shares its quota.
    Credential(&'a str),
    /// The principal (`uid`) of a gateway token that names no credential
    /// (a login token from the password grant).
    Principal(&'a str),
    /// The subject: a gateway token with neither (minted by the CLI), and
    /// every external issuer's token, under its namespaced subject
    /// (`<issuer>|<sub>`), which is stable per user of that issuer.
    Subject(&'a str),
}

impl SubjectLimiter {
    pub fn new(per_second: u32) -> Option<SubjectLimiter> {
        let n = std::num::NonZeroU32::new(per_second)?;
        Some(SubjectLimiter(
            Arc::new(governor::RateLimiter::keyed(governor::Quota::per_second(n))),
            std::hash::RandomState::new(),
        ))
    }

    /// `Err(seconds to wait)` when the caller is over its quota.
    pub fn check(&self, key: LimitKey<'_>) -> Result<(), u64> {
        use std::hash::BuildHasher;
        // The variant is hashed too: a credential id never shares a quota
        // with a subject that happens to spell the same.
        let key = self.1.hash_one(key);
        self.0.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
            wait.as_secs().max(1)
        })
    }

    /// Forget the callers whose quota has refilled, and give the memory
    /// back (the upkeep task calls this periodically).
    pub fn prune(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }

    /// Callers with a key in the map.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why no route answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMiss {
    NotFound,
    /// A route matched the path but not the method; carries its index.
    MethodNotAllowed(usize),
    /// Backends may read the path in ways that other routes (or none)
    /// match: refused rather than authorized under the wrong rule.
    Ambiguous,
}

/// Why a CORS preflight is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreflightRefusal {
    /// No route takes the method the browser announced for this path.
    #[error("no route for this preflight")]
    NoRoute,
    /// The route has no `cors` table.
    #[error("this route does not allow cross-origin requests")]
    RouteDisallows,
    /// The route's `cors` table does not list the origin.
    #[error("this origin is not allowed")]
    OriginDisallowed,
}

#[derive(Debug, Default)]
struct HostTable {
    templates: matchit::Router<Vec<usize>>,
    /// Longest first.
    prefixes: Vec<(Box<str>, Vec<usize>)>,
}

#[derive(Debug, Default)]
struct Tables {
    hosts: Vec<(Box<str>, HostTable)>,
    any_host: HostTable,
}

/// The route table: built once per config, read lock-free per request.
/// `folded` holds the same routes with ASCII-lower-cased patterns, for the
/// reading of a case-insensitive backend.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    exact: Tables,
    folded: Tables,
    /// Some route pattern has an upper-case letter, so even an all-lower
    /// path can route differently when case is ignored.
    upper: bool,
    /// The inline token endpoints: targets the gateway answers itself,
    /// ahead of every route (configuration refuses a route path that one
    /// of them would shadow).
    inline: InlineTable,
}

impl RouteTable {
    pub fn empty() -> RouteTable {
        RouteTable::default()
    }

    /// Compile `specs` into the lookup tables, and make each route's
    /// request counters and `rate_limit_per_subject` limiter: called where
    /// the runtime is built, once per load or reload.
    pub fn build(specs: &[RouteSpec]) -> Result<RouteTable, Vec<String>> {
        let (exact, folded) = Tables::compile(specs)?;
        let upper = specs.iter().any(|r| match &r.matcher {
            PathMatch::Template(p) | PathMatch::Prefix(p) => p.bytes().any(|b| b.is_ascii_uppercase()),
        });
        Ok(RouteTable {
            routes: specs.iter().cloned().map(Route::new).collect(),
            exact,
            folded,
            upper,
            inline: InlineTable::default(),
        })
    }

    /// The table with the inline token endpoints as targets.
    pub fn with_inline(mut self, inline: InlineTable) -> RouteTable {
        self.inline = inline;
        self
    }

    /// The inline token endpoint a normalised path names, for any host and
    /// method (one radix-tree lookup).
    #[inline]
    pub fn inline(&self, path: &str) -> Option<Endpoint> {
        self.inline.find(path)
    }

    /// What [`RouteTable::build`] would refuse in `specs` (patterns that
    /// conflict, as they are or with letter case ignored), without making
    /// any route state: for validation.
    pub fn check(specs: &[RouteSpec]) -> Result<(), Vec<String>> {
        Tables::compile(specs).map(drop)
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn get(&self, i: usize) -> &Route {
        &self.routes[i]
    }

    /// Find the route for a request. `host` is the request's host without
    /// port; `path` must already be normalised.
    #[inline]
    pub fn find(&self, host: Option<&str>, method: &Method, path: &str) -> Result<&Route, RouteMiss> {
        self.find_on(&self.exact, host, method, path)
    }

    /// Find the route for a canonical path (`normalize`) and check that
    /// every other reading of it by a backend (`path::readings`: decoded,
    /// `;` parameters stripped, case ignored, Windows names) takes the same
    /// route. A request whose readings disagree is `RouteMiss::Ambiguous`.
    /// The check costs one scan of the path unless the path has an escape,
    /// `;`, `:`, an upper-case letter or a segment ending in `.`.
    #[inline]
    pub fn resolve(&self, host: Option<&str>, method: &Method, canonical: &str) -> Result<&Route, RouteMiss> {
        let route = self.find(host, method, canonical)?;
        if !self.upper && !path::ambiguous(canonical) {
            return Ok(route);
        }
        self.check_readings(route, host, method, canonical)?;
        Ok(route)
    }

    /// Find the route as a case-insensitive backend would: `path` and every
    /// pattern compared in ASCII lower case.
    pub fn find_ignoring_case(&self, host: Option<&str>, method: &Method, path: &str) -> Result<&Route, RouteMiss> {
        self.find_on(&self.folded, host, method, &path.to_ascii_lowercase())
    }

    #[cold]
    fn check_readings(
        &self,
        route: &Route,
        host: Option<&str>,
        method: &Method,
        canonical: &str,
    ) -> Result<(), RouteMiss> {
        let readings = path::readings(canonical).map_err(|_| RouteMiss::Ambiguous)?;
        for r in readings {
            let other = if r.folded {
                self.find_ignoring_case(host, method, &r.path)
            } else {
                self.find(host, method, &r.path)
            };
            match other {
                Ok(o) if std::ptr::eq(o, route) => {}
                _ => return Err(RouteMiss::Ambiguous),
            }
        }
        Ok(())
    }

    fn find_on(&self, t: &Tables, host: Option<&str>, method: &Method, path: &str) -> Result<&Route, RouteMiss> {
        let mut miss = RouteMiss::NotFound;
        if let Some(h) = host {
            if let Some((_, table)) = t.hosts.iter().find(|(n, _)| n.eq_ignore_ascii_case(h)) {
                match self.find_in(table, method, path) {
                    Ok(r) => return Ok(r),
                    Err(m @ (RouteMiss::MethodNotAllowed(_) | RouteMiss::Ambiguous)) => miss = m,
                    Err(RouteMiss::NotFound) => {}
                }
            }
        }
        match self.find_in(&t.any_host, method, path) {
            Ok(r) => Ok(r),
            Err(RouteMiss::NotFound) => Err(miss),
            Err(m) => Err(if miss == RouteMiss::NotFound { m } else { miss }),
        }
    }

    /// Every method some route accepts for this host and path (for `Allow`).
    pub fn allowed(&self, host: Option<&str>, path: &str) -> MethodSet {
        let mut set = MethodSet::EMPTY;
        let mut add = |table: &HostTable| {
            if let Ok(m) = table.templates.at(path) {
                for &i in m.value {
                    set.0 |= self.routes[i].methods.0;
                }
            }
            for (prefix, idx) in &table.prefixes {
                if prefix_matches(prefix, path) {
                    for &i in idx {
                        set.0 |= self.routes[i].methods.0;
                    }
                }
            }
        };
        if let Some(h) = host {
            if let Some((_, table)) = self.exact.hosts.iter().find(|(n, _)| n.eq_ignore_ascii_case(h)) {
                add(table);
            }
        }
        add(&self.exact.any_host);
        set
    }

    fn find_in(&self, table: &HostTable, method: &Method, path: &str) -> Result<&Route, RouteMiss> {
        let mut miss = RouteMiss::NotFound;
        if let Ok(m) = table.templates.at(path) {
            for &i in m.value {
                if self.routes[i].methods.contains(method) {
                    return Ok(&self.routes[i]);
                }
                miss = RouteMiss::MethodNotAllowed(i);
            }
        }
        for (prefix, idx) in &table.prefixes {
            if prefix_matches(prefix, path) {
                for &i in idx {
                    if self.routes[i].methods.contains(method) {
                        return Ok(&self.routes[i]);
                    }
                    if miss == RouteMiss::NotFound {
                        miss = RouteMiss::MethodNotAllowed(i);
                    }
                }
            }
        }
        Err(miss)
    }
}

impl Tables {
    /// The exact and the case-folded tables, or every conflict.
    fn compile(routes: &[RouteSpec]) -> Result<(Tables, Tables), Vec<String>> {
        let mut errors = Vec::new();
        let exact = Tables::build(routes, |p| p.to_owned(), "", &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let folded = Tables::build(
            routes,
            |p| p.to_ascii_lowercase(),
            " when letter case is ignored",
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok((exact, folded))
    }

    /// Host tables for `routes`, with each pattern passed through `shape`
    /// (identity, or ASCII lower case for the folded tables).
    fn build(routes: &[RouteSpec], shape: impl Fn(&str) -> String, how: &str, errors: &mut Vec<String>) -> Tables {
        let mut t = Tables::default();
        let mut tpl_index: Vec<(Option<Box<str>>, String, Vec<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let table = match &r.host {
                None => &mut t.any_host,
                Some(h) => match t.hosts.iter().position(|(n, _)| n == h) {
                    Some(p) => &mut t.hosts[p].1,
                    None => {
                        t.hosts.push((h.clone(), HostTable::default()));
                        &mut t.hosts.last_mut().expect("just pushed").1
                    }
                },
            };
            match &r.matcher {
                PathMatch::Prefix(p) => {
                    let p = shape(p);
                    match table.prefixes.iter_mut().find(|(x, _)| x.as_ref() == p) {
                        Some((_, v)) => v.push(i),
                        None => table.prefixes.push((p.into(), vec![i])),
                    }
                }
                PathMatch::Template(tpl) => {
                    let tpl = shape(tpl);
                    if let Some((_, _, v)) = tpl_index.iter_mut().find(|(h, p, _)| *h == r.host && *p == tpl) {
                        v.push(i);
                    } else {
                        tpl_index.push((r.host.clone(), tpl, vec![i]));
                    }
                }
            }
        }
        for (host, tpl, idx) in tpl_index {
            let table = match &host {
                None => &mut t.any_host,
                Some(h) => &mut t.hosts.iter_mut().find(|(n, _)| n == h).expect("host added above").1,
            };
            if let Err(e) = table.templates.insert(tpl.clone(), idx.clone()) {
                errors.push(format!("{}.path: \"{tpl}\": {e}{how}", routes[idx[0]].name));
            }
        }
        sort_prefixes(&mut t.any_host);
        for (_, table) in t.hosts.iter_mut() {
            sort_prefixes(table);
        }
        t
    }
}

fn sort_prefixes(t: &mut HostTable) {
    t.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
}

/// `/tiles` matches `/tiles` and `/tiles/…`, not `/tilesecret`; `/tiles/`
/// matches everything under it.
#[inline]
fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_origins_are_normalised_and_the_browsers_compared_exactly() {
        let o = Origins::new(&["https://App.Example/", "http://localhost:8080"]);
        // A trailing `/` and upper case in the configuration: both the
        // routes' and the token endpoints' check once disagreed here.
        assert!(o.allows(b"https://app.example"));
        assert!(o.allows(b"http://localhost:8080"));
        // The browser's value is not normalised.
        assert!(!o.allows(b"https://app.example/"));
        assert!(!o.allows(b"https://APP.example"));
        assert!(!o.allows(b"https://app.example:443"));
        assert!(!o.is_empty() && !o.any());
        assert!(Origins::new(&["*"]).allows(b"https://any.example"));
        assert!(Origins::new::<&str>(&[]).is_empty());
    }

    #[test]
    fn subject_limiter_keys_are_separate_per_kind_and_pruned_once_refilled() {
        let l = SubjectLimiter::new(1).unwrap();
        assert!(l.check(LimitKey::Credential("k1")).is_ok());
        assert_eq!(l.check(LimitKey::Credential("k1")), Err(1));
        // Another credential, and a subject spelled like the credential.
        assert!(l.check(LimitKey::Credential("k2")).is_ok());
        assert!(l.check(LimitKey::Subject("k1")).is_ok());
        assert!(l.check(LimitKey::Principal("k1")).is_ok());
        assert_eq!(l.len(), 4);
        // Keys still within their window stay.
        l.prune();
        assert_eq!(l.len(), 4);
        // governor drops a key once its state is a full emission interval
        // older than a fresh one: two seconds after the last use here.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        l.prune();
        assert!(l.is_empty(), "refilled keys are forgotten");
        assert!(l.check(LimitKey::Credential("k1")).is_ok());
    }

    fn route(name: &str, m: PathMatch, methods: &[Method], host: Option<&str>) -> RouteSpec {
        let mut set = if methods.is_empty() {
            MethodSet::ANY
        } else {
            MethodSet::EMPTY
        };
        for x in methods {
            set.insert(x);
        }
        RouteSpec {
            name: name.into(),
            host: host.map(Into::into),
            matcher: m,
            methods: set,
            upstream: 0,
            policy: Policy::Public,
            token_query: Box::new([]),
            forward_tokens: false,
            end_streams_with_token: false,
            strip_prefix: None,
            add_prefix: None,
            cors: None,
            rate_limit_per_subject: 0,
            tiles: None,
            shared_cache: false,
            bind_origin: false,
            allow_missing_origin: false,
        }
    }

    fn table() -> RouteTable {
        RouteTable::build(&[
            route(
                "tiles",
                PathMatch::Template("/tiles/{z}/{x}/{y}.pbf".into()),
                &[Method::GET],
                None,
            ),
            route("tiles-any", PathMatch::Prefix("/tiles/".into()), &[Method::POST], None),
            route("public", PathMatch::Prefix("/public".into()), &[], None),
            route("root", PathMatch::Prefix("/".into()), &[Method::GET], None),
            route(
                "host",
                PathMatch::Prefix("/public".into()),
                &[],
                Some("maps.example.com"),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table();
        let name = |h, m, p| t.find(h, &m, p).map(|r| r.name.to_string());
        assert_eq!(name(None, Method::GET, "/tiles/1/2/3.pbf").unwrap(), "tiles");
        assert_eq!(name(None, Method::HEAD, "/tiles/1/2/3.pbf").unwrap(), "tiles");
        assert_eq!(name(None, Method::POST, "/tiles/1/2/3.pbf").unwrap(), "tiles-any");
        assert_eq!(name(None, Method::GET, "/tiles/1/2/3.png").unwrap(), "root");
        assert_eq!(name(None, Method::GET, "/public/x").unwrap(), "public");
        assert_eq!(name(None, Method::GET, "/publicity").unwrap(), "root");
        assert_eq!(
            name(Some("MAPS.example.com"), Method::GET, "/public/x").unwrap(),
            "host"
        );
        assert_eq!(name(Some("other"), Method::GET, "/public/x").unwrap(), "public");
        assert!(matches!(
            t.find(None, &Method::DELETE, "/x"),
            Err(RouteMiss::MethodNotAllowed(_))
        ));
        // Allow lists every method of every route on the path.
        assert_eq!(t.allowed(None, "/tiles/1/2/3.pbf").header_value(), "GET, HEAD, POST");
    }

    #[test]
    fn no_route_is_not_found() {
        let t = RouteTable::build(&[route("a", PathMatch::Prefix("/a".into()), &[], None)]).unwrap();
        assert_eq!(t.find(None, &Method::GET, "/b").unwrap_err(), RouteMiss::NotFound);
    }

    /// Nested prefixes under different rules, a template, a public
    /// catch-all, and one pattern with an upper-case letter.
    fn nested() -> RouteTable {
        RouteTable::build(&[
            route("x", PathMatch::Prefix("/x/".into()), &[], None),
            route("premium", PathMatch::Prefix("/x/premium/".into()), &[], None),
            route("deep", PathMatch::Prefix("/x/premium/deep".into()), &[], None),
            route("tile", PathMatch::Template("/t/{z}/{x}/{y}.pbf".into()), &[], None),
            route("upper", PathMatch::Prefix("/Maps/".into()), &[], None),
            route("root", PathMatch::Prefix("/".into()), &[], None),
        ])
        .unwrap()
    }

    #[test]
    fn readings_that_route_elsewhere_are_ambiguous() {
        let t = nested();
        let name = |p: &str| {
            let c = normalize(p).map_err(|_| "refused".to_string())?;
            t.resolve(None, &Method::GET, &c)
                .map(|r| r.name.to_string())
                .map_err(|m| format!("{m:?}"))
        };
        assert_eq!(name("/x/premium/a").unwrap(), "premium");
        assert_eq!(name("/x/%70remium/a").unwrap(), "premium");
        assert_eq!(name("/x/a/b").unwrap(), "x");
        assert_eq!(name("/x/%C3%A9/b").unwrap(), "x");
        assert_eq!(name("/x/a%3Bb/c").unwrap(), "x");
        for p in [
            "/x/Premium/a",
            "/x/premium;v=1/a",
            "/x/..;/x/premium/a",
            "/x/premium./a",
            "/x/premium%20/a",
            "/x/premium::$DATA/a",
            "/t/1/2/3.PBF",
            "/maps/a",
        ] {
            assert_eq!(name(p).unwrap_err(), "Ambiguous", "{p}");
        }
        assert_eq!(name("/Maps/a").unwrap(), "upper");
        assert_eq!(name("/x/%2570remium/a").unwrap_err(), "refused");
    }

    /// Spellings of paths under the nested routes: segments that tempt
    /// each backend model, with any character percent-encoded in either
    /// hex case.
    fn spelling() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let seg = prop_oneof![
            Just("x".to_string()),
            Just("premium".to_string()),
            Just("Premium".to_string()),
            Just("deep".to_string()),
            Just("t".to_string()),
            Just("1".to_string()),
            Just("3.pbf".to_string()),
            Just("3.PBF".to_string()),
            Just("maps".to_string()),
            Just("Maps".to_string()),
            Just("..".to_string()),
            Just(".".to_string()),
            Just("".to_string()),
            Just("..;".to_string()),
            Just("premium;a=1".to_string()),
            Just("premium.".to_string()),
            Just("premium ".to_string()),
            Just("premium:x".to_string()),
            Just("%".to_string()),
            Just("é".to_string()),
        ];
        (
            proptest::collection::vec(seg, 1..6),
            proptest::collection::vec(0u8..4, 0..64),
        )
            .prop_map(|(segs, enc)| {
                let plain = format!("/{}", segs.join("/"));
                let mut out = String::new();
                for (i, c) in plain.chars().enumerate() {
                    let e = enc.get(i).copied().unwrap_or(0);
                    if c != '/' && (e == 1 || e == 2 || !c.is_ascii()) {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            out.push_str(&if e == 2 {
                                format!("%{b:02x}")
                            } else {
                                format!("%{b:02X}")
                            });
                        }
                    } else if e == 3 && c == '%' {
                        out.push_str("%25");
                    } else {
                        out.push(c);
                    }
                }
                out
            })
    }

    proptest::proptest! {
        /// The route chosen for the forwarded (canonical) path is the
        /// route chosen for the request, and no spelling that a backend
        /// model reads as a path under one rule is authorized under another
        /// (`fuzzing::assert_same_rule_for_every_reading`, shared with the
        /// `path` fuzz target).
        #[test]
        fn spellings_backends_read_alike_get_one_rule(raw in spelling()) {
            let t = nested();
            crate::fuzzing::assert_same_rule_for_every_reading(&t, None, &Method::GET, &raw);
        }
    }

    #[test]
    fn conflicting_templates_are_config_errors() {
        let specs = [
            route("a", PathMatch::Template("/t/{a}".into()), &[], None),
            route("b", PathMatch::Template("/t/{b}".into()), &[], None),
        ];
        let e = RouteTable::build(&specs).unwrap_err();
        assert!(e[0].contains("/t/{b}"), "{e:?}");
        assert_eq!(
            RouteTable::check(&specs).unwrap_err(),
            e,
            "validation sees what the build refuses"
        );
    }

    #[test]
    fn each_build_makes_fresh_counters_and_limiters() {
        let mut limited = route("limited", PathMatch::Prefix("/l/".into()), &[], None);
        limited.rate_limit_per_subject = 1;
        let specs = [limited, route("open", PathMatch::Prefix("/o/".into()), &[], None)];
        let t = RouteTable::build(&specs).unwrap();
        assert_eq!(&**t.get(0).stats.name(), "limited");
        assert!(t.get(1).limiter.is_none(), "no limit, no limiter");
        let l = t.get(0).limiter.as_ref().expect("limiter");
        assert!(l.check(LimitKey::Subject("a")).is_ok());
        assert_eq!(l.check(LimitKey::Subject("a")), Err(1));
        // A reload builds the table again: the quota starts over.
        let again = RouteTable::build(&specs).unwrap();
        assert!(again
            .get(0)
            .limiter
            .as_ref()
            .expect("limiter")
            .check(LimitKey::Subject("a"))
            .is_ok());
    }
}
