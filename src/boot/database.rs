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

fn page(after: Option<&str>) -> BootSelection<'_> {
    BootSelection::Page { after, limit: PAGE }
}

/// Every active session, handed to `sink` one at a time; returns how many.
///
/// Pipelined over two connections: while page k's loads are recorded
/// (audit rows and stamps, one commit) on `recorder`, page k+1 is read and
/// decrypted on `conn`. Page k reaches `sink` only once its record has
/// committed, so nothing leaves unaudited.
pub async fn load_all(
    conn: &mut AsyncPgConnection,
    recorder: &mut AsyncPgConnection,
    vault: &Vault,
    ctx: &AuditContext,
    sink: &mut dyn FnMut(TenantConfig) -> Result<(), BootError>,
) -> Result<usize, BootError> {
    let mut current = sessions::fetch_for_boot(conn, vault, page(None)).await?;
    let mut count = 0;
    loop {
        let after = current.next_cursor.take();
        let next = async {
            match after.as_deref() {
                Some(a) => sessions::fetch_for_boot(conn, vault, page(Some(a)))
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (recorded, next) = tokio::join!(
            sessions::record_loads(recorder, ctx, &current.sessions),
            next
        );
        recorded?;
        for session in current.sessions.drain(..) {
            sink(session.into())?;
            count += 1;
        }
        match next? {
            Some(p) => current = p,
            None => return Ok(count),
        }
    }
}
