//! Credential store: organizations, users, service accounts, API keys,
//! access-generator tokens, OAuth clients, named tokens, the revocation
//! list, signing keys and the audit log.
//!
//! One implementation over `sqlx::AnyPool` serves SQLite (the embedded
//! default: one file, WAL mode) and PostgreSQL (shared by several gateway
//! replicas). Every query is written once with `$n` placeholders, which both
//! SQLite and PostgreSQL accept natively, so no rewriting is needed; the
//! schema only uses `TEXT` and `BIGINT` columns, which the Any driver maps
//! identically on both. Backend-specific SQL is limited to the migrations
//! (`migrations/sqlite`, `migrations/postgres`), `BEGIN IMMEDIATE` for SQLite
//! write transactions, `FOR UPDATE` and `pg_notify` on PostgreSQL.
//!
//! Secrets at rest: API keys and access-generator tokens are looked up by
//! their SHA-256 hex; the secrets the gateway must read back (client
//! secrets, access-generator tokens, signing private keys) are encrypted
//! with the KEK (AES-256-GCM, random nonce, the record id as associated
//! data); passwords are argon2id PHC strings. No error message or log line
//! carries a secret.

mod client_lookup;
mod crypto;
mod error;
mod files;
mod health;
mod transport;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crypto::{ct_eq, random_id, Cipher};
pub use crypto::{random_token, sha256_hex, Kek};
pub use error::StoreError;
use error::{db, map_db};
pub use files::create_private_dir;
use health::{Gated, Health};
pub use transport::{check_postgres_transport, is_loopback_host};

/// Channel of the PostgreSQL notifications sent by [`Store::add_revocation`].
pub const REVOCATION_CHANNEL: &str = "tilegate_revocations";
/// The payload [`Store::announce_limits_changed`] sends on that channel
/// instead of a revoked id (no id starts with `!`): receivers forget the
/// credentials they cache, whose principal's ceiling or state changed.
pub const LIMITS_CHANGED: &str = "!limits";
/// Channel of the PostgreSQL notifications sent by
/// [`Store::insert_signing_key`] (payload: the new kid), so every replica
/// re-reads the signing keys at once after a rotation anywhere.
pub const KEYS_CHANNEL: &str = "tilegate_keys";

/// What another replica (or the CLI) changed, from [`RevocationListener::recv_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// An id was revoked, until the given time (`None`: for ever).
    Revoked(String, Option<i64>),
    /// The signing keys changed (a rotation): re-read them.
    KeysChanged,
    /// A principal's ceiling or state changed ([`LIMITS_CHANGED`]): forget
    /// the credentials cached with their limits.
    LimitsChanged,
}

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "tgk_";
/// Prefix of access-generator tokens.
pub const GENERATOR_TOKEN_PREFIX: &str = "tgg_";
/// Prefix of OAuth client ids.
pub const CLIENT_ID_PREFIX: &str = "tgc_";
/// Prefix of OAuth client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "tgs_";

/// Longest opaque secret accepted for a lookup; longer input is not a credential.
const MAX_SECRET_LEN: usize = 256;
/// Longest name, username, id or jti accepted.
const MAX_NAME_LEN: usize = 128;
/// Rows of `assertion_jtis` are kept this long after their `exp`, so that a
/// verifier allowing clock-skew leeway up to this much still sees replays.
const JTI_RETENTION_SECS: i64 = 300;
/// How long a call of a store made by [`Store::open`] waits for a database
/// connection (sqlx's default). The gateway and the CLI use
/// [`Store::open_with`] and `store.acquire_timeout` (1s by default).
pub const OPEN_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database the store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend named by a store URL (`sqlite:…`, `postgres://…`, `postgresql://…`).
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Invalid(
                "store URL must start with sqlite: or postgres://".into(),
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Scopes every credential of the org stays within; `None`: the
    /// default (every declared scope but `clients:manage`).
    pub scope_ceiling: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub uid: String,
    pub org_id: String,
    pub username: String,
    pub created_at: i64,
    /// The user's own ceiling, within the org's; `None`: the org's.
    pub scope_ceiling: Option<Vec<String>>,
    /// Set while the user is disabled.
    pub disabled_at: Option<i64>,
    /// The `cid` of the user's login tokens (not a secret: the tokens carry
    /// it); replaced when the user is disabled or the password is reset.
    #[serde(skip)]
    pub login_id: String,
}

/// What bounds the credentials of a principal, read at every issuance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The username or the service account's name.
    pub name: String,
    pub org_id: String,
    pub org_ceiling: Option<Vec<String>>,
    /// Users only; `None` for service accounts and users on the default.
    pub user_ceiling: Option<Vec<String>>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAccount {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

/// Who a credential belongs to. JSON: `{"kind":"user","id":"usr_…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Principal {
    User(String),
    ServiceAccount(String),
}

impl Principal {
    pub fn id(&self) -> &str {
        match self {
            Principal::User(id) | Principal::ServiceAccount(id) => id,
        }
    }

    /// `"user"` or `"service_account"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::ServiceAccount(_) => "service_account",
        }
    }

    fn from_parts(kind: &str, id: String) -> Result<Principal, sqlx::Error> {
        match kind {
            "user" => Ok(Principal::User(id)),
            "service_account" => Ok(Principal::ServiceAccount(id)),
            _ => Err(sqlx::Error::Decode("unknown principal kind in store".into())),
        }
    }
}

