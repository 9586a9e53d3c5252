//! Fail fast while PostgreSQL is unreachable.
//!
//! Without this, every store call during an outage waits the whole acquire
//! timeout (sqlx retries a refused connection until then) before its 503,
//! and requests pile up meanwhile. Here, once a call finds the database
//! unreachable, later calls fail at once with `Unavailable` while one
//! background task probes the database every [`PROBE_EVERY`]; its first
//! success lets calls through again. So during an outage only the calls
//! that were already waiting when it began wait (at most the acquire
//! timeout); the rest answer 503 at once, and the store recovers by itself
//! within about [`PROBE_EVERY`] of the database coming back.
//!
//! Only PostgreSQL: SQLite is a file, whose errors come back at once.
//! Only a failure to reach the database trips it (I/O, TLS, a connection
//! exception, a timeout while the pool had room for a new connection), not
//! a busy pool or an SQL error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyPool, Describe, Either, Execute, Executor, Transaction};

/// Pause between two probes of an unreachable database.
pub(crate) const PROBE_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Health {
    /// Off for SQLite.
    enabled: bool,
    /// The last call found the database unreachable and no probe has
    /// succeeded since.
    down: AtomicBool,
    /// A probe task is running.
    probing: AtomicBool,
    acquire_timeout: Duration,
}

impl Health {
    pub(crate) fn new(enabled: bool, acquire_timeout: Duration) -> Arc<Health> {
        Arc::new(Health {
            enabled,
            down: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            acquire_timeout,
        })
    }

    /// `Err` at once while the database is known to be unreachable.
    fn admit(&self) -> Result<(), sqlx::Error> {
        if self.enabled && self.down.load(Ordering::Relaxed) {
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the database is unreachable (checked again every 200ms)",
            )));
        }
        Ok(())
    }

    /// Look at a call's error; an unreachable database trips the breaker
    /// and starts the probe.
    fn observe(self: &Arc<Self>, e: &sqlx::Error, pool: &AnyPool) {
        if !self.enabled || !unreachable(e, pool) {
            return;
        }
        if !self.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(error = %e, "the database is unreachable; store calls fail at once until it answers");
        }
        if !self.probing.swap(true, Ordering::SeqCst) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(self.clone().probe(pool.clone()));
                }
                Err(_) => {
                    // No runtime to probe from: let calls try again.
                    self.probing.store(false, Ordering::SeqCst);
                    self.down.store(false, Ordering::SeqCst);
                }
            }
        }
    }

    async fn probe(self: Arc<Self>, pool: AnyPool) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if pool.is_closed() {
                break;
            }
            let ok = tokio::time::timeout(self.acquire_timeout, sqlx::query("SELECT 1").execute(&pool))
                .await
                .is_ok_and(|r| r.is_ok());
            if ok {
                tracing::info!("the database answers again");
                break;
            }
        }
        // `probing` first: a call that trips the breaker in between then
        // starts a new probe instead of leaving `down` set with none.
        self.probing.store(false, Ordering::SeqCst);
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Whether `e` says the database could not be reached (rather than a busy
/// pool or a query the database refused).
fn unreachable(e: &sqlx::Error, pool: &AnyPool) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // The pool had room for a new connection, so connecting is what
        // timed out; a full pool of busy connections is load, not an outage.
        sqlx::Error::PoolTimedOut => pool.size() < pool.options().get_max_connections(),
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// The pool behind the breaker: an [`Executor`] like `&AnyPool`, so
/// queries take it unchanged (`.execute(self.pool())`).
#[derive(Clone, Copy)]
pub(crate) struct Gated<'a> {
    pub(crate) pool: &'a AnyPool,
    pub(crate) health: &'a Arc<Health>,
}

impl std::fmt::Debug for Gated<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gated")
    }
}

impl Gated<'_> {
    pub(crate) async fn begin(self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.health.admit()?;
        let r = self.pool.begin().await;
        if let Err(e) = &r {
            self.health.observe(e, self.pool);
        }
        r
    }

    pub(crate) async fn begin_with(self, statement: &'static str) -> Result<Transaction<'static, Any>, sqlx::Error> {
        self.health.admit()?;
        let r = self.pool.begin_with(statement).await;
        if let Err(e) = &r {
            self.health.observe(e, self.pool);
        }
        r
    }
}

impl<'p> Executor<'p> for Gated<'_> {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        if let Err(e) = self.health.admit() {
            return futures_util::stream::once(async move { Err(e) }).boxed();
        }
        let (health, pool) = (self.health.clone(), self.pool.clone());
        self.pool
            .fetch_many(query)
            .inspect(move |r| {
                if let Err(e) = r {
                    health.observe(e, &pool);
                }
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let admitted = self.health.admit();
        let (health, pool) = (self.health.clone(), self.pool.clone());
        Box::pin(async move {
            admitted?;
            let r = pool.fetch_optional(query).await;
            if let Err(e) = &r {
                health.observe(e, &pool);
            }
            r
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        let admitted = self.health.admit();
        let pool = self.pool.clone();
        Box::pin(async move {
            admitted?;
            pool.prepare_with(sql, parameters).await
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        let admitted = self.health.admit();
        let pool = self.pool.clone();
        Box::pin(async move {
            admitted?;
            pool.describe(sql).await
        })
    }
}
