//! The typed configuration: what validation produces and the rest of the
//! gateway reads. Plain data (no I/O, nothing stateful), built once per
//! load or reload and shared read-only behind an `Arc`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::Uri;
use jsonwebtoken::Algorithm;

use crate::routing::{EndpointKind, InlineTable, Origins, RouteSpec};

/// The validated configuration. Built once per load or reload and shared
/// read-only behind an `Arc`.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub tokens: TokenConfig,
    pub cache: CacheConfig,
    pub endpoints: Endpoints,
    pub limits: LimitsConfig,
    pub scopes: BTreeMap<String, String>,
    pub named_tokens: NamedTokenScopes,
    pub identity: IdentityHeaders,
    pub issuers: Vec<ExternalIssuer>,
    pub upstreams: Vec<Arc<UpstreamConfig>>,
    /// The routes, checked, in file order. The runtime compiles them
    /// (`routing::RouteTable::build`), with each route's counters and
    /// limiter.
    pub routes: Vec<RouteSpec>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub h2c: bool,
    pub max_header_bytes: usize,
    pub max_body_bytes: u64,
    pub body_read_timeout: Duration,
    pub lingering_time: Duration,
    pub lingering_bytes: u64,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
    pub watch_config: bool,
    pub access_log: bool,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
    pub max_connections_per_ip: usize,
    /// Peers whose forwarding headers (or PROXY header) are read.
    pub trusted_proxies: Arc<crate::net::trusted::TrustedProxies>,
    pub proxy_protocol: bool,
    /// How the proxy listener's connections are served.
    pub workers: Workers,
}

/// How the proxy listener's connections are served (`server.workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One listening socket and one runtime (multi-thread, or current-thread
    /// with `TOKIO_WORKER_THREADS=1`) for the connections and everything
    /// else.
    Shared,
    /// This many OS threads, each with its own current-thread runtime, its
    /// own `SO_REUSEPORT` socket on `listen`, and its own upstream
    /// connections; the background tasks stay on the main runtime.
    PerCore(std::num::NonZeroUsize),
}

impl Workers {
    /// Most per-core workers a config may ask for.
    pub const MAX: usize = 1024;