/// An API key record; the secret itself is never stored nor returned here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    /// First 8 characters after `tgk_`, to recognise a key in listings.
    pub prefix: String,
    pub principal: Principal,
    pub org_id: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| now < exp)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratorToken {
    pub id: String,
    pub uid: String,
    pub org_id: String,
    pub username: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub client_id: String,
    pub org_id: String,
    pub owner_uid: String,
    pub name: Option<String>,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// Set when an operator action (disabling the owner) revoked it.
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedToken {
    /// The JWT's `jti`.
    pub id: String,
    pub uid: String,
    pub org_id: String,
    pub generator_id: String,
    pub name: String,
    pub action: String,
    pub resource_type: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl NamedToken {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// A signing key to insert; its private key is encrypted at rest.
#[derive(Clone, Serialize)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: String,
    #[serde(skip_serializing)]
    pub private_pkcs8_der: Vec<u8>,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    pub created_at: i64,
}

impl std::fmt::Debug for NewSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A stored signing key, private key decrypted. `Debug` and `Serialize`
/// leave the private key out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    #[serde(skip_serializing)]
    pub private_pkcs8_der: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub created_at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Receives revoked ids from other replicas (PostgreSQL `LISTEN`).
pub struct RevocationListener {
    inner: sqlx::postgres::PgListener,
}

impl RevocationListener {
    /// The next revoked id.
    ///
    /// Returns `Err(StoreError::Unavailable)` as soon as the connection is
    /// lost (eager reconnection is off, so sqlx's growing backoff never
    /// delays the report; notifications sent meanwhile are lost). The caller
    /// then opens a new listener with [`Store::revocation_listener`] and
    /// reloads the full list with [`Store::list_revocations`].
    /// sqlx does not document cancel safety: run it in its own task rather
    /// than racing it in `tokio::select!`.
    pub async fn recv(&mut self) -> Result<(String, Option<i64>), StoreError> {
        loop {
            if let StoreEvent::Revoked(id, until) = self.recv_event().await? {
                return Ok((id, until));
            }
        }
    }

    /// The next event: a revocation, a change of limits, or a change of the signing keys. Same
    /// error behaviour as [`RevocationListener::recv`].
    pub async fn recv_event(&mut self) -> Result<StoreEvent, StoreError> {
        match self.inner.try_recv().await {
            Ok(Some(n)) if n.channel() == KEYS_CHANNEL => Ok(StoreEvent::KeysChanged),
            Ok(Some(n)) if n.payload() == LIMITS_CHANGED => Ok(StoreEvent::LimitsChanged),
            Ok(Some(n)) => {
                let (id, until) = parse_notification(n.payload());
                Ok(StoreEvent::Revoked(id.to_owned(), until))
            }
            Ok(None) => {
                tracing::warn!("revocation listener lost its database connection");
                Err(StoreError::Unavailable(
                    "revocation listener lost its connection; resynchronise".into(),
                ))
            }
            Err(e) => Err(match db(e) {
                StoreError::Internal(m) => StoreError::Unavailable(m),
                other => other,
            }),
        }
    }
}

/// The NOTIFY payload of a revocation: the id and, when the entry expires,
/// its `until`, so other replicas forget it when the revoking one does.
fn notification(id: &str, until: Option<i64>) -> String {
    match until {
        Some(u) => format!("{id} {u}"),
        None => id.to_owned(),
    }
}

/// Parse [`notification`]'s payload. A bare id (from an older replica)
/// is kept forever, the safe side, until a resync takes the store's
/// `until`.
fn parse_notification(payload: &str) -> (&str, Option<i64>) {
    match payload.rsplit_once(' ') {
        Some((id, u)) => match u.parse() {
            Ok(u) => (id, Some(u)),
            Err(_) => (payload, None),
        },
        None => (payload, None),
    }
}

#[cfg(test)]
#[test]
fn revocation_notifications_carry_the_expiry() {
    assert_eq!(
        parse_notification(&notification("jti-1", Some(42))),
        ("jti-1", Some(42))
    );
    assert_eq!(parse_notification(&notification("key_x", None)), ("key_x", None));
    assert_eq!(parse_notification("old-format"), ("old-format", None));
}

impl std::fmt::Debug for RevocationListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationListener")
    }
}

/// The credential store. Cheap to clone (shared pool).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    /// Fails calls at once while PostgreSQL is unreachable (health.rs).
    health: Arc<Health>,
    backend: Backend,
    cipher: Cipher,
    /// The connection URL, kept for the revocation listener. Never logged.
    url: String,
    /// Bounds concurrent argon2 computations (each takes ~19 MiB and a core).
    hashing: tokio::sync::Semaphore,
    jti_calls: AtomicU64,
    last_revocation_purge: AtomicI64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

type Tx = Transaction<'static, Any>;

const KEK_CHECK_AAD: &str = "tilegate:kek-check";
const KEK_CHECK_PLAIN: &[u8] = b"tilegate kek check v1";

macro_rules! org_cols {
    () => {
        "id, name, created_at, scope_ceiling"
    };
}
macro_rules! user_cols {
    () => {
        "uid, org_id, username, created_at, scope_ceiling, disabled_at, \
         COALESCE(login_id, 'lgn_' || uid) AS login_id"
    };
}
macro_rules! sa_cols {
    () => {
        "id, org_id, name, created_at"
    };
}
macro_rules! key_cols {
    () => {
        "id, prefix, principal_kind, principal_id, org_id, scopes, created_at, expires_at, revoked_at, last_used_at"
    };
}
macro_rules! client_cols {
    () => {
        "client_id, org_id, owner_uid, name, scopes, created_at, revoked_at"
    };
}
macro_rules! named_cols {
    () => {
        "id, uid, org_id, generator_id, name, action, resource_type, scopes, created_at, expires_at, revoked_at"
    };
}
macro_rules! gen_select {
    () => {
        "SELECT g.id, g.uid, u.org_id, u.username, g.created_at, g.token_hash, g.token_enc, u.disabled_at \
         FROM generator_tokens g JOIN users u ON u.uid = g.uid "
    };
}

impl Store {
    /// Opens (and migrates) the store.
    ///
    /// `sqlite://path/file.db` (relative) or `sqlite:///abs/file.db`: the
    /// file and its parent directory are created when missing; WAL mode,
    /// `synchronous=NORMAL`, `busy_timeout=5s`, foreign keys on.
    /// `sqlite::memory:` gives a private in-memory database on one connection
    /// (for tests). `postgres://…`: a pool of `pool_size` connections.
    /// Fails with `Crypto` when `kek` is not the key the store was created with.
    /// A call waits at most [`OPEN_ACQUIRE_TIMEOUT`] for a connection.
    pub async fn open(url: &str, pool_size: u32, kek: Kek) -> Result<Store, StoreError> {
        Store::open_with(url, pool_size, OPEN_ACQUIRE_TIMEOUT, kek).await
    }

