//! The upsert's fast path: one unlocked read of where the row is, then one
//! statement that writes the row and its audit row (a data-modifying CTE,
//! committed on its own). Against the locked path's BEGIN, SELECT … FOR
//! UPDATE, fence SELECT, UPDATE + INSERT, COMMIT, that is two round trips
//! and one commit.
//!
//! The statement is sealed for the row it read (id, user_id, session_id) and
//! its WHERE re-checks all of that on the row it updates, together with
//! everything the locked path checks: active, the `If-Match` versions, the
//! lease fence (the live lease row share-locked until the commit), and that
//! every stored ciphertext it keeps is already under the key it writes.
//! When any of it does not hold (or a concurrent insert won), the statement
//! writes nothing and the locked path (`write::upsert_once`) runs instead:
//! it finds the precise answer (412, 409, a conflict) or writes. Every
//! attempt seals anew and reserves its own nonces. Why this design:
//! docs/perf/UPSERT.md.

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::sql_types::{Array, BigInt, Bool, Bytea, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Value, json};
use uuid::Uuid;

use super::model::{Condition, SessionInput, SessionMeta, Upserted};
use super::seal::{Place, Plain, SEALED_FIELDS, Sealed, seal_row, secret_bytes, slice_bytes};

use crate::crypto::random_hex;
use crate::db::activity::{ActivityType, AuditContext};
use crate::db::error::DbError;
use crate::db::keys::Vault;
use crate::db::schema::user_sessions;

/// Where the row of a user_id is, read without a lock.
struct Located {
    id: Uuid,
    session_id: String,
}

/// Tries the upsert in one statement. `Ok(None)`: nothing was written, and
/// the locked path must run.
pub(super) async fn try_upsert(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
    condition: Condition<'_>,
    fence: Option<i64>,
) -> Result<Option<Upserted>, DbError> {
    let found = user_sessions::table
        .filter(user_sessions::user_id.eq(&input.user_id))
        .select((user_sessions::id, user_sessions::session_id))
        .first::<(Uuid, String)>(conn)
        .await
        .optional()?;
    let versions = match condition {
        Condition::Any => None,
        Condition::Version(list) => Some(list),
        // Create-only: the locked path answers 412 for an existing row.
        Condition::Absent => None,
    };
    match found {
        Some(_) if matches!(condition, Condition::Absent) => Ok(None),
        Some((id, session_id)) => {
            let at = Located { id, session_id };
            update(conn, vault, ctx, input, &at, versions, fence).await
        }
        // If-Match on no row is 412; a fence on a create is stale: the
        // locked path says so.
        None if versions.is_some() || fence.is_some() => Ok(None),
        None => create(conn, vault, ctx, input).await,
    }
}

fn plain(input: &SessionInput) -> Plain {
    Plain {
        api_hash: secret_bytes(&input.api_hash),
        phone: input.phone.as_ref().map(secret_bytes),
        session_data: input.session_data.as_ref().map(slice_bytes),
    }
}

async fn update(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
    at: &Located,
    versions: Option<&[i64]>,
    fence: Option<i64>,
) -> Result<Option<Upserted>, DbError> {
    let keeps = input.phone.is_none() || input.session_data.is_none();
    let new_session_id = input.session_id.as_deref().unwrap_or(&at.session_id);
    if keeps && new_session_id != at.session_id {
        // The kept ciphertexts are bound to the old session_id: they must be
        // opened and sealed again, which the locked path does.
        return Ok(None);
    }
    let ring = vault.reserve(conn, SEALED_FIELDS).await?;
    let place = Place {
        id: at.id,
        user_id: &input.user_id,
        session_id: new_session_id,
    };
    let sealed = seal_row(&ring, place, &plain(input));
    let details = json!({ "fields": input.field_names(), "data_key_id": sealed.data_key_id });
    let statement = FastUpdate {
        input,
        at,
        sealed: &sealed,
        versions,
        fence,
        ctx,
        details: &details,
    };
    Ok(statement
        .get_result::<SessionMeta>(conn)
        .await
        .optional()?
        .map(Upserted::Updated))
}

async fn create(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    input: &SessionInput,
) -> Result<Option<Upserted>, DbError> {
    let ring = vault.reserve(conn, SEALED_FIELDS).await?;
    // Random (v4), not time-ordered: the id says nothing about when it was made.
    let id = Uuid::new_v4();
    let session_id = input.session_id.clone().unwrap_or_else(|| random_hex(16));
    let place = Place {
        id,
        user_id: &input.user_id,
        session_id: &session_id,
    };
    let sealed = seal_row(&ring, place, &plain(input));
    let details = json!({ "fields": input.field_names(), "data_key_id": sealed.data_key_id });
    let statement = FastCreate {
        id,
        session_id: &session_id,
        input,
        sealed: &sealed,
        ctx,
        details: &details,
    };
    Ok(statement
        .get_result::<SessionMeta>(conn)
        .await
        .optional()?
        .map(Upserted::Created))
}

