//! The migrations compiled into the binary, one list per backend, applied
//! by sqlx's migrator at open.

use std::future::Future;
use std::pin::Pin;

use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyPool;

use super::error::db;
use super::{Backend, StoreError};

pub(super) const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/sqlite/0001_init.sql")),
    (2, "containment", include_str!("migrations/sqlite/0002_containment.sql")),
    (3, "tile grants", include_str!("migrations/sqlite/0003_tile_grants.sql")),
    (
        4,
        "credential grants",
        include_str!("migrations/sqlite/0004_credential_grants.sql"),
    ),
];

pub(super) const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/postgres/0001_init.sql")),
    (
        2,
        "containment",
        include_str!("migrations/postgres/0002_containment.sql"),
    ),
    (
        3,
        "tile grants",
        include_str!("migrations/postgres/0003_tile_grants.sql"),
    ),
    (
        4,
        "credential grants",
        include_str!("migrations/postgres/0004_credential_grants.sql"),
    ),
];

/// The migrations compiled into the binary for one backend.
#[derive(Debug)]
struct EmbeddedMigrations(Backend);

pub(super) type BoxDynError = Box<dyn std::error::Error + Send + Sync>;

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        let list = match self.0 {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(version, description.into(), MigrationType::Simple, sql.into(), false)
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

/// Applies pending migrations, tracked in sqlx's `_sqlx_migrations` table;
/// on PostgreSQL under an advisory lock, so replicas starting together are safe.
pub(super) async fn run_migrations(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    let migrator = Migrator::new(EmbeddedMigrations(backend))
        .await
        .map_err(|e| StoreError::Internal(format!("cannot load migrations: {e}")))?;
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::Execute(e) => db(e),
        other => StoreError::Internal(format!("migration failed: {other}")),
    })
}