    /// [`Store::open`] with the longest wait for a database connection
    /// (`store.acquire_timeout`): a call that gets none by then fails with
    /// `Unavailable` (503). While PostgreSQL is unreachable, calls fail at
    /// once instead (see `health.rs`).
    pub async fn open_with(
        url: &str,
        pool_size: u32,
        acquire_timeout: Duration,
        kek: Kek,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let cipher = kek.cipher()?;
        let mut options = AnyPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(acquire_timeout);
        let connect_url = match backend {
            Backend::Postgres => url.to_string(),
            Backend::Sqlite => {
                let (connect_url, in_memory) = prepare_sqlite_url(url)?;
                if in_memory {
                    // Every new connection would be a new, empty database.
                    options = options
                        .min_connections(1)
                        .max_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None);
                }
                // An SQLite connection that once failed to read the file (it
                // was replaced, damaged or unreadable) keeps failing after the
                // file is back. A reused connection is checked with one small
                // read (microseconds, in-process) and replaced when it fails.
                options = options.before_acquire(|conn, _meta| {
                    Box::pin(async move { Ok(sqlx::query("SELECT 1 FROM meta LIMIT 1").execute(conn).await.is_ok()) })
                });
                options = options.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // Per-connection settings that never read the file, so
                        // a connection opens (and its query fails fast, 503)
                        // even while the file is unreadable. `synchronous`
                        // reads the schema: when that fails the connection
                        // keeps SQLite's default FULL, which is only slower.
                        conn.execute("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                            .await?;
                        let _ = conn.execute("PRAGMA synchronous = NORMAL").await;
                        Ok(())
                    })
                });
                connect_url
            }
        };
        let pool = options.connect(&connect_url).await.map_err(|e| match db(e) {
            StoreError::Internal(m) => StoreError::Unavailable(m),
            other => other,
        })?;
        if backend == Backend::Sqlite {
            // Stored in the file: once is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(db)?;
        }
        run_migrations(&pool, backend).await?;
        let permits = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let store = Store {
            inner: Arc::new(Inner {
                pool,
                health: Health::new(backend == Backend::Postgres, acquire_timeout),
                backend,
                cipher,
                url: url.to_string(),
                hashing: tokio::sync::Semaphore::new(permits),
                jti_calls: AtomicU64::new(0),
                last_revocation_purge: AtomicI64::new(0),
            }),
        };
        store.check_kek().await?;
        tracing::info!(backend = ?backend, "credential store opened");
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// A small read of a real table (a bare `SELECT 1` never touches an
    /// SQLite file); `Unavailable` when the database cannot be read.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM meta LIMIT 1")
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Closes the pool; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// The pool, behind the fail-fast check of `health.rs`.
    fn pool(&self) -> Gated<'_> {
        Gated {
            pool: &self.inner.pool,
            health: &self.inner.health,
        }
    }

    /// A write transaction. SQLite: `BEGIN IMMEDIATE`, which takes the write
    /// lock up front (waiting up to `busy_timeout`) instead of failing with
    /// SQLITE_BUSY when a deferred transaction upgrades.
    async fn begin_write(&self) -> Result<Tx, StoreError> {
        match self.inner.backend {
            Backend::Sqlite => self.pool().begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool().begin().await,
        }
        .map_err(db)
    }

    async fn check_kek(&self) -> Result<(), StoreError> {
        let sealed = self.inner.cipher.seal(KEK_CHECK_AAD, KEK_CHECK_PLAIN)?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ('kek_check', $1) ON CONFLICT (key) DO NOTHING")
            .bind(sealed)
            .execute(self.pool())
            .await
            .map_err(db)?;
        let stored: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'kek_check'")
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        match self.inner.cipher.open(KEK_CHECK_AAD, &stored) {
            Ok(plain) if plain == KEK_CHECK_PLAIN => Ok(()),
            _ => Err(StoreError::Crypto(
                "the KEK does not match the one this store was created with".into(),
            )),
        }
    }

    // ---------------------------------------------------------------- orgs

    pub async fn create_org(&self, name: &str) -> Result<Org, StoreError> {
        self.create_org_with(name, None).await
    }

    /// An organization with a scope ceiling (`None`: the default), in one write.
    pub async fn create_org_with(&self, name: &str, ceiling: Option<&[String]>) -> Result<Org, StoreError> {
        check_name("organization name", name)?;
        let ceiling_text = ceiling.map(join_scopes).transpose()?;
        let org = Org {
            id: random_id("org_"),
            name: name.to_string(),
            created_at: crate::clock::now_unix(),
            scope_ceiling: ceiling_text.as_deref().map(split_scopes),
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at, scope_ceiling) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.created_at)
            .bind(ceiling_text)
            .execute(self.pool())
            .await
            .map_err(|e| map_db(e, "organization name already taken"))?;
        Ok(org)
    }

    /// By id, else by name.
    pub async fn find_org(&self, id_or_name: &str) -> Result<Option<Org>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            org_cols!(),
            " FROM orgs WHERE id = $1 OR name = $1 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| org_from_row(&r))
        .transpose()
        .map_err(db)
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        sqlx::query(concat!("SELECT ", org_cols!(), " FROM orgs ORDER BY created_at, id"))
            .fetch_all(self.pool())
            .await
            .map_err(db)?
            .iter()
            .map(org_from_row)
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    // --------------------------------------------------------------- users

    /// Creates the user and its access-generator token in one transaction.
    /// `Conflict` when the username is taken, `NotFound` when the org is missing.
    pub async fn create_user(&self, org_id: &str, username: &str, password: Option<&str>) -> Result<User, StoreError> {
        self.create_user_with(org_id, username, password, None).await
    }

    /// [`Store::create_user`] with the user's own scope ceiling (`None`:
    /// the org's), in the same transaction.
    pub async fn create_user_with(
        &self,
        org_id: &str,
        username: &str,
        password: Option<&str>,
        ceiling: Option<&[String]>,
    ) -> Result<User, StoreError> {
        check_name("username", username)?;
        let ceiling_text = ceiling.map(join_scopes).transpose()?;
        let password_hash = match password {
            Some(p) => {
                check_password(p)?;
                Some(self.hash_password(p).await?)
            }
            None => None,
        };
        let user = User {
            uid: random_id("usr_"),
            org_id: org_id.to_string(),
            username: username.to_string(),
            created_at: crate::clock::now_unix(),
            scope_ceiling: ceiling_text.as_deref().map(split_scopes),
            disabled_at: None,
            login_id: random_id("lgn_"),
        };
        let mut tx = self.begin_write().await?;
        let org: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(StoreError::NotFound("organization".into()));
        }
        sqlx::query(
            "INSERT INTO users (uid, org_id, username, password_hash, created_at, scope_ceiling, login_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&user.uid)
        .bind(&user.org_id)
        .bind(&user.username)
        .bind(password_hash)
        .bind(user.created_at)
        .bind(ceiling_text)
        .bind(&user.login_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db(e, "username already taken"))?;
        self.insert_generator(&mut tx, &user.uid, user.created_at).await?;
        tx.commit().await.map_err(db)?;
        Ok(user)
    }

    /// By uid, else by username.
    pub async fn find_user(&self, uid_or_username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE uid = $1 OR username = $1 \
             ORDER BY CASE WHEN uid = $1 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(uid_or_username)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| user_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Users of one organization, or all.
    pub async fn list_users(&self, org_id: Option<&str>) -> Result<Vec<User>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, uid"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(user_from_row)
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    /// `Some(user)` when the password is right; `None` for an unknown user,
    /// a user without password, a disabled user or a wrong password, in
    /// about the same time (a disabled user's password is still checked, so
    /// the answer does not tell whether it was right).
    pub async fn verify_password(&self, username: &str, password: &str) -> Result<Option<User>, StoreError> {
        // A username the store would never accept cannot exist (and
        // PostgreSQL would refuse a NUL in the lookup): no such user.
        if password.len() > 1024 || !valid_name(username) {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            ", password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?;
        let (user, phc) = match row {
            Some(r) => {
                let phc: Option<String> = r.try_get("password_hash").map_err(db)?;
                (Some(user_from_row(&r).map_err(db)?), phc)
            }
            None => (None, None),
        };
        let has_hash = phc.is_some();
        let phc = phc.unwrap_or_else(|| crypto::DUMMY_PASSWORD_HASH.to_string());
        let password = password.to_string();
        let ok = self
            .blocking_hash(move || crypto::verify_password_hash(&phc, &password))
            .await?;
        Ok(if ok && has_hash {
            user.filter(|u| u.disabled_at.is_none())
        } else {
            None
        })
    }

    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_string();
        self.blocking_hash(move || crypto::hash_password(&password)).await?
    }

    async fn blocking_hash<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(|_| StoreError::Internal("password hashing unavailable".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| StoreError::Internal("password hashing task failed".into()))
    }

    // ------------------------------------------------ ceilings and containment

    /// What bounds the principal's credentials: its org's ceiling, a
    /// user's own ceiling and disabled flag, and its name. `None` when the
    /// principal does not exist (any more).
    pub async fn principal_limits(&self, principal: &Principal) -> Result<Option<Limits>, StoreError> {
        let sql = match principal {
            Principal::User(_) => {
                "SELECT u.username AS name, u.org_id, o.scope_ceiling AS org_ceiling, \
                 u.scope_ceiling AS user_ceiling, u.disabled_at \
                 FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.uid = $1"
            }
            Principal::ServiceAccount(_) => {
                "SELECT s.name, s.org_id, o.scope_ceiling AS org_ceiling, \
                 CAST(NULL AS TEXT) AS user_ceiling, CAST(NULL AS BIGINT) AS disabled_at \
                 FROM service_accounts s JOIN orgs o ON o.id = s.org_id WHERE s.id = $1"
            }
        };
        if !valid_name(principal.id()) {
            return Ok(None);
        }
        let Some(r) = sqlx::query(sql)
            .bind(principal.id())
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let limits = (|| {
            Ok::<_, sqlx::Error>(Limits {
                name: r.try_get("name")?,
                org_id: r.try_get("org_id")?,
                org_ceiling: ceiling_from(&r, "org_ceiling")?,
                user_ceiling: ceiling_from(&r, "user_ceiling")?,
                disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            })
        })()
        .map_err(db)?;
        Ok(Some(limits))
    }

    /// Sets an organization's ceiling (`None`: back to the default);
    /// `None` when no such org.
    pub async fn set_org_ceiling(&self, org_id: &str, ceiling: Option<&[String]>) -> Result<Option<Org>, StoreError> {
        let text = ceiling.map(join_scopes).transpose()?;
        sqlx::query(concat!(
            "UPDATE orgs SET scope_ceiling = $1 WHERE id = $2 RETURNING ",
            org_cols!()
        ))
        .bind(text)
        .bind(org_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| org_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Sets a user's own ceiling (`None`: the org's); `None` when no such user.
    pub async fn set_user_ceiling(&self, uid: &str, ceiling: Option<&[String]>) -> Result<Option<User>, StoreError> {
        let text = ceiling.map(join_scopes).transpose()?;
        sqlx::query(concat!(
            "UPDATE users SET scope_ceiling = $1 WHERE uid = $2 RETURNING ",
            user_cols!()
        ))
        .bind(text)
        .bind(uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| user_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Disables the user and gives it a new login id, provided its login id
    /// is still `login_id` (which the caller has revoked first). `Ok(false)`
    /// when the login id changed meanwhile: revoke the new one and call
    /// again. `NotFound` when no such user. Keeps the first `disabled_at`.
    pub async fn disable_user(&self, uid: &str, login_id: &str, now: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $1), login_id = $2 \
             WHERE uid = $3 AND COALESCE(login_id, 'lgn_' || uid) = $4",
        )
        .bind(now)
        .bind(random_id("lgn_"))
        .bind(uid)
        .bind(login_id)
        .execute(self.pool())
        .await
        .map_err(db)?
        .rows_affected();
        self.login_replaced(uid, n).await
    }

    /// Lets a disabled user log in again; `None` when no such user.
    pub async fn enable_user(&self, uid: &str) -> Result<Option<User>, StoreError> {
        sqlx::query(concat!(
            "UPDATE users SET disabled_at = NULL WHERE uid = $1 RETURNING ",
            user_cols!()
        ))
        .bind(uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| user_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Replaces the password and the login id, provided the login id is
    /// still `login_id` (revoked first by the caller); as
    /// [`Store::disable_user`] otherwise.
    pub async fn set_password(&self, uid: &str, login_id: &str, password: &str) -> Result<bool, StoreError> {
        check_password(password)?;
        let hash = self.hash_password(password).await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, login_id = $2 \
             WHERE uid = $3 AND COALESCE(login_id, 'lgn_' || uid) = $4",
        )
        .bind(hash)
        .bind(random_id("lgn_"))
        .bind(uid)
        .bind(login_id)
        .execute(self.pool())
        .await
        .map_err(db)?
        .rows_affected();
        self.login_replaced(uid, n).await
    }

    async fn login_replaced(&self, uid: &str, rows: u64) -> Result<bool, StoreError> {
        if rows > 0 {
            return Ok(true);
        }
        match self.find_user(uid).await? {
            Some(u) if u.uid == uid => Ok(false),
            _ => Err(StoreError::NotFound("user".into())),
        }
    }

    /// Sets `revoked_at` of a client (kept from the first time); `None`
    /// when no such client.
    pub async fn revoke_client(&self, client_id: &str, now: i64) -> Result<Option<Client>, StoreError> {
        sqlx::query(concat!(
            "UPDATE clients SET revoked_at = COALESCE(revoked_at, $1) WHERE client_id = $2 RETURNING ",
            client_cols!()
        ))
        .bind(now)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| client_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Marks every active named token of the user revoked, for the
    /// listings (the tokens stop verifying with their generator token's
    /// revocation, which the caller makes). Returns how many.
    pub async fn mark_named_tokens_revoked(&self, uid: &str, now: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("UPDATE named_tokens SET revoked_at = $1 WHERE uid = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(uid)
                .execute(self.pool())
                .await
                .map_err(db)?
                .rows_affected(),
        )
    }

    /// Deletes the user and everything it holds (clients and their
    /// assertion ids, named tokens, generator token, API keys) in one
    /// transaction. The caller revokes first. `false` when no such user.
    pub async fn delete_user(&self, uid: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM assertion_jtis WHERE client_id IN (SELECT client_id FROM clients WHERE owner_uid = $1)",
            "DELETE FROM clients WHERE owner_uid = $1",
            "DELETE FROM named_tokens WHERE uid = $1",
            "DELETE FROM generator_tokens WHERE uid = $1",
            "DELETE FROM api_keys WHERE principal_kind = 'user' AND principal_id = $1",
        ] {
            sqlx::query(sql).bind(uid).execute(&mut *tx).await.map_err(db)?;
        }
        let n = sqlx::query("DELETE FROM users WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }

    /// Deletes the service account and its API keys in one transaction.
    /// The caller revokes first. `false` when no such service account.
    pub async fn delete_service_account(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_keys WHERE principal_kind = 'service_account' AND principal_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let n = sqlx::query("DELETE FROM service_accounts WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }

    /// Deletes an organization whose users and service accounts the caller
    /// has deleted (revoking first), with whatever rows still name it.
    /// `Conflict` when a user or service account was added meanwhile;
    /// `false` when no such org.
    pub async fn delete_org(&self, org_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let members: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM users WHERE org_id = $1) \
             + (SELECT COUNT(*) FROM service_accounts WHERE org_id = $1)",
        )
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        if members > 0 {
            return Err(StoreError::Conflict(
                "the organization gained a user or service account meanwhile; delete again".into(),
            ));
        }
        for sql in [
            "DELETE FROM assertion_jtis WHERE client_id IN (SELECT client_id FROM clients WHERE org_id = $1)",
            "DELETE FROM clients WHERE org_id = $1",
            "DELETE FROM named_tokens WHERE org_id = $1",
            "DELETE FROM api_keys WHERE org_id = $1",
        ] {
            sqlx::query(sql).bind(org_id).execute(&mut *tx).await.map_err(db)?;
        }
        let n = sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(org_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_db(e, "the organization is still in use"))
            .map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::Conflict(
                    "the organization gained a user or service account meanwhile; delete again".into(),
                ),
                other => other,
            })?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }

    // ---------------------------------------------------- service accounts

    pub async fn create_service_account(&self, org_id: &str, name: &str) -> Result<ServiceAccount, StoreError> {
        check_name("service account name", name)?;
        let sa = ServiceAccount {
            id: random_id("sa_"),
            org_id: org_id.to_string(),
            name: name.to_string(),
            created_at: crate::clock::now_unix(),
        };
        let mut tx = self.begin_write().await?;
        let org: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        if org.is_none() {
            return Err(StoreError::NotFound("organization".into()));
        }
        sqlx::query("INSERT INTO service_accounts (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&sa.id)
            .bind(&sa.org_id)
            .bind(&sa.name)
            .bind(sa.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(sa)
    }

    pub async fn find_service_account(&self, id: &str) -> Result<Option<ServiceAccount>, StoreError> {
        sqlx::query(concat!("SELECT ", sa_cols!(), " FROM service_accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .map(|r| sa_from_row(&r))
            .transpose()
            .map_err(db)
    }

    /// Service accounts of one organization, or all.
    pub async fn list_service_accounts(&self, org_id: Option<&str>) -> Result<Vec<ServiceAccount>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            sa_cols!(),
            " FROM service_accounts WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(sa_from_row)
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    // ------------------------------------------------------------ API keys

    /// Creates an API key; returns the record and the plaintext (shown once).
    /// `NotFound` when the principal does not exist.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        scopes: &[String],
        expires_at: Option<i64>,
    ) -> Result<(ApiKey, String), StoreError> {
        let scope_text = join_scopes(scopes)?;
        let org_id = self.principal_org(principal).await?;
        let plaintext = random_token(API_KEY_PREFIX, 32);
        let key = ApiKey {
            id: random_id("key_"),
            prefix: plaintext[API_KEY_PREFIX.len()..API_KEY_PREFIX.len() + 8].to_string(),
            principal: principal.clone(),
            org_id,
            scopes: split_scopes(&scope_text),
            created_at: crate::clock::now_unix(),
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, prefix, principal_kind, principal_id, org_id, \
             scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id)
        .bind(sha256_hex(&plaintext))
        .bind(&key.prefix)
        .bind(principal.kind())
        .bind(principal.id())
        .bind(&key.org_id)
        .bind(&scope_text)
        .bind(key.created_at)
        .bind(key.expires_at)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok((key, plaintext))
    }

    async fn principal_org(&self, principal: &Principal) -> Result<String, StoreError> {
        let (sql, what) = match principal {
            Principal::User(_) => ("SELECT org_id FROM users WHERE uid = $1", "user"),
            Principal::ServiceAccount(_) => ("SELECT org_id FROM service_accounts WHERE id = $1", "service account"),
        };
        sqlx::query_scalar(sql)
            .bind(principal.id())
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::NotFound(what.into()))
    }

    /// The key whose plaintext this is, revoked or expired ones included
    /// (the caller decides, see [`ApiKey::is_active`]).
    pub async fn lookup_api_key(&self, plaintext: &str) -> Result<Option<ApiKey>, StoreError> {
        if !plaintext.starts_with(API_KEY_PREFIX) || plaintext.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(plaintext);
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            ", key_hash FROM api_keys WHERE key_hash = $1"
        ))
        .bind(&hash)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let stored: String = row.try_get("key_hash").map_err(db)?;
        if !ct_eq(&stored, &hash) {
            return Ok(None);
        }
        key_from_row(&row).map(Some).map_err(db)
    }

    /// Keys of one organization, or all; oldest first.
    pub async fn list_api_keys(&self, org_id: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            key_cols!(),
            " FROM api_keys WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(key_from_row)
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    /// The key record with this id, if any.
    pub async fn find_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        if !valid_name(id) {
            return Ok(None);
        }
        sqlx::query(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .map(|r| key_from_row(&r))
            .transpose()
            .map_err(db)
    }

    /// Sets `revoked_at` (kept from the first revocation); `None` when no such key.
    pub async fn revoke_api_key(&self, id: &str, now: i64) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING ",
            key_cols!()
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| key_from_row(&r))
        .transpose()
        .map_err(db)
    }

    /// Records a use; never moves `last_used_at` backwards. Unknown ids are ignored.
    pub async fn touch_api_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    // ------------------------------------------------ access-generator tokens

    async fn insert_generator(&self, tx: &mut Tx, uid: &str, now: i64) -> Result<(String, String), StoreError> {
        let id = random_id("gen_");
        let plaintext = random_token(GENERATOR_TOKEN_PREFIX, 32);
        let enc = self.inner.cipher.seal(&generator_aad(&id), plaintext.as_bytes())?;
        sqlx::query(
            "INSERT INTO generator_tokens (id, uid, token_hash, token_enc, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(uid)
        .bind(sha256_hex(&plaintext))
        .bind(enc)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| map_db(e, "concurrent access-generator token change"))?;
        Ok((id, plaintext))
    }

    /// The user's access-generator token and its plaintext (decrypted).
    pub async fn generator_token(&self, uid: &str) -> Result<Option<(GeneratorToken, String)>, StoreError> {
        let Some(row) = sqlx::query(concat!(gen_select!(), "WHERE g.uid = $1"))
            .bind(uid)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let token = generator_from_row(&row).map_err(db)?;
        let enc: String = row.try_get("token_enc").map_err(db)?;
        let plain = self.inner.cipher.open(&generator_aad(&token.id), &enc)?;
        let plain = String::from_utf8(plain).map_err(|_| StoreError::Crypto("stored token is not UTF-8".into()))?;
        Ok(Some((token, plain)))
    }

    /// Replaces the user's access-generator token atomically; returns the
    /// new one, its plaintext and the id of the old one (which no longer
    /// looks up). `NotFound` when the user does not exist.
    pub async fn regenerate_generator_token(
        &self,
        uid: &str,
        now: i64,
    ) -> Result<(GeneratorToken, String, Option<String>), StoreError> {
        let mut tx = self.begin_write().await?;
        // PostgreSQL: lock the user row so concurrent regenerations queue up.
        let sql = match self.inner.backend {
            Backend::Sqlite => "SELECT org_id, username FROM users WHERE uid = $1",
            Backend::Postgres => "SELECT org_id, username FROM users WHERE uid = $1 FOR UPDATE",
        };
        let user = sqlx::query(sql)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::NotFound("user".into()))?;
        let org_id: String = user.try_get("org_id").map_err(db)?;
        let username: String = user.try_get("username").map_err(db)?;
        let old: Option<String> = sqlx::query_scalar("SELECT id FROM generator_tokens WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM generator_tokens WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let (id, plaintext) = self.insert_generator(&mut tx, uid, now).await?;
        tx.commit().await.map_err(db)?;
        let token = GeneratorToken {
            id,
            uid: uid.to_string(),
            org_id,
            username,
            created_at: now,
        };
        Ok((token, plaintext, old))
    }

    pub async fn lookup_generator_token(&self, plaintext: &str) -> Result<Option<GeneratorToken>, StoreError> {
        if !plaintext.starts_with(GENERATOR_TOKEN_PREFIX) || plaintext.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(plaintext);
        let Some(row) = sqlx::query(concat!(gen_select!(), "WHERE g.token_hash = $1"))
            .bind(&hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let stored: String = row.try_get("token_hash").map_err(db)?;
        if !ct_eq(&stored, &hash) {
            return Ok(None);
        }
        // A disabled user's generator token mints nothing.
        if row.try_get::<Option<i64>, _>("disabled_at").map_err(db)?.is_some() {
            return Ok(None);
        }
        generator_from_row(&row).map(Some).map_err(db)
    }

    // --------------------------------------------------------- OAuth clients

    /// Creates a client owned by `owner_uid` (in the owner's org); returns it
    /// and the secret (shown once). `NotFound` when the owner does not exist.
    pub async fn create_client(
        &self,
        owner_uid: &str,
        name: Option<&str>,
        scopes: &[String],
    ) -> Result<(Client, String), StoreError> {
        if let Some(name) = name {
            check_name("client name", name)?;
        }
        let scope_text = join_scopes(scopes)?;
        let mut client = Client {
            client_id: random_token(CLIENT_ID_PREFIX, 16),
            org_id: String::new(),
            owner_uid: owner_uid.to_string(),
            name: name.map(str::to_string),
            scopes: split_scopes(&scope_text),
            created_at: crate::clock::now_unix(),
            revoked_at: None,
        };
        let secret = random_token(CLIENT_SECRET_PREFIX, 32);
        let enc = self
            .inner
            .cipher
            .seal(&client_aad(&client.client_id), secret.as_bytes())?;
        // Only for an enabled owner, read in the same statement. On
        // PostgreSQL the owner's row is share-locked, so a concurrent
        // disable (which updates that row, then revokes the owner's clients)
        // either waits for this insert, and then sees the client, or makes
        // it insert nothing; SQLite runs one writer at a time.
        let sql = match self.inner.backend {
            Backend::Sqlite => {
                "INSERT INTO clients (client_id, org_id, owner_uid, name, scopes, secret_enc, created_at) \
                 SELECT $1, u.org_id, u.uid, $2, $3, $4, $5 FROM users u \
                 WHERE u.uid = $6 AND u.disabled_at IS NULL RETURNING org_id"
            }
            Backend::Postgres => {
                "INSERT INTO clients (client_id, org_id, owner_uid, name, scopes, secret_enc, created_at) \
                 SELECT $1, u.org_id, u.uid, $2, $3, $4, $5 FROM users u \
                 WHERE u.uid = $6 AND u.disabled_at IS NULL FOR SHARE RETURNING org_id"
            }
        };
        let org_id: Option<String> = sqlx::query_scalar(sql)
            .bind(&client.client_id)
            .bind(client.name.as_deref())
            .bind(&scope_text)
            .bind(enc)
            .bind(client.created_at)
            .bind(owner_uid)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?;
        let Some(org_id) = org_id else {
            return Err(match self.find_user(owner_uid).await? {
                Some(u) if u.uid == owner_uid => StoreError::Invalid("the user is disabled".into()),
                _ => StoreError::NotFound("user".into()),
            });
        };
        client.org_id = org_id;
        Ok((client, secret))
    }

    /// The client and its decrypted secret (the UTF-8 bytes of `tgs_…`, the
    /// HS256 key of its client assertions).
    pub async fn client_with_secret(&self, client_id: &str) -> Result<Option<(Client, Vec<u8>)>, StoreError> {
        if client_id.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            client_cols!(),
            ", secret_enc FROM clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let client = client_from_row(&row).map_err(db)?;
        let enc: String = row.try_get("secret_enc").map_err(db)?;
        let secret = self.inner.cipher.open(&client_aad(&client.client_id), &enc)?;
        Ok(Some((client, secret)))
    }

    /// Clients of one owner, or all; oldest first.
    pub async fn list_clients(&self, owner_uid: Option<&str>) -> Result<Vec<Client>, StoreError> {
        self.list_clients_in(owner_uid, None).await
    }

    /// Clients of one owner and/or one organization, or all; oldest first.
    pub async fn list_clients_in(
        &self,
        owner_uid: Option<&str>,
        org_id: Option<&str>,
    ) -> Result<Vec<Client>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            client_cols!(),
            " FROM clients WHERE ($1 IS NULL OR owner_uid = $1) AND ($2 IS NULL OR org_id = $2) \
             ORDER BY created_at, client_id"
        ))
        .bind(owner_uid)
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(client_from_row)
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    /// Deletes the client (only the owner's when `owner_uid` is given) and
    /// its remembered assertion ids; `false` when nothing matched.
    pub async fn delete_client(&self, client_id: &str, owner_uid: Option<&str>) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM clients WHERE client_id = $1 AND ($2 IS NULL OR owner_uid = $2)")
            .bind(client_id)
            .bind(owner_uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        if deleted > 0 {
            sqlx::query("DELETE FROM assertion_jtis WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(deleted > 0)
    }

    /// Remembers a client assertion's `jti`: `true` the first time, `false`
    /// on replay. Rows are purged once `exp` is more than 5 minutes past, so
    /// the caller must reject assertions whose `exp` (plus its leeway, at
    /// most 5 minutes) has passed before calling this.
    pub async fn use_assertion_jti(&self, client_id: &str, jti: &str, exp: i64, now: i64) -> Result<bool, StoreError> {
        if jti.is_empty() || jti.len() > 2 * MAX_NAME_LEN {
            return Err(StoreError::Invalid("jti must be 1-256 bytes".into()));
        }
        if client_id.len() > MAX_SECRET_LEN {
            return Err(StoreError::Invalid("client_id too long".into()));
        }
        if self.inner.jti_calls.fetch_add(1, Ordering::Relaxed) % 64 == 0 {
            sqlx::query("DELETE FROM assertion_jtis WHERE exp < $1")
                .bind(now.saturating_sub(JTI_RETENTION_SECS))
                .execute(self.pool())
                .await
                .map_err(db)?;
        }
        let inserted = sqlx::query(
            "INSERT INTO assertion_jtis (client_id, jti, exp) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, jti) DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(exp)
        .execute(self.pool())
        .await
        .map_err(db)?
        .rows_affected();
        Ok(inserted == 1)
    }

    // ---------------------------------------------------------- named tokens

    /// `Conflict` when the id exists, `NotFound` when the user does not.
    pub async fn insert_named_token(&self, t: &NamedToken) -> Result<(), StoreError> {
        check_name("token id", &t.id)?;
        check_name("token name", &t.name)?;
        let scope_text = join_scopes(&t.scopes)?;
        sqlx::query(concat!(
            "INSERT INTO named_tokens (",
            named_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&t.id)
        .bind(&t.uid)
        .bind(&t.org_id)
        .bind(&t.generator_id)
        .bind(&t.name)
        .bind(&t.action)
        .bind(&t.resource_type)
        .bind(scope_text)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .execute(self.pool())
        .await
        .map_err(|e| map_db(e, "token id already exists"))?;
        Ok(())
    }

    /// Named tokens of one user, or all; oldest first.
    pub async fn list_named_tokens(&self, uid: Option<&str>) -> Result<Vec<NamedToken>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            named_cols!(),
            " FROM named_tokens WHERE ($1 IS NULL OR uid = $1) ORDER BY created_at, id"
        ))
        .bind(uid)
        .fetch_all(self.pool())
        .await
        .map_err(db)?
        .iter()
        .map(named_from_row)
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    pub async fn find_named_token(&self, id: &str) -> Result<Option<NamedToken>, StoreError> {
        sqlx::query(concat!("SELECT ", named_cols!(), " FROM named_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
            .map(|r| named_from_row(&r))
            .transpose()
            .map_err(db)
    }

    /// Marks the token revoked (only the owner's when `uid` is given) and, in
    /// the same transaction, adds its id to the revocation list until its
    /// expiry (forever if it never expires) with the PostgreSQL notification.
    /// `None` when nothing matched. Idempotent.
    pub async fn revoke_named_token(
        &self,
        id: &str,
        uid: Option<&str>,
        now: i64,
    ) -> Result<Option<NamedToken>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(concat!(
            "UPDATE named_tokens SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE id = $2 AND ($3 IS NULL OR uid = $3) RETURNING ",
            named_cols!()
        ))
        .bind(now)
        .bind(id)
        .bind(uid)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let token = named_from_row(&row).map_err(db)?;
        self.upsert_revocation(&mut tx, &token.id, token.expires_at, now)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(token))
    }

    // ------------------------------------------------------------ revocations

    /// Adds (or extends) a revocation entry: the later `until` wins, `None`
    /// (forever) beats any time. On PostgreSQL also notifies
    /// `tilegate_revocations` with the id, in the same transaction.
    pub async fn add_revocation(&self, id: &str, until: Option<i64>, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.upsert_revocation(&mut tx, id, until, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn upsert_revocation(&self, tx: &mut Tx, id: &str, until: Option<i64>, now: i64) -> Result<(), StoreError> {
        check_name("revoked id", id)?;
        sqlx::query(
            "INSERT INTO revocations (id, until, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET until = CASE \
               WHEN revocations.until IS NULL OR excluded.until IS NULL THEN NULL \
               WHEN excluded.until > revocations.until THEN excluded.until \
               ELSE revocations.until END",
        )
        .bind(id)
        .bind(until)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if self.inner.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(notification(id, until))
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Tells the other replicas (PostgreSQL) that a scope ceiling or a
    /// user's state changed, so that they re-read the API keys they cache
    /// (with their principal's limits) instead of waiting out
    /// `cache.secret_ttl`. Nothing to do on SQLite (one process).
    pub async fn announce_limits_changed(&self) -> Result<(), StoreError> {
        if self.inner.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(LIMITS_CHANGED)
                .execute(self.pool())
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Entries still in force at `now` (`until` null or `>= now`). Expired
    /// rows are purged at most once a minute.
    pub async fn list_revocations(&self, now: i64) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let last = self.inner.last_revocation_purge.load(Ordering::Relaxed);
        if now - last >= 60
            && self
                .inner
                .last_revocation_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            sqlx::query("DELETE FROM revocations WHERE until IS NOT NULL AND until < $1")
                .bind(now)
                .execute(self.pool())
                .await
                .map_err(db)?;
        }
        let rows = sqlx::query("SELECT id, until FROM revocations WHERE until IS NULL OR until >= $1 ORDER BY id")
            .bind(now)
            .fetch_all(self.pool())
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("until")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }

    /// PostgreSQL: a dedicated connection listening on `tilegate_revocations`
    /// and `tilegate_keys`.
    /// SQLite: `None` (a single process updates its own set).
    pub async fn revocation_listener(&self) -> Result<Option<RevocationListener>, StoreError> {
        if self.inner.backend != Backend::Postgres {
            return Ok(None);
        }
        let unavailable = |e| match db(e) {
            StoreError::Internal(m) => StoreError::Unavailable(m),
            other => other,
        };
        let mut inner = sqlx::postgres::PgListener::connect(&self.inner.url)
            .await
            .map_err(unavailable)?;
        // Report a lost connection at once instead of reconnecting inside
        // recv with sqlx's growing backoff: the caller reconnects promptly
        // and resyncs.
        inner.eager_reconnect(false);
        // One statement (`LISTEN a; LISTEN b`), revocations first.
        inner
            .listen_all([REVOCATION_CHANNEL, KEYS_CHANNEL])
            .await
            .map_err(unavailable)?;
        Ok(Some(RevocationListener { inner }))
    }

    // ----------------------------------------------------------- signing keys

    /// Stores the key (private key encrypted) and makes it the active one:
    /// every key still active gets `retired_at = k.created_at`, in one
    /// transaction. `Conflict` when the kid exists.
    pub async fn insert_signing_key(&self, k: &NewSigningKey) -> Result<(), StoreError> {
        check_name("kid", &k.kid)?;
        check_name("alg", &k.alg)?;
        let enc = self.inner.cipher.seal(&signing_key_aad(&k.kid), &k.private_pkcs8_der)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(k.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(enc)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db(e, "a signing key with this kid exists"))?;
        if self.inner.backend == Backend::Postgres {
            // Delivered at commit: every replica's listener re-reads the keys.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(KEYS_CHANNEL)
                .bind(&k.kid)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// All signing keys, private keys decrypted: the active ones (retired_at
    /// null) first, then newest first. The active key is the first element
    /// when its `retired_at` is `None`.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_enc, public_jwk, created_at, retired_at FROM signing_keys \
             ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                let kid: String = r.try_get("kid").map_err(db)?;
                let enc: String = r.try_get("private_enc").map_err(db)?;
                let private_pkcs8_der = self.inner.cipher.open(&signing_key_aad(&kid), &enc)?;
                Ok(SigningKeyRecord {
                    kid,
                    alg: r.try_get("alg").map_err(db)?,
                    private_pkcs8_der,
                    public_jwk: r.try_get("public_jwk").map_err(db)?,
                    created_at: r.try_get("created_at").map_err(db)?,
                    retired_at: r.try_get("retired_at").map_err(db)?,
                })
            })
            .collect()
    }

    /// The active signing key (newest with `retired_at` null), if any.
    pub async fn active_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        Ok(self
            .signing_keys()
            .await?
            .into_iter()
            .next()
            .filter(|k| k.retired_at.is_none()))
    }

    // -------------------------------------------------------------- audit log

    /// Appends an audit entry. Callers must never pass a secret.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok(())
    }

    /// The newest `limit` entries (clamped to 1..=10000), newest first.
    pub async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, actor, action, target, detail FROM audit_log \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.try_get("id")?,
                    created_at: r.try_get("created_at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db)
    }
}

// ------------------------------------------------------------------ helpers

fn generator_aad(id: &str) -> String {
    format!("tilegate:generator-token:{id}")
}

fn client_aad(client_id: &str) -> String {
    format!("tilegate:client-secret:{client_id}")
}

fn signing_key_aad(kid: &str) -> String {
    format!("tilegate:signing-key:{kid}")
}

/// `valid_name`, or `Invalid` naming `what`.
pub fn check_name(what: &str, value: &str) -> Result<(), StoreError> {
    if !valid_name(value) {
        return Err(StoreError::Invalid(format!(
            "{what} must be 1-128 characters without control or bidirectional-override characters"
        )));
    }
    Ok(())
}

/// A name, username or id: 1–128 characters, none of them control
/// characters or the bidirectional embedding, override and isolate marks
/// that make a name display as something else ("Trojan Source" spoofing in
/// lists and consoles).
pub fn valid_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=MAX_NAME_LEN).contains(&n) && !s.chars().any(|c| c.is_control() || is_bidi_control(c))
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

