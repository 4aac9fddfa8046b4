//! Values parsed once, at the edge (a URL path, a JSON body, argv), into
//! types that cannot hold a wrong value: the rest of the code takes a
//! `UserId` and never checks it again. The rules themselves are in
//! `db::validate`, shared with every other way in.

mod blob;
mod ids;

pub use blob::{NotBase64, SESSION_DATA_BASE64, decode_session_data};
pub use ids::{SessionId, UserId};
