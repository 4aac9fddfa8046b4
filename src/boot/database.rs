//! The database source: needs `DATABASE_URL` and the master key.

use diesel_async::AsyncPgConnection;

use crate::db::activity::AuditContext;
use crate::db::sessions::{self, BootSelection};
use crate::db::{DbError, Vault};

use super::{BootError, TenantConfig};

/// Sessions decrypted per round trip in `--all` mode.
/// Sessions per page (one read, one audit transaction each): the largest the
/// store allows, so ten thousand tenants cost ten round trips of each.
const PAGE: i64 = sessions::MAX_PAGE;

pub async fn load_user(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    user_id: &str,
) -> Result<TenantConfig, BootError> {
    // Metadata first: an inactive session is told apart from an unknown one
    // without decrypting anything.
    match sessions::get_meta(conn, user_id).await {
        Ok(meta) if !meta.is_active => return Err(BootError::Inactive(user_id.to_owned())),
        Ok(_) => {}
        Err(DbError::NotFound) => return Err(BootError::UnknownUser(user_id.to_owned())),
        Err(e) => return Err(e.into()),
    }
    let mut page = sessions::load_for_boot(conn, vault, ctx, BootSelection::User(user_id))
        .await
        .map_err(|e| match e {
            // Deactivated or purged between the two reads.
            DbError::NotFound => BootError::Inactive(user_id.to_owned()),
            other => other.into(),
        })?;
    Ok(page.sessions.remove(0).into())
}

/// Every active session, handed to `sink` one at a time; returns how many.
pub async fn load_all(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    sink: &mut dyn FnMut(TenantConfig) -> Result<(), BootError>,
) -> Result<usize, BootError> {
    let mut after: Option<String> = None;
    let mut count = 0;
    loop {
        let page = sessions::load_for_boot(
            conn,
            vault,
            ctx,
            BootSelection::Page {
                after: after.as_deref(),
                limit: PAGE,
            },
        )
        .await?;
        for session in page.sessions {
            sink(session.into())?;
            count += 1;
        }
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return Ok(count),
        }
    }
}
