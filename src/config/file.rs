//! Raw config as written in the TOML file: serde structs with documented
//! defaults and `deny_unknown_fields`. Nothing outside `config` reads these;
//! `validate.rs` turns them into typed values.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: FileServer,
    #[serde(default)]
    pub admin: FileAdmin,
    #[serde(default)]
    pub store: FileStore,
    #[serde(default)]
    pub tokens: FileTokens,
    #[serde(default)]
    pub cache: FileCache,
    #[serde(default)]
    pub endpoints: FileEndpoints,
    #[serde(default)]
    pub limits: FileLimits,
    /// Scope name -> human description. Every scope a route, key or named
    /// token mentions must be declared here.
    #[serde(default)]
    pub scopes: BTreeMap<String, String>,
    #[serde(default)]
    pub named_tokens: FileNamedTokens,
    #[serde(default)]
    pub identity_headers: FileIdentityHeaders,
    #[serde(default)]
    pub issuers: Vec<FileIssuer>,
    #[serde(default)]
    pub upstreams: Vec<FileUpstream>,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
pub const DEFAULT_BODY_READ_TIMEOUT: &str = "30s";
pub const DEFAULT_LINGERING_TIME: &str = "5s";
pub const DEFAULT_LINGERING_BYTES: u64 = 4 * 1024 * 1024;
pub const DEFAULT_UPSTREAM_BODY_READ_TIMEOUT: &str = "60s";
pub const DEFAULT_SHUTDOWN_GRACE: &str = "30s";
pub const DEFAULT_HANDSHAKE_TIMEOUT: &str = "10s";
pub const DEFAULT_IDLE_TIMEOUT: &str = "75s";
pub const DEFAULT_SEND_TIMEOUT: &str = "60s";
pub const DEFAULT_H2_KEEP_ALIVE_INTERVAL: &str = "30s";
pub const DEFAULT_H2_KEEP_ALIVE_TIMEOUT: &str = "20s";
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 1024;
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 128;
pub const DEFAULT_ADMIN_MAX_CONNECTIONS_PER_IP: usize = 32;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServer {
    /// Proxy listener. Default `127.0.0.1:8080`.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the listener speaks TLS
    /// (h2 and http/1.1 by ALPN).
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Accept HTTP/2 without TLS (prior knowledge). Default true.
    #[serde(default = "d_true")]
    pub h2c: bool,
    /// Largest request head (request line + headers). Default 16 KiB.
    #[serde(default = "d_max_header")]
    pub max_header_bytes: usize,
    /// Largest request body accepted on any route (declared or streamed).
    /// Default 10 MiB.
    #[serde(default = "d_max_body")]
    pub max_body_bytes: u64,
    /// Longest a request body may go without a byte arriving (token
    /// endpoints and proxied uploads); a slow but moving body is fine.
    /// Default 30s.
    #[serde(default = "d_body_read_timeout")]
    pub body_read_timeout: String,
    /// After an early answer to a client still sending its body (401, 413,
    /// ...), how long the rest is read and discarded before the connection
    /// closes, so that the answer reaches the client. `0s` closes at once.
    /// Default 5s.
    #[serde(default = "d_lingering_time")]
    pub lingering_time: String,
    /// At most this much of such a body is read and discarded. Default 4 MiB.
    #[serde(default = "d_lingering_bytes")]
    pub lingering_bytes: u64,
    /// Open client connections at most; more are refused at accept.
    #[serde(default = "d_max_conns")]
    pub max_connections: usize,
    /// A client must send its request head within this time. Default 10s.
    #[serde(default = "d_header_timeout")]
    pub header_read_timeout: String,
    /// How long SIGTERM waits for in-flight requests. Default 30s.
    #[serde(default = "d_grace")]
    pub shutdown_grace: String,
    /// Re-read the config when the file changes (in addition to SIGHUP).
    #[serde(default = "d_true")]
    pub watch_config: bool,
    /// Emit one JSON access-log line per request. Default true.
    #[serde(default = "d_true")]
    pub access_log: bool,
    /// From accept until the first request head is complete (first bytes,
    /// TLS handshake, protocol detection, HTTP/2 preface). Default 10s.
    #[serde(default = "d_handshake_timeout")]
    pub handshake_timeout: String,
    /// A connection with no request in flight this long is closed (GOAWAY
    /// on HTTP/2). Default 75s.
    #[serde(default = "d_server_idle_timeout")]
    pub idle_timeout: String,
    /// A connection whose client takes none of the responses waiting for
    /// it for this long is closed. Default 60s.
    #[serde(default = "d_send_timeout")]
    pub send_timeout: String,
    /// HTTP/2 PING interval. Default 30s.
    #[serde(default = "d_h2_ka_interval")]
    pub h2_keep_alive_interval: String,
    /// An unanswered HTTP/2 PING closes the connection after this. Default 20s.
    #[serde(default = "d_h2_ka_timeout")]
    pub h2_keep_alive_timeout: String,
    /// Open connections per client address (IPv4 address or IPv6 /64).
    /// Default 1024.
    #[serde(default = "d_max_conns_per_ip")]
    pub max_connections_per_ip: usize,
    /// Networks (CIDR, or single addresses) of the load balancers and
    /// reverse proxies in front: only connections from them have their
    /// `X-Forwarded-For` / `X-Forwarded-Proto` (or PROXY header) read.
    /// Default empty: nobody is trusted.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Connections from trusted proxies must start with a PROXY protocol
    /// header (v2, or v1), whose address is the client's. Default false.
    #[serde(default)]
    pub proxy_protocol: bool,
}

