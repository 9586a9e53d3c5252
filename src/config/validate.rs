//! Raw file config -> typed [`Config`]. Gathers every problem before failing
//! and names the key of each (`routes[3].upstream: no upstream named "tile"`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use jsonwebtoken::Algorithm;

use super::file::*;
use crate::routing::{Cors, MethodSet, PathMatch, Policy, Route, RouteTable};

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
    pub routes: RouteTable,
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
    pub trusted_proxies: Arc<crate::server::trusted::TrustedProxies>,
    pub proxy_protocol: bool,
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
    pub keys_dir: PathBuf,
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
    pub cors_origins: Vec<String>,
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

/// Parse `500ms`, `30s`, `15m`, `4h`, `90d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (e.g. 30s, 15m, 4h, 90d)"))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86400),
        _ => None,
    };
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("\"{s}\" is not a duration (e.g. 30s, 15m, 4h, 90d)"))
}

pub fn parse_algorithm(s: &str) -> Option<Algorithm> {
    Some(match s {
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        _ => return None,
    })
}

/// Collects problems with their key paths.
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, key: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }
    fn duration(&mut self, key: &str, v: &str) -> Duration {
        parse_duration(v).unwrap_or_else(|e| {
            self.push(key, e);
            Duration::ZERO
        })
    }
    /// A duration that must be more than zero.
    fn positive_duration(&mut self, key: &str, v: &str) -> Duration {
        match parse_duration(v) {
            Ok(d) if d.is_zero() => {
                self.push(key, "must be more than 0");
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.push(key, e);
                Duration::ZERO
            }
        }
    }
    /// A count that must be at least 1.
    fn at_least_one(&mut self, key: &str, v: usize) -> usize {
        if v == 0 {
            self.push(key, "must be at least 1");
        }
        v
    }
    fn addr(&mut self, key: &str, v: &str) -> SocketAddr {
        v.parse().unwrap_or_else(|_| {
            self.push(key, format!("\"{v}\" is not an address like 127.0.0.1:8080"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
    fn header(&mut self, key: &str, v: &str) -> HeaderName {
        HeaderName::from_bytes(v.as_bytes()).unwrap_or_else(|_| {
            self.push(key, format!("\"{v}\" is not a valid header name"));
            HeaderName::from_static("x-invalid")
        })
    }
    fn path(&mut self, key: &str, v: &str) -> String {
        if !v.starts_with('/') {
            self.push(key, format!("\"{v}\" must start with /"));
        }
        v.to_owned()
    }
}

/// Default scopes of the named-token kinds that name theirs (kept only
/// when declared).
const DEFAULT_DATASET_STREAMING: &[&str] = &["datasets:stream"];
const DEFAULT_DATASET_STREAMING_REFRESHING: &[&str] = &["datasets:stream", "datasets:refresh"];
const DEFAULT_EMBEDDED_PUBLISHED_PROJECT: &[&str] = &["projects:embed"];

/// Validate the raw config into a typed [`Config`], or list every problem.
pub fn validate(raw: FileConfig) -> Result<Config, Vec<String>> {
    let mut p = Problems(Vec::new());

    let server = {
        let s = &raw.server;
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => Some(TlsFiles {
                cert: c.into(),
                key: k.into(),
            }),
            (None, None) => None,
            _ => {
                p.push("server.tls_cert", "tls_cert and tls_key go together");
                None
            }
        };
        if s.max_header_bytes < 8192 {
            p.push(
                "server.max_header_bytes",
                "must be at least 8192 (hyper's smallest read buffer)",
            );
        }
        if s.max_connections == 0 {
            p.push("server.max_connections", "must be at least 1");
        }
        let trusted_proxies = match crate::server::trusted::TrustedProxies::parse(&s.trusted_proxies) {
            Ok(t) => t,
            Err(errors) => {
                for e in errors {
                    p.push("server.trusted_proxies", e);
                }
                Default::default()
            }
        };
        if s.proxy_protocol && s.trusted_proxies.is_empty() {
            p.push(
                "server.proxy_protocol",
                "PROXY headers are read only from trusted_proxies: list the load balancers' addresses",
            );
        }
        ServerConfig {
            listen: p.addr("server.listen", &s.listen),
            tls,
            h2c: s.h2c,
            max_header_bytes: s.max_header_bytes,
            max_body_bytes: s.max_body_bytes,
            body_read_timeout: p.positive_duration("server.body_read_timeout", &s.body_read_timeout),
            lingering_time: p.duration("server.lingering_time", &s.lingering_time),
            lingering_bytes: s.lingering_bytes,
            max_connections: s.max_connections,
            header_read_timeout: p.duration("server.header_read_timeout", &s.header_read_timeout),
            shutdown_grace: p.duration("server.shutdown_grace", &s.shutdown_grace),
            watch_config: s.watch_config,
            access_log: s.access_log,
            handshake_timeout: p.positive_duration("server.handshake_timeout", &s.handshake_timeout),
            idle_timeout: p.positive_duration("server.idle_timeout", &s.idle_timeout),
            send_timeout: p.positive_duration("server.send_timeout", &s.send_timeout),
            h2_keep_alive_interval: p.positive_duration("server.h2_keep_alive_interval", &s.h2_keep_alive_interval),
            h2_keep_alive_timeout: p.positive_duration("server.h2_keep_alive_timeout", &s.h2_keep_alive_timeout),
            max_connections_per_ip: p.at_least_one("server.max_connections_per_ip", s.max_connections_per_ip),
            trusted_proxies: Arc::new(trusted_proxies),
            proxy_protocol: s.proxy_protocol,
        }
    };

    let admin = AdminConfig {
        listen: (!raw.admin.listen.is_empty()).then(|| p.addr("admin.listen", &raw.admin.listen)),
        token_env: raw.admin.token_env.clone(),
        token_file: raw.admin.token_file.as_ref().map(PathBuf::from),
        max_connections: p.at_least_one("admin.max_connections", raw.admin.max_connections),
        max_connections_per_ip: p.at_least_one("admin.max_connections_per_ip", raw.admin.max_connections_per_ip),
    };

    let store = {
        let s = &raw.store;
        if s.url.starts_with("postgres://") || s.url.starts_with("postgresql://") {
            // TLS policy (store/transport.rs); the message never repeats the
            // URL, which holds the password.
            if let Err(e) = crate::store::check_postgres_transport(&s.url, s.allow_insecure_transport) {
                p.push("store.url", e);
            }
        } else if !s.url.starts_with("sqlite:") {
            p.push("store.url", "must start with sqlite: or postgres://");
        }
        if s.pool_size == 0 {
            p.push("store.pool_size", "must be at least 1");
        }
        let acquire_timeout = p.duration("store.acquire_timeout", &s.acquire_timeout);
        if acquire_timeout < Duration::from_millis(10) || acquire_timeout > Duration::from_secs(60) {
            p.push("store.acquire_timeout", "must be between 10ms and 60s");
        }
        StoreConfig {
            url: s.url.clone(),
            kek_env: s.kek_env.clone(),
            kek_file: s.kek_file.clone().into(),
            revocation_resync: p.duration("store.revocation_resync", &s.revocation_resync),
            pool_size: s.pool_size,
            acquire_timeout,
            allow_insecure_transport: s.allow_insecure_transport,
        }
    };

    let tokens = {
        let t = &raw.tokens;
        let algorithm = match t.algorithm.as_str() {
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            "RS256" => Algorithm::RS256,
            other => {
                p.push(
                    "tokens.algorithm",
                    format!("\"{other}\" is not one of ES256, EdDSA, RS256"),
                );
                Algorithm::ES256
            }
        };
        let default_ttl = p.duration("tokens.default_ttl", &t.default_ttl);
        let max_ttl = p.duration("tokens.max_ttl", &t.max_ttl);
        if max_ttl.is_zero() {
            p.push("tokens.max_ttl", "must be at least 1s");
        }
        if default_ttl.is_zero() || default_ttl > max_ttl {
            p.push("tokens.default_ttl", "must be between 1s and tokens.max_ttl");
        }
        if t.issuer.is_empty() {
            p.push("tokens.issuer", "must not be empty");
        }
        if t.audience.is_empty() {
            p.push("tokens.audience", "must not be empty");
        }
        let rotation_grace = match &t.rotation_grace {
            Some(g) => p.duration("tokens.rotation_grace", g),
            None => max_ttl,
        };
        TokenConfig {
            issuer: t.issuer.as_str().into(),
            audience: t.audience.as_str().into(),
            algorithm,
            keys_dir: t.keys_dir.clone().into(),
            default_ttl,
            max_ttl,
            leeway: {
                let l = p.duration("tokens.leeway", &t.leeway);
                // Single-use client-assertion ids are kept 5 minutes past
                // their `exp` (store::JTI_RETENTION_SECS): a longer leeway
                // would accept a replay after its id was purged.
                if l > Duration::from_secs(300) {
                    p.push("tokens.leeway", "must be at most 5m (clock skew, not token lifetime)");
                }
                l
            },
            login_ttl: p.duration("tokens.login_ttl", &t.login_ttl),
            password_grant: t.password_grant,
            max_token_bytes: t.max_token_bytes,
            rotation_grace,
            max_assertion_lifetime: {
                let m = p.duration("tokens.max_assertion_lifetime", &t.max_assertion_lifetime);
                // The assertion's jti is kept until its exp + 5 minutes, so
                // any lifetime is covered; the bound only keeps a captured,
                // unused assertion from being good for days.
                if m < Duration::from_secs(1) || m > Duration::from_secs(86_400) {
                    p.push("tokens.max_assertion_lifetime", "must be between 1s and 24h");
                }
                m
            },
        }
    };

    let cache = CacheConfig {
        max_entries: raw.cache.max_entries,
        negative_max_entries: raw.cache.negative_max_entries,
        negative_ttl: p.duration("cache.negative_ttl", &raw.cache.negative_ttl),
        secret_ttl: p.duration("cache.secret_ttl", &raw.cache.secret_ttl),
    };

    let e = &raw.endpoints;
    let endpoints = Endpoints {
        api_key_exchange: p.path("endpoints.api_key_exchange", &e.api_key_exchange),
        oauth_token: p.path("endpoints.oauth_token", &e.oauth_token),
        clients: p.path("endpoints.clients", &e.clients),
        named_token: p.path("endpoints.named_token", &e.named_token),
        named_tokens: p.path("endpoints.named_tokens", &e.named_tokens),
        generator_token: p.path("endpoints.generator_token", &e.generator_token),
        me: p.path("endpoints.me", &e.me),
        introspect: p.path("endpoints.introspect", &e.introspect),
        revoke: p.path("endpoints.revoke", &e.revoke),
        jwks: p.path("endpoints.jwks", &e.jwks),
        metadata: p.path("endpoints.metadata", &e.metadata),
        cors_origins: e.cors_origins.clone(),
    };

    let limits = LimitsConfig {
        token_body_bytes: raw.limits.token_body_bytes,
        auth_failures_per_minute: raw.limits.auth_failures_per_minute,
        auth_failures_per_credential: raw.limits.auth_failures_per_credential,
    };

    let scopes = raw.scopes.clone();
    for name in scopes.keys() {
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
        {
            p.push(
                format!("scopes.\"{name}\""),
                "a scope name has no spaces, quotes or control characters",
            );
        }
    }
    let check_scopes = |p: &mut Problems, key: &str, list: &[String]| {
        for s in list {
            if !scopes.contains_key(s) {
                p.push(key, format!("scope \"{s}\" is not declared in [scopes]"));
            }
        }
    };

    let named_tokens = {
        let n = &raw.named_tokens;
        // The credential-management scope is never part of a named token.
        let all: Vec<String> = scopes.keys().filter(|s| *s != MANAGE_SCOPE).cloned().collect();
        let read_default: Vec<String> = all
            .iter()
            .filter(|s| s.ends_with(":read") || *s == "datasets:stream" || *s == "projects:embed")
            .cloned()
            .collect();
        // An explicit list must name declared scopes and never the
        // credential-management one; a default list keeps only the scopes
        // the config declares (so a config without dataset scopes loads).
        let mut pick = |key: &str, explicit: &Option<Vec<String>>, default: Vec<String>| -> Vec<String> {
            match explicit {
                Some(list) => {
                    check_scopes(&mut p, &format!("named_tokens.{key}"), list);
                    if list.iter().any(|s| s == MANAGE_SCOPE) {
                        p.push(
                            format!("named_tokens.{key}"),
                            "clients:manage is never granted to a named token",
                        );
                    }
                    list.clone()
                }
                None => default.into_iter().filter(|s| scopes.contains_key(s)).collect(),
            }
        };
        NamedTokenScopes {
            read_only_all: pick("read_only_all", &n.read_only_all, read_default),
            read_write_all: pick("read_write_all", &n.read_write_all, all),
            read_only_dataset_streaming: pick(
                "read_only_dataset_streaming",
                &n.read_only_dataset_streaming,
                DEFAULT_DATASET_STREAMING.iter().map(|s| s.to_string()).collect(),
            ),
            read_write_dataset_streaming_refreshing: pick(
                "read_write_dataset_streaming_refreshing",
                &n.read_write_dataset_streaming_refreshing,
                DEFAULT_DATASET_STREAMING_REFRESHING
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            read_only_embedded_published_project: pick(
                "read_only_embedded_published_project",
                &n.read_only_embedded_published_project,
                DEFAULT_EMBEDDED_PUBLISHED_PROJECT
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            max_valid_minutes: match &n.max_valid_time {
                None => 9999,
                Some(v) => {
                    let d = p.duration("named_tokens.max_valid_time", v);
                    let minutes = (d.as_secs() / 60) as i64;
                    if !(1..=9999).contains(&minutes) || d.as_secs() % 60 != 0 || d.subsec_nanos() != 0 {
                        p.push(
                            "named_tokens.max_valid_time",
                            "must be whole minutes from 1m to 9999m (validTime is given in minutes, at most 9999)",
                        );
                    }
                    minutes.clamp(1, 9999)
                }
            },
            allow_never_expiring: n.allow_never_expiring.unwrap_or(true),
        }
    };

    let identity = IdentityHeaders {
        subject: p.header("identity_headers.subject", &raw.identity_headers.subject),
        org: p.header("identity_headers.org", &raw.identity_headers.org),
        scopes: p.header("identity_headers.scopes", &raw.identity_headers.scopes),
        uid: p.header("identity_headers.uid", &raw.identity_headers.uid),
        issuer: p.header("identity_headers.issuer", &raw.identity_headers.issuer),
    };
    // Backends behind CGI-style stacks read `-` and `_` as the same
    // character: two identity headers must differ in that reading too.
    {
        let names = identity.all();
        let fold = |n: &HeaderName| n.as_str().replace('_', "-");
        for (i, a) in names.iter().enumerate() {
            if names[..i].iter().any(|b| fold(a) == fold(b)) {
                p.push(
                    "identity_headers",
                    format!("\"{a}\" is used twice (- and _ count as the same)"),
                );
            }
        }
    }

    let mut issuers = Vec::new();
    // Names of every issuer entry, even one with other problems, so routes
    // naming it are not reported as well.
    let mut issuer_names: Vec<(String, u64)> = Vec::new();
    for (i, f) in raw.issuers.iter().enumerate() {
        let key = format!("issuers[{i}]");
        if f.issuer == tokens.issuer.as_ref() {
            p.push(format!("{key}.issuer"), "is the gateway's own issuer");
        }
        if raw.issuers[..i].iter().any(|o| o.issuer == f.issuer) {
            p.push(format!("{key}.issuer"), format!("\"{}\" is listed twice", f.issuer));
        }
        let name = match &f.name {
            None => {
                p.push(
                    format!("{key}.name"),
                    "is required: routes accept an issuer by name (issuers = [\"self\", \"<name>\"])",
                );
                String::new()
            }
            Some(n) if !valid_issuer_name(n) => {
                p.push(
                    format!("{key}.name"),
                    format!("\"{n}\" must be 1-64 of A-Z a-z 0-9 . _ - and not \"self\""),
                );
                n.clone()
            }
            Some(n) => n.clone(),
        };
        let id = crate::routing::IssuerSet::id_of(&name);
        if !name.is_empty() {
            if issuer_names.iter().any(|(n, _)| *n == name) {
                p.push(format!("{key}.name"), format!("\"{name}\" is used twice"));
            } else if issuer_names.iter().any(|(_, x)| *x == id) {
                p.push(
                    format!("{key}.name"),
                    format!("\"{name}\": pick another name (id collision)"),
                );
            }
            issuer_names.push((name.clone(), id));
        }
        // What the issuer may grant: declared scopes, never a
        // credential-management one.
        let grantable = |p: &mut Problems, k: String, list: &[String]| {
            check_scopes(p, &k, list);
            for s in list.iter().filter(|s| credential_scope(s)) {
                p.push(&k, format!("\"{s}\" is never granted by an external issuer"));
            }
        };
        grantable(&mut p, format!("{key}.scopes"), &f.scopes);
        for (from, to) in &f.scope_map {
            if from.is_empty() || from.chars().any(|c| c.is_whitespace() || c.is_control()) {
                p.push(
                    format!("{key}.scope_map"),
                    format!("\"{from}\": a claim value has no spaces or control characters"),
                );
            }
            grantable(&mut p, format!("{key}.scope_map.\"{from}\""), to);
        }
        if let Some(o) = &f.org {
            if o.is_empty()
                || o.len() > 128
                || !o
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
            {
                p.push(
                    format!("{key}.org"),
                    format!("\"{o}\" must be an organization id (1-128 of A-Z a-z 0-9 . _ - :)"),
                );
            }
        }
        let max_lifetime = f.max_lifetime.as_ref().map(|m| {
            let d = p.duration(&format!("{key}.max_lifetime"), m);
            if d < Duration::from_secs(1) {
                p.push(format!("{key}.max_lifetime"), "must be at least 1s");
            }
            d
        });
        let cache_ttl = p.duration(&format!("{key}.cache_ttl"), &f.cache_ttl);
        if f.audiences.is_empty() {
            p.push(format!("{key}.audiences"), "needs at least one audience");
        }
        let mut algorithms = Vec::new();
        for a in &f.algorithms {
            match parse_algorithm(a) {
                Some(alg) => algorithms.push(alg),
                None => p.push(format!("{key}.algorithms"), format!("unknown algorithm \"{a}\"")),
            }
        }
        if algorithms.is_empty() {
            p.push(format!("{key}.algorithms"), "needs at least one algorithm");
        }
        let sources = [
            f.jwks_url.is_some(),
            f.jwks_file.is_some(),
            f.pem_file.is_some(),
            f.hmac_secret_env.is_some(),
        ];
        if sources.iter().filter(|b| **b).count() != 1 {
            p.push(
                &key,
                "needs exactly one of jwks_url, jwks_file, pem_file, hmac_secret_env",
            );
            continue;
        }
        let is_hmac = algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        if is_hmac != f.hmac_secret_env.is_some()
            || (is_hmac
                && algorithms.len()
                    != algorithms
                        .iter()
                        .filter(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
                        .count())
        {
            p.push(
                format!("{key}.algorithms"),
                "HS* algorithms go with hmac_secret_env only, and only with each other",
            );
        }
        let source = if let Some(u) = &f.jwks_url {
            match u.parse::<Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) => {
                    // Over plain http anyone on the path can serve their own
                    // keys and forge this issuer's tokens (loopback excepted).
                    let host = uri.host().unwrap_or("");
                    if uri.scheme_str() == Some("http")
                        && !f.allow_insecure_http
                        && !crate::store::is_loopback_host(host)
                    {
                        p.push(
                            format!("{key}.jwks_url"),
                            "plain http lets anyone on the network path replace the issuer's keys and forge \
                             its tokens; use https, or set allow_insecure_http = true on this issuer",
                        );
                    }
                    IssuerKeySource::JwksUrl(uri)
                }
                _ => {
                    p.push(format!("{key}.jwks_url"), format!("\"{u}\" is not an http(s) URL"));
                    continue;
                }
            }
        } else if let Some(f) = &f.jwks_file {
            IssuerKeySource::JwksFile(f.into())
        } else if let Some(path) = &f.pem_file {
            IssuerKeySource::Pem {
                path: path.into(),
                kid: f.kid.clone(),
            }
        } else {
            IssuerKeySource::HmacEnv(f.hmac_secret_env.clone().unwrap_or_default())
        };
        issuers.push(ExternalIssuer {
            issuer: f.issuer.clone(),
            audiences: f.audiences.clone(),
            algorithms,
            source,
            jwks_refresh: p.duration(&format!("{key}.jwks_refresh"), &f.jwks_refresh),
            name,
            id,
            scopes: f.scopes.clone(),
            scope_map: f.scope_map.clone(),
            org: f.org.clone(),
            max_lifetime,
            cache_ttl,
        });
    }

    let mut upstreams: Vec<Arc<UpstreamConfig>> = Vec::new();
    for (i, u) in raw.upstreams.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        if upstreams.iter().any(|x| x.name == u.name) {
            p.push(format!("{key}.name"), format!("\"{}\" is used twice", u.name));
        }
        if u.backends.is_empty() {
            p.push(format!("{key}.backends"), "needs at least one backend");
        }
        let mut backends = Vec::new();
        for (j, b) in u.backends.iter().enumerate() {
            match b.parse::<Uri>() {
                Ok(uri)
                    if matches!(uri.scheme_str(), Some("http" | "https"))
                        && uri.authority().is_some()
                        && matches!(uri.path(), "" | "/")
                        && uri.query().is_none() =>
                {
                    backends.push(uri)
                }
                _ => p.push(
                    format!("{key}.backends[{j}]"),
                    format!("\"{b}\" is not a base URL like http://127.0.0.1:3000 (no path)"),
                ),
            }
        }
        upstreams.push(Arc::new(UpstreamConfig {
            name: u.name.clone(),
            backends,
            connect_timeout: p.duration(&format!("{key}.connect_timeout"), &u.connect_timeout),
            request_timeout: p.duration(&format!("{key}.request_timeout"), &u.request_timeout),
            idle_timeout: p.duration(&format!("{key}.idle_timeout"), &u.idle_timeout),
            body_read_timeout: p.positive_duration(&format!("{key}.body_read_timeout"), &u.body_read_timeout),
            ca_file: u.ca_file.as_ref().map(PathBuf::from),
            http2: u.http2,
            pool_max_idle: u.pool_max_idle,
        }));
    }

    let mut routes = Vec::new();
    let inline: BTreeSet<&str> = [
        endpoints.api_key_exchange.as_str(),
        endpoints.oauth_token.as_str(),
        endpoints.me.as_str(),
        endpoints.jwks.as_str(),
    ]
    .into_iter()
    .collect();
    for (i, r) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name: Arc<str> = r.name.clone().unwrap_or_else(|| key.clone()).into();
        let matcher = match (&r.path, &r.prefix) {
            (Some(t), None) => {
                if !t.starts_with('/') {
                    p.push(format!("{key}.path"), "must start with /");
                }
                if inline.contains(t.as_str()) {
                    p.push(format!("{key}.path"), format!("\"{t}\" is an inline endpoint"));
                }
                if let Err(e) = plain_pattern(t) {
                    p.push(format!("{key}.path"), e);
                }
                PathMatch::Template(t.clone())
            }
            (None, Some(pre)) => {
                if !pre.starts_with('/') {
                    p.push(format!("{key}.prefix"), "must start with /");
                } else if let Err(e) = plain_pattern(pre) {
                    p.push(format!("{key}.prefix"), e);
                }
                PathMatch::Prefix(pre.clone())
            }
            _ => {
                p.push(&key, "needs exactly one of path and prefix");
                continue;
            }
        };
        let mut methods = MethodSet::ANY;
        if !r.methods.is_empty() {
            methods = MethodSet::EMPTY;
            for m in &r.methods {
                match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => methods.insert(&m),
                    Err(_) => p.push(format!("{key}.methods"), format!("\"{m}\" is not a method")),
                }
            }
        }
        let Some(upstream) = upstreams.iter().position(|u| u.name == r.upstream) else {
            p.push(
                format!("{key}.upstream"),
                format!("no upstream named \"{}\"", r.upstream),
            );
            continue;
        };
        let policy = if r.public {
            if !r.scopes.is_empty() {
                p.push(format!("{key}.scopes"), "a public route requires no scopes");
            }
            if r.issuers.is_some() {
                p.push(format!("{key}.issuers"), "a public route reads no token");
            }
            Policy::Public
        } else {
            check_scopes(&mut p, &format!("{key}.scopes"), &r.scopes);
            // Default: the gateway's own tokens only, so adding an issuer
            // never opens an existing route to it.
            let issuers = match &r.issuers {
                None => crate::routing::IssuerSet::self_only(),
                Some(list) => {
                    if list.is_empty() {
                        p.push(
                            format!("{key}.issuers"),
                            "must name at least one issuer (\"self\" for the gateway's own tokens)",
                        );
                    }
                    let mut ids = Vec::new();
                    for n in list {
                        if n == SELF_ISSUER {
                            ids.push(crate::routing::IssuerSet::SELF);
                        } else if let Some((_, id)) = issuer_names.iter().find(|(x, _)| x == n) {
                            ids.push(*id);
                        } else {
                            p.push(
                                format!("{key}.issuers"),
                                format!("no issuer named \"{n}\" (\"self\" or an [[issuers]] name)"),
                            );
                        }
                    }
                    crate::routing::IssuerSet::new(ids)
                }
            };
            Policy::Token {
                scopes: r.scopes.iter().map(|s| Box::<str>::from(s.as_str())).collect(),
                read_only: r.read_only,
                issuers,
            }
        };
        let cors = r.cors.as_ref().map(cors).transpose();
        let cors = match cors {
            Ok(c) => c,
            Err(e) => {
                p.push(format!("{key}.cors"), e);
                None
            }
        };
        for (field, v) in [("strip_prefix", &r.strip_prefix), ("add_prefix", &r.add_prefix)] {
            if let Some(v) = v {
                if !v.starts_with('/') {
                    p.push(format!("{key}.{field}"), "must start with /");
                }
            }
        }
        if r.forward_tokens && !r.public {
            p.push(
                format!("{key}.forward_tokens"),
                "only public routes forward tokens (a consumed token is never forwarded)",
            );
        }
        routes.push(Route {
            stats: crate::metrics::RouteStats::new(name.clone()),
            name,
            host: r.host.as_ref().map(|h| h.to_ascii_lowercase().into()),
            matcher,
            methods,
            upstream,
            policy,
            token_query: r
                .token_query
                .clone()
                .unwrap_or_else(|| vec!["access_token".into()])
                .into_iter()
                .map(Box::from)
                .collect(),
            strip_prefix: r.strip_prefix.clone().map(Box::from),
            add_prefix: r.add_prefix.clone().map(Box::from),
            cors,
            rate_limit_per_subject: r.rate_limit_per_subject,
            limiter: crate::routing::SubjectLimiter::new(r.rate_limit_per_subject),
            forward_tokens: r.forward_tokens,
        });
    }
    let routes = match RouteTable::build(routes) {
        Ok(t) => t,
        Err(errs) => {
            for e in errs {
                p.0.push(e);
            }
            RouteTable::empty()
        }
    };

    if !p.0.is_empty() {
        return Err(p.0);
    }
    Ok(Config {
        server,
        admin,
        store,
        tokens,
        cache,
        endpoints,
        limits,
        scopes,
        named_tokens,
        identity,
        issuers,
        upstreams,
        routes,
    })
}

/// A route's `cors` table, checked, with its header values computed.
fn cors(f: &FileCors) -> Result<Cors, String> {
    if f.origins.is_empty() {
        return Err("origins must list at least one origin or \"*\"".into());
    }
    let any_origin = f.origins.iter().any(|o| o == "*");
    if any_origin && f.allow_credentials {
        return Err("allow_credentials cannot go with origin \"*\"".into());
    }
    let mut allow = vec!["authorization".to_string(), "content-type".to_string()];
    allow.extend(f.allow_headers.iter().map(|h| h.to_ascii_lowercase()));
    let mut expose = vec!["www-authenticate".to_string()];
    expose.extend(f.expose_headers.iter().map(|h| h.to_ascii_lowercase()));
    for h in allow.iter().chain(expose.iter()) {
        HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("\"{h}\" is not a header name"))?;
    }
    Ok(Cors {
        any_origin,
        origins: f
            .origins
            .iter()
            .filter(|o| *o != "*")
            .map(|o| o.trim_end_matches('/').into())
            .collect(),
        allow_headers: HeaderValue::from_str(&allow.join(", ")).map_err(|e| e.to_string())?,
        expose_headers: HeaderValue::from_str(&expose.join(", ")).map_err(|e| e.to_string())?,
        max_age: HeaderValue::from(f.max_age),
        allow_credentials: f.allow_credentials,
    })
}

