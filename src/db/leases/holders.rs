//! Heartbeats of boot loaders: each announces itself with a row that lives
//! for one TTL, so every loader can count the live ones and take its share.

use diesel::sql_types::{Integer, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::{DbError, validate_holder, validate_ttl};

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = Text)]
    holder: String,
}

/// Announces `holder` for `ttl_seconds` and returns every live holder
/// (itself included), sorted. Rows dead for ten minutes are swept.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    holder: &str,
    ttl_seconds: i32,
) -> Result<Vec<String>, DbError> {
    validate_holder(holder)?;
    validate_ttl(ttl_seconds)?;
    let live: Vec<Holder> = sql_query(
        "WITH up AS (INSERT INTO lease_holders (holder, expires_at) \
                     VALUES ($1, now() + $2 * interval '1 second') \
                     ON CONFLICT (holder) DO UPDATE \
                     SET seen_at = now(), expires_at = EXCLUDED.expires_at \
                     RETURNING holder), \
              gc AS (DELETE FROM lease_holders \
                     WHERE expires_at < now() - interval '10 minutes' AND holder <> $1) \
         SELECT holder FROM lease_holders WHERE expires_at > now() AND holder <> $1 \
         UNION SELECT holder FROM up ORDER BY 1",
    )
    .bind::<Text, _>(holder)
    .bind::<Integer, _>(ttl_seconds)
    .load(conn)
    .await?;
    Ok(live.into_iter().map(|h| h.holder).collect())
}

/// Withdraws `holder` at a clean stop, so the others re-balance at once.
pub async fn leave(conn: &mut AsyncPgConnection, holder: &str) -> Result<(), DbError> {
    sql_query("DELETE FROM lease_holders WHERE holder = $1")
        .bind::<Text, _>(holder)
        .execute(conn)
        .await?;
    Ok(())
}
