//! Raw config as written in the TOML file: serde structs with
//! `deny_unknown_fields`. A table whose keys are all optional takes its
//! documented defaults from its one `Default` impl (`#[serde(default)]` on
//! the struct), so a key left out and a table left out read the same.
//! Nothing outside `config` reads these; validation turns them into the
//! typed values of `types.rs`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub server: FileServer,
    pub admin: FileAdmin,
    pub store: FileStore,
    pub tokens: FileTokens,
    pub cache: FileCache,
    pub endpoints: FileEndpoints,
    pub limits: FileLimits,
    /// Scope name -> human description. Every scope a route, key or named
    /// token mentions must be declared here.
    pub scopes: BTreeMap<String, String>,
    pub named_tokens: FileNamedTokens,
    pub identity_headers: FileIdentityHeaders,
    pub issuers: Vec<FileIssuer>,
    pub upstreams: Vec<FileUpstream>,
    pub routes: Vec<FileRoute>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileServer {
    /// Proxy listener. Default `127.0.0.1:8080`.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the listener speaks TLS
    /// (h2 and http/1.1 by ALPN).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Accept HTTP/2 without TLS (prior knowledge). Default true.
    pub h2c: bool,
    /// Largest request head (request line + headers). Default 16 KiB.
    pub max_header_bytes: usize,
    /// Largest request body accepted on any route (declared or streamed).
    /// Default 10 MiB.
    pub max_body_bytes: u64,
    /// Longest a request body may go without a byte arriving (token
    /// endpoints and proxied uploads); a slow but moving body is fine.
    /// Default 30s.
    pub body_read_timeout: String,
    /// After an early answer to a client still sending its body (401, 413,
    /// ...), how long the rest is read and discarded before the connection
    /// closes, so that the answer reaches the client. `0s` closes at once.
    /// Default 5s.
    pub lingering_time: String,
    /// At most this much of such a body is read and discarded. Default 4 MiB.
    pub lingering_bytes: u64,
    /// Open client connections at most; more are refused at accept.
    /// Default 10,000.
    pub max_connections: usize,
    /// A client must send its request head within this time. Default 10s.
    pub header_read_timeout: String,
    /// How long SIGTERM waits for in-flight requests. Default 30s.
    pub shutdown_grace: String,
    /// Re-read the config when the file changes (in addition to SIGHUP).
    /// Default true.
    pub watch_config: bool,
    /// Emit one JSON access-log line per request. Default true.
    pub access_log: bool,
    /// From accept until the first request head is complete (first bytes,
    /// TLS handshake, protocol detection, HTTP/2 preface). Default 10s.
    pub handshake_timeout: String,
    /// A connection with no request in flight this long is closed (GOAWAY
    /// on HTTP/2). Default 75s.
    pub idle_timeout: String,
    /// A connection whose client takes none of the responses waiting for
    /// it for this long is closed. Default 60s.
    pub send_timeout: String,
    /// HTTP/2 PING interval. Default 30s.
    pub h2_keep_alive_interval: String,
    /// An unanswered HTTP/2 PING closes the connection after this. Default 20s.
    pub h2_keep_alive_timeout: String,
    /// Open connections per client address (IPv4 address or IPv6 /64).
    /// Default 1024.
    pub max_connections_per_ip: usize,
    /// Networks (CIDR, or single addresses) of the load balancers and
    /// reverse proxies in front: only connections from them have their
    /// `X-Forwarded-For` / `X-Forwarded-Proto` (or PROXY header) read.
    /// Default empty: nobody is trusted.
    pub trusted_proxies: Vec<String>,
    /// Connections from trusted proxies must start with a PROXY protocol
    /// header (v2, or v1), whose address is the client's. Default false.
    pub proxy_protocol: bool,
    /// How the proxy listener's connections are served: `"shared"` (one
    /// runtime for everything) or per-core workers, `"per-core"` or a
    /// number. Default `"shared"`.
    pub workers: FileWorkers,
}

/// `server.workers` as written: a word or a number (checked in
/// validation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileWorkers {
    Word(String),
    Count(i64),
}