    /// The number of per-core workers; 0 when shared.
    pub fn count(self) -> usize {
        match self {
            Workers::Shared => 0,
            Workers::PerCore(n) => n.get(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: Option<SocketAddr>,
    pub token_env: String,
    pub token_file: Option<PathBuf>,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub kek_env: String,
    pub kek_file: PathBuf,
    pub revocation_resync: Duration,
    pub pool_size: u32,
    pub acquire_timeout: Duration,
    pub allow_insecure_transport: bool,
}

#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub issuer: Arc<str>,
    pub audience: Arc<str>,
    pub algorithm: Algorithm,
    pub default_ttl: Duration,
    pub max_ttl: Duration,
    pub leeway: Duration,
    pub login_ttl: Duration,
    pub password_grant: bool,
    pub max_token_bytes: usize,
    pub rotation_grace: Duration,
    pub max_assertion_lifetime: Duration,
}

impl Config {
    /// The default ceiling of an organization: every declared scope but
    /// the credential-management one.
    pub fn default_ceiling(&self) -> Vec<String> {
        self.scopes.keys().filter(|s| *s != MANAGE_SCOPE).cloned().collect()
    }

    /// The scopes a principal's credentials may carry: its org's ceiling
    /// (default [`Config::default_ceiling`]), narrowed by a user's own, and
    /// only scopes the config still declares. In declaration order.
    pub fn ceiling(&self, l: &crate::store::Limits) -> Vec<String> {
        let org = match &l.org_ceiling {
            None => self.default_ceiling(),
            Some(c) => self.scopes.keys().filter(|s| c.contains(s)).cloned().collect(),
        };
        match &l.user_ceiling {
            None => org,
            Some(u) => org.into_iter().filter(|s| u.contains(s)).collect(),
        }
    }

    /// Until when the revocation of a credential (API key, client, login
    /// id) made at `now` must be kept: as long as any token derived from it
    /// can verify (`max_ttl`, or `login_ttl` for login tokens, plus the
    /// leeway), and at least as long as a replica may still hold the
    /// credential in its secret cache.
    pub fn credential_revoked_until(&self, now: i64) -> i64 {
        let t = &self.tokens;
        let longest = t.max_ttl.max(t.login_ttl).max(self.cache.secret_ttl);
        now.saturating_add((longest + t.leeway).as_secs() as i64)
    }
}

impl TokenConfig {
    /// Until when a revocation of a token expiring at `exp` must be kept:
    /// the token verifies until `exp + leeway`, so the entry lives as long.
    pub fn revoked_until(&self, exp: Option<i64>) -> Option<i64> {
        exp.map(|e| e.saturating_add(self.leeway.as_secs() as i64))
    }
}

#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub max_entries: u64,
    pub negative_max_entries: u64,
    pub negative_ttl: Duration,
    pub secret_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Endpoints {
    pub api_key_exchange: String,
    pub oauth_token: String,
    pub clients: String,
    pub named_token: String,
    pub named_tokens: String,
    pub generator_token: String,
    pub me: String,
    pub introspect: String,
    pub revoke: String,
    pub jwks: String,
    pub metadata: String,
    /// Browser origins allowed to call the endpoints (normalised).
    pub cors_origins: Origins,
}

impl Endpoints {
    /// Every inline endpoint as `(config key, path, kind)`, in the order
    /// that decides a path configured twice (the first keeps it); the item
    /// endpoints (one client, one named token) last, below their
    /// collections.
    pub fn targets(&self) -> [(&'static str, &str, EndpointKind); 13] {
        use EndpointKind as K;
        [
            ("endpoints.api_key_exchange", &self.api_key_exchange, K::ApiKeyExchange),
            ("endpoints.oauth_token", &self.oauth_token, K::OAuthToken),
            ("endpoints.me", &self.me, K::Me),
            ("endpoints.jwks", &self.jwks, K::Jwks),
            ("endpoints.metadata", &self.metadata, K::Metadata),
            ("endpoints.introspect", &self.introspect, K::Introspect),
            ("endpoints.revoke", &self.revoke, K::Revoke),
            ("endpoints.clients", &self.clients, K::Clients),
            ("endpoints.named_token", &self.named_token, K::NamedToken),
            ("endpoints.named_tokens", &self.named_tokens, K::NamedTokens),
            ("endpoints.generator_token", &self.generator_token, K::GeneratorToken),
            ("endpoints.clients", &self.clients, K::Client),
            ("endpoints.named_tokens", &self.named_tokens, K::NamedTokenItem),
        ]
    }

    /// The inline endpoints compiled for the route table.
    pub fn table(&self) -> InlineTable {
        InlineTable::build(self.targets().map(|(_, path, kind)| (path, kind)))
    }
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub token_body_bytes: usize,
    pub auth_failures_per_minute: u32,
    pub auth_failures_per_credential: u32,
}

/// The five valid `action` × `resourceType` pairs of named tokens and the
/// scopes each grants.
#[derive(Debug, Clone)]
pub struct NamedTokenScopes {
    pub read_only_all: Vec<String>,
    pub read_write_all: Vec<String>,
    pub read_only_dataset_streaming: Vec<String>,
    pub read_write_dataset_streaming_refreshing: Vec<String>,
    pub read_only_embedded_published_project: Vec<String>,
    /// `named_tokens.max_valid_time` in minutes (1…9999).
    pub max_valid_minutes: i64,
    /// `named_tokens.allow_never_expiring`.
    pub allow_never_expiring: bool,
}

impl NamedTokenScopes {
    /// Scopes and read-only flag for a pair, or `None` when the pair is not
    /// one of the five.
    pub fn lookup(&self, action: &str, resource: &str) -> Option<(&[String], bool)> {
        match (action, resource) {
            ("read_only", "all") => Some((&self.read_only_all, true)),
            ("read_write", "all") => Some((&self.read_write_all, false)),
            ("read_only", "dataset_streaming") => Some((&self.read_only_dataset_streaming, true)),
            ("read_write", "dataset_streaming_refreshing") => {
                Some((&self.read_write_dataset_streaming_refreshing, false))
            }
            ("read_only", "embedded_published_project") => Some((&self.read_only_embedded_published_project, true)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub subject: HeaderName,
    pub org: HeaderName,
    pub scopes: HeaderName,
    pub uid: HeaderName,
    pub issuer: HeaderName,
}

impl IdentityHeaders {
    /// The five names, for the spoofing check.
    pub fn all(&self) -> [&HeaderName; 5] {
        [&self.subject, &self.org, &self.scopes, &self.uid, &self.issuer]
    }
}

#[derive(Debug, Clone)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub source: IssuerKeySource,
    pub jwks_refresh: Duration,
    /// Short name (routes, subject namespace, issuer header).
    pub name: String,
    /// [`crate::routing::IssuerSet::id_of`] of `name`.
    pub id: u64,
    /// Tilegate scopes a token of this issuer may carry when it names them.
    pub scopes: Vec<String>,
    /// The issuer's scope values mapped to tilegate scopes.
    pub scope_map: BTreeMap<String, Vec<String>>,
    /// Fixed organization sent upstream for this issuer's tokens.
    pub org: Option<String>,
    /// Longest `exp - iat` accepted.
    pub max_lifetime: Option<Duration>,
    /// Upper bound on how long a verdict stays cached.
    pub cache_ttl: Duration,
}

/// The scope that manages a principal's own credentials (clients, API
/// keys, named tokens): carried by login tokens, never granted by a named
/// token or an external issuer, and outside an organization's default
/// ceiling.
pub const MANAGE_SCOPE: &str = "clients:manage";

/// The name routes use for the gateway's own tokens.
pub const SELF_ISSUER: &str = "self";

/// Whether `name` is usable as an `[[issuers]]` name: 1-64 characters of
/// `A-Z a-z 0-9 . _ -` (so `<name>|<sub>` is unambiguous and the name is a
/// plain header value), and not `self` in any casing.
pub fn valid_issuer_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.eq_ignore_ascii_case(SELF_ISSUER)
}

/// Scopes no external issuer may ever grant: those that manage tilegate
/// credentials.
pub fn credential_scope(s: &str) -> bool {
    s == MANAGE_SCOPE
}

#[derive(Debug, Clone)]
pub enum IssuerKeySource {
    JwksUrl(Uri),
    JwksFile(PathBuf),
    Pem { path: PathBuf, kid: Option<String> },
    HmacEnv(String),
}

#[derive(Debug)]
pub struct UpstreamConfig {
    pub name: String,
    pub backends: Vec<Uri>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub http2: bool,
    pub pool_max_idle: usize,
}
