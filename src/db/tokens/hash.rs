//! `api_tokens.token_hash` as a type: the SHA-256 of a token's secret, what
//! a token is stored, looked up and cached by.

use std::fmt;
use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Binary;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The digest of a token's secret. Its `Debug` prints no byte of it: it is
/// not the secret, but it is what finds the token, so it stays out of logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, AsExpression, FromSqlRow)]
#[diesel(sql_type = Binary)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Equality in constant time, for the check after the lookup by index.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

impl ToSql<Binary, Pg> for TokenHash {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&self.0)?;
        Ok(IsNull::No)
    }
}

impl FromSql<Binary, Pg> for TokenHash {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <[u8; 32]>::try_from(bytes.as_bytes())
            .map(TokenHash)
            .map_err(|_| "api_tokens.token_hash is not a SHA-256 (32 bytes)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::TokenHash;

    #[test]
    fn debug_shows_no_byte_of_the_hash() {
        let (a, b) = (TokenHash::of("vbs_one"), TokenHash::of("vbs_two"));
        assert_ne!(a, b);
        assert!(a.ct_eq(&TokenHash::of("vbs_one")) && !a.ct_eq(&b));
        assert_eq!(format!("{a:?}"), "TokenHash(<redacted>)");
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}
