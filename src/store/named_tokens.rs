//! The `named_tokens` table: the tokens minted from an access-generator
//! token, for listings and revocation.

use serde::Serialize;

use super::error::{db, map_db};
use super::{check_name, join_scopes, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct NamedToken {
    /// The JWT's `jti`.
    pub id: String,
    pub uid: String,
    pub org_id: String,
    pub generator_id: String,
    pub name: String,
    pub action: String,
    pub resource_type: String,
    #[sqlx(try_from = "super::ScopeList")]
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The tile grant the token carries (`None`: any tile).
    #[sqlx(try_from = "super::TilesColumn")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<crate::grants::GrantClaim>,
}

impl NamedToken {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| now < exp)
    }
}

macro_rules! named_cols {
    () => {
        "id, uid, org_id, generator_id, name, action, resource_type, scopes, created_at, expires_at, revoked_at, tiles"
    };
}

impl Store {
    /// `Conflict` when the id exists, `NotFound` when the user does not.
    pub async fn insert_named_token(&self, t: &NamedToken) -> Result<(), StoreError> {
        check_name("token id", &t.id)?;
        check_name("token name", &t.name)?;
        let scope_text = join_scopes(&t.scopes)?;
        sqlx::query(concat!(
            "INSERT INTO named_tokens (",
            named_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
        .bind(super::tiles_text(t.tiles.as_ref())?)
        .execute(self.pool())
        .await
        .map_err(|e| map_db(e, "token id already exists"))?;
        Ok(())
    }

    /// Named tokens of one user, or all; oldest first.
    pub async fn list_named_tokens(&self, uid: Option<&str>) -> Result<Vec<NamedToken>, StoreError> {
        sqlx::query_as::<_, NamedToken>(concat!(
            "SELECT ",
            named_cols!(),
            " FROM named_tokens WHERE ($1 IS NULL OR uid = $1) ORDER BY created_at, id"
        ))
        .bind(uid)
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }

    pub async fn find_named_token(&self, id: &str) -> Result<Option<NamedToken>, StoreError> {
        sqlx::query_as::<_, NamedToken>(concat!("SELECT ", named_cols!(), " FROM named_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
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
        let Some(token) = sqlx::query_as::<_, NamedToken>(concat!(
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
        self.upsert_revocation(&mut tx, &token.id, token.expires_at, now)
            .await?;
        tx.commit().await.map_err(db)?;
        Ok(Some(token))
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
}
