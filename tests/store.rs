//! The session store against a real PostgreSQL: every operation, concurrency,
//! and what happens to values moved or tampered with in the database.

mod common;

use common::{TestDb, TestKey, TestStore, open_vault};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde_json::json;
use vibee_sessions::db::activity::{self, ActivityType, AuditContext};
use vibee_sessions::db::sessions::{self, ListQuery, SessionInput, SessionPatch, Upserted};
use vibee_sessions::db::{DbError, Vault};

const HASH_A: &str = "0123456789abcdef0123456789abcdef";
const HASH_B: &str = "fedcba9876543210fedcba9876543210";

fn input(user_id: &str) -> SessionInput {
    SessionInput {
        user_id: user_id.to_owned(),
        api_id: 123456,
        api_hash: SecretString::from(HASH_A),
        phone: Some(SecretString::from("+15551234567")),
        username: Some("alice".into()),
        session_data: Some(SecretSlice::from(b"mtproto-session-blob".to_vec())),
        ..Default::default()
    }
}

fn ctx() -> AuditContext {
    AuditContext {
        actor: "test-token".into(),
        request_id: Some("req-1".into()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upsert_creates_then_updates_and_keeps_omitted_fields() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;

    let created = sessions::upsert(&mut conn, &vault, &ctx(), &input("u1"))
        .await
        .unwrap();
    let Upserted::Created(meta) = created else {
        panic!("expected a create")
    };
    assert_eq!(meta.user_id, "u1");
    assert_eq!(
        meta.session_id.len(),
        32,
        "a generated session_id is 128 random bits in hex"
    );
    assert!(meta.is_active && meta.has_phone && meta.has_session_data);
    assert_eq!(meta.version, 1);
    assert_eq!(meta.data_key_id, vault.ring().primary_id());

    let update = SessionInput {
        api_hash: SecretString::from(HASH_B),
        phone: None,
        session_data: None,
        username: None,
        is_authorized: Some(true),
        target_chats: Some(json!([-100123, "@news"])),
        ..input("u1")
    };
    let updated = sessions::upsert(&mut conn, &vault, &ctx(), &update)
        .await
        .unwrap();
    let Upserted::Updated(meta2) = updated else {
        panic!("expected an update")
    };
    assert_eq!(meta2.id, meta.id);
    assert_eq!(
        meta2.session_id, meta.session_id,
        "session_id kept when omitted"
    );
    assert_eq!(meta2.version, 2);
    assert!(meta2.is_authorized);
    assert_eq!(
        meta2.username.as_deref(),
        Some("alice"),
        "username kept when omitted"
    );
    assert_eq!(meta2.target_chats, json!([-100123, "@news"]));

    let got = sessions::get_credentials(&mut conn, &vault, &ctx(), "u1")
        .await
        .unwrap();
    assert_eq!(got.credentials.api_hash.expose_secret(), HASH_B);
    assert_eq!(
        got.credentials.phone.unwrap().expose_secret(),
        "+15551234567"
    );
    assert_eq!(
        got.credentials.session_data.unwrap().expose_secret(),
        b"mtproto-session-blob"
    );

    let trail = activity::list_trail(&mut conn, activity::TrailOf::User("u1"), None, 10)
        .await
        .unwrap();
    let kinds: Vec<_> = trail.iter().map(|a| a.activity_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["credentials_read", "session_updated", "session_created"]
    );
    assert!(
        trail
            .iter()
            .all(|a| a.actor == "test-token" && a.request_id.as_deref() == Some("req-1"))
    );
    let next = activity::list_trail(
        &mut conn,
        activity::TrailOf::User("u1"),
        Some(trail[1].id),
        10,
    )
    .await
    .unwrap();
    assert_eq!(next.len(), 1, "paging below an id continues the trail");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_id_owned_by_another_user_is_a_conflict() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let a = SessionInput {
        session_id: Some("sess-a".into()),
        ..input("a")
    };
    sessions::upsert(&mut conn, &vault, &ctx(), &a)
        .await
        .unwrap();
    let b = SessionInput {
        session_id: Some("sess-a".into()),
        ..input("b")
    };
    let err = sessions::upsert(&mut conn, &vault, &ctx(), &b)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DbError::SessionIdTaken), "{err}");
    // The same user re-using its own session_id is fine.
    sessions::upsert(&mut conn, &vault, &ctx(), &a)
        .await
        .unwrap();
    // The failed create left nothing behind.
    assert!(matches!(
        sessions::get_meta(&mut conn, "b").await,
        Err(DbError::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_names_the_field_and_writes_nothing() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let cases: Vec<(SessionInput, &str)> = vec![
        (
            SessionInput {
                api_hash: SecretString::from("short"),
                ..input("x")
            },
            "api_hash",
        ),
        (
            SessionInput {
                api_id: 0,
                ..input("x")
            },
            "api_id",
        ),
        (
            SessionInput {
                phone: Some(SecretString::from("555")),
                ..input("x")
            },
            "phone",
        ),
        (input("../etc/passwd"), "user_id"),
        (
            SessionInput {
                session_id: Some("a b".into()),
                ..input("x")
            },
            "session_id",
        ),
        (
            SessionInput {
                target_chats: Some(json!("nope")),
                ..input("x")
            },
            "target_chats",
        ),
        (
            SessionInput {
                session_data: Some(SecretSlice::from(Vec::new())),
                ..input("x")
            },
            "session_data",
        ),
    ];
    for (bad, field) in cases {
        match sessions::upsert(&mut conn, &vault, &ctx(), &bad).await {
            Err(DbError::Invalid(i)) => assert_eq!(i.field, field),
            other => panic!("{field}: expected Invalid, got {:?}", other.err()),
        }
    }
    let page = sessions::list(
        &mut conn,
        &ListQuery {
            limit: 10,
            include_inactive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(page.sessions.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_upserts_of_one_user_give_one_row_and_no_error() {
    let db = TestDb::new().await;
    let vault = std::sync::Arc::new(open_vault(&db, &TestKey::generate()).await);
    let pool = db.pool();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (pool, vault) = (pool.clone(), vault.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            let mut s = input("same-user");
            s.api_id = 1000 + i;
            sessions::upsert(&mut conn, &vault, &ctx(), &s)
                .await
                .map(|u| matches!(u, Upserted::Created(_)))
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap().expect("no upsert fails") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one upsert creates");
    let mut conn = db.conn().await;
    let page = sessions::list(
        &mut conn,
        &ListQuery {
            limit: 100,
            include_inactive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.sessions.len(), 1);
    assert_eq!(
        page.sessions[0].version, 16,
        "every write landed, one after another"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_pages_filters_and_deactivation() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    for i in 0..25 {
        let s = SessionInput {
            is_authorized: Some(i % 2 == 0),
            ..input(&format!("user-{i:02}"))
        };
        sessions::upsert(&mut conn, &vault, &ctx(), &s)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = sessions::list(
            &mut conn,
            &ListQuery {
                limit: 10,
                after: cursor.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        pages += 1;
        seen.extend(page.sessions.iter().map(|s| s.user_id.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<_> = (0..25).map(|i| format!("user-{i:02}")).collect();
    assert_eq!(seen, expected, "every session once, in order");

    let authorized = sessions::list(
        &mut conn,
        &ListQuery {
            limit: 100,
            is_authorized: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(authorized.sessions.len(), 13);

    let victim = sessions::get_meta(&mut conn, "user-03").await.unwrap();
    assert!(
        sessions::deactivate(&mut conn, &ctx(), &victim.session_id, None)
            .await
            .unwrap()
    );
    assert!(
        !sessions::deactivate(&mut conn, &ctx(), &victim.session_id, None)
            .await
            .unwrap(),
        "idempotent"
    );
    assert!(matches!(
        sessions::deactivate(&mut conn, &ctx(), "no-such-session", None).await,
        Err(DbError::NotFound)
    ));
    let active = sessions::list(
        &mut conn,
        &ListQuery {
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(active.sessions.len(), 24);
    assert!(active.sessions.iter().all(|s| s.user_id != "user-03"));
    let all = sessions::list(
        &mut conn,
        &ListQuery {
            limit: 100,
            include_inactive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.sessions.len(), 25);
    // A deactivated session takes no write and serves no credentials until
    // it is reactivated, explicitly and audited.
    assert!(matches!(
        sessions::upsert(&mut conn, &vault, &ctx(), &input("user-03")).await,
        Err(DbError::Inactive)
    ));
    assert!(matches!(
        sessions::get_credentials(&mut conn, &vault, &ctx(), "user-03").await,
        Err(DbError::Inactive)
    ));
    let (_, changed) = sessions::reactivate(&mut conn, &ctx(), &victim.session_id)
        .await
        .unwrap();
    assert!(changed);
    let (_, again) = sessions::reactivate(&mut conn, &ctx(), &victim.session_id)
        .await
        .unwrap();
    assert!(!again, "reactivation is idempotent");
    sessions::upsert(&mut conn, &vault, &ctx(), &input("user-03"))
        .await
        .unwrap();
    assert!(
        sessions::get_meta(&mut conn, "user-03")
            .await
            .unwrap()
            .is_active
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_deletes_the_row_but_not_its_audit_trail() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let meta = sessions::upsert(&mut conn, &vault, &ctx(), &input("gone"))
        .await
        .unwrap()
        .meta()
        .clone();
    sessions::purge(&mut conn, &ctx(), &meta.session_id, None)
        .await
        .unwrap();
    assert!(matches!(
        sessions::get_meta(&mut conn, "gone").await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        sessions::purge(&mut conn, &ctx(), &meta.session_id, None).await,
        Err(DbError::NotFound)
    ));
    let trail = activity::list_trail(&mut conn, activity::TrailOf::User("gone"), None, 10)
        .await
        .unwrap();
    assert_eq!(trail[0].activity_type, ActivityType::SessionPurged);
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_update_changes_only_plain_fields() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    sessions::upsert(&mut conn, &vault, &ctx(), &input("p"))
        .await
        .unwrap();
    let seen = chrono::Utc::now();
    let patch = SessionPatch {
        username: Some(None),
        auto_reply_enabled: Some(true),
        last_seen_at: Some(Some(seen)),
        ..Default::default()
    };
    let meta =
        sessions::update_metadata(&mut conn, &ctx(), sessions::By::UserId("p"), &patch, None)
            .await
            .unwrap();
    assert_eq!(meta.username, None);
    assert!(meta.auto_reply_enabled && !meta.digital_twin_enabled);
    assert_eq!(meta.version, 2);
    assert!((meta.last_seen_at.unwrap() - seen).num_milliseconds().abs() < 1);
    let empty = sessions::update_metadata(
        &mut conn,
        &ctx(),
        sessions::By::UserId("p"),
        &SessionPatch::default(),
        None,
    )
    .await;
    assert!(matches!(empty, Err(DbError::Invalid(_))));
    let missing = sessions::update_metadata(
        &mut conn,
        &ctx(),
        sessions::By::UserId("nobody"),
        &patch,
        None,
    )
    .await;
    assert!(matches!(missing, Err(DbError::NotFound)));
    let got = sessions::get_credentials(&mut conn, &vault, &ctx(), "p")
        .await
        .unwrap();
    assert_eq!(
        got.credentials.api_hash.expose_secret(),
        HASH_A,
        "secrets untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_blob_by_session_id() {
    let TestStore {
        db: _db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let bare = SessionInput {
        session_data: None,
        phone: None,
        ..input("b")
    };
    let meta = sessions::upsert(&mut conn, &vault, &ctx(), &bare)
        .await
        .unwrap()
        .meta()
        .clone();
    assert!(
        sessions::get_session_data(&mut conn, &vault, &ctx(), &meta.session_id)
            .await
            .unwrap()
            .is_none()
    );
    let blob: Vec<u8> = (0..=255u8).cycle().take(350).collect();
    let after = sessions::put_session_data(
        &mut conn,
        &vault,
        &ctx(),
        &meta.session_id,
        zeroize::Zeroizing::new(blob.clone()),
        None,
        None,
    )
    .await
    .unwrap();
    assert!(after.has_session_data && after.version == 2);
    let back = sessions::get_session_data(&mut conn, &vault, &ctx(), &meta.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back.expose_secret(), blob.as_slice());
    let creds = sessions::get_credentials(&mut conn, &vault, &ctx(), "b")
        .await
        .unwrap();
    assert_eq!(
        creds.credentials.api_hash.expose_secret(),
        HASH_A,
        "other fields survive a blob write"
    );
    assert!(matches!(
        sessions::get_session_data(&mut conn, &vault, &ctx(), "nope").await,
        Err(DbError::NotFound)
    ));
}

async fn exec(db: &TestDb, sql: &str) {
    db.client().await.batch_execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ciphertext_moved_between_rows_or_columns_fails_to_decrypt() {
    let TestStore {
        db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    for u in ["victim", "attacker", "cols"] {
        sessions::upsert(&mut conn, &vault, &ctx(), &input(u))
            .await
            .unwrap();
    }
    // The attacker copies the victim's api_hash ciphertext into their own row.
    exec(&db, "UPDATE user_sessions SET api_hash_encrypted = (SELECT api_hash_encrypted FROM user_sessions WHERE user_id = 'victim') WHERE user_id = 'attacker'").await;
    let err = sessions::get_credentials(&mut conn, &vault, &ctx(), "attacker")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            DbError::Integrity {
                column: "api_hash_encrypted",
                ..
            }
        ),
        "{err}"
    );
    // Within one row, from one column to another.
    exec(
        &db,
        "UPDATE user_sessions SET phone_encrypted = api_hash_encrypted WHERE user_id = 'cols'",
    )
    .await;
    let err = sessions::get_credentials(&mut conn, &vault, &ctx(), "cols")
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            DbError::Integrity {
                column: "phone_encrypted",
                ..
            }
        ),
        "{err}"
    );
    // The victim is unharmed, and no failed read was audited as a read.
    assert!(
        sessions::get_credentials(&mut conn, &vault, &ctx(), "victim")
            .await
            .is_ok()
    );
    let reads = activity::list_trail(&mut conn, activity::TrailOf::User("attacker"), None, 10)
        .await
        .unwrap();
    assert!(
        reads
            .iter()
            .all(|a| a.activity_type != ActivityType::CredentialsRead)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_with_any_byte_fails_to_decrypt() {
    let TestStore {
        db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    sessions::upsert(&mut conn, &vault, &ctx(), &input("t"))
        .await
        .unwrap();
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT phone_encrypted FROM user_sessions WHERE user_id = 't'",
            &[],
        )
        .await
        .unwrap();
    let original: Vec<u8> = row.get(0);
    for i in 0..original.len() {
        let mut bad = original.clone();
        bad[i] ^= 0x80;
        client
            .execute(
                "UPDATE user_sessions SET phone_encrypted = $1 WHERE user_id = 't'",
                &[&bad],
            )
            .await
            .unwrap();
        let res = sessions::get_credentials(&mut conn, &vault, &ctx(), "t").await;
        assert!(
            matches!(res, Err(DbError::Integrity { .. })),
            "byte {i} flipped still decrypted"
        );
    }
    client
        .execute(
            "UPDATE user_sessions SET phone_encrypted = $1 WHERE user_id = 't'",
            &[&original],
        )
        .await
        .unwrap();
    assert!(
        sessions::get_credentials(&mut conn, &vault, &ctx(), "t")
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_is_under_the_primary_and_counted() {
    let TestStore {
        db,
        vault,
        mut conn,
        ..
    } = TestStore::new().await;
    for i in 0..5 {
        sessions::upsert(&mut conn, &vault, &ctx(), &input(&format!("c{i}")))
            .await
            .unwrap();
    }
    let client = db.client().await;
    let primary = vault.ring().primary_id().0 as i32;
    let off: i64 = client
        .query_one(
            "SELECT count(*) FROM user_sessions WHERE data_key_id <> $1",
            &[&primary],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(off, 0);
    let counted: i64 = client
        .query_one(
            "SELECT encryption_count FROM encryption_keys WHERE id = $1",
            &[&primary],
        )
        .await
        .unwrap()
        .get(0);
    assert!(counted >= 15, "15 encryptions made, {counted} counted");
    // The header of every stored value names the row's data key.
    let rows = client
        .query(
            "SELECT api_hash_encrypted, data_key_id FROM user_sessions",
            &[],
        )
        .await
        .unwrap();
    for r in rows {
        let v: Vec<u8> = r.get(0);
        let id: i32 = r.get(1);
        assert_eq!(v[0], 2, "sealed as format v2");
        assert_eq!(i32::from_be_bytes(v[1..5].try_into().unwrap()), id);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_master_key_is_refused_and_creates_nothing() {
    let TestStore {
        db,
        key: right,
        vault,
        mut conn,
    } = TestStore::new().await;
    sessions::upsert(&mut conn, &vault, &ctx(), &input("w"))
        .await
        .unwrap();
    drop(vault);

    let wrong = TestKey::generate();
    let err = Vault::open(&mut conn, wrong.keys()).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("the master key does not match the one that wrapped the data keys"),
        "{err}"
    );
    let client = db.client().await;
    let keys: i64 = client
        .query_one("SELECT count(*) FROM encryption_keys", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 1, "no data key was created under the wrong key");
    // The right key still works after the refusal.
    let vault = open_vault(&db, &right).await;
    assert!(
        sessions::get_credentials(&mut conn, &vault, &ctx(), "w")
            .await
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_of_many_processes_creates_exactly_one_primary() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let target = db.target();
        let keys = key.keys();
        tasks.push(tokio::spawn(async move {
            let mut conn = target.connect().await.unwrap();
            Vault::open(&mut conn, keys)
                .await
                .map(|v| v.ring().primary_id())
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every process sees the same primary");
    let client = db.client().await;
    let (total, primaries): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state = 'primary') FROM encryption_keys",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((total, primaries), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn passphrase_master_key_stores_its_parameters_and_checks_the_passphrase() {
    use vibee_sessions::crypto::MasterKeys;
    use vibee_sessions::db::keys::{MasterKeySource, load_kdf_params, unlock};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let pass = || MasterKeySource::Passphrase(SecretString::from("a long and secret passphrase"));
    let master = unlock(&mut conn, pass()).await.unwrap();
    let kek = master.kek_id().clone();
    let vault = Vault::open(&mut conn, MasterKeys::new(master, None))
        .await
        .unwrap();
    sessions::upsert(&mut conn, &vault, &ctx(), &input("pp"))
        .await
        .unwrap();
    let params = load_kdf_params(&mut conn)
        .await
        .unwrap()
        .expect("parameters stored");
    assert!(params.m_cost_kib >= 64 * 1024 && params.t_cost >= 3);

    let again = unlock(&mut conn, pass()).await.unwrap();
    assert_eq!(
        again.kek_id(),
        &kek,
        "same passphrase, same stored salt, same key"
    );
    let vault = Vault::open(&mut conn, MasterKeys::new(again, None))
        .await
        .unwrap();
    assert!(
        sessions::get_credentials(&mut conn, &vault, &ctx(), "pp")
            .await
            .is_ok()
    );

    let wrong = unlock(
        &mut conn,
        MasterKeySource::Passphrase(SecretString::from("not it")),
    )
    .await
    .unwrap();
    let err = Vault::open(&mut conn, MasterKeys::new(wrong, None))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("the master key does not match"),
        "{err}"
    );

    // A tampered parameter row is refused before any expensive derivation.
    exec(&db, "UPDATE master_key_kdf SET m_cost_kib = 2147483647").await;
    let err = unlock(&mut conn, pass()).await.err().unwrap();
    assert!(err.to_string().contains("out of bounds"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn passphrase_on_a_key_wrapped_database_is_refused() {
    use vibee_sessions::db::keys::{MasterKeySource, unlock};
    let TestStore {
        db: _db,
        vault: _vault,
        mut conn,
        ..
    } = TestStore::new().await;
    let err = unlock(
        &mut conn,
        MasterKeySource::Passphrase(SecretString::from("whatever")),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("set MASTER_KEY or MASTER_KEY_FILE"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_rerun_as_a_no_op_and_race_safely() {
    use vibee_sessions::db::migrate;
    let db = TestDb::empty().await;
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let target = db.target();
        tasks.push(tokio::spawn(
            async move { migrate::run_pending(&target).await },
        ));
    }
    let mut applied = 0;
    for t in tasks {
        applied += t
            .await
            .unwrap()
            .expect("concurrent migrations do not fail")
            .len();
    }
    assert_eq!(
        applied,
        vibee_sessions::db::migrate::migrations_count(),
        "each migration applied once"
    );
    assert!(migrate::run_pending(&db.target()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_connections_carry_a_statement_timeout() {
    use diesel_async::RunQueryDsl;
    let db = TestDb::new().await;
    let pool = db.pool();
    let mut conn = pool.get().await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement_timeout: String,
    }
    let s: Setting = diesel::sql_query("SHOW statement_timeout")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(s.statement_timeout, "30s");
}
