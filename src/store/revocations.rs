//! The `revocations` table, and its PostgreSQL notifications: the
//! listener every replica runs ([`RevocationListener`], [`StoreEvent`]).

use std::sync::atomic::Ordering;

use super::error::db;
use super::{check_name, Backend, Store, StoreError, Tx};

/// Channel of the PostgreSQL notifications sent by [`Store::add_revocation`].
pub const REVOCATION_CHANNEL: &str = "tilegate_revocations";

/// The payload [`Store::announce_limits_changed`] sends on that channel
/// instead of a revoked id (no id starts with `!`): receivers forget the
/// credentials they cache, whose principal's ceiling or state changed.
pub const LIMITS_CHANGED: &str = "!limits";

/// Channel of the PostgreSQL notifications sent by
/// [`Store::insert_signing_key`] (payload: the new kid), so every replica
/// re-reads the signing keys at once after a rotation anywhere.
pub const KEYS_CHANNEL: &str = "tilegate_keys";

/// What another replica (or the CLI) changed, from [`RevocationListener::recv_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// An id was revoked, until the given time (`None`: for ever).
    Revoked(String, Option<i64>),
    /// The signing keys changed (a rotation): re-read them.
    KeysChanged,
    /// A principal's ceiling or state changed ([`LIMITS_CHANGED`]): forget
    /// the credentials cached with their limits.
    LimitsChanged,
}

/// Receives revoked ids from other replicas (PostgreSQL `LISTEN`).
pub struct RevocationListener {
    inner: sqlx::postgres::PgListener,
}

impl RevocationListener {
    /// The next revoked id.
    ///
    /// Returns `Err(StoreError::Unavailable)` as soon as the connection is
    /// lost (eager reconnection is off, so sqlx's growing backoff never
    /// delays the report; notifications sent meanwhile are lost). The caller
    /// then opens a new listener with [`Store::revocation_listener`] and
    /// reloads the full list with [`Store::list_revocations`].
    /// sqlx does not document cancel safety: run it in its own task rather
    /// than racing it in `tokio::select!`.
    pub async fn recv(&mut self) -> Result<(String, Option<i64>), StoreError> {
        loop {
            if let StoreEvent::Revoked(id, until) = self.recv_event().await? {
                return Ok((id, until));
            }
        }
    }

    /// The next event: a revocation, a change of limits, or a change of the signing keys. Same
    /// error behaviour as [`RevocationListener::recv`].
    pub async fn recv_event(&mut self) -> Result<StoreEvent, StoreError> {
        match self.inner.try_recv().await {
            Ok(Some(n)) if n.channel() == KEYS_CHANNEL => Ok(StoreEvent::KeysChanged),
            Ok(Some(n)) if n.payload() == LIMITS_CHANGED => Ok(StoreEvent::LimitsChanged),
            Ok(Some(n)) => {
                let (id, until) = parse_notification(n.payload());
                Ok(StoreEvent::Revoked(id.to_owned(), until))
            }
            Ok(None) => {
                tracing::warn!("revocation listener lost its database connection");
                Err(StoreError::Unavailable(
                    "revocation listener lost its connection; resynchronise".into(),
                ))
            }
            Err(e) => Err(match db(e) {
                StoreError::Internal(m) => StoreError::Unavailable(m),
                other => other,
            }),
        }
    }
}

impl std::fmt::Debug for RevocationListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationListener")
    }
}

impl Store {
    /// Adds (or extends) a revocation entry: the later `until` wins, `None`
    /// (forever) beats any time. On PostgreSQL also notifies
    /// `tilegate_revocations` with the id, in the same transaction.
    pub async fn add_revocation(&self, id: &str, until: Option<i64>, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.upsert_revocation(&mut tx, id, until, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    pub(super) async fn upsert_revocation(
        &self,
        tx: &mut Tx,
        id: &str,
        until: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        check_name("revoked id", id)?;
        sqlx::query(
            "INSERT INTO revocations (id, until, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET until = CASE \
               WHEN revocations.until IS NULL OR excluded.until IS NULL THEN NULL \
               WHEN excluded.until > revocations.until THEN excluded.until \
               ELSE revocations.until END",
        )
        .bind(id)
        .bind(until)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        if self.inner.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(notification(id, until))
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Tells the other replicas (PostgreSQL) that a scope ceiling or a
    /// user's state changed, so that they re-read the API keys they cache
    /// (with their principal's limits) instead of waiting out
    /// `cache.secret_ttl`. Nothing to do on SQLite (one process).
    pub async fn announce_limits_changed(&self) -> Result<(), StoreError> {
        if self.inner.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(REVOCATION_CHANNEL)
                .bind(LIMITS_CHANGED)
                .execute(self.pool())
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    /// Entries still in force at `now` (`until` null or `>= now`). Expired
    /// rows are purged at most once a minute.
    pub async fn list_revocations(&self, now: i64) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let last = self.inner.last_revocation_purge.load(Ordering::Relaxed);
        if now - last >= 60
            && self
                .inner
                .last_revocation_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            sqlx::query("DELETE FROM revocations WHERE until IS NOT NULL AND until < $1")
                .bind(now)
                .execute(self.pool())
                .await
                .map_err(db)?;
        }
        sqlx::query_as::<_, (String, Option<i64>)>(
            "SELECT id, until FROM revocations WHERE until IS NULL OR until >= $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await
        .map_err(db)
    }

    /// PostgreSQL: a dedicated connection listening on `tilegate_revocations`
    /// and `tilegate_keys`.
    /// SQLite: `None` (a single process updates its own set).
    pub async fn revocation_listener(&self) -> Result<Option<RevocationListener>, StoreError> {
        if self.inner.backend != Backend::Postgres {
            return Ok(None);
        }
        let unavailable = |e| match db(e) {
            StoreError::Internal(m) => StoreError::Unavailable(m),
            other => other,
        };
        let mut inner = sqlx::postgres::PgListener::connect(&self.inner.url)
            .await
            .map_err(unavailable)?;
        // Report a lost connection at once instead of reconnecting inside
        // recv with sqlx's growing backoff: the caller reconnects promptly
        // and resyncs.
        inner.eager_reconnect(false);
        // One statement (`LISTEN a; LISTEN b`), revocations first.
        inner
            .listen_all([REVOCATION_CHANNEL, KEYS_CHANNEL])
            .await
            .map_err(unavailable)?;
        Ok(Some(RevocationListener { inner }))
    }
}

/// The NOTIFY payload of a revocation: the id and, when the entry expires,
/// its `until`, so other replicas forget it when the revoking one does.
fn notification(id: &str, until: Option<i64>) -> String {
    match until {
        Some(u) => format!("{id} {u}"),
        None => id.to_owned(),
    }
}

/// Parse [`notification`]'s payload. A bare id (from an older replica)
/// is kept forever, the safe side, until a resync takes the store's
/// `until`.
fn parse_notification(payload: &str) -> (&str, Option<i64>) {
    match payload.rsplit_once(' ') {
        Some((id, u)) => match u.parse() {
            Ok(u) => (id, Some(u)),
            Err(_) => (payload, None),
        },
        None => (payload, None),
    }
}

#[cfg(test)]
#[test]
fn revocation_notifications_carry_the_expiry() {
    assert_eq!(
        parse_notification(&notification("jti-1", Some(42))),
        ("jti-1", Some(42))
    );
    assert_eq!(parse_notification(&notification("key_x", None)), ("key_x", None));
    assert_eq!(parse_notification("old-format"), ("old-format", None));
}
