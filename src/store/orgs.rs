//! The `orgs` table: organizations and their scope ceilings.

use serde::Serialize;

use super::crypto::random_id;
use super::error::{db, map_db};
use super::{check_name, join_scopes, split_scopes, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    /// Scopes every credential of the org stays within; `None`: the
    /// default (every declared scope but `clients:manage`).
    #[sqlx(try_from = "super::OptionalList")]
    pub scope_ceiling: Option<Vec<String>>,
}

macro_rules! org_cols {
    () => {
        "id, name, created_at, scope_ceiling"
    };
}

impl Store {
    /// An organization created at `now`.
    pub async fn create_org(&self, name: &str, now: i64) -> Result<Org, StoreError> {
        self.create_org_with(name, None, now).await
    }

    /// An organization with a scope ceiling (`None`: the default), in one write.
    pub async fn create_org_with(&self, name: &str, ceiling: Option<&[String]>, now: i64) -> Result<Org, StoreError> {
        check_name("organization name", name)?;
        let ceiling_text = ceiling.map(join_scopes).transpose()?;
        let org = Org {
            id: random_id("org_"),
            name: name.to_string(),
            created_at: now,
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
        sqlx::query_as::<_, Org>(concat!(
            "SELECT ",
            org_cols!(),
            " FROM orgs WHERE id = $1 OR name = $1 \
             ORDER BY CASE WHEN id = $1 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(id_or_name)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        sqlx::query_as::<_, Org>(concat!("SELECT ", org_cols!(), " FROM orgs ORDER BY created_at, id"))
            .fetch_all(self.pool())
            .await
            .map_err(db)
    }

    /// Sets an organization's ceiling (`None`: back to the default);
    /// `None` when no such org.
    pub async fn set_org_ceiling(&self, org_id: &str, ceiling: Option<&[String]>) -> Result<Option<Org>, StoreError> {
        let text = ceiling.map(join_scopes).transpose()?;
        sqlx::query_as::<_, Org>(concat!(
            "UPDATE orgs SET scope_ceiling = $1 WHERE id = $2 RETURNING ",
            org_cols!()
        ))
        .bind(text)
        .bind(org_id)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
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
}
