//! The SQL text shared by the single take (`TAKE_SQL`) and the batched one
//! (`batch::TAKE_BATCH_SQL`), as macros so that `concat!` makes one
//! constant of each statement. Both read the sessions to take from a CTE
//! `s` (`session_id`, `user_id`) and bind $2 holder, $3 ttl_seconds, $4
//! actor, $5 request id, $6 and $7 the audit kinds (taken, taken over).

/// The `SET` of a take: a live lease of the same holder keeps its fence
/// (a renewal); anything else gets the fresh fence of `EXCLUDED`, and never
/// less than one more than the row's. A fresh fence is at least the database
/// clock in microseconds: a restore from backup winds the sequence back,
/// not the clock, so fences handed out since the backup (which holders from
/// before the restore may still send) are not handed out again. Every
/// expression reads the row as it was before the update.
///
/// `$source` is the `FROM` of the rows to insert (from `s`). The `WHERE`
/// leaves a live lease of another holder alone (locked, not updated: the
/// row is missing from `up`).
macro_rules! take_upsert {
    ($source:literal) => {
        concat!(
            "INSERT INTO session_leases AS l (session_id, holder, fence, acquired_at, expires_at)
    SELECT session_id, $2,
           greatest(nextval('session_lease_fence'),
                    (extract(epoch FROM clock_timestamp()) * 1000000)::bigint),
           now(), now() + $3 * interval '1 second'
    ",
            $source,
            "
    ON CONFLICT (session_id) DO UPDATE SET
        fence = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                     THEN l.fence ELSE greatest(EXCLUDED.fence, l.fence + 1) END,
        acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                           THEN l.acquired_at ELSE now() END,
        prior_holder = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                            THEN l.prior_holder ELSE l.holder END,
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at
    WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
    RETURNING l.session_id, l.holder, l.fence, l.expires_at, l.prior_holder,
              l.acquired_at = now() AS changed"
        )
    };
}

/// One audit row per lease in `up` that changed hands (renewals are not
/// audited), with the `user_id` from `s`.
macro_rules! take_audit {
    () => {
        "INSERT INTO session_activity (session_id, user_id, activity_type, actor, request_id, details)
    SELECT up.session_id, s.user_id,
           CASE WHEN up.prior_holder IS NULL THEN $6 ELSE $7 END,
           $4, $5,
           jsonb_strip_nulls(jsonb_build_object('holder', up.holder, 'fence', up.fence,
               'ttl_seconds', $3, 'prior_holder', up.prior_holder))
    FROM up JOIN s ON s.session_id = up.session_id WHERE up.changed"
    };
}
