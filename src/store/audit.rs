//! The `audit_log` table.

use serde::Serialize;

use super::error::db;
use super::{Store, StoreError, Tx};

/// An audit entry written in the transaction of the change it records:
/// both or neither (its target is the changed record).
#[derive(Debug, Clone, Copy)]
pub struct AuditNote<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
    pub now: i64,
}

impl AuditNote<'_> {
    /// Appends the entry for `target` inside `tx`. Never pass a secret.
    pub(super) async fn write(&self, tx: &mut Tx, target: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (created_at, actor, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.now)
        .bind(self.actor)
        .bind(self.action)
        .bind(target)
        .bind(self.detail)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub created_at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl Store {
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
        sqlx::query_as::<_, AuditEntry>(
            "SELECT id, created_at, actor, action, target, detail FROM audit_log \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }
}
