//! `UserId` (the tenant) and `SessionId` (the key of a session's
//! sub-resources): which one a value is, is said by its type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::validate::{self, Invalid};

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The field name errors and logs use.
            pub const FIELD: &'static str = $field;

            /// Checks the rules of `validate::identifier`; the error names
            /// the field and the rule, never the value.
            pub fn parse(value: impl Into<String>) -> Result<Self, Invalid> {
                let value = value.into();
                validate::identifier($field, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Invalid;
            fn try_from(value: String) -> Result<Self, Invalid> {
                Self::parse(value)
            }
        }

        /// What clap's value parser uses: `#[arg(value_parser = ...)]` is
        /// implied for a `FromStr` type.
        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(value: &str) -> Result<Self, Invalid> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// The tenant a session belongs to: 1-128 letters, digits and `_ - . : @`,
    /// not starting with `.`.
    UserId,
    "user_id"
);

identifier!(
    /// The key of a session's sub-resources (`/data`, `/lease`), unique like
    /// `UserId` and held to the same alphabet.
    SessionId,
    "session_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_once_by_every_way_in() {
        assert_eq!(UserId::parse("tenant-1").unwrap().as_str(), "tenant-1");
        let err = UserId::parse(".hidden").unwrap_err();
        assert_eq!(err.field, "user_id");
        assert!(!err.to_string().contains("hidden"));
        let err = "a/b".parse::<SessionId>().unwrap_err();
        assert_eq!(err.field, "session_id");
        let from_json: Result<UserId, _> = serde_json::from_str("\"a b\"");
        assert!(from_json.is_err());
        let ok: SessionId = serde_json::from_str("\"s-1\"").unwrap();
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"s-1\"");
    }
}
