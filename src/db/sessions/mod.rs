//! The session store. Every secret column is sealed under the primary data
//! key, bound to its table, column and row id; every change writes its audit
//! row in the same transaction.
//!
//! `model` (the types), `seal` (secret columns in and out), `write` (with
//! `upsert_fast`, the upsert's one-statement path), `read`,
//! `reseal` (the rotation's step), `lifecycle` (what a session's state
//! allows: active, at a version; reactivation) and `boot_load` (the boot
//! loader's paged, audited read).

mod boot_load;
mod fence;
mod lifecycle;
mod model;
mod read;
mod reseal;
mod seal;
mod upsert_fast;
mod write;

use super::error::DbError;
use super::keys::Vault;
use model::SealedRow;
use seal::{credentials, open_row, ring_for};

pub use boot_load::{BootPage, BootSelection, fetch_for_boot, load_for_boot, record_loads};
pub use lifecycle::{deactivate, delete_session_data, purge, reactivate};
pub use model::{
    By, Condition, Credentials, DEFAULT_PAGE, Expected, ListQuery, MAX_PAGE, Page, Session,
    SessionInput, SessionMeta, SessionPatch, Upserted,
};
pub(in crate::db) use read::{credentials_read_event, read_credentials, read_session_data};
pub use read::{get_credentials, get_meta, get_session_data, list, meta};
pub use reseal::{reseal_batch, rows_not_on};
pub use seal::TABLE;
pub use write::{put_session_data, update_metadata, upsert, upsert_if};
