//! Store errors and the mapping of sqlx errors onto them. Messages never
//! contain a secret: they are built from fixed text, never from bound values.

use sqlx::error::ErrorKind;

/// What went wrong in the store. Suggested HTTP mapping in the comments.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint was violated, e.g. username taken (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A referenced record does not exist (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// Bad input (400).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Encryption or decryption failed, e.g. a wrong KEK (500).
    #[error("crypto error: {0}")]
    Crypto(String),
    /// Anything else (500).
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True for errors worth retrying later (the database is unreachable or busy).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Maps a sqlx error; unique violations become `Conflict(conflict)`.
pub(crate) fn map_db(e: sqlx::Error, conflict: &str) -> StoreError {
    match e {
        sqlx::Error::Database(db) => {
            match db.kind() {
                ErrorKind::UniqueViolation => return StoreError::Conflict(conflict.to_string()),
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::NotFound("a referenced record does not exist".into())
                }
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    return StoreError::Invalid("a value violates a database constraint".into())
                }
                _ => {}
            }
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let is_pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some();
            // Class 22, data exception: a value PostgreSQL cannot take (a NUL
            // byte in text, a number out of range) came from the request.
            if is_pg && code.starts_with("22") {
                return StoreError::Invalid("a value in the request cannot be stored".into());
            }
            let unavailable = if is_pg {
                pg_unavailable(&code)
            } else {
                sqlite_unavailable(&code)
            };
            if unavailable {
                return StoreError::Unavailable(format!("database error {code}: {}", db.message()));
            }
            StoreError::Internal(format!("database error {code}: {}", db.message()))
        }
        sqlx::Error::RowNotFound => StoreError::NotFound("no such record".into()),
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("timed out waiting for a database connection".into()),
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store is closed".into()),
        // A failed TLS handshake comes back as an I/O error around rustls'.
        sqlx::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            StoreError::Unavailable(format!("TLS with the database failed: {io}"))
        }
        sqlx::Error::Io(io) => StoreError::Unavailable(format!("database I/O error: {io}")),
        // rustls' reason ("invalid peer certificate: UnknownIssuer"), never a secret.
        sqlx::Error::Tls(e) => StoreError::Unavailable(format!("TLS with the database failed: {e}")),
        sqlx::Error::WorkerCrashed => StoreError::Unavailable("database worker crashed".into()),
        sqlx::Error::Configuration(_) => StoreError::Invalid("invalid database configuration or URL".into()),
        sqlx::Error::Migrate(m) => StoreError::Internal(format!("migration failed: {m}")),
        other => StoreError::Internal(other.to_string()),
    }
}

/// SQLSTATE classes that mean "cannot serve now, retry": connection
/// exceptions, auth/catalog problems at connect, resources, shutdown,
/// serialization failures and deadlocks.
fn pg_unavailable(code: &str) -> bool {
    ["08", "28", "3D", "53", "57"]
        .iter()
        .any(|class| code.starts_with(class))
        || code == "40001"
        || code == "40P01"
}

/// SQLite primary result codes: BUSY, LOCKED, READONLY, IOERR, CORRUPT,
/// FULL, CANTOPEN, NOTADB. A damaged or replaced file is an outage of the
/// store for the client (503, retry later), not a fault in its request.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i32>()
        .map(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 11 | 13 | 14 | 26))
        .unwrap_or(false)
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    map_db(e, "record already exists")
}
