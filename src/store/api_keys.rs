//! The `api_keys` table: keys looked up by the SHA-256 of their plaintext.

use serde::Serialize;

use crate::grants::GrantClaim;

use super::crypto::{ct_eq, random_id};
use super::error::db;
use super::principals::PrincipalColumns;
use super::{
    join_scopes, random_token, sha256_hex, split_scopes, valid_name, Principal, Store, StoreError, MAX_SECRET_LEN,
};

/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "tgk_";

/// An API key record; the secret itself is never stored nor returned here.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    pub id: String,
    /// First 8 characters after `tgk_`, to recognise a key in listings.
    pub prefix: String,
    #[sqlx(flatten, try_from = "PrincipalColumns")]
    pub principal: Principal,
    pub org_id: String,
    #[sqlx(try_from = "super::ScopeList")]
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// The key's tile-grant ceiling (`None`: not limited to tiles).
    #[sqlx(try_from = "super::TilesColumn")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<GrantClaim>,
    /// Origins the key's tokens may be used from (`None`: any).
    #[sqlx(try_from = "super::OptionalList")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
}

impl ApiKey {
    /// Not revoked and not expired at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|exp| now < exp)
    }
}

/// A key row with its hash, for [`Store::lookup_api_key`].
#[derive(sqlx::FromRow)]
struct ApiKeyWithHash {
    #[sqlx(flatten)]
    key: ApiKey,
    key_hash: String,
}

macro_rules! key_cols {
    () => {
        "id, prefix, principal_kind, principal_id, org_id, scopes, created_at, expires_at, revoked_at, last_used_at, tiles, allowed_origins"
    };
}

impl Store {
    /// Creates an API key at `now`; returns the record and the plaintext (shown once).
    /// `NotFound` when the principal does not exist.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        scopes: &[String],
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(ApiKey, String), StoreError> {
        self.create_api_key_limited(principal, scopes, None, None, expires_at, now)
            .await
    }

    /// [`Store::create_api_key`] with a tile-grant ceiling and allowed
    /// origins (both validated by the caller).
    pub async fn create_api_key_limited(
        &self,
        principal: &Principal,
        scopes: &[String],
        tiles: Option<&GrantClaim>,
        origins: Option<&[String]>,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<(ApiKey, String), StoreError> {
        let tiles_text = super::tiles_text(tiles)?;
        let scope_text = join_scopes(scopes)?;
        let org_id = self.principal_org(principal).await?;
        let plaintext = random_token(API_KEY_PREFIX, 32);
        let key = ApiKey {
            id: random_id("key_"),
            prefix: plaintext[API_KEY_PREFIX.len()..API_KEY_PREFIX.len() + 8].to_string(),
            principal: principal.clone(),
            org_id,
            scopes: split_scopes(&scope_text),
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            tiles: tiles.cloned(),
            allowed_origins: origins.map(<[String]>::to_vec),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, key_hash, prefix, principal_kind, principal_id, org_id, \
             scopes, created_at, expires_at, tiles, allowed_origins) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(tiles_text)
        .bind(origins.map(|o| o.join(" ")))
        .execute(self.pool())
        .await
        .map_err(db)?;
        Ok((key, plaintext))
    }

    /// The key whose plaintext this is, revoked or expired ones included
    /// (the caller decides, see [`ApiKey::is_active`]).
    pub async fn lookup_api_key(&self, plaintext: &str) -> Result<Option<ApiKey>, StoreError> {
        if !plaintext.starts_with(API_KEY_PREFIX) || plaintext.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(plaintext);
        let Some(row) = sqlx::query_as::<_, ApiKeyWithHash>(concat!(
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
        if !ct_eq(&row.key_hash, &hash) {
            return Ok(None);
        }
        Ok(Some(row.key))
    }

    /// Keys of one organization, or all; oldest first.
    pub async fn list_api_keys(&self, org_id: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query_as::<_, ApiKey>(concat!(
            "SELECT ",
            key_cols!(),
            " FROM api_keys WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }

    /// The key record with this id, if any.
    pub async fn find_api_key(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        if !valid_name(id) {
            return Ok(None);
        }
        sqlx::query_as::<_, ApiKey>(concat!("SELECT ", key_cols!(), " FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db)
    }

    /// Sets `revoked_at` (kept from the first revocation); `None` when no such key.
    pub async fn revoke_api_key(&self, id: &str, now: i64) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query_as::<_, ApiKey>(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING ",
            key_cols!()
        ))
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await
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
}