/// `SessionMeta`'s columns, in its field order.
const META_COLUMNS: &str = "id, user_id, session_id, username, api_id, data_key_id, is_active, \
     is_authorized, digital_twin_enabled, auto_reply_enabled, target_chats, last_seen_at, \
     version, created_at, updated_at, phone_encrypted IS NOT NULL AS has_phone, \
     session_data_encrypted IS NOT NULL AS has_session_data";

type MetaSql = (
    diesel::sql_types::Uuid,
    Text,
    Text,
    Nullable<Text>,
    Integer,
    Integer,
    Bool,
    Bool,
    Bool,
    Bool,
    Jsonb,
    Nullable<Timestamptz>,
    BigInt,
    Timestamptz,
    Timestamptz,
    Bool,
    Bool,
);

/// The audit row of the written row (the CTE `written`), in the same
/// statement, so the same transaction: nothing written, nothing audited.
fn push_audit<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    written: &'static str,
    kind: ActivityType,
    ctx: &'b AuditContext,
    details: &'b Value,
) -> QueryResult<()> {
    out.push_sql(", audit AS (INSERT INTO session_activity ");
    out.push_sql("(session_id, user_id, activity_type, actor, request_id, details) ");
    out.push_sql("SELECT session_id, user_id, '");
    out.push_sql(kind.as_str());
    out.push_sql("', ");
    out.push_bind_param::<Text, _>(&ctx.actor)?;
    out.push_sql(", ");
    out.push_bind_param::<Nullable<Text>, _>(&ctx.request_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Jsonb, _>(details)?;
    out.push_sql(" FROM ");
    out.push_sql(written);
    out.push_sql(") SELECT ");
    out.push_sql(META_COLUMNS);
    out.push_sql(" FROM ");
    out.push_sql(written);
    Ok(())
}

/// Which part of a statement `fields` writes.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// The INSERT's column list.
    Columns,
    /// The INSERT's values: a value the input lacks gets its default.
    Values,
    /// The UPDATE's SET list: a value the input lacks keeps the stored one.
    Set,
}

/// The columns both statements write from the input, in one order (each
/// after a comma).
fn fields<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    part: Part,
    input: &'b SessionInput,
    sealed: &'b Sealed,
) -> QueryResult<()> {
    field::<Nullable<Text>, _>(out, part, "username", &input.username, Some("NULL"))?;
    field::<Integer, _>(out, part, "api_id", &input.api_id, None)?;
    field::<Bytea, _>(out, part, "api_hash_encrypted", &sealed.api_hash, None)?;
    field::<Nullable<Bytea>, _>(out, part, "phone_encrypted", &sealed.phone, Some("NULL"))?;
    let data = &sealed.session_data;
    field::<Nullable<Bytea>, _>(out, part, "session_data_encrypted", data, Some("NULL"))?;
    field::<Integer, _>(out, part, "data_key_id", &sealed.data_key_id, None)?;
    for (column, flag) in [
        ("is_authorized", &input.is_authorized),
        ("digital_twin_enabled", &input.digital_twin_enabled),
        ("auto_reply_enabled", &input.auto_reply_enabled),
    ] {
        field::<Nullable<Bool>, _>(out, part, column, flag, Some("false"))?;
    }
    let chats = &input.target_chats;
    field::<Nullable<Jsonb>, _>(out, part, "target_chats", chats, Some("'[]'::jsonb"))
}

/// One column: `$v`, or `COALESCE($v, …)` when the input may lack it
/// (`default`: what a create writes then).
fn field<'b, ST, T>(
    out: &mut AstPass<'_, 'b, Pg>,
    part: Part,
    column: &'static str,
    value: &'b T,
    default: Option<&'static str>,
) -> QueryResult<()>
where
    Pg: HasSqlType<ST>,
    T: ToSql<ST, Pg>,
{
    out.push_sql(", ");
    match part {
        Part::Columns => {
            out.push_sql(column);
            return Ok(());
        }
        Part::Set => {
            out.push_sql(column);
            out.push_sql(" = ");
        }
        Part::Values => {}
    }
    let Some(default) = default else {
        return out.push_bind_param::<ST, _>(value);
    };
    out.push_sql("COALESCE(");
    out.push_bind_param::<ST, _>(value)?;
    out.push_sql(", ");
    out.push_sql(if part == Part::Set { column } else { default });
    out.push_sql(")");
    Ok(())
}

