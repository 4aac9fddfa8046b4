//! What the pool's server sessions really run with: the timeouts it asks
//! for may not arrive (a pooler drops startup `options`).

use super::{DbError, Pool, PoolSettings};

#[derive(diesel::QueryableByName)]
struct Timeouts {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    statement_ms: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    lock_ms: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    role: String,
}

/// What a pooled connection's server session really runs with. The pool
/// asks for the timeouts in the startup packet's `options`; a pooler (PgBouncer
/// with `ignore_startup_parameters = options`) drops them silently, leaving
/// the request path unbounded. Returns a warning naming the fix when either
/// is off or looser than asked.
pub async fn check_timeouts(
    pool: &Pool,
    settings: &PoolSettings,
) -> Result<Option<String>, DbError> {
    use diesel_async::RunQueryDsl;
    let mut conn = pool.get().await?;
    let t: Timeouts = diesel::sql_query(
        "SELECT (SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout') AS statement_ms, \
                (SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout') AS lock_ms, \
                current_user::text AS role",
    )
    .get_result(&mut *conn)
    .await?;
    let want_st = settings.statement_timeout.as_millis() as i64;
    let want_lk = settings.lock_timeout.as_millis() as i64;
    let loose = |got: i64, want: i64| got == 0 || got > want;
    if !loose(t.statement_ms, want_st) && !loose(t.lock_ms, want_lk) {
        return Ok(None);
    }
    Ok(Some(format!(
        "DATABASE_URL sessions run with statement_timeout={} ms and lock_timeout={} ms, not the \
         {want_st} ms / {want_lk} ms the pool asks for in the connection's options (a pooler \
         dropped them?): a hung query can hold a request and a pooled server connection \
         indefinitely. Set them on the role: `vibee-sessions grant {}` does, or ALTER ROLE {} \
         SET statement_timeout = {want_st}; ALTER ROLE {} SET lock_timeout = {want_lk}",
        t.statement_ms, t.lock_ms, t.role, t.role, t.role
    )))
}