impl Default for FileWorkers {
    fn default() -> Self {
        FileWorkers::Word("shared".into())
    }
}

impl<'de> Deserialize<'de> for FileWorkers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FileWorkers;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("\"shared\", \"per-core\" or a number of workers")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileWorkers, E> {
                Ok(FileWorkers::Word(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<FileWorkers, E> {
                Ok(FileWorkers::Count(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FileWorkers, E> {
                Ok(FileWorkers::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for FileServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tls_cert: None,
            tls_key: None,
            h2c: true,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            body_read_timeout: "30s".into(),
            lingering_time: "5s".into(),
            lingering_bytes: 4 * 1024 * 1024,
            max_connections: 10_000,
            header_read_timeout: "10s".into(),
            shutdown_grace: "30s".into(),
            watch_config: true,
            access_log: true,
            handshake_timeout: "10s".into(),
            idle_timeout: "75s".into(),
            send_timeout: "60s".into(),
            h2_keep_alive_interval: "30s".into(),
            h2_keep_alive_timeout: "20s".into(),
            max_connections_per_ip: 1024,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            workers: FileWorkers::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileAdmin {
    /// Admin listener (health, metrics, admin API). Default `127.0.0.1:9090`.
    /// An empty string disables it.
    pub listen: String,
    /// Environment variable holding the admin API bearer credential.
    /// Default `TILEGATE_ADMIN_TOKEN`.
    pub token_env: String,
    /// File holding the admin credential (used when the env var is unset).
    pub token_file: Option<String>,
    /// Open admin connections at most. Default 128.
    pub max_connections: usize,
    /// Open admin connections per client address. Default 32.
    pub max_connections_per_ip: usize,
}

impl Default for FileAdmin {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
            token_env: "TILEGATE_ADMIN_TOKEN".into(),
            token_file: None,
            max_connections: 128,
            max_connections_per_ip: 32,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileStore {
    /// `sqlite://path/to/file.db` (created when absent) or `postgres://…`.
    /// Default `sqlite://data/tilegate.db`.
    pub url: String,
    /// Environment variable with the key-encryption key (base64, 32 bytes)
    /// that encrypts client secrets at rest. Default `TILEGATE_KEK`.
    pub kek_env: String,
    /// File with the key-encryption key; generated on first start when
    /// neither the env var nor the file exists. Default `data/kek`.
    pub kek_file: String,
    /// How often each replica re-reads the revocation list in full, as a
    /// backstop for missed notifications. Default 30s.
    pub revocation_resync: String,
    /// Connections in the store pool. Default 8.
    pub pool_size: u32,
    /// How long a store operation waits for a database connection before
    /// the request gets 503. Default 1s.
    pub acquire_timeout: String,
    /// Accept a PostgreSQL URL whose `sslmode` is not `verify-full` for a
    /// host other than loopback. Default false.
    pub allow_insecure_transport: bool,
}

impl Default for FileStore {
    fn default() -> Self {
        Self {
            url: "sqlite://data/tilegate.db".into(),
            kek_env: "TILEGATE_KEK".into(),
            kek_file: "data/kek".into(),
            revocation_resync: "30s".into(),
            pool_size: 8,
            acquire_timeout: "1s".into(),
            allow_insecure_transport: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileTokens {
    /// `iss` of every token the gateway signs, and the issuer it accepts for
    /// its own tokens. Default `http://127.0.0.1:8080`.
    pub issuer: String,
    /// `aud` of issued tokens, required on verification. Default `tilegate`.
    pub audience: String,
    /// Signing algorithm for new keys: `ES256` (default), `EdDSA`, `RS256`.
    pub algorithm: String,
    /// Reserved and read by nothing: accepted so older config files still
    /// load; signing keys live in the store.
    pub keys_dir: String,
    /// Lifetime of a token when the request names none. Default 1h.
    pub default_ttl: String,
    /// Longest lifetime a token may be given. Default 4h.
    pub max_ttl: String,
    /// Clock skew tolerated on `exp`/`nbf`. Default 30s.
    pub leeway: String,
    /// Lifetime of the temporary login token of the password grant.
    /// Default 15m.
    pub login_ttl: String,
    /// Whether `grant_type=password` is served. Default true.
    pub password_grant: bool,
    /// Longest token accepted anywhere, in bytes. Default 8192.
    pub max_token_bytes: usize,
    /// How long a rotated-out key still verifies tokens. Default = max_ttl.
    pub rotation_grace: Option<String>,
    /// Longest lifetime (`exp` − now) of a `client_secret_jwt` client
    /// assertion. Default 1h.
    pub max_assertion_lifetime: String,
}

impl Default for FileTokens {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            audience: "tilegate".into(),
            algorithm: "ES256".into(),
            keys_dir: "data/keys".into(),
            default_ttl: "1h".into(),
            max_ttl: "4h".into(),
            leeway: "30s".into(),
            login_ttl: "15m".into(),
            password_grant: true,
            max_token_bytes: 8192,
            rotation_grace: None,
            max_assertion_lifetime: "1h".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileCache {
    /// Verified tokens kept at most. Default 100,000.
    pub max_entries: u64,
    /// Rejected tokens kept at most. Default 10,000.
    pub negative_max_entries: u64,
    /// How long a rejected token is remembered. Default 10s.
    pub negative_ttl: String,
    /// Long-lived secrets (API keys, generator tokens) looked up at most
    /// this long before the store is asked again. Default 60s.
    pub secret_ttl: String,
}

impl Default for FileCache {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            negative_max_entries: 10_000,
            negative_ttl: "10s".into(),
            secret_ttl: "60s".into(),
        }
    }
}

/// Paths of the inline endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileEndpoints {
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
    /// Allowed CORS origins for the inline endpoints (browsers calling
    /// `/me`, say). Empty: no CORS headers. Default empty.
    pub cors_origins: Vec<String>,
}

impl Default for FileEndpoints {
    fn default() -> Self {
        Self {
            api_key_exchange: "/v1/auth/token".into(),
            oauth_token: "/oauth/token".into(),
            clients: "/v1/clients".into(),
            named_token: "/oauth/v1/user/token".into(),
            named_tokens: "/oauth/v1/user/tokens".into(),
            generator_token: "/oauth/v1/user/generator-token".into(),
            me: "/me".into(),
            introspect: "/oauth/introspect".into(),
            revoke: "/oauth/revoke".into(),
            jwks: "/.well-known/jwks.json".into(),
            metadata: "/.well-known/oauth-authorization-server".into(),
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileLimits {
    /// Largest body accepted by a token endpoint. Default 64 KiB.
    pub token_body_bytes: usize,
    /// Failed authentications per client address per minute on the token
    /// endpoints before 429. Default 30.
    pub auth_failures_per_minute: u32,
    /// Failed authentications per credential identifier (username, OAuth
    /// client id) per minute, from every address together, before that
    /// identifier is refused from addresses that have not proven it.
    /// Default 10.
    pub auth_failures_per_credential: u32,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            token_body_bytes: 64 * 1024,
            auth_failures_per_minute: 30,
            auth_failures_per_credential: 10,
        }
    }
}

/// Scopes granted by each valid `action` × `resourceType` pair of named
/// tokens. Defaults follow SPEC.md; they depend on the declared scopes, so
/// validation fills them in (`None` here means "the default").
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileNamedTokens {
    /// `read_only` + `all`: default every declared scope ending in `:read`
    /// plus `datasets:stream` and `projects:embed` when declared.
    pub read_only_all: Option<Vec<String>>,
    /// `read_write` + `all`: default every declared scope.
    pub read_write_all: Option<Vec<String>>,
    /// Default `["datasets:stream"]` (kept only when declared).
    pub read_only_dataset_streaming: Option<Vec<String>>,
    /// Default `["datasets:stream", "datasets:refresh"]`.
    pub read_write_dataset_streaming_refreshing: Option<Vec<String>>,
    /// Default `["projects:embed"]`.
    pub read_only_embedded_published_project: Option<Vec<String>>,
    /// Longest `validTime` a named token may ask for (whole minutes, 1m to
    /// 9999m). Default `9999m`, the API's own bound.
    pub max_valid_time: Option<String>,
    /// Whether `validTime=-1` (a token that never expires) is served.
    /// Default true (the named-token API contract).
    pub allow_never_expiring: Option<bool>,
}

/// Names of the headers that carry the verified identity upstream.
/// Client-sent headers of these names are always dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileIdentityHeaders {
    pub subject: String,
    pub org: String,
    pub scopes: String,
    pub uid: String,
    /// Which issuer vouched for the token: `self` or an `[[issuers]]` name.
    pub issuer: String,
}

impl Default for FileIdentityHeaders {
    fn default() -> Self {
        Self {
            subject: "x-tilegate-subject".into(),
            org: "x-tilegate-org".into(),
            scopes: "x-tilegate-scope".into(),
            uid: "x-tilegate-uid".into(),
            issuer: "x-tilegate-issuer".into(),
        }
    }
}

// `[[issuers]]`, `[[upstreams]]` and a route's `cors` table have required
// keys, so they cannot take a struct-level default (it would fill those in
// too): each optional key with a default names its function here.

/// An external token issuer whose tokens the proxy accepts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIssuer {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    pub audiences: Vec<String>,
    /// Algorithm allow-list, e.g. `["RS256"]`.
    pub algorithms: Vec<String>,
    /// JWKS URL, refreshed every `jwks_refresh` and on an unknown `kid`.
    pub jwks_url: Option<String>,
    /// A local JWKS file.
    pub jwks_file: Option<String>,
    /// A PEM public key file (with `kid` optional).
    pub pem_file: Option<String>,
    pub kid: Option<String>,
    /// Env var holding an HS256/384/512 shared secret.
    pub hmac_secret_env: Option<String>,
    /// Default 5m.
    #[serde(default = "FileIssuer::default_jwks_refresh")]
    pub jwks_refresh: String,
    /// Short name routes use to accept this issuer (`issuers = ["self",
    /// "<name>"]`), the subject namespace (`<name>|<sub>`) and the value of
    /// the issuer identity header. Required.
    pub name: Option<String>,
    /// Tilegate scopes this issuer may grant: a token gets those of its
    /// `scope`/`scp` values that are in this list. Default none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The issuer's own scope values mapped to tilegate scopes
    /// (`{ "partner.read" = ["tiles:read"] }`). Default none.
    #[serde(default)]
    pub scope_map: BTreeMap<String, Vec<String>>,
    /// Organization sent upstream for every token of this issuer. Default
    /// none (no organization header). A token's own `org_id` is never used.
    pub org: Option<String>,
    /// Longest `exp - iat` accepted (`iat` then required). Default none.
    pub max_lifetime: Option<String>,
    /// Longest time a verdict on one of this issuer's tokens is cached
    /// before its signature is checked again. Default 5m.
    #[serde(default = "FileIssuer::default_cache_ttl")]
    pub cache_ttl: String,
    /// Accept a `jwks_url` over plain http to a host other than loopback.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

impl FileIssuer {
    fn default_jwks_refresh() -> String {
        "5m".into()
    }
    fn default_cache_ttl() -> String {
        "5m".into()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub name: String,
    /// `http://host:port` or `https://host:port`, one or more.
    pub backends: Vec<String>,
    /// Default 2s.
    #[serde(default = "FileUpstream::default_connect_timeout")]
    pub connect_timeout: String,
    /// Time until the upstream's response head arrives. Default 30s.
    #[serde(default = "FileUpstream::default_request_timeout")]
    pub request_timeout: String,
    /// Default 90s.
    #[serde(default = "FileUpstream::default_idle_timeout")]
    pub idle_timeout: String,
    /// Longest the upstream's response body may go without a byte once
    /// its head has arrived; then the client's response is cut off and the
    /// upstream connection discarded. Default 60s.
    #[serde(default = "FileUpstream::default_body_read_timeout")]
    pub body_read_timeout: String,
    /// Extra CA bundle (PEM) trusted for https backends, on top of the
    /// system roots.
    pub ca_file: Option<String>,
    /// Speak HTTP/2 to the backends (prior knowledge on http, ALPN on https).
    #[serde(default)]
    pub http2: bool,
    /// Idle pooled connections kept per backend. Default 256.
    #[serde(default = "FileUpstream::default_pool_max_idle")]
    pub pool_max_idle: usize,
}

impl FileUpstream {
    fn default_connect_timeout() -> String {
        "2s".into()
    }
    fn default_request_timeout() -> String {
        "30s".into()
    }
    fn default_idle_timeout() -> String {
        "90s".into()
    }
    fn default_body_read_timeout() -> String {
        "60s".into()
    }
    fn default_pool_max_idle() -> usize {
        256
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// Name used in metrics and logs. Default `routes[N]`.
    pub name: Option<String>,
    /// Exact `Host` (port ignored) this route is limited to.
    pub host: Option<String>,
    /// Path template (`/tiles/{z}/{x}/{y}.pbf`, `/files/{*rest}`).
    pub path: Option<String>,
    /// Path prefix (`/tiles/`). Exactly one of `path` and `prefix`.
    pub prefix: Option<String>,
    /// Allowed methods; empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Required.
    pub upstream: String,
    /// No token needed.
    #[serde(default)]
    pub public: bool,
    /// Scopes the token must all carry.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Only GET/HEAD/OPTIONS pass, whatever the token.
    #[serde(default)]
    pub read_only: bool,
    /// Query parameter names a token may come in. Default `["access_token"]`.
    pub token_query: Option<Vec<String>>,
    /// Prefix removed from the path before forwarding.
    pub strip_prefix: Option<String>,
    /// Prefix put in front of the (stripped) path before forwarding.
    pub add_prefix: Option<String>,
    pub cors: Option<FileCors>,
    /// Requests per second per token subject (0 = unlimited).
    #[serde(default)]
    pub rate_limit_per_subject: u32,
    /// Issuers whose tokens this route accepts: `"self"` (the gateway's own
    /// tokens) and `[[issuers]]` names. Default `["self"]`.
    pub issuers: Option<Vec<String>>,
    /// Public routes: pass a client's `Authorization: Bearer` and token
    /// query parameters on to the upstream (default: removed).
    #[serde(default)]
    pub forward_tokens: bool,
    /// Token routes: close a WebSocket (1008) or end a streaming response
    /// when the token that opened it expires or is revoked (default: a
    /// stream outlives its token).
    #[serde(default)]
    pub end_streams_with_token: bool,
    /// The path parameters naming a tile; the token's tile grant is
    /// checked on this route (docs/grants.md).
    pub tiles: Option<FileTiles>,
    /// What a tile outside the token's grant gets: `"not_found"` (default),
    /// `"forbidden"`, `"no_content"` or `"empty"`.
    pub out_of_grant: Option<String>,
    /// Token routes: leave the upstream's `Cache-Control` for shared caches
    /// (default: responses are made `private`).
    #[serde(default)]
    pub shared_cache: bool,
    /// Check the token's allowed origins against `Origin`, else the
    /// origin of `Referer` (docs/grants.md, "Origin binding").
    #[serde(default)]
    pub bind_origin: bool,
    /// With `bind_origin`, a request with neither header: `"refuse"`
    /// (default) or `"allow"`.
    pub missing_origin: Option<String>,
}

/// A route's `tiles` table: parameter names of its path template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTiles {
    pub z: String,
    pub x: String,
    pub y: String,
    pub layer: Option<String>,
    /// `"xyz"` (default, row 0 north) or `"tms"` (row 0 south).
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCors {
    /// Allowed origins, or `["*"]`.
    pub origins: Vec<String>,
    #[serde(default)]
    pub allow_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Preflight cache lifetime in seconds. Default 600.
    #[serde(default = "FileCors::default_max_age")]
    pub max_age: u64,
    #[serde(default)]
    pub allow_credentials: bool,
}

impl FileCors {
    fn default_max_age() -> u64 {
        600
    }
}
