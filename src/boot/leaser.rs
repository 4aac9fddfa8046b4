//! Where a supervising loader takes, renews and releases its leases: the
//! database itself (with the master key), or the REST API (with a token).

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::db::activity::AuditContext;
use crate::db::leases::{self, Take};
use crate::db::sessions::{self, BootSelection};
use crate::db::{DbError, Pool, Vault};

use super::api::ApiSource;
use super::share::Slot;
use super::{BootError, TenantConfig};

pub struct Granted {
    pub fence: i64,
}

pub enum TakeOutcome {
    Granted(Granted),
    Held {
        holder: String,
        expires_at: DateTime<Utc>,
    },
    /// Deactivated or purged since it was listed.
    Gone,
}

pub enum Leaser {
    Db { pool: Pool, vault: Arc<Vault> },
    Api(Arc<ApiSource>),
}

/// Runs a blocking API call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    api: &Arc<ApiSource>,
    f: impl FnOnce(&ApiSource) -> Result<T, BootError> + Send + 'static,
) -> Result<T, BootError> {
    let api = Arc::clone(api);
    tokio::task::spawn_blocking(move || f(&api))
        .await
        .map_err(|e| BootError::Failure(format!("an API call panicked: {e}")))?
}

impl Leaser {
    async fn conn(pool: &Pool) -> Result<crate::db::PooledConnection, BootError> {
        Ok(pool.get().await.map_err(DbError::from)?)
    }

    pub async fn take(
        &self,
        session_id: &str,
        holder: &str,
        ttl: i32,
    ) -> Result<TakeOutcome, BootError> {
        match self {
            Leaser::Db { pool, .. } => {
                let mut conn = Self::conn(pool).await?;
                let ctx = AuditContext::cli();
                Ok(
                    match leases::take(&mut conn, &ctx, session_id, holder, ttl).await {
                        Ok(Take::Granted { lease, .. }) => {
                            TakeOutcome::Granted(Granted { fence: lease.fence })
                        }
                        Ok(Take::Held(l)) => TakeOutcome::Held {
                            holder: l.holder,
                            expires_at: l.expires_at,
                        },
                        Ok(Take::Inactive) | Err(DbError::NotFound) => TakeOutcome::Gone,
                        Err(e) => return Err(e.into()),
                    },
                )
            }
            Leaser::Api(api) => {
                let (s, h) = (session_id.to_owned(), holder.to_owned());
                blocking(api, move |a| a.take_lease(&s, &h, ttl)).await
            }
        }
    }

    /// The sessions whose leases were renewed.
    pub async fn renew(
        &self,
        holder: &str,
        ttl: i32,
        fences: Vec<(String, i64)>,
    ) -> Result<HashSet<String>, BootError> {
        let mut renewed = HashSet::new();
        for chunk in fences.chunks(leases::MAX_BATCH) {
            match self {
                Leaser::Db { pool, .. } => {
                    let mut conn = Self::conn(pool).await?;
                    let r = leases::renew_batch(&mut conn, holder, ttl, chunk).await?;
                    renewed.extend(r.into_iter().map(|l| l.session_id));
                }
                Leaser::Api(api) => {
                    let (h, c) = (holder.to_owned(), chunk.to_vec());
                    renewed.extend(blocking(api, move |a| a.renew_leases(&h, ttl, &c)).await?);
                }
            }
        }
        Ok(renewed)
    }

    /// Takes the named sessions, `leases::MAX_BATCH` a statement (or a
    /// request): the granted ones with their fences. The others are held by
    /// another loader, deactivated or gone.
    pub async fn take_batch(
        &self,
        holder: &str,
        ttl: i32,
        session_ids: Vec<String>,
    ) -> Result<Vec<(String, i64)>, BootError> {
        let mut granted = Vec::with_capacity(session_ids.len());
        for chunk in session_ids.chunks(leases::MAX_BATCH) {
            match self {
                Leaser::Db { pool, .. } => {
                    let mut conn = Self::conn(pool).await?;
                    let ctx = AuditContext::cli();
                    let taken = leases::take_batch(&mut conn, &ctx, holder, ttl, chunk).await?;
                    granted.extend(taken.into_iter().map(|l| (l.session_id, l.fence)));
                }
                Leaser::Api(api) => {
                    let (h, c) = (holder.to_owned(), chunk.to_vec());
                    granted.extend(blocking(api, move |a| a.take_leases(&h, ttl, &c)).await?);
                }
            }
        }
        Ok(granted)
    }

