//! One OAuth client by its id, without listing the table.

use super::{client_from_row, db, Client, Store, StoreError};

impl Store {
    /// The client `client_id` (only when `owner_uid` owns it, if given).
    pub async fn find_client(&self, client_id: &str, owner_uid: Option<&str>) -> Result<Option<Client>, StoreError> {
        sqlx::query(
            "SELECT client_id, org_id, owner_uid, name, scopes, created_at, revoked_at \
             FROM clients WHERE client_id = $1 AND ($2 IS NULL OR owner_uid = $2)",
        )
        .bind(client_id)
        .bind(owner_uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?
        .map(|r| client_from_row(&r))
        .transpose()
        .map_err(db)
    }
}