fn check_password(password: &str) -> Result<(), StoreError> {
    if password.is_empty() || password.len() > 1024 {
        return Err(StoreError::Invalid("password must be 1-1024 bytes".into()));
    }
    Ok(())
}

/// Validates scopes (RFC 6749 scope-token characters, at most 128 each, at
/// most 256 of them), drops duplicates and joins them with spaces.
fn join_scopes(scopes: &[String]) -> Result<String, StoreError> {
    if scopes.len() > 256 {
        return Err(StoreError::Invalid("too many scopes".into()));
    }
    let mut out: Vec<&str> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let valid = !scope.is_empty()
            && scope.len() <= MAX_NAME_LEN
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(StoreError::Invalid(
                "scope must be 1-128 printable ASCII characters without space, '\"' or '\\'".into(),
            ));
        }
        if !out.contains(&scope.as_str()) {
            out.push(scope);
        }
    }
    Ok(out.join(" "))
}

fn split_scopes(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Normalises a SQLite URL for sqlx: creates the parent directory and adds
/// `mode=rwc` (create when missing) unless a mode is given. Returns the URL
/// and whether it names an in-memory database.
fn prepare_sqlite_url(url: &str) -> Result<(String, bool), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, params) = rest.split_once('?').unwrap_or((rest, ""));
    let has_mode = params.split('&').any(|p| p.starts_with("mode="));
    let in_memory = path == ":memory:" || params.split('&').any(|p| p == "mode=memory");
    if in_memory {
        return Ok((url.to_string(), true));
    }
    if path.is_empty() {
        return Err(StoreError::Invalid("sqlite URL needs a file path".into()));
    }
    // The directory 0700 and the files 0600, whatever the umask (files.rs).
    files::prepare_sqlite_files(std::path::Path::new(path), params)?;
    let url = match (params.is_empty(), has_mode) {
        (true, _) => format!("sqlite://{path}?mode=rwc"),
        (false, false) => format!("sqlite://{path}?{params}&mode=rwc"),
        (false, true) => format!("sqlite://{path}?{params}"),
    };
    Ok((url, false))
}

