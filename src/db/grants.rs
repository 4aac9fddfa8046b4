//! Least privilege: the grants a role needs to run `serve`, `boot` and
//! `rotate` (and the other operator commands) on a schema another role owns
//! and migrates. No DDL, no TRUNCATE, not the owner: such a role cannot drop
//! or alter a table, and cannot rewrite or delete the audit trail
//! (`session_activity` is SELECT and INSERT only).

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::error::DbError;

/// Tables the service reads and changes (every table the migrations create
/// but the two below). A migration that adds a table adds it here: the test
/// `grants_cover_every_table` fails until it does.
pub const READ_WRITE: &[&str] = &[
    "api_tokens",
    "encryption_keys",
    "master_key_kdf",
    "user_sessions",
    "session_leases",
    "lease_holders",
];
/// The audit trail: appended to and read, never changed.
pub const APPEND_ONLY: &[&str] = &["session_activity"];
/// Read to know that no migration is pending (`serve` without `--no-migrate`).
pub const READ_ONLY: &[&str] = &["__diesel_schema_migrations"];

/// A role name as given: letters, digits, `_`, `$`, `-`, at most 63 bytes,
/// not starting with a digit (quoted in the SQL either way).
#[derive(Debug, Clone)]
pub struct RoleName(String);

impl RoleName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a role name this command takes: letters, digits, _ $ -, \
                 at most 63 characters, not starting with a digit"
            ))
        }
    }

    fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

/// Per-role defaults so the request path is bounded even where a pooler
/// drops the connection's startup `options` (docs/DEPLOYMENT.md).
pub struct RoleTimeouts {
    pub statement_timeout_ms: u128,
    pub lock_timeout_ms: u128,
}

/// The statements that give `role` what it needs in database `dbname`.
pub fn grant_sql(role: &RoleName, dbname: &str, timeouts: &RoleTimeouts) -> Vec<String> {
    let r = role.quoted();
    let db = format!("\"{}\"", dbname.replace('"', "\"\""));
    let list = |tables: &[&str]| tables.join(", ");
    vec![
        format!("GRANT CONNECT ON DATABASE {db} TO {r}"),
        format!("GRANT USAGE ON SCHEMA public TO {r}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {r}",
            list(READ_WRITE)
        ),
        format!("GRANT SELECT, INSERT ON {} TO {r}", list(APPEND_ONLY)),
        format!("GRANT SELECT ON {} TO {r}", list(READ_ONLY)),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {r}"),
        format!(
            "ALTER ROLE {r} IN DATABASE {db} SET statement_timeout = {}",
            timeouts.statement_timeout_ms
        ),
        format!(
            "ALTER ROLE {r} IN DATABASE {db} SET lock_timeout = {}",
            timeouts.lock_timeout_ms
        ),
    ]
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Applies [`grant_sql`] in one transaction.
pub async fn apply(conn: &mut AsyncPgConnection, statements: &[String]) -> Result<(), DbError> {
    let script = statements.join(";\n");
    conn.transaction::<_, DbError, _>(async |conn| Ok(conn.batch_execute(&script).await?))
        .await
}

/// Tables in `public` that no grant list names (a migration added a table
/// and nobody said what the service's role may do with it).
pub async fn unlisted_tables(conn: &mut AsyncPgConnection) -> Result<Vec<String>, DbError> {
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' ORDER BY 1",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.name)
        .filter(|t| {
            ![READ_WRITE, APPEND_ONLY, READ_ONLY]
                .iter()
                .any(|list| list.contains(&t.as_str()))
        })
        .collect())
}
