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
//!
//! Layout: this file holds [`Store`] itself (open, close, ping, the pool
//! and write transactions, the KEK check), the backend and the helpers the
//! tables share; `migrate.rs` the embedded migrations. Each table has its
//! file with its record types and one `impl Store` block of its queries:
//! `orgs.rs`, `users.rs`, `service_accounts.rs`, `api_keys.rs`,
//! `generators.rs` (access-generator tokens), `clients.rs` (OAuth clients),
//! `assertions.rs` (client assertion ids), `named_tokens.rs`,
//! `revocations.rs` (with the PostgreSQL notifications, the listener and
//! [`StoreEvent`]), `signing_keys.rs` and `audit.rs`; `principals.rs` holds
//! [`Principal`] and [`Limits`], read across users, service accounts and
//! orgs. Rows decode through `#[derive(sqlx::FromRow)]` (see "row
//! decoding" below). The SQLite and PostgreSQL migrations are written
//! twice; the test `migrations_give_one_schema` checks that they leave the
//! same schema.
//!
//! Time: the store never reads the clock. Every method that stamps or
//! compares a time (creation times, revocations, expiry purges, the audit
//! log) takes it as `now: i64`, Unix seconds, from its caller, which reads
//! `crate::clock::now_unix()`; tests pass the time they want.

mod api_keys;
mod assertions;
mod audit;
mod clients;
mod crypto;
mod error;
mod files;
mod generators;
mod health;
mod migrate;
mod named_tokens;
mod orgs;
mod principals;
mod revocations;
mod service_accounts;
mod signing_keys;
mod transport;
mod users;

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Store {
    /// Runs `sql` as it is: a test's way to break the store on purpose.
    pub(crate) async fn execute_for_tests(&self, sql: &str) {
        sqlx::query(sql).execute(self.pool()).await.map_err(error::db).unwrap();
    }
}

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Executor, Transaction};

use crypto::Cipher;
pub use crypto::{random_token, sha256_hex, Kek};
use error::db;
pub use error::StoreError;
pub use files::create_private_dir;
use health::{Gated, Health};
use migrate::run_migrations;
pub use transport::{check_postgres_transport, is_loopback_host};

pub use api_keys::{ApiKey, API_KEY_PREFIX};
pub use audit::{AuditEntry, AuditNote};
pub use clients::{Client, CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX};
pub use generators::{GeneratorToken, GENERATOR_TOKEN_PREFIX};
pub use named_tokens::NamedToken;
pub use orgs::Org;
pub use principals::{Limits, Principal};
pub use revocations::{RevocationListener, StoreEvent, KEYS_CHANNEL, LIMITS_CHANGED, REVOCATION_CHANNEL};
pub use service_accounts::ServiceAccount;
pub use signing_keys::{NewSigningKey, SigningKeyRecord};
pub use users::User;

/// Longest opaque secret accepted for a lookup; longer input is not a credential.
const MAX_SECRET_LEN: usize = 256;

/// Longest name, username, id or jti accepted.
const MAX_NAME_LEN: usize = 128;

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
}

// ------------------------------------------------------------------ helpers

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

// ------------------------------------------------------------ row decoding
//
// Rows decode through `#[derive(sqlx::FromRow)]` on the record types. The
// Any driver decodes the schema's TEXT as `String` and BIGINT as `i64` on
// both backends; a column a record holds in another shape is decoded as one
// of these column types and converted (`#[sqlx(try_from = "…")]`).

/// A `scopes` column: the scopes, space-separated.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
struct ScopeList(String);

impl From<ScopeList> for Vec<String> {
    fn from(list: ScopeList) -> Vec<String> {
        split_scopes(&list.0)
    }
}

/// A nullable list column, space-separated: `scope_ceiling` (`NULL` the
/// default ceiling) and `allowed_origins` (`NULL` any origin). `NULL`
/// reads as `None`; any other text is a list, an empty or all-whitespace
/// one (which the gateway never writes) a list of none, so a stored
/// origin limit never reads as any origin (docs/security.md).
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
struct OptionalList(Option<String>);

impl From<OptionalList> for Option<Vec<String>> {
    fn from(column: OptionalList) -> Option<Vec<String>> {
        column.0.map(|text| split_scopes(&text))
    }
}

/// A `tiles` column: a tile grant as JSON; `NULL` for none.
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
struct TilesColumn(Option<String>);

impl TryFrom<TilesColumn> for Option<crate::grants::GrantClaim> {
    type Error = serde_json::Error;
    fn try_from(c: TilesColumn) -> Result<Self, Self::Error> {
        c.0.map(|t| serde_json::from_str(&t)).transpose()
    }
}

/// The statements that change a principal's grant ceiling: its table's
/// `tiles` and `allowed_origins` by id (`$1` the value, `$2` the id), and
/// the row read back (`$1` the id).
struct LimitsSql {
    tiles: &'static str,
    origins: &'static str,
    select: &'static str,
}

impl Store {
    /// Change a principal's grant ceiling: per dimension `None` leaves it,
    /// `Some(None)` removes the limit, `Some(Some(_))` sets it; one
    /// transaction with its audit entry. `None` when no such row. The one
    /// implementation behind clients' and service accounts' limits.
    async fn write_limits<T>(
        &self,
        sql: &LimitsSql,
        id: &str,
        tiles: Option<Option<&crate::grants::GrantClaim>>,
        origins: Option<Option<&[String]>>,
        audit: &audit::AuditNote<'_>,
    ) -> Result<Option<T>, StoreError>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut tx = self.begin_write().await?;
        if let Some(t) = tiles {
            sqlx::query(sql.tiles)
                .bind(tiles_text(t)?)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        if let Some(o) = origins {
            sqlx::query(sql.origins)
                .bind(o.map(|o| o.join(" ")))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(error::db)?;
        }
        let row = sqlx::query_as::<_, T>(sql.select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::db)?;
        if row.is_some() {
            audit.write(&mut tx, id).await?;
        }
        tx.commit().await.map_err(error::db)?;
        Ok(row)
    }
}

/// A tile grant as the JSON of a `tiles` column (`None`: `NULL`).
fn tiles_text(tiles: Option<&crate::grants::GrantClaim>) -> Result<Option<String>, StoreError> {
    tiles
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Internal(format!("cannot encode a tile grant: {e}")))
}

/// A nullable time read only as set or not (`disabled_at` as a flag).
#[derive(sqlx::Type)]
#[sqlx(transparent, no_pg_array)]
struct IsSet(Option<i64>);

impl From<IsSet> for bool {
    fn from(time: IsSet) -> bool {
        time.0.is_some()
    }
}
