use diesel::migration::MigrationSource;
use diesel::sql_types::BigInt;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::connection::DatabaseTarget;
use super::error::DbError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How many migrations the binary carries (counted from the embedded set,
/// so it cannot drift from `migrations/`).
pub fn migrations_count() -> usize {
    MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS)
        .map(|m| m.len())
        .expect("the embedded migrations are readable")
}

/// Advisory lock key held while migrating, so replicas starting together take
/// turns instead of racing ("vibee-mg").
const MIGRATION_LOCK: i64 = 0x7669_6265_652d_6d67;

/// Applies pending migrations under an advisory lock; returns the versions
/// applied (empty when the schema was current).
pub async fn run_pending(target: &DatabaseTarget) -> Result<Vec<String>, DbError> {
    let mut conn = target.connect().await?;
    // A role without DDL rights (docs/DEPLOYMENT.md) may run `serve` on a
    // current schema: the harness would start with a CREATE TABLE IF NOT
    // EXISTS it may not run, so it is only called when something is pending.
    if nothing_pending(&mut conn).await {
        return Ok(Vec::new());
    }
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
        .await?;
    // The harness is synchronous; run it where blocking is allowed, on any runtime.
    let (conn, applied) = tokio::task::spawn_blocking(move || {
        let mut wrapper = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        let applied = wrapper
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| DbError::Migration(e.to_string()));
        (wrapper.into_inner(), applied)
    })
    .await
    .map_err(|e| DbError::Internal(format!("migration task failed: {e}")))?;
    let applied = applied.map_err(|e| match e {
        DbError::Migration(m) if m.contains("permission denied") => DbError::Migration(format!(
            "{m} (migrations are applied by the schema's owner: run `vibee-sessions migrate` \
             with the owner's DATABASE_DIRECT_URL, then `serve` as the service's role)"
        )),
        other => other,
    });
    let mut conn = conn;
    // Closing the connection would release the lock too; unlock explicitly anyway.
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(&mut conn)
        .await?;
    applied
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Whether every embedded migration is recorded as applied (false when the
/// table is missing or cannot be read: the harness then says why).
async fn nothing_pending(conn: &mut AsyncPgConnection) -> bool {
    let Ok(applied) =
        diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .await
    else {
        return false;
    };
    let Ok(embedded) = MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS) else {
        return false;
    };
    embedded.iter().all(|m| {
        let version = m.name().version().to_string();
        applied.iter().any(|a| a.version == version)
    })
}
