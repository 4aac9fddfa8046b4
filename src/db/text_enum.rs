//! Text columns that hold one of a fixed set of words (`encryption_keys.state`,
//! `session_activity.activity_type`, each of `api_tokens.scopes`) as Rust
//! enums: written and read through diesel's `ToSql`/`FromSql`, so no query
//! compares a column with a string literal and the spelling of each word is
//! written once, here in its enum's declaration.

/// Declares a `Copy` enum stored as `Text`: `as_str`, `ALL`, `Display`,
/// `FromStr` (an unknown word is an error, "unknown <noun> …; <noun>s are …"), a
/// `Serialize` that writes the same word, and diesel `ToSql`/`FromSql` for
/// `Text` (so `Vec<_>` also maps to `Array<Text>`). A word the enum does not
/// know, read from the column, is a deserialization error naming the column.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident in $column:literal as $noun:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let known: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!(
                            concat!("unknown ", $noun, " {:?}; ", $noun, "s are {}"),
                            s,
                            known.join(", ")
                        )
                    })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                std::io::Write::write_all(out, self.as_str().as_bytes())?;
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str().as_bytes() == bytes.as_bytes())
                    .ok_or_else(|| concat!("unknown word in ", $column).into())
            }
        }
    };
}

pub(crate) use text_enum;
