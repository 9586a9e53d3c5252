//! The `clients` table: OAuth clients, their secrets encrypted with the KEK.

use serde::Serialize;

use crate::grants::GrantClaim;

use super::audit::AuditNote;
use super::error::db;
use super::{check_name, join_scopes, random_token, split_scopes, Backend, Store, StoreError, MAX_SECRET_LEN};

/// Prefix of OAuth client ids.
pub const CLIENT_ID_PREFIX: &str = "tgc_";

/// Prefix of OAuth client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "tgs_";

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Client {
    pub client_id: String,
    pub org_id: String,
    pub owner_uid: String,
    pub name: Option<String>,
    #[sqlx(try_from = "super::ScopeList")]
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// Set when an operator action (disabling the owner) revoked it.
    pub revoked_at: Option<i64>,
    /// The client's tile-grant ceiling, set by the operator (`None`: not
    /// limited to tiles).
    #[sqlx(try_from = "super::TilesColumn")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiles: Option<GrantClaim>,
    /// Origins the client's tokens may be used from (`None`: any).
    #[sqlx(try_from = "super::OptionalList")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
}

/// A client row with its encrypted secret, for [`Store::client_with_secret`].
#[derive(sqlx::FromRow)]
struct ClientWithSecret {
    #[sqlx(flatten)]
    client: Client,
    secret_enc: String,
}

macro_rules! client_cols {
    () => {
        "client_id, org_id, owner_uid, name, scopes, created_at, revoked_at, tiles, allowed_origins"
    };
}

impl Store {
    /// Creates a client at `now`, owned by `owner_uid` (in the owner's org); returns it
    /// and the secret (shown once). `NotFound` when the owner does not exist.
    pub async fn create_client(
        &self,
        owner_uid: &str,
        name: Option<&str>,
        scopes: &[String],
        now: i64,
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
            created_at: now,
            revoked_at: None,
            tiles: None,
            allowed_origins: None,
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
        let Some(row) = sqlx::query_as::<_, ClientWithSecret>(concat!(
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
        let secret = self
            .inner
            .cipher
            .open(&client_aad(&row.client.client_id), &row.secret_enc)?;
        Ok(Some((row.client, secret)))
    }

    /// Clients of one owner, or all; oldest first.
    pub async fn list_clients(&self, owner_uid: Option<&str>) -> Result<Vec<Client>, StoreError> {
        self.list_clients_in(owner_uid, None).await
    }

    /// The client `client_id` (only when `owner_uid` owns it, if given),
    /// without listing the table.
    pub async fn find_client(&self, client_id: &str, owner_uid: Option<&str>) -> Result<Option<Client>, StoreError> {
        sqlx::query_as::<_, Client>(concat!(
            "SELECT ",
            client_cols!(),
            " FROM clients WHERE client_id = $1 AND ($2 IS NULL OR owner_uid = $2)"
        ))
        .bind(client_id)
        .bind(owner_uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    /// Clients of one owner and/or one organization, or all; oldest first.
    pub async fn list_clients_in(
        &self,
        owner_uid: Option<&str>,
        org_id: Option<&str>,
    ) -> Result<Vec<Client>, StoreError> {
        sqlx::query_as::<_, Client>(concat!(
            "SELECT ",
            client_cols!(),
            " FROM clients WHERE ($1 IS NULL OR owner_uid = $1) AND ($2 IS NULL OR org_id = $2) \
             ORDER BY created_at, client_id"
        ))
        .bind(owner_uid)
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }

    /// Sets `revoked_at` of a client (kept from the first time); `None`
    /// when no such client.
    pub async fn revoke_client(&self, client_id: &str, now: i64) -> Result<Option<Client>, StoreError> {
        sqlx::query_as::<_, Client>(concat!(
            "UPDATE clients SET revoked_at = COALESCE(revoked_at, $1) WHERE client_id = $2 RETURNING ",
            client_cols!()
        ))
        .bind(now)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    /// Changes the client's tile-grant ceiling and allowed origins
    /// (validated by the caller): per dimension `None` leaves it,
    /// `Some(None)` removes the limit, `Some(Some(_))` sets it; one
    /// transaction with its audit entry. `None` when no such client.
    pub async fn set_client_limits(
        &self,
        client_id: &str,
        tiles: Option<Option<&GrantClaim>>,
        origins: Option<Option<&[String]>>,
        audit: &AuditNote<'_>,
    ) -> Result<Option<Client>, StoreError> {
        const LIMITS: super::LimitsSql = super::LimitsSql {
            tiles: "UPDATE clients SET tiles = $1 WHERE client_id = $2",
            origins: "UPDATE clients SET allowed_origins = $1 WHERE client_id = $2",
            select: concat!("SELECT ", client_cols!(), " FROM clients WHERE client_id = $1"),
        };
        self.write_limits(&LIMITS, client_id, tiles, origins, audit).await
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
}

fn client_aad(client_id: &str) -> String {
    format!("tilegate:client-secret:{client_id}")
}
