//! The `users` table: users, their passwords (argon2id), scope ceilings,
//! disabled state and login ids.

use serde::Serialize;

use super::crypto::{self, random_id};
use super::error::{db, map_db};
use super::{check_name, join_scopes, split_scopes, valid_name, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    pub uid: String,
    pub org_id: String,
    pub username: String,
    pub created_at: i64,
    /// The user's own ceiling, within the org's; `None`: the org's.
    #[sqlx(try_from = "super::OptionalList")]
    pub scope_ceiling: Option<Vec<String>>,
    /// Set while the user is disabled.
    pub disabled_at: Option<i64>,
    /// The `cid` of the user's login tokens (not a secret: the tokens carry
    /// it); replaced when the user is disabled or the password is reset.
    #[serde(skip)]
    pub login_id: String,
}

/// A user row with its password hash, for [`Store::verify_password`].
#[derive(sqlx::FromRow)]
struct UserWithHash {
    #[sqlx(flatten)]
    user: User,
    password_hash: Option<String>,
}

macro_rules! user_cols {
    () => {
        "uid, org_id, username, created_at, scope_ceiling, disabled_at, \
         COALESCE(login_id, 'lgn_' || uid) AS login_id"
    };
}

impl Store {
    /// Creates the user and its access-generator token in one transaction,
    /// both created at `now`. `Conflict` when the username is taken,
    /// `NotFound` when the org is missing.
    pub async fn create_user(
        &self,
        org_id: &str,
        username: &str,
        password: Option<&str>,
        now: i64,
    ) -> Result<User, StoreError> {
        self.create_user_with(org_id, username, password, None, now).await
    }

