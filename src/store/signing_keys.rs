//! The `signing_keys` table: the gateway's token signing keys, private keys
//! encrypted with the KEK.

use serde::Serialize;

use super::error::{db, map_db};
use super::{check_name, Backend, Store, StoreError, KEYS_CHANNEL};

/// A signing key to insert; its private key is encrypted at rest.
#[derive(Clone, Serialize)]
pub struct NewSigningKey {
    pub kid: String,
    pub alg: String,
    #[serde(skip_serializing)]
    pub private_pkcs8_der: Vec<u8>,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    pub created_at: i64,
}

impl std::fmt::Debug for NewSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A stored signing key, private key decrypted. `Debug` and `Serialize`
/// leave the private key out.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    #[serde(skip_serializing)]
    pub private_pkcs8_der: Vec<u8>,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A `signing_keys` row as stored: the private key still encrypted
/// (decrypted into a [`SigningKeyRecord`] by [`Store::signing_keys`]).
#[derive(sqlx::FromRow)]
struct SigningKeyRow {
    kid: String,
    alg: String,
    private_enc: String,
    public_jwk: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl Store {
    /// Stores the key (private key encrypted) and makes it the active one:
    /// every key still active gets `retired_at = k.created_at`, in one
    /// transaction. `Conflict` when the kid exists.
    pub async fn insert_signing_key(&self, k: &NewSigningKey) -> Result<(), StoreError> {
        check_name("kid", &k.kid)?;
        check_name("alg", &k.alg)?;
        let enc = self.inner.cipher.seal(&signing_key_aad(&k.kid), &k.private_pkcs8_der)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(k.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(enc)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db(e, "a signing key with this kid exists"))?;
        if self.inner.backend == Backend::Postgres {
            // Delivered at commit: every replica's listener re-reads the keys.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(KEYS_CHANNEL)
                .bind(&k.kid)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    /// All signing keys, private keys decrypted: the active ones (retired_at
    /// null) first, then newest first. The active key is the first element
    /// when its `retired_at` is `None`.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query_as::<_, SigningKeyRow>(
            "SELECT kid, alg, private_enc, public_jwk, created_at, retired_at FROM signing_keys \
             ORDER BY CASE WHEN retired_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC",
        )
        .fetch_all(self.pool())
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|r| {
                let private_pkcs8_der = self.inner.cipher.open(&signing_key_aad(&r.kid), &r.private_enc)?;
                Ok(SigningKeyRecord {
                    kid: r.kid,
                    alg: r.alg,
                    private_pkcs8_der,
                    public_jwk: r.public_jwk,
                    created_at: r.created_at,
                    retired_at: r.retired_at,
                })
            })
            .collect()
    }

    /// The active signing key (newest with `retired_at` null), if any.
    pub async fn active_signing_key(&self) -> Result<Option<SigningKeyRecord>, StoreError> {
        Ok(self
            .signing_keys()
            .await?
            .into_iter()
            .next()
            .filter(|k| k.retired_at.is_none()))
    }
}

fn signing_key_aad(kid: &str) -> String {
    format!("tilegate:signing-key:{kid}")
}
