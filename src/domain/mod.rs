//! Values parsed once, at the edge (a URL path, a JSON body, argv), into
//! types that cannot hold a wrong value: the rest of the code takes a
//! `UserId` and never checks it again. The field rules themselves are in
//! `validate`, shared with every other way in (the API, the CLI, import, and
//! `db`, which checks a `SessionInput` before it seals anything). `domain`
//! uses nothing else of ours: `db`, `api`, `cli` and `boot` point at it.

mod blob;
mod ids;
pub mod validate;

pub use blob::{NotBase64, SESSION_DATA_BASE64, decode_session_data};
pub use ids::{SessionId, UserId};