/// The update of the row at `at`, with its audit row.
struct FastUpdate<'a> {
    input: &'a SessionInput,
    at: &'a Located,
    sealed: &'a Sealed,
    versions: Option<&'a [i64]>,
    fence: Option<i64>,
    ctx: &'a AuditContext,
    details: &'a Value,
}

impl QueryFragment<Pg> for FastUpdate<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let input = self.input;
        // The live lease of the row, share-locked until the commit (as the
        // locked path's `leases::check_fence` does).
        out.push_sql(
            "WITH live AS MATERIALIZED (SELECT fence FROM session_leases WHERE session_id = ",
        );
        out.push_bind_param::<Text, _>(&self.at.session_id)?;
        out.push_sql(" AND expires_at > now() FOR SHARE), written AS (UPDATE user_sessions SET session_id = COALESCE(");
        out.push_bind_param::<Nullable<Text>, _>(&input.session_id)?;
        out.push_sql(", session_id)");
        fields(&mut out, Part::Set, input, self.sealed)?;
        out.push_sql(", version = version + 1, updated_at = now() WHERE id = ");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.at.id)?;
        // The place the values are sealed for, as read.
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<Text, _>(&input.user_id)?;
        out.push_sql(" AND session_id = ");
        out.push_bind_param::<Text, _>(&self.at.session_id)?;
        out.push_sql(" AND is_active AND (");
        out.push_bind_param::<Nullable<Array<BigInt>>, _>(&self.versions)?;
        out.push_sql("::bigint[] IS NULL OR version = ANY(");
        out.push_bind_param::<Nullable<Array<BigInt>>, _>(&self.versions)?;
        // A stored value kept as it is must already be under the key the
        // row is moved to (every ciphertext of a row is under its one key).
        out.push_sql(")) AND (data_key_id = ");
        out.push_bind_param::<Integer, _>(&self.sealed.data_key_id)?;
        out.push_sql(" OR ((");
        out.push_bind_param::<Nullable<Bytea>, _>(&self.sealed.phone)?;
        out.push_sql("::bytea IS NOT NULL OR phone_encrypted IS NULL) AND (");
        out.push_bind_param::<Nullable<Bytea>, _>(&self.sealed.session_data)?;
        // The fence: none sent and no live lease, or the live lease's.
        out.push_sql("::bytea IS NOT NULL OR session_data_encrypted IS NULL))) AND CASE WHEN ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.fence)?;
        out.push_sql("::bigint IS NULL THEN NOT EXISTS (SELECT 1 FROM live) ELSE EXISTS (SELECT 1 FROM live WHERE fence = ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.fence)?;
        out.push_sql(") END RETURNING *)");
        push_audit(
            &mut out,
            "written",
            ActivityType::SessionUpdated,
            self.ctx,
            self.details,
        )
    }
}

/// The insert of a new row, with its audit row; nothing when the user_id
/// is taken (a concurrent insert won: the locked path updates that row).
struct FastCreate<'a> {
    id: Uuid,
    session_id: &'a str,
    input: &'a SessionInput,
    sealed: &'a Sealed,
    ctx: &'a AuditContext,
    details: &'a Value,
}

impl QueryFragment<Pg> for FastCreate<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let input = self.input;
        out.push_sql("WITH written AS (INSERT INTO user_sessions (id, user_id, session_id");
        fields(&mut out, Part::Columns, input, self.sealed)?;
        out.push_sql(") VALUES (");
        out.push_bind_param::<diesel::sql_types::Uuid, _>(&self.id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&input.user_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&self.session_id)?;
        fields(&mut out, Part::Values, input, self.sealed)?;
        out.push_sql(") ON CONFLICT (user_id) DO NOTHING RETURNING *)");
        push_audit(
            &mut out,
            "written",
            ActivityType::SessionCreated,
            self.ctx,
            self.details,
        )
    }
}

/// Fixed SQL: diesel prepares each statement once per connection.
macro_rules! fixed_statement {
    ($name:ident, $id:ident) => {
        struct $id;
        impl QueryId for $name<'_> {
            type QueryId = $id;
            const HAS_STATIC_QUERY_ID: bool = true;
        }
        impl Query for $name<'_> {
            type SqlType = MetaSql;
        }
    };
}
fixed_statement!(FastUpdate, FastUpdateId);
fixed_statement!(FastCreate, FastCreateId);