    /// [`Store::create_user`] with the user's own scope ceiling (`None`:
    /// the org's), in the same transaction.
    pub async fn create_user_with(
        &self,
        org_id: &str,
        username: &str,
        password: Option<&str>,
        ceiling: Option<&[String]>,
        now: i64,
    ) -> Result<User, StoreError> {
        check_name("username", username)?;
        let ceiling_text = ceiling.map(join_scopes).transpose()?;
        let password_hash = match password {
            Some(p) => {
                check_password(p)?;
                Some(self.hash_password(p).await?)
            }
            None => None,
        };
        let user = User {
            uid: random_id("usr_"),
            org_id: org_id.to_string(),
            username: username.to_string(),
            created_at: now,
            scope_ceiling: ceiling_text.as_deref().map(split_scopes),
            disabled_at: None,
            login_id: random_id("lgn_"),
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
            "INSERT INTO users (uid, org_id, username, password_hash, created_at, scope_ceiling, login_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&user.uid)
        .bind(&user.org_id)
        .bind(&user.username)
        .bind(password_hash)
        .bind(user.created_at)
        .bind(ceiling_text)
        .bind(&user.login_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db(e, "username already taken"))?;
        self.insert_generator(&mut tx, &user.uid, user.created_at).await?;
        tx.commit().await.map_err(db)?;
        Ok(user)
    }

    /// By uid, else by username.
    pub async fn find_user(&self, uid_or_username: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE uid = $1 OR username = $1 \
             ORDER BY CASE WHEN uid = $1 THEN 0 ELSE 1 END LIMIT 1"
        ))
        .bind(uid_or_username)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    /// Users of one organization, or all.
    pub async fn list_users(&self, org_id: Option<&str>) -> Result<Vec<User>, StoreError> {
        sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE ($1 IS NULL OR org_id = $1) ORDER BY created_at, uid"
        ))
        .bind(org_id)
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }

    /// `Some(user)` when the password is right; `None` for an unknown user,
    /// a user without password, a disabled user or a wrong password, in
    /// about the same time (a disabled user's password is still checked, so
    /// the answer does not tell whether it was right).
    pub async fn verify_password(&self, username: &str, password: &str) -> Result<Option<User>, StoreError> {
        // A username the store would never accept cannot exist (and
        // PostgreSQL would refuse a NUL in the lookup): no such user.
        if password.len() > 1024 || !valid_name(username) {
            return Ok(None);
        }
        let row = sqlx::query_as::<_, UserWithHash>(concat!(
            "SELECT ",
            user_cols!(),
            ", password_hash FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .map_err(db)?;
        let (user, phc) = match row {
            Some(r) => (Some(r.user), r.password_hash),
            None => (None, None),
        };
        let has_hash = phc.is_some();
        let phc = phc.unwrap_or_else(|| crypto::DUMMY_PASSWORD_HASH.to_string());
        let password = password.to_string();
        let ok = self
            .blocking_hash(move || crypto::verify_password_hash(&phc, &password))
            .await?;
        Ok(if ok && has_hash {
            user.filter(|u| u.disabled_at.is_none())
        } else {
            None
        })
    }

    async fn hash_password(&self, password: &str) -> Result<String, StoreError> {
        let password = password.to_string();
        self.blocking_hash(move || crypto::hash_password(&password)).await?
    }

    async fn blocking_hash<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(|_| StoreError::Internal("password hashing unavailable".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| StoreError::Internal("password hashing task failed".into()))
    }

    /// Sets a user's own ceiling (`None`: the org's); `None` when no such user.
    pub async fn set_user_ceiling(&self, uid: &str, ceiling: Option<&[String]>) -> Result<Option<User>, StoreError> {
        let text = ceiling.map(join_scopes).transpose()?;
        sqlx::query_as::<_, User>(concat!(
            "UPDATE users SET scope_ceiling = $1 WHERE uid = $2 RETURNING ",
            user_cols!()
        ))
        .bind(text)
        .bind(uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    /// Disables the user and gives it a new login id, provided its login id
    /// is still `login_id` (which the caller has revoked first). `Ok(false)`
    /// when the login id changed meanwhile: revoke the new one and call
    /// again. `NotFound` when no such user. Keeps the first `disabled_at`.
    pub async fn disable_user(&self, uid: &str, login_id: &str, now: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $1), login_id = $2 \
             WHERE uid = $3 AND COALESCE(login_id, 'lgn_' || uid) = $4",
        )
        .bind(now)
        .bind(random_id("lgn_"))
        .bind(uid)
        .bind(login_id)
        .execute(self.pool())
        .await
        .map_err(db)?
        .rows_affected();
        self.login_replaced(uid, n).await
    }

    /// Lets a disabled user log in again; `None` when no such user.
    pub async fn enable_user(&self, uid: &str) -> Result<Option<User>, StoreError> {
        sqlx::query_as::<_, User>(concat!(
            "UPDATE users SET disabled_at = NULL WHERE uid = $1 RETURNING ",
            user_cols!()
        ))
        .bind(uid)
        .fetch_optional(self.pool())
        .await
        .map_err(db)
    }

    /// Replaces the password and the login id, provided the login id is
    /// still `login_id` (revoked first by the caller); as
    /// [`Store::disable_user`] otherwise.
    pub async fn set_password(&self, uid: &str, login_id: &str, password: &str) -> Result<bool, StoreError> {
        check_password(password)?;
        let hash = self.hash_password(password).await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, login_id = $2 \
             WHERE uid = $3 AND COALESCE(login_id, 'lgn_' || uid) = $4",
        )
        .bind(hash)
        .bind(random_id("lgn_"))
        .bind(uid)
        .bind(login_id)
        .execute(self.pool())
        .await
        .map_err(db)?
        .rows_affected();
        self.login_replaced(uid, n).await
    }

    async fn login_replaced(&self, uid: &str, rows: u64) -> Result<bool, StoreError> {
        if rows > 0 {
            return Ok(true);
        }
        match self.find_user(uid).await? {
            Some(u) if u.uid == uid => Ok(false),
            _ => Err(StoreError::NotFound("user".into())),
        }
    }

    /// Deletes the user and everything it holds (clients and their
    /// assertion ids, named tokens, generator token, API keys) in one
    /// transaction. The caller revokes first. `false` when no such user.
    pub async fn delete_user(&self, uid: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM assertion_jtis WHERE client_id IN (SELECT client_id FROM clients WHERE owner_uid = $1)",
            "DELETE FROM clients WHERE owner_uid = $1",
            "DELETE FROM named_tokens WHERE uid = $1",
            "DELETE FROM generator_tokens WHERE uid = $1",
            "DELETE FROM api_keys WHERE principal_kind = 'user' AND principal_id = $1",
        ] {
            sqlx::query(sql).bind(uid).execute(&mut *tx).await.map_err(db)?;
        }
        let n = sqlx::query("DELETE FROM users WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(n > 0)
    }
}

fn check_password(password: &str) -> Result<(), StoreError> {
    if password.is_empty() || password.len() > 1024 {
        return Err(StoreError::Invalid("password must be 1-1024 bytes".into()));
    }
    Ok(())
}