    /// Releases the given leases, `leases::MAX_BATCH` a statement (or a
    /// request); the ones no longer ours at that fence are left alone.
    pub async fn release_batch(
        &self,
        holder: &str,
        fences: Vec<(String, i64)>,
    ) -> Result<(), BootError> {
        for chunk in fences.chunks(leases::MAX_BATCH) {
            match self {
                Leaser::Db { pool, .. } => {
                    let mut conn = Self::conn(pool).await?;
                    let ctx = AuditContext::cli();
                    leases::release_batch(&mut conn, &ctx, holder, chunk).await?;
                }
                Leaser::Api(api) => {
                    let (h, c) = (holder.to_owned(), chunk.to_vec());
                    blocking(api, move |a| a.release_leases(&h, &c)).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn heartbeat(&self, holder: &str, ttl: i32) -> Result<Vec<String>, BootError> {
        match self {
            Leaser::Db { pool, .. } => {
                let mut conn = Self::conn(pool).await?;
                Ok(leases::heartbeat(&mut conn, holder, ttl).await?)
            }
            Leaser::Api(api) => {
                let h = holder.to_owned();
                blocking(api, move |a| a.heartbeat(&h, ttl)).await
            }
        }
    }

    pub async fn leave(&self, holder: &str) -> Result<(), BootError> {
        match self {
            Leaser::Db { pool, .. } => {
                let mut conn = Self::conn(pool).await?;
                Ok(leases::leave(&mut conn, holder).await?)
            }
            Leaser::Api(api) => {
                let h = holder.to_owned();
                blocking(api, move |a| a.leave(&h)).await
            }
        }
    }

    pub async fn slots(&self) -> Result<Vec<Slot>, BootError> {
        match self {
            Leaser::Db { pool, .. } => {
                let mut conn = Self::conn(pool).await?;
                Ok(leases::slots(&mut conn)
                    .await?
                    .into_iter()
                    .map(|s| Slot {
                        session_id: s.session_id,
                        user_id: s.user_id,
                        holder: s.holder,
                    })
                    .collect())
            }
            Leaser::Api(api) => blocking(api, |a| a.slots()).await,
        }
    }

    /// The session of one user, told apart as unknown or deactivated.
    pub async fn find_user(&self, user_id: &str) -> Result<Slot, BootError> {
        match self {
            Leaser::Db { pool, .. } => {
                let mut conn = Self::conn(pool).await?;
                match sessions::get_meta(&mut conn, user_id).await {
                    Ok(m) if !m.is_active => Err(BootError::Inactive(user_id.to_owned())),
                    Ok(m) => Ok(Slot {
                        session_id: m.session_id,
                        user_id: m.user_id,
                        holder: None,
                    }),
                    Err(DbError::NotFound) => Err(BootError::UnknownUser(user_id.to_owned())),
                    Err(e) => Err(e.into()),
                }
            }
            Leaser::Api(api) => {
                let u = user_id.to_owned();
                blocking(api, move |a| {
                    let t = a.load_user(&u)?;
                    Ok(Slot {
                        session_id: t.session_id,
                        user_id: t.user_id,
                        holder: None,
                    })
                })
                .await
            }
        }
    }

    /// The credentials of the leased sessions (each load audited as before).
    pub async fn load(&self, slots: Vec<Slot>) -> Result<Vec<TenantConfig>, BootError> {
        match self {
            Leaser::Db { pool, vault } => {
                let mut conn = Self::conn(pool).await?;
                let ids: Vec<String> = slots.into_iter().map(|s| s.session_id).collect();
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(sessions::MAX_PAGE as usize) {
                    let page = sessions::load_for_boot(
                        &mut conn,
                        vault,
                        &AuditContext::cli(),
                        BootSelection::Sessions(chunk),
                    )
                    .await?;
                    out.extend(page.sessions.into_iter().map(TenantConfig::from));
                }
                Ok(out)
            }
            Leaser::Api(api) => blocking(api, move |a| a.load_slots(&slots)).await,
        }
    }
}
