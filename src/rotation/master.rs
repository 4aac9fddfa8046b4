//! Master key rotation: every data key re-wrapped under a new master key in
//! one transaction. Rows of `user_sessions` are not touched: their data keys
//! do not change, only the key that wraps them.

use diesel_async::AsyncPgConnection;
use secrecy::SecretString;

use crate::crypto::{KdfParams, MasterKey, MasterKeys};
use crate::db::DbError;
use crate::db::activity::AuditContext;
use crate::db::keys::{self, KeyAdminError, RewrapReport};

/// The master key to move to.
pub enum NewMaster {
    Key(MasterKey),
    /// Derived with Argon2id under fresh parameters and salt, stored in the
    /// same transaction as the re-wrapped keys.
    Passphrase(SecretString),
}

/// Re-wraps every data key (retired ones too) under `new`. `master` must hold
/// the master key that wraps them now (current or previous).
pub async fn rotate_master(
    conn: &mut AsyncPgConnection,
    master: &MasterKeys,
    new: NewMaster,
    ctx: &AuditContext,
) -> Result<RewrapReport, KeyAdminError> {
    let (key, kdf) = match new {
        NewMaster::Key(key) => (key, None),
        NewMaster::Passphrase(passphrase) => {
            let params = KdfParams::generate();
            let for_task = params.clone();
            // Argon2 takes a while on purpose: off the async threads, and
            // before the transaction opens so no lock is held meanwhile.
            let key = tokio::task::spawn_blocking(move || for_task.derive(&passphrase))
                .await
                .map_err(|e| DbError::Internal(format!("key derivation task failed: {e}")))??;
            (key, Some(params))
        }
    };
    keys::rewrap_all(conn, master, &key, kdf.as_ref(), ctx).await
}