// ---------------------------------------------------------------- migrations

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/sqlite/0001_init.sql")),
    (2, "containment", include_str!("migrations/sqlite/0002_containment.sql")),
];

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        "containment",
        include_str!("migrations/postgres/0002_containment.sql"),
    ),
];

/// The migrations compiled into the binary for one backend.
#[derive(Debug)]
struct EmbeddedMigrations(Backend);

type BoxDynError = Box<dyn std::error::Error + Send + Sync>;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let list = match self.0 {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, description.into(), MigrationType::Simple, sql.into(), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// Applies pending migrations, tracked in sqlx's `_sqlx_migrations` table;
/// on PostgreSQL under an advisory lock, so replicas starting together are safe.
async fn run_migrations(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = Migrator::new(EmbeddedMigrations(backend))
        .await
        .map_err(|e| StoreError::Internal(format!("cannot load migrations: {e}")))?;
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => db(e),
        other => StoreError::Internal(format!("migration failed: {other}")),
    })
}

// ------------------------------------------------------------- row mapping

fn ceiling_from(r: &AnyRow, col: &str) -> Result<Option<Vec<String>>, sqlx::Error> {
    Ok(r.try_get::<Option<String>, _>(col)?.map(|t| split_scopes(&t)))
}

fn org_from_row(r: &AnyRow) -> Result<Org, sqlx::Error> {
    Ok(Org {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        scope_ceiling: ceiling_from(r, "scope_ceiling")?,
    })
}

