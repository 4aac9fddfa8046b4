//! `encryption_keys.state` as a type: a Text column read and written as
//! `KeyState`, so no code compares it with string literals.

use crate::db::text_enum::text_enum;

text_enum! {
    /// The life of a data key: `primary` encrypts new data (exactly one),
    /// `active` only decrypts, `retired` is referenced by no row.
    pub enum KeyState in "encryption_keys.state" as "key state" {
        Primary = "primary",
        Active = "active",
        Retired = "retired",
    }
}
