//! Who a credential belongs to (a user or a service account), and what
//! bounds its credentials: reads across `users`, `service_accounts` and
//! `orgs`.

use serde::Serialize;

use super::error::db;
use super::{valid_name, Store, StoreError};

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
}

/// The `principal_kind` and `principal_id` columns of a row, decoded into a
/// [`Principal`] by `#[sqlx(flatten, try_from = "PrincipalColumns")]`.
#[derive(sqlx::FromRow)]
pub(super) struct PrincipalColumns {
    principal_kind: String,
    principal_id: String,
}

impl TryFrom<PrincipalColumns> for Principal {
    type Error = sqlx::Error;

    fn try_from(c: PrincipalColumns) -> Result<Principal, sqlx::Error> {
        match c.principal_kind.as_str() {
            "user" => Ok(Principal::User(c.principal_id)),
            "service_account" => Ok(Principal::ServiceAccount(c.principal_id)),
            _ => Err(sqlx::Error::Decode("unknown principal kind in store".into())),
        }
    }
}

/// What bounds the credentials of a principal, read at every issuance.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Limits {
    /// The username or the service account's name.
    pub name: String,
    pub org_id: String,
    #[sqlx(try_from = "super::OptionalList")]
    pub org_ceiling: Option<Vec<String>>,
    /// Users only; `None` for service accounts and users on the default.
    #[sqlx(try_from = "super::OptionalList")]
    pub user_ceiling: Option<Vec<String>>,
    #[sqlx(rename = "disabled_at", try_from = "super::IsSet")]
    pub disabled: bool,
    /// Service accounts only: the tile-grant ceiling of its API keys.
    #[sqlx(try_from = "super::TilesColumn")]
    pub tiles: Option<crate::grants::GrantClaim>,
    /// Service accounts only: the origins its keys' tokens may be used from.
    #[sqlx(try_from = "super::OptionalList")]
    pub allowed_origins: Option<Vec<String>>,
}

impl Store {
    /// What bounds the principal's credentials: its org's ceiling, a
    /// user's own ceiling and disabled flag, and its name. `None` when the
    /// principal does not exist (any more).
    pub async fn principal_limits(&self, principal: &Principal) -> Result<Option<Limits>, StoreError> {
        let sql = match principal {
            Principal::User(_) => {
                "SELECT u.username AS name, u.org_id, o.scope_ceiling AS org_ceiling, \
                 u.scope_ceiling AS user_ceiling, u.disabled_at, \
                 CAST(NULL AS TEXT) AS tiles, CAST(NULL AS TEXT) AS allowed_origins \
                 FROM users u JOIN orgs o ON o.id = u.org_id WHERE u.uid = $1"
            }
            Principal::ServiceAccount(_) => {
                "SELECT s.name, s.org_id, o.scope_ceiling AS org_ceiling, \
                 CAST(NULL AS TEXT) AS user_ceiling, CAST(NULL AS BIGINT) AS disabled_at, \
                 s.tiles, s.allowed_origins \
                 FROM service_accounts s JOIN orgs o ON o.id = s.org_id WHERE s.id = $1"
            }
        };
        if !valid_name(principal.id()) {
            return Ok(None);
        }
        sqlx::query_as::<_, Limits>(sql)
            .bind(principal.id())
            .fetch_optional(self.pool())
            .await
            .map_err(db)
    }

    pub(super) async fn principal_org(&self, principal: &Principal) -> Result<String, StoreError> {
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
}
