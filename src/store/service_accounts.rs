//! The `service_accounts` table.

use serde::Serialize;

use crate::grants::GrantClaim;

use super::audit::AuditNote;
use super::crypto::random_id;
use super::error::db;
use super::{check_name, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ServiceAccount {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
    /// The tile-grant ceiling of the service account's API keys (`None`:
    /// not limited to tiles).
    #[sqlx(try_from = "super::TilesColumn")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<GrantClaim>,
    /// Origins its keys' tokens may be used from (`None`: any).
    #[sqlx(try_from = "super::OptionalList")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
}

macro_rules! sa_cols {
    () => {
        "id, org_id, name, created_at, tiles, allowed_origins"
    };
}

impl Store {
    /// A service account created at `now`; `NotFound` when the org is missing.
    pub async fn create_service_account(
        &self,
        org_id: &str,
        name: &str,
        now: i64,
    ) -> Result<ServiceAccount, StoreError> {
        self.create_service_account_limited(org_id, name, None, None, now).await
    }

    /// [`Store::create_service_account`] with a tile-grant ceiling and
    /// allowed origins (both validated by the caller).
    pub async fn create_service_account_limited(
        &self,
        org_id: &str,
        name: &str,
        tiles: Option<&GrantClaim>,
        origins: Option<&[String]>,
        now: i64,
    ) -> Result<ServiceAccount, StoreError> {
        check_name("service account name", name)?;
        let sa = ServiceAccount {
            id: random_id("sa_"),
            org_id: org_id.to_string(),
            name: name.to_string(),
            created_at: now,
            tiles: tiles.cloned(),
            allowed_origins: origins.map(<[String]>::to_vec),
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
            "INSERT INTO service_accounts (id, org_id, name, created_at, tiles, allowed_origins) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&sa.id)
        .bind(&sa.org_id)
        .bind(&sa.name)
        .bind(sa.created_at)
        .bind(super::tiles_text(tiles)?)
        .bind(origins.map(|o| o.join(" ")))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(sa)
    }

    pub async fn find_service_account(&self, id: &str) -> Result<Option<ServiceAccount>, StoreError> {
        sqlx::query_as::<_, ServiceAccount>(concat!("SELECT ", sa_cols!(), " FROM service_accounts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)
    }

    /// Changes the service account's tile-grant ceiling and allowed
    /// origins (validated by the caller): per dimension `None` leaves it,
    /// `Some(None)` removes the limit, `Some(Some(_))` sets it; one
    /// transaction with its audit entry. `None` when no such service account.
    pub async fn set_service_account_limits(
        &self,
        id: &str,
        tiles: Option<Option<&GrantClaim>>,
        origins: Option<Option<&[String]>>,
        audit: &AuditNote<'_>,
    ) -> Result<Option<ServiceAccount>, StoreError> {
        const LIMITS: super::LimitsSql = super::LimitsSql {
            tiles: "UPDATE service_accounts SET tiles = $1 WHERE id = $2",
            origins: "UPDATE service_accounts SET allowed_origins = $1 WHERE id = $2",
            select: concat!("SELECT ", sa_cols!(), " FROM service_accounts WHERE id = $1"),
        };
        self.write_limits(&LIMITS, id, tiles, origins, audit).await
    }

    /// Service accounts of one organization, or all.
    pub async fn list_service_accounts(&self, org_id: Option<&str>) -> Result<Vec<ServiceAccount>, StoreError> {
        sqlx::query_as::<_, ServiceAccount>(concat!(
            "SELECT ",
            sa_cols!(),
            " FROM service_accounts WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)
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
}
