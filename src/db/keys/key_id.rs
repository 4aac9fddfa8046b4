//! `encryption_keys.id` and `user_sessions.data_key_id` as `DataKeyId`: the
//! columns are `integer` (`CHECK (id > 0)`), the ciphertext header holds the
//! same id as 4 bytes, so the type is `crypto`'s. `crypto` knows no SQL, so
//! its diesel mapping lives here.

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Integer;
use std::io::Write;

use crate::crypto::DataKeyId;

/// Diesel's own way of deriving for a type declared in another module
/// (`foreign_derive`): the derives apply to the field's type, `DataKeyId`,
/// making it usable in `.eq(…)`, `.find(…)` and as a selected column.
#[derive(AsExpression, FromSqlRow)]
#[diesel(foreign_derive, sql_type = Integer)]
#[allow(dead_code)]
struct DataKeyIdColumn(DataKeyId);

impl ToSql<Integer, Pg> for DataKeyId {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        // Ids come from the column; one past i32::MAX never names a key.
        let id =
            i32::try_from(self.0).map_err(|_| format!("data key id {} is past i32", self.0))?;
        out.write_all(&id.to_be_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<Integer, Pg> for DataKeyId {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let id = <i32 as FromSql<Integer, Pg>>::from_sql(bytes)?;
        u32::try_from(id)
            .map(DataKeyId)
            .map_err(|_| format!("data key id {id} is negative").into())
    }
}
