//! `keys status` and `GET /api/v1/keys`: ids, states, rows and encryptions
//! per data key. Never key material.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::{KeyState, nonce_warning};
use crate::crypto::DataKeyId;
use crate::db::error::DbError;

/// One line of `keys status`: never key material.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyStatus {
    #[schema(value_type = i32)]
    pub id: DataKeyId,
    #[schema(value_type = String)]
    pub state: KeyState,
    pub kek_id: String,
    /// `local` (wrapped by a local master key) or `transit`.
    pub wrap: String,
    /// For a transit wrap, the transit key version it was made with (the
    /// `vN` of `vault:vN:`): after a rotation of the transit key, wraps below
    /// its newest version want `rotate-master --rewrap`.
    pub transit_key_version: Option<i32>,
    pub algorithm: String,
    pub rows: i64,
    pub encryptions: i64,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    /// The nonce-budget warning, when the key is past `NONCE_WARN_AT`.
    pub warning: Option<String>,
}

#[derive(QueryableByName)]
struct KeyStatusRow {
    #[diesel(sql_type = Integer)]
    id: DataKeyId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: KeyState,
    #[diesel(sql_type = diesel::sql_types::Text)]
    kek_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    wrap: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Integer>)]
    transit_key_version: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    algorithm: String,
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    encryptions: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    retired_at: Option<DateTime<Utc>>,
}

pub async fn key_status(conn: &mut AsyncPgConnection) -> Result<Vec<KeyStatus>, DbError> {
    let rows: Vec<KeyStatusRow> = diesel::sql_query(
        "SELECT k.id, k.state, k.kek_id, \
                CASE WHEN k.kek_id LIKE 'transit://%' THEN 'transit' ELSE 'local' END AS wrap, \
                CASE WHEN k.kek_id LIKE 'transit://%' THEN substring(encode(k.wrapped_key, 'escape') \
                     FROM '^vault:v([0-9]{1,9}):')::integer END AS transit_key_version, \
                k.algorithm, \
                (SELECT count(*) FROM user_sessions s WHERE s.data_key_id = k.id) AS rows, \
                k.encryption_count AS encryptions, k.created_at, k.retired_at \
         FROM encryption_keys k ORDER BY k.id",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| KeyStatus {
            warning: nonce_warning(r.id, r.state, r.encryptions),
            id: r.id,
            state: r.state,
            kek_id: r.kek_id,
            wrap: r.wrap,
            transit_key_version: r.transit_key_version,
            algorithm: r.algorithm,
            rows: r.rows,
            encryptions: r.encryptions,
            created_at: r.created_at,
            retired_at: r.retired_at,
        })
        .collect())
}