impl Default for FileServer {
    fn default() -> Self {
        Self {
            listen: d_listen(),
            tls_cert: None,
            tls_key: None,
            h2c: true,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT.into(),
            lingering_time: DEFAULT_LINGERING_TIME.into(),
            lingering_bytes: DEFAULT_LINGERING_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT.into(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE.into(),
            watch_config: true,
            access_log: true,
            handshake_timeout: d_handshake_timeout(),
            idle_timeout: d_server_idle_timeout(),
            send_timeout: d_send_timeout(),
            h2_keep_alive_interval: d_h2_ka_interval(),
            h2_keep_alive_timeout: d_h2_ka_timeout(),
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// Admin listener (health, metrics, admin API). Default `127.0.0.1:9090`.
    /// An empty string disables it.
    #[serde(default = "d_admin_listen")]
    pub listen: String,
    /// Environment variable holding the admin API bearer credential.
    /// Default `TILEGATE_ADMIN_TOKEN`.
    #[serde(default = "d_admin_env")]
    pub token_env: String,
    /// File holding the admin credential (used when the env var is unset).
    pub token_file: Option<String>,
    /// Open admin connections at most. Default 128.
    #[serde(default = "d_admin_max_conns")]
    pub max_connections: usize,
    /// Open admin connections per client address. Default 32.
    #[serde(default = "d_admin_max_conns_per_ip")]
    pub max_connections_per_ip: usize,
}

impl Default for FileAdmin {
    fn default() -> Self {
        Self {
            listen: d_admin_listen(),
            token_env: d_admin_env(),
            token_file: None,
            max_connections: DEFAULT_ADMIN_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_ADMIN_MAX_CONNECTIONS_PER_IP,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStore {
    /// `sqlite://path/to/file.db` (created when absent) or `postgres://…`.
    #[serde(default = "d_store_url")]
    pub url: String,
    /// Environment variable with the key-encryption key (base64, 32 bytes)
    /// that encrypts client secrets at rest. Default `TILEGATE_KEK`.
    #[serde(default = "d_kek_env")]
    pub kek_env: String,
    /// File with the key-encryption key; generated on first start when
    /// neither the env var nor the file exists. Default `data/kek`.
    #[serde(default = "d_kek_file")]
    pub kek_file: String,
    /// How often each replica re-reads the revocation list in full, as a
    /// backstop for missed notifications. Default 30s.
    #[serde(default = "d_resync")]
    pub revocation_resync: String,
    /// Connections in the store pool. Default 8.
    #[serde(default = "d_pool")]
    pub pool_size: u32,
    /// How long a store operation waits for a database connection before
    /// the request gets 503. Default 1s.
    #[serde(default = "d_acquire_timeout")]
    pub acquire_timeout: String,
    /// Accept a PostgreSQL URL whose `sslmode` is not `verify-full` for a
    /// host other than loopback. Default false.
    #[serde(default)]
    pub allow_insecure_transport: bool,
}

impl Default for FileStore {
    fn default() -> Self {
        Self {
            url: d_store_url(),
            kek_env: d_kek_env(),
            kek_file: d_kek_file(),
            revocation_resync: d_resync(),
            pool_size: d_pool(),
            acquire_timeout: d_acquire_timeout(),
            allow_insecure_transport: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTokens {
    /// `iss` of every token the gateway signs, and the issuer it accepts for
    /// its own tokens. Default `http://127.0.0.1:8080`.
    #[serde(default = "d_issuer")]
    pub issuer: String,
    /// `aud` of issued tokens, required on verification. Default `tilegate`.
    #[serde(default = "d_audience")]
    pub audience: String,
    /// Signing algorithm for new keys: `ES256` (default), `EdDSA`, `RS256`.
    #[serde(default = "d_alg")]
    pub algorithm: String,
    /// Directory of signing keys (`<kid>.pem` + `active` file). Default
    /// `data/keys`; generated on first start when empty.
    #[serde(default = "d_keys_dir")]
    pub keys_dir: String,
    #[serde(default = "d_default_ttl")]
    pub default_ttl: String,
    #[serde(default = "d_max_ttl")]
    pub max_ttl: String,
    /// Clock skew tolerated on `exp`/`nbf`. Default 30s.
    #[serde(default = "d_leeway")]
    pub leeway: String,
    /// Lifetime of the temporary login token of the password grant.
    #[serde(default = "d_login_ttl")]
    pub login_ttl: String,
    /// Whether `grant_type=password` is served. Default true.
    #[serde(default = "d_true")]
    pub password_grant: bool,
    /// Longest token accepted anywhere, in bytes. Default 8192.
    #[serde(default = "d_max_token")]
    pub max_token_bytes: usize,
    /// How long a rotated-out key still verifies tokens. Default = max_ttl.
    pub rotation_grace: Option<String>,
    /// Longest lifetime (`exp` − now) of a `client_secret_jwt` client
    /// assertion. Default 1h.
    #[serde(default = "d_max_assertion_lifetime")]
    pub max_assertion_lifetime: String,
}

impl Default for FileTokens {
    fn default() -> Self {
        Self {
            issuer: d_issuer(),
            audience: d_audience(),
            algorithm: d_alg(),
            keys_dir: d_keys_dir(),
            default_ttl: d_default_ttl(),
            max_ttl: d_max_ttl(),
            leeway: d_leeway(),
            login_ttl: d_login_ttl(),
            password_grant: true,
            max_token_bytes: 8192,
            rotation_grace: None,
            max_assertion_lifetime: d_max_assertion_lifetime(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCache {
    /// Verified tokens kept at most. Default 100,000.
    #[serde(default = "d_cache_max")]
    pub max_entries: u64,
    /// Rejected tokens kept at most. Default 10,000.
    #[serde(default = "d_neg_max")]
    pub negative_max_entries: u64,
    /// How long a rejected token is remembered. Default 10s.
    #[serde(default = "d_neg_ttl")]
    pub negative_ttl: String,
    /// Long-lived secrets (API keys, generator tokens) looked up at most
    /// this long before the store is asked again. Default 60s.
    #[serde(default = "d_secret_ttl")]
    pub secret_ttl: String,
}

impl Default for FileCache {
    fn default() -> Self {
        Self {
            max_entries: d_cache_max(),
            negative_max_entries: d_neg_max(),
            negative_ttl: d_neg_ttl(),
            secret_ttl: d_secret_ttl(),
        }
    }
}

/// Paths of the inline endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEndpoints {
    #[serde(default = "d_ep_exchange")]
    pub api_key_exchange: String,
    #[serde(default = "d_ep_oauth")]
    pub oauth_token: String,
    #[serde(default = "d_ep_clients")]
    pub clients: String,
    #[serde(default = "d_ep_named")]
    pub named_token: String,
    #[serde(default = "d_ep_named_list")]
    pub named_tokens: String,
    #[serde(default = "d_ep_generator")]
    pub generator_token: String,
    #[serde(default = "d_ep_me")]
    pub me: String,
    #[serde(default = "d_ep_introspect")]
    pub introspect: String,
    #[serde(default = "d_ep_revoke")]
    pub revoke: String,
    #[serde(default = "d_ep_jwks")]
    pub jwks: String,
    #[serde(default = "d_ep_metadata")]
    pub metadata: String,
    /// Allowed CORS origins for the inline endpoints (browsers calling
    /// `/me`, say). Empty: no CORS headers. Default empty.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

impl Default for FileEndpoints {
    fn default() -> Self {
        Self {
            api_key_exchange: d_ep_exchange(),
            oauth_token: d_ep_oauth(),
            clients: d_ep_clients(),
            named_token: d_ep_named(),
            named_tokens: d_ep_named_list(),
            generator_token: d_ep_generator(),
            me: d_ep_me(),
            introspect: d_ep_introspect(),
            revoke: d_ep_revoke(),
            jwks: d_ep_jwks(),
            metadata: d_ep_metadata(),
            cors_origins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    /// Largest body accepted by a token endpoint. Default 64 KiB.
    #[serde(default = "d_token_body")]
    pub token_body_bytes: usize,
    /// Failed authentications per client address per minute on the token
    /// endpoints before 429. Default 30.
    #[serde(default = "d_auth_failures")]
    pub auth_failures_per_minute: u32,
    /// Failed authentications per credential identifier (username, OAuth
    /// client id) per minute, from every address together, before that
    /// identifier is refused from addresses that have not proven it.
    /// Default 10.
    #[serde(default = "d_auth_failures_credential")]
    pub auth_failures_per_credential: u32,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            token_body_bytes: d_token_body(),
            auth_failures_per_minute: d_auth_failures(),
            auth_failures_per_credential: d_auth_failures_credential(),
        }
    }
}

/// Scopes granted by each valid `action` × `resourceType` pair of named
/// tokens. Defaults follow SPEC.md.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Default true (the API contract of seed 001).
    pub allow_never_expiring: Option<bool>,
}

/// Names of the headers that carry the verified identity upstream.
/// Client-sent headers of these names are always dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIdentityHeaders {
    #[serde(default = "d_h_sub")]
    pub subject: String,
    #[serde(default = "d_h_org")]
    pub org: String,
    #[serde(default = "d_h_scope")]
    pub scopes: String,
    #[serde(default = "d_h_uid")]
    pub uid: String,
    /// Which issuer vouched for the token: `self` or an `[[issuers]]` name.
    #[serde(default = "d_h_issuer")]
    pub issuer: String,
}

impl Default for FileIdentityHeaders {
    fn default() -> Self {
        Self {
            subject: d_h_sub(),
            org: d_h_org(),
            scopes: d_h_scope(),
            uid: d_h_uid(),
            issuer: d_h_issuer(),
        }
    }
}

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
    #[serde(default = "d_jwks_refresh")]
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
    #[serde(default = "d_issuer_cache_ttl")]
    pub cache_ttl: String,
    /// Accept a `jwks_url` over plain http to a host other than loopback.
    #[serde(default)]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub name: String,
    /// `http://host:port` or `https://host:port`, one or more.
    pub backends: Vec<String>,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: String,
    /// Time until the upstream's response head arrives. Default 30s.
    #[serde(default = "d_request_timeout")]
    pub request_timeout: String,
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout: String,
    /// Longest the upstream's response body may go without a byte once
    /// its head has arrived; then the client's response is cut off and the
    /// upstream connection discarded. Default 60s.
    #[serde(default = "d_upstream_body_read_timeout")]
    pub body_read_timeout: String,
    /// Extra CA bundle (PEM) trusted for https backends, on top of the
    /// system roots.
    pub ca_file: Option<String>,
    /// Speak HTTP/2 to the backends (prior knowledge on http, ALPN on https).
    #[serde(default)]
    pub http2: bool,
    /// Idle pooled connections kept per backend. Default 256.
    #[serde(default = "d_pool_idle")]
    pub pool_max_idle: usize,
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
    #[serde(default = "d_cors_max_age")]
    pub max_age: u64,
    #[serde(default)]
    pub allow_credentials: bool,
}

fn d_true() -> bool {
    true
}
fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn d_max_header() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}
fn d_max_body() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn d_max_conns() -> usize {
    DEFAULT_MAX_CONNECTIONS
}
fn d_header_timeout() -> String {
    DEFAULT_HEADER_READ_TIMEOUT.into()
}
fn d_body_read_timeout() -> String {
    DEFAULT_BODY_READ_TIMEOUT.into()
}
fn d_lingering_time() -> String {
    DEFAULT_LINGERING_TIME.into()
}
fn d_lingering_bytes() -> u64 {
    DEFAULT_LINGERING_BYTES
}
fn d_upstream_body_read_timeout() -> String {
    DEFAULT_UPSTREAM_BODY_READ_TIMEOUT.into()
}
fn d_grace() -> String {
    DEFAULT_SHUTDOWN_GRACE.into()
}
fn d_handshake_timeout() -> String {
    DEFAULT_HANDSHAKE_TIMEOUT.into()
}
fn d_server_idle_timeout() -> String {
    DEFAULT_IDLE_TIMEOUT.into()
}
fn d_send_timeout() -> String {
    DEFAULT_SEND_TIMEOUT.into()
}
fn d_h2_ka_interval() -> String {
    DEFAULT_H2_KEEP_ALIVE_INTERVAL.into()
}
fn d_h2_ka_timeout() -> String {
    DEFAULT_H2_KEEP_ALIVE_TIMEOUT.into()
}
fn d_max_conns_per_ip() -> usize {
    DEFAULT_MAX_CONNECTIONS_PER_IP
}
fn d_admin_max_conns() -> usize {
    DEFAULT_ADMIN_MAX_CONNECTIONS
}
fn d_admin_max_conns_per_ip() -> usize {
    DEFAULT_ADMIN_MAX_CONNECTIONS_PER_IP
}
fn d_admin_env() -> String {
    "TILEGATE_ADMIN_TOKEN".into()
}
fn d_store_url() -> String {
    "sqlite://data/tilegate.db".into()
}
fn d_kek_env() -> String {
    "TILEGATE_KEK".into()
}
fn d_kek_file() -> String {
    "data/kek".into()
}
fn d_resync() -> String {
    "30s".into()
}
fn d_pool() -> u32 {
    8
}
fn d_acquire_timeout() -> String {
    "1s".into()
}
fn d_issuer() -> String {
    "http://127.0.0.1:8080".into()
}
fn d_audience() -> String {
    "tilegate".into()
}
fn d_alg() -> String {
    "ES256".into()
}
fn d_keys_dir() -> String {
    "data/keys".into()
}
fn d_default_ttl() -> String {
    "1h".into()
}
fn d_max_ttl() -> String {
    "4h".into()
}
fn d_leeway() -> String {
    "30s".into()
}
fn d_max_assertion_lifetime() -> String {
    "1h".into()
}
fn d_login_ttl() -> String {
    "15m".into()
}
fn d_max_token() -> usize {
    8192
}
fn d_cache_max() -> u64 {
    100_000
}
fn d_neg_max() -> u64 {
    10_000
}
fn d_neg_ttl() -> String {
    "10s".into()
}
fn d_secret_ttl() -> String {
    "60s".into()
}
fn d_ep_exchange() -> String {
    "/v1/auth/token".into()
}
fn d_ep_oauth() -> String {
    "/oauth/token".into()
}
fn d_ep_clients() -> String {
    "/v1/clients".into()
}
fn d_ep_named() -> String {
    "/oauth/v1/user/token".into()
}
fn d_ep_named_list() -> String {
    "/oauth/v1/user/tokens".into()
}
fn d_ep_generator() -> String {
    "/oauth/v1/user/generator-token".into()
}
fn d_ep_me() -> String {
    "/me".into()
}
fn d_ep_introspect() -> String {
    "/oauth/introspect".into()
}
fn d_ep_revoke() -> String {
    "/oauth/revoke".into()
}
fn d_ep_jwks() -> String {
    "/.well-known/jwks.json".into()
}
fn d_ep_metadata() -> String {
    "/.well-known/oauth-authorization-server".into()
}
fn d_token_body() -> usize {
    64 * 1024
}
fn d_auth_failures() -> u32 {
    30
}
fn d_auth_failures_credential() -> u32 {
    10
}
pub(crate) fn d_nt_stream() -> Vec<String> {
    vec!["datasets:stream".into()]
}
pub(crate) fn d_nt_refresh() -> Vec<String> {
    vec!["datasets:stream".into(), "datasets:refresh".into()]
}
pub(crate) fn d_nt_embed() -> Vec<String> {
    vec!["projects:embed".into()]
}
fn d_h_sub() -> String {
    "x-tilegate-subject".into()
}
fn d_h_org() -> String {
    "x-tilegate-org".into()
}
fn d_h_scope() -> String {
    "x-tilegate-scope".into()
}
fn d_h_uid() -> String {
    "x-tilegate-uid".into()
}
fn d_h_issuer() -> String {
    "x-tilegate-issuer".into()
}
fn d_jwks_refresh() -> String {
    "5m".into()
}
pub const DEFAULT_ISSUER_CACHE_TTL: &str = "5m";
fn d_issuer_cache_ttl() -> String {
    DEFAULT_ISSUER_CACHE_TTL.into()
}
fn d_connect_timeout() -> String {
    "2s".into()
}
fn d_request_timeout() -> String {
    "30s".into()
}
fn d_idle_timeout() -> String {
    "90s".into()
}
fn d_pool_idle() -> usize {
    256
}
fn d_cors_max_age() -> u64 {
    600
}