fn user_from_row(r: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        uid: r.try_get("uid")?,
        org_id: r.try_get("org_id")?,
        username: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
        scope_ceiling: ceiling_from(r, "scope_ceiling")?,
        disabled_at: r.try_get("disabled_at")?,
        login_id: r.try_get("login_id")?,
    })
}

fn sa_from_row(r: &AnyRow) -> Result<ServiceAccount, sqlx::Error> {
    Ok(ServiceAccount {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_from_row(r: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    let kind: String = r.try_get("principal_kind")?;
    let principal = Principal::from_parts(&kind, r.try_get("principal_id")?)?;
    Ok(ApiKey {
        id: r.try_get("id")?,
        prefix: r.try_get("prefix")?,
        principal,
        org_id: r.try_get("org_id")?,
        scopes: split_scopes(&r.try_get::<String, _>("scopes")?),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

fn generator_from_row(r: &AnyRow) -> Result<GeneratorToken, sqlx::Error> {
    Ok(GeneratorToken {
        id: r.try_get("id")?,
        uid: r.try_get("uid")?,
        org_id: r.try_get("org_id")?,
        username: r.try_get("username")?,
        created_at: r.try_get("created_at")?,
    })
}

fn client_from_row(r: &AnyRow) -> Result<Client, sqlx::Error> {
    Ok(Client {
        client_id: r.try_get("client_id")?,
        org_id: r.try_get("org_id")?,
        owner_uid: r.try_get("owner_uid")?,
        name: r.try_get("name")?,
        scopes: split_scopes(&r.try_get::<String, _>("scopes")?),
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn named_from_row(r: &AnyRow) -> Result<NamedToken, sqlx::Error> {
    Ok(NamedToken {
        id: r.try_get("id")?,
        uid: r.try_get("uid")?,
        org_id: r.try_get("org_id")?,
        generator_id: r.try_get("generator_id")?,
        name: r.try_get("name")?,
        action: r.try_get("action")?,
        resource_type: r.try_get("resource_type")?,
        scopes: split_scopes(&r.try_get::<String, _>("scopes")?),
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}