/// A route pattern must be spelled the way requests are routed: in the
/// canonical path form (no dot segments, no `//`) and without characters
/// that backends read in more than one way (escapes, `;`, `\\`), so that a
/// request matches it exactly when every backend reading does.
fn plain_pattern(p: &str) -> Result<(), String> {
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-._~/!$&'()*+,=:@{}".contains(*c)))
    {
        return Err(format!(
            "\"{p}\" has '{c}': use letters, digits and -._~!$&'()*+,=:@ only"
        ));
    }
    match crate::routing::normalize(p) {
        Ok(n) if n == p => Ok(()),
        _ => Err(format!(
            "\"{p}\" is not a canonical path (no \"//\", \".\" or \"..\" segments)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "[scopes]\n\"tiles:read\" = \"r\"\n[[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:3000\"]\n{extra}"
        );
        validate(toml::from_str(&text).map_err(|e| vec![e.to_string()])?)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("4h").unwrap(), Duration::from_secs(14400));
        assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("4 hours").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let errs = cfg(
            "[[routes]]\npath = \"/t/{z}\"\nupstream = \"tile\"\n[[routes]]\nprefix = \"/x\"\nupstream = \"tiles\"\nscopes = [\"nope\"]\n[server]\nlisten = \"nowhere\"\n",
        )
        .unwrap_err();
        let all = errs.join("\n");
        assert!(all.contains("routes[0].upstream: no upstream named \"tile\""), "{all}");
        assert!(
            all.contains("routes[1].scopes: scope \"nope\" is not declared"),
            "{all}"
        );
        assert!(all.contains("server.listen"), "{all}");
    }

    #[test]
    fn body_timeouts_have_defaults_and_cannot_be_zero() {
        let c = cfg("").unwrap();
        assert_eq!(c.server.body_read_timeout, Duration::from_secs(30));
        assert_eq!(c.server.lingering_time, Duration::from_secs(5));
        assert_eq!(c.server.lingering_bytes, 4 * 1024 * 1024);
        assert_eq!(c.upstreams[0].body_read_timeout, Duration::from_secs(60));
        let all = cfg("body_read_timeout = \"0s\"\n[server]\nbody_read_timeout = \"0\"\nlingering_time = \"0s\"\n")
            .unwrap_err()
            .join("\n");
        assert!(all.contains("server.body_read_timeout: must be more than 0"), "{all}");
        assert!(
            all.contains("upstreams[0].body_read_timeout: must be more than 0"),
            "{all}"
        );
        assert!(!all.contains("lingering_time"), "0s turns lingering off: {all}");
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_zero() {
        let c = cfg("").unwrap();
        assert_eq!(c.server.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.server.idle_timeout, Duration::from_secs(75));
        assert_eq!(c.server.send_timeout, Duration::from_secs(60));
        assert_eq!(c.server.h2_keep_alive_interval, Duration::from_secs(30));
        assert_eq!(c.server.h2_keep_alive_timeout, Duration::from_secs(20));
        assert_eq!(c.server.max_connections_per_ip, 1024);
        assert_eq!((c.admin.max_connections, c.admin.max_connections_per_ip), (128, 32));
        let all = cfg(
            "[server]\nhandshake_timeout = \"0s\"\nidle_timeout = \"0\"\nsend_timeout = \"0s\"\nh2_keep_alive_interval = \"0ms\"\nh2_keep_alive_timeout = \"soon\"\nmax_connections_per_ip = 0\n[admin]\nmax_connections = 0\nmax_connections_per_ip = 0\n",
        )
        .unwrap_err()
        .join("\n");
        for key in [
            "server.handshake_timeout: must be more than 0",
            "server.idle_timeout: must be more than 0",
            "server.send_timeout: must be more than 0",
            "server.h2_keep_alive_interval: must be more than 0",
            "server.h2_keep_alive_timeout: \"soon\" is not a duration",
            "server.max_connections_per_ip: must be at least 1",
            "admin.max_connections: must be at least 1",
            "admin.max_connections_per_ip: must be at least 1",
        ] {
            assert!(all.contains(key), "{key} in {all}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<FileConfig>("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("listen_addr"), "{e}");
    }

    #[test]
    fn explicit_named_token_lists_must_be_declared_and_never_manage() {
        let text = "[scopes]\n\"tiles:read\" = \"r\"\n\"clients:manage\" = \"m\"\n[named_tokens]\nread_only_dataset_streaming = [\"datasets:nope\"]\nread_write_all = [\"clients:manage\"]\n";
        let all = validate(toml::from_str(text).unwrap()).unwrap_err().join("\n");
        assert!(
            all.contains("named_tokens.read_only_dataset_streaming: scope \"datasets:nope\" is not declared"),
            "{all}"
        );
        assert!(
            all.contains("named_tokens.read_write_all: clients:manage is never granted"),
            "{all}"
        );
        // Defaults quietly keep only declared scopes.
        let c = cfg("").unwrap();
        assert!(c.named_tokens.read_only_dataset_streaming.is_empty());
        assert!(!c.named_tokens.read_write_all.iter().any(|s| s == "clients:manage"));
    }

    const PARTNER: &str = "[[issuers]]\nname = \"partner\"\nissuer = \"https://partner.example\"\naudiences = [\"tilegate\"]\nalgorithms = [\"HS256\"]\nhmac_secret_env = \"PARTNER_SECRET\"\n";

    #[test]
    fn routes_accept_self_only_unless_they_name_issuers() {
        let c = cfg(&format!(
            "{PARTNER}scopes = [\"tiles:read\"]\n[[routes]]\nprefix = \"/a/\"\nupstream = \"tiles\"\n[[routes]]\nprefix = \"/b/\"\nupstream = \"tiles\"\nissuers = [\"partner\"]\n[[routes]]\nprefix = \"/c/\"\nupstream = \"tiles\"\nissuers = [\"self\", \"partner\", \"self\"]\n"
        ))
        .unwrap();
        let partner = c.issuers[0].id;
        assert_eq!(partner, crate::routing::IssuerSet::id_of("partner"));
        assert_ne!(partner, crate::routing::IssuerSet::SELF);
        let sets: Vec<Vec<u64>> = c
            .routes
            .routes()
            .iter()
            .map(|r| match &r.policy {
                Policy::Token { issuers, .. } => issuers.ids().to_vec(),
                Policy::Public => panic!("token routes"),
            })
            .collect();
        assert_eq!(sets[0], vec![crate::routing::IssuerSet::SELF], "default: self only");
        assert_eq!(sets[1], vec![partner]);
        assert_eq!(sets[2], vec![crate::routing::IssuerSet::SELF, partner]);
    }

    #[test]
    fn issuer_policy_problems_are_reported() {
        let text = format!(
            "[scopes]\n\"tiles:read\" = \"r\"\n\"clients:manage\" = \"m\"\n[[upstreams]]\nname = \"tiles\"\nbackends = [\"http://127.0.0.1:3000\"]\n\
             {PARTNER}scopes = [\"tiles:premium\", \"clients:manage\"]\nscope_map = {{ \"partner.read\" = [\"tiles:read\"], \"partner.admin\" = [\"clients:manage\"], \"two words\" = [\"tiles:read\"] }}\norg = \"org 1\"\nmax_lifetime = \"0s\"\ncache_ttl = \"soon\"\n\
             [[issuers]]\nissuer = \"https://other.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
             [[issuers]]\nname = \"SELF\"\nissuer = \"https://third.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
             [[issuers]]\nname = \"partner\"\nissuer = \"https://fourth.example\"\naudiences = [\"a\"]\nalgorithms = [\"ES256\"]\njwks_file = \"x\"\n\
             [[routes]]\nprefix = \"/a/\"\nupstream = \"tiles\"\nissuers = [\"self\", \"nobody\"]\n\
             [[routes]]\nprefix = \"/b/\"\nupstream = \"tiles\"\nissuers = []\n\
             [[routes]]\nprefix = \"/c/\"\nupstream = \"tiles\"\npublic = true\nissuers = [\"partner\"]\n\
             [identity_headers]\nissuer = \"x_tilegate_org\"\n"
        );
        let all = validate(toml::from_str(&text).unwrap()).unwrap_err().join("\n");
        for want in [
            "issuers[0].scopes: scope \"tiles:premium\" is not declared",
            "issuers[0].scopes: \"clients:manage\" is never granted by an external issuer",
            "issuers[0].scope_map.\"partner.admin\": \"clients:manage\" is never granted",
            "issuers[0].scope_map: \"two words\": a claim value has no spaces",
            "issuers[0].org: \"org 1\" must be an organization id",
            "issuers[0].max_lifetime: must be at least 1s",
            "issuers[0].cache_ttl: \"soon\" is not a duration",
            "issuers[1].name: is required",
            "issuers[2].name: \"SELF\" must be",
            "issuers[3].name: \"partner\" is used twice",
            "routes[0].issuers: no issuer named \"nobody\"",
            "routes[1].issuers: must name at least one issuer",
            "routes[2].issuers: a public route reads no token",
            "identity_headers: \"x_tilegate_org\" is used twice",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert!(!all.contains("partner.read"), "a valid mapping is no problem:\n{all}");
    }

    #[test]
    fn named_token_lifetime_policy() {
        let c = cfg("").unwrap();
        assert_eq!(c.named_tokens.max_valid_minutes, 9999);
        assert!(c.named_tokens.allow_never_expiring);
        let c = cfg("[named_tokens]\nmax_valid_time = \"30d\"\nallow_never_expiring = false\n");
        // 30 days is more than validTime can say (9999 minutes).
        assert!(c.unwrap_err().join("\n").contains("named_tokens.max_valid_time"));
        let c = cfg("[named_tokens]\nmax_valid_time = \"24h\"\nallow_never_expiring = false\n").unwrap();
        assert_eq!(c.named_tokens.max_valid_minutes, 1440);
        assert!(!c.named_tokens.allow_never_expiring);
        for bad in ["0m", "90s", "10000m", "500ms", "soon"] {
            let e = cfg(&format!("[named_tokens]\nmax_valid_time = \"{bad}\"\n")).unwrap_err();
            assert!(e.join("\n").contains("named_tokens.max_valid_time"), "{bad}: {e:?}");
        }
    }

    #[test]
    fn ceilings_default_to_every_declared_scope_but_manage_and_narrow() {
        let text = "[scopes]\n\"tiles:read\" = \"r\"\n\"b:x\" = \"b\"\n\"clients:manage\" = \"m\"\n";
        let c = validate(toml::from_str(text).unwrap()).unwrap();
        let l = |org: Option<&[&str]>, user: Option<&[&str]>| crate::store::Limits {
            name: "u".into(),
            org_id: "o".into(),
            org_ceiling: org.map(|v| v.iter().map(|s| s.to_string()).collect()),
            user_ceiling: user.map(|v| v.iter().map(|s| s.to_string()).collect()),
            disabled: false,
        };
        assert_eq!(c.ceiling(&l(None, None)), vec!["b:x", "tiles:read"]);
        assert_eq!(
            c.ceiling(&l(None, Some(&["tiles:read", "clients:manage"]))),
            vec!["tiles:read"]
        );
        assert_eq!(
            c.ceiling(&l(Some(&["clients:manage", "gone:x", "tiles:read"]), None)),
            vec!["clients:manage", "tiles:read"],
            "an explicit org ceiling may name clients:manage; undeclared scopes drop out"
        );
        assert!(c.ceiling(&l(Some(&[]), None)).is_empty());
        assert!(c.ceiling(&l(Some(&["tiles:read"]), Some(&[]))).is_empty());
        let until = c.credential_revoked_until(1000);
        assert_eq!(until, 1000 + 4 * 3600 + 30, "max_ttl plus the leeway by default");
    }

    #[test]
    fn named_pairs_are_exactly_five() {
        let c = cfg("").unwrap();
        let ok = [
            ("read_only", "all"),
            ("read_write", "all"),
            ("read_only", "dataset_streaming"),
            ("read_write", "dataset_streaming_refreshing"),
            ("read_only", "embedded_published_project"),
        ];
        for (a, r) in ok {
            assert!(c.named_tokens.lookup(a, r).is_some(), "{a} {r}");
        }
        for a in ["read_only", "read_write", "x"] {
            for r in [
                "all",
                "dataset_streaming",
                "dataset_streaming_refreshing",
                "embedded_published_project",
                "y",
            ] {
                if !ok.contains(&(a, r)) {
                    assert!(c.named_tokens.lookup(a, r).is_none(), "{a} {r}");
                }
            }
        }
    }
}
