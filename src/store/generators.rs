//! The `generator_tokens` table: one access-generator token per user,
//! looked up by its SHA-256 and kept encrypted with the KEK.

use serde::Serialize;

use super::crypto::{ct_eq, random_id};
use super::error::{db, map_db};
use super::{random_token, sha256_hex, Backend, Store, StoreError, Tx, MAX_SECRET_LEN};

/// Prefix of access-generator tokens.
pub const GENERATOR_TOKEN_PREFIX: &str = "tgg_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct GeneratorToken {
    pub id: String,
    pub uid: String,
    pub org_id: String,
    pub username: String,
    pub created_at: i64,
}

/// A row of [`gen_select`]: the token, its hash and encrypted plaintext,
/// and whether its user is disabled.
#[derive(sqlx::FromRow)]
struct GeneratorRow {
    #[sqlx(flatten)]
    token: GeneratorToken,
    token_hash: String,
    token_enc: String,
    disabled_at: Option<i64>,
}

macro_rules! gen_select {
    () => {
        "SELECT g.id, g.uid, u.org_id, u.username, g.created_at, g.token_hash, g.token_enc, u.disabled_at \
         FROM generator_tokens g JOIN users u ON u.uid = g.uid "
    };
}

impl Store {
    pub(super) async fn insert_generator(
        &self,
        tx: &mut Tx,
        uid: &str,
        now: i64,
    ) -> Result<(String, String), StoreError> {
        let id = random_id("gen_");
        let plaintext = random_token(GENERATOR_TOKEN_PREFIX, 32);
        let enc = self.inner.cipher.seal(&generator_aad(&id), plaintext.as_bytes())?;
        sqlx::query(
            "INSERT INTO generator_tokens (id, uid, token_hash, token_enc, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(uid)
        .bind(sha256_hex(&plaintext))
        .bind(enc)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| map_db(e, "concurrent access-generator token change"))?;
        Ok((id, plaintext))
    }

    /// The user's access-generator token and its plaintext (decrypted).
    pub async fn generator_token(&self, uid: &str) -> Result<Option<(GeneratorToken, String)>, StoreError> {
        let Some(row) = sqlx::query_as::<_, GeneratorRow>(concat!(gen_select!(), "WHERE g.uid = $1"))
            .bind(uid)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let plain = self.inner.cipher.open(&generator_aad(&row.token.id), &row.token_enc)?;
        let plain = String::from_utf8(plain).map_err(|_| StoreError::Crypto("stored token is not UTF-8".into()))?;
        Ok(Some((row.token, plain)))
    }

    /// Replaces the user's access-generator token atomically; returns the
    /// new one, its plaintext and the id of the old one (which no longer
    /// looks up). `NotFound` when the user does not exist.
    pub async fn regenerate_generator_token(
        &self,
        uid: &str,
        now: i64,
    ) -> Result<(GeneratorToken, String, Option<String>), StoreError> {
        let mut tx = self.begin_write().await?;
        // PostgreSQL: lock the user row so concurrent regenerations queue up.
        let sql = match self.inner.backend {
            Backend::Sqlite => "SELECT org_id, username FROM users WHERE uid = $1",
            Backend::Postgres => "SELECT org_id, username FROM users WHERE uid = $1 FOR UPDATE",
        };
        let (org_id, username) = sqlx::query_as::<_, (String, String)>(sql)
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::NotFound("user".into()))?;
        let old: Option<String> = sqlx::query_scalar("SELECT id FROM generator_tokens WHERE uid = $1")
            .bind(uid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query("DELETE FROM generator_tokens WHERE uid = $1")
            .bind(uid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let (id, plaintext) = self.insert_generator(&mut tx, uid, now).await?;
        tx.commit().await.map_err(db)?;
        let token = GeneratorToken {
            id,
            uid: uid.to_string(),
            org_id,
            username,
            created_at: now,
        };
        Ok((token, plaintext, old))
    }

    pub async fn lookup_generator_token(&self, plaintext: &str) -> Result<Option<GeneratorToken>, StoreError> {
        if !plaintext.starts_with(GENERATOR_TOKEN_PREFIX) || plaintext.len() > MAX_SECRET_LEN {
            return Ok(None);
        }
        let hash = sha256_hex(plaintext);
        let Some(row) = sqlx::query_as::<_, GeneratorRow>(concat!(gen_select!(), "WHERE g.token_hash = $1"))
            .bind(&hash)
            .fetch_optional(self.pool())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        if !ct_eq(&row.token_hash, &hash) {
            return Ok(None);
        }
        // A disabled user's generator token mints nothing.
        if row.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(row.token))
    }
}

fn generator_aad(id: &str) -> String {
    format!("tilegate:generator-token:{id}")
}
