//! The `assertion_jtis` table: the `jti`s of client assertions already
//! used, kept until shortly after their expiry.

use std::sync::atomic::Ordering;

use super::error::db;
use super::{Store, StoreError, MAX_NAME_LEN, MAX_SECRET_LEN};

/// Rows of `assertion_jtis` are kept this long after their `exp`, so that a
/// verifier allowing clock-skew leeway up to this much still sees replays.
const JTI_RETENTION_SECS: i64 = 300;

impl Store {
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
        if self.inner.jti_calls.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
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
}
