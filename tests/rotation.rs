//! Key rotation against a real PostgreSQL: data key rotation under concurrent
//! writers, a rotation killed with SIGKILL and resumed, two rotations at once,
//! replicas following a rotation, master key rotation, key destruction, and
//! the cron and nonce-budget guards.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestDb, TestKey, bin_for, open_vault};
use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use vibee_sessions::crypto::{DataKeyId, MasterKeys};
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::keys::{self, MasterKeySource};
use vibee_sessions::db::sessions::{self, SessionInput};
use vibee_sessions::db::{Pool, Vault};
use vibee_sessions::rotation::{self, Outcome, RotateOptions, progress::LogLines};

const HASH: &str = "0123456789abcdef0123456789abcdef";

fn input(user_id: &str, blob: &str) -> SessionInput {
    SessionInput {
        user_id: user_id.to_owned(),
        api_id: 1000,
        api_hash: SecretString::from(HASH),
        phone: Some(SecretString::from("+15550001111")),
        session_data: Some(SecretSlice::from(blob.as_bytes().to_vec())),
        ..Default::default()
    }
}

fn ctx() -> AuditContext {
    AuditContext {
        actor: "test".into(),
        request_id: None,
    }
}

fn user(i: usize) -> String {
    format!("user{i:05}")
}

/// `n` sessions whose blob is "seed-<i>", written by 8 concurrent tasks.
async fn seed(pool: &Pool, vault: &Arc<Vault>, n: usize) {
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (pool, vault) = (pool.clone(), Arc::clone(vault));
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            for i in (t..n).step_by(8) {
                sessions::upsert(
                    &mut conn,
                    &vault,
                    &ctx(),
                    &input(&user(i), &format!("seed-{i}")),
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Every row decrypts, is on `primary`, and holds the blob `expected` names
/// (or its seed value).
async fn check_rows(
    conn: &mut AsyncPgConnection,
    vault: &Vault,
    n: usize,
    expected: &HashMap<String, String>,
    primary: DataKeyId,
) {
    for i in 0..n {
        let u = user(i);
        let s = sessions::get_credentials(conn, vault, &ctx(), &u)
            .await
            .unwrap();
        assert_eq!(s.meta.data_key_id, primary, "{u} is not on the new key");
        assert_eq!(s.credentials.api_hash.expose_secret(), HASH);
        let blob = s.credentials.session_data.unwrap();
        let want = expected
            .get(&u)
            .cloned()
            .unwrap_or_else(|| format!("seed-{i}"));
        assert_eq!(
            String::from_utf8_lossy(blob.expose_secret()),
            want,
            "{u} lost a write"
        );
    }
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn key_states(db: &TestDb) -> Vec<(DataKeyId, String)> {
    db.client()
        .await
        .query(
            "SELECT id::oid, state FROM encryption_keys ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (DataKeyId(r.get(0)), r.get(1)))
        .collect()
}

fn opts(grace_ms: u64) -> RotateOptions {
    RotateOptions {
        batch_size: 100,
        grace: Duration::from_millis(grace_ms),
        ..RotateOptions::default()
    }
}
fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The rows a finished rotation reports having moved.
fn rows_moved(stdout: &str) -> u64 {
    stdout
        .split("rotation finished: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_under_concurrent_writers_loses_no_write() {
    const N: usize = 2000;
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let pool = db.pool();
    // The writers' process: a replica with its own vault and key watcher.
    let replica = Arc::new(open_vault(&db, &key).await);
    let watcher = keys::spawn_key_watcher(
        db.target(),
        Arc::clone(&replica),
        Duration::from_millis(500),
    );
    seed(&pool, &replica, N).await;
    let old = replica.ring().primary_id();

    // Each writer owns the users i % 4 == w, so its ledger is the truth for
    // them. Writers run until the rotation is over (bounded all the same).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4usize {
        let (pool, vault, stop) = (pool.clone(), Arc::clone(&replica), Arc::clone(&stop));
        writers.push(tokio::spawn(async move {
            let mut ledger = HashMap::new();
            let mut keys_used = HashMap::<DataKeyId, usize>::new();
            let mut conn = pool.get().await.unwrap();
            for round in 0..5000usize {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let i = (round * 37 * 4 + w) % N;
                let i = i - i % 4 + w;
                let blob = format!("w{w}-r{round}");
                let meta = sessions::upsert(&mut conn, &vault, &ctx(), &input(&user(i), &blob))
                    .await
                    .unwrap();
                *keys_used.entry(meta.meta().data_key_id).or_default() += 1;
                ledger.insert(user(i), blob);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (ledger, keys_used)
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let rotator = open_vault(&db, &key).await;
    let mut conn = db.conn().await;
    let outcome = rotation::rotate(&mut conn, &rotator, &opts(1500), &LogLines::default())
        .await
        .unwrap();
    let Outcome::Finished(report) = outcome else {
        panic!("expected a finished rotation: {outcome:?}")
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut ledger = HashMap::new();
    let mut keys_used = HashMap::<DataKeyId, usize>::new();
    for w in writers {
        let (l, k) = w.await.unwrap();
        ledger.extend(l);
        for (key, n) in k {
            *keys_used.entry(key).or_default() += n;
        }
    }
    watcher.abort();
    let new = report.primary;
    assert_ne!(new, old);
    // The writers really ran across the rotation: before and after the switch.
    assert!(keys_used.get(&old).is_some_and(|&n| n > 0), "{keys_used:?}");
    assert!(keys_used.get(&new).is_some_and(|&n| n > 0), "{keys_used:?}");
    assert_eq!(report.retired, vec![old]);
    assert!(report.rows > 0 && report.rows <= N as u64 * 2, "{report:?}");
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM user_sessions").await,
        N as i64
    );
    check_rows(&mut conn, &rotator, N, &ledger, new).await;
    assert_eq!(
        key_states(&db).await,
        vec![(old, "retired".into()), (new, "primary".into())]
    );
    // Rotation is not a user write: rows no writer touched keep version 1.
    let untouched = scalar(&db, "SELECT count(*) FROM user_sessions WHERE version = 1").await;
    assert!(
        untouched as usize >= N - ledger.len(),
        "rotation bumped versions"
    );
    // Audited as key events, with key ids and counts only.
    let audit = db
        .client()
        .await
        .query(
            "SELECT activity_type, details::text FROM session_activity \
             WHERE actor = 'cli' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let kinds: Vec<String> = audit.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        kinds,
        [
            "key_rotation_started",
            "key_retired",
            "key_rotation_finished"
        ]
    );
    for r in &audit {
        let details: String = r.get(1);
        assert!(
            !details.contains(HASH) && !details.contains("seed-"),
            "{details}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_rotation_resumes_and_loses_nothing() {
    const N: usize = 1500;
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = Arc::new(open_vault(&db, &key).await);
    seed(&db.pool(), &vault, N).await;
    let old = vault.ring().primary_id();
    let on_new = format!("SELECT count(*) FROM user_sessions WHERE data_key_id <> {old}");

    // Slow on purpose (20 rows a batch, 50 ms apart), killed mid-way, twice:
    // first resumed by a plain `rotate`, then by `rotate --resume`.
    let slow = || {
        let mut cmd = bin_for(&db, &key);
        cmd.args([
            "rotate",
            "--batch-size",
            "20",
            "--pause-ms",
            "50",
            "--grace-ms",
            "300",
        ]);
        spawn(cmd)
    };
    let mut killed_at = Vec::new();
    for round in 0..2 {
        let mut child = slow();
        let target = 300 * (round + 1);
        let deadline = Instant::now() + Duration::from_secs(20);
        while scalar(&db, &on_new).await < target {
            assert!(Instant::now() < deadline, "the rotation made no progress");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the rotation ended early"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.kill().unwrap(); // SIGKILL
        let out = child.wait_with_output().unwrap();
        let (_, stderr) = text(&out);
        if round == 1 {
            assert!(stderr.contains("found an unfinished rotation"), "{stderr}");
        }
        killed_at.push(scalar(&db, &on_new).await);
    }
    assert!(
        killed_at[1] < N as i64,
        "killed too late to prove anything: {killed_at:?}"
    );
    // Two processes ran, but only one new key was made.
    assert_eq!(key_states(&db).await.len(), 2);

    let out = bin_for(&db, &key)
        .args(["rotate", "--resume", "--grace-ms", "300"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("resuming the rotation"), "{stderr}");
    // A batch the kill caught mid-commit may still land after we counted, so
    // the resumed run moves at most what was left (and nothing twice).
    let resumed = rows_moved(&stdout);
    assert!(
        resumed > 0 && resumed <= (N as i64 - killed_at[1]) as u64,
        "{stdout}"
    );

    let states = key_states(&db).await;
    assert_eq!(states[0], (old, "retired".into()));
    assert_eq!(states[1].1, "primary");
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM user_sessions WHERE data_key_id = {old}")
        )
        .await,
        0
    );
    let mut conn = db.conn().await;
    let fresh = open_vault(&db, &key).await;
    check_rows(&mut conn, &fresh, N, &HashMap::new(), states[1].0).await;

    // Nothing left: --resume says so and succeeds.
    let out = bin_for(&db, &key)
        .args(["rotate", "--resume"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out).0.contains("nothing to do"), "{:?}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_rotations_at_once_do_each_row_once() {
    const N: usize = 800;
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = Arc::new(open_vault(&db, &key).await);
    seed(&db.pool(), &vault, N).await;
    let run = || {
        let mut cmd = bin_for(&db, &key);
        cmd.args([
            "rotate",
            "--batch-size",
            "50",
            "--pause-ms",
            "30",
            "--grace-ms",
            "300",
        ]);
        spawn(cmd)
    };
    let (a, b) = (run(), run());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ta, tb) = (text(&a), text(&b));
    assert!(a.status.success() && b.status.success(), "{ta:?} {tb:?}");
    assert_eq!(
        rows_moved(&ta.0) + rows_moved(&tb.0),
        N as u64,
        "{ta:?} {tb:?}"
    );
    let waited = [&ta.1, &tb.1]
        .iter()
        .filter(|e| e.contains("waiting for it to finish"))
        .count();
    assert_eq!(waited, 1, "exactly one process waits: {ta:?} {tb:?}");
    let states = key_states(&db).await;
    assert_eq!(states.len(), 2, "one new key, not two: {states:?}");
    assert_eq!(states[0].1, "retired");
    let mut conn = db.conn().await;
    check_rows(
        &mut conn,
        &open_vault(&db, &key).await,
        N,
        &HashMap::new(),
        states[1].0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_watcher_picks_up_a_new_primary_within_seconds() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let replica = Arc::new(open_vault(&db, &key).await);
    // A long fallback interval: only the NOTIFY can make it this fast.
    let watcher =
        keys::spawn_key_watcher(db.target(), Arc::clone(&replica), Duration::from_secs(60));
    let old = replica.ring().primary_id();
    tokio::time::sleep(Duration::from_millis(300)).await; // let it LISTEN
    let rotator = open_vault(&db, &key).await;
    let mut conn = db.conn().await;
    let new = keys::promote_new_primary(&mut conn, rotator.master().current(), &ctx())
        .await
        .unwrap()
        .new_primary;
    let started = Instant::now();
    while replica.ring().primary_id() != new {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the replica did not follow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_ne!(old, new);
    // The replica now writes under the new key.
    let meta = sessions::upsert(&mut conn, &replica, &ctx(), &input("u1", "x"))
        .await
        .unwrap();
    assert_eq!(meta.meta().data_key_id, new);
    watcher.abort();

    // Without notifications, the periodic refresh catches up.
    let polling = Arc::new(open_vault(&db, &key).await);
    let watcher = keys::spawn_key_watcher(
        db.target(),
        Arc::clone(&polling),
        Duration::from_millis(200),
    );
    let mut other = db.client().await;
    // A change made without NOTIFY (as if the notification were lost).
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "UPDATE encryption_keys SET state = 'active' WHERE state = 'primary'",
        &[],
    )
    .await
    .unwrap();
    tx.execute(
        &format!(
            "UPDATE encryption_keys SET state = 'primary' WHERE id = {}",
            old.0
        ),
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let started = Instant::now();
    while polling.ring().primary_id() != old {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the periodic refresh did not follow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_master_rewraps_every_key_and_refuses_the_old_key_alone() {
    let db = TestDb::new().await;
    let old = TestKey::generate();
    let new = TestKey::generate();
    let vault = Arc::new(open_vault(&db, &old).await);
    seed(&db.pool(), &vault, 20).await;
    // A retired key too: it must be re-wrapped like the others.
    let mut conn = db.conn().await;
    rotation::rotate(&mut conn, &vault, &opts(0), &LogLines::default())
        .await
        .unwrap();
    let rows_before = scalar(
        &db,
        "SELECT hashtext(string_agg(t::text, ',' ORDER BY id))::bigint FROM user_sessions t",
    )
    .await;

    let out = bin_for(&db, &old)
        .args(["rotate-master", "--new-key-env", "NEW_MASTER_KEY"])
        .env("NEW_MASTER_KEY", new.base64())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("re-wrapped 2 of 2 data keys"), "{stdout}");
    assert!(!stdout.contains(new.base64()) && !stderr.contains(new.base64()));
    let new_kek = new.key().kek_id().to_string();
    assert_eq!(
        scalar(
            &db,
            &format!("SELECT count(*) FROM encryption_keys WHERE kek_id = '{new_kek}'")
        )
        .await,
        2
    );
    let rows_after = scalar(
        &db,
        "SELECT hashtext(string_agg(t::text, ',' ORDER BY id))::bigint FROM user_sessions t",
    )
    .await;
    assert_eq!(
        rows_before, rows_after,
        "rotate-master touched a session row"
    );

    // New key: works. New + previous: works. Old alone: refused, clearly.
    let opened = open_vault(&db, &new).await;
    check_rows(
        &mut conn,
        &opened,
        20,
        &HashMap::new(),
        opened.ring().primary_id(),
    )
    .await;
    Vault::open(&mut conn, MasterKeys::new(new.key(), Some(old.key())))
        .await
        .unwrap();
    let err = Vault::open(&mut conn, old.keys()).await.err().unwrap();
    assert!(
        err.to_string()
            .contains("the master key does not match the one that wrapped the data keys"),
        "{err}"
    );
    // A replica still holding only the old key keeps serving from memory.
    let meta = sessions::upsert(&mut conn, &vault, &ctx(), &input(&user(1), "late"))
        .await
        .unwrap();
    assert_eq!(meta.meta().data_key_id, vault.ring().primary_id());

    // The passphrase path: fresh Argon2 parameters stored with the keys.
    let out = bin_for(&db, &new)
        .args(["rotate-master", "--new-passphrase-env", "NEW_PASS"])
        .env("NEW_PASS", "correct horse battery staple")
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(scalar(&db, "SELECT count(*) FROM master_key_kdf").await, 1);
    let derived = keys::unlock(
        &mut conn,
        MasterKeySource::Passphrase(SecretString::from("correct horse battery staple")),
    )
    .await
    .unwrap();
    let by_pass = Vault::open(&mut conn, MasterKeys::new(derived, None))
        .await
        .unwrap();
    let s = sessions::get_credentials(&mut conn, &by_pass, &ctx(), &user(1))
        .await
        .unwrap();
    assert_eq!(s.credentials.session_data.unwrap().expose_secret(), b"late");
    assert!(Vault::open(&mut conn, new.keys()).await.is_err());

    let kinds = db
        .client()
        .await
        .query(
            "SELECT details::text FROM session_activity WHERE activity_type = 'master_key_rotated'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(kinds.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_destroy_only_takes_a_retired_unused_key() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = Arc::new(open_vault(&db, &key).await);
    seed(&db.pool(), &vault, 10).await;
    let first = vault.ring().primary_id().0 as i32;
    let destroy = |id: i32| {
        bin_for(&db, &key)
            .args(["keys", "destroy", &id.to_string()])
            .output()
            .unwrap()
    };

    let out = destroy(first);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains(&format!("data key {first} is primary")),
        "{:?}",
        text(&out)
    );

    // An active key (a rotation started, rows not moved yet).
    let mut conn = db.conn().await;
    keys::promote_new_primary(&mut conn, vault.master().current(), &ctx())
        .await
        .unwrap();
    let out = destroy(first);
    assert!(text(&out).1.contains("is active"), "{:?}", text(&out));
    // A key marked retired while rows still use it (as if by hand).
    db.client()
        .await
        .execute(
            &format!("UPDATE encryption_keys SET state = 'retired' WHERE id = {first}"),
            &[],
        )
        .await
        .unwrap();
    let out = destroy(first);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("still used by 10 session row(s)"),
        "{:?}",
        text(&out)
    );
    assert!(
        destroy(999).status.code() == Some(1) && text(&destroy(999)).1.contains("no data key 999")
    );

    // Done properly: finish the rotation, then destroy.
    db.client()
        .await
        .execute(
            &format!("UPDATE encryption_keys SET state = 'active' WHERE id = {first}"),
            &[],
        )
        .await
        .unwrap();
    let out = bin_for(&db, &key)
        .args(["rotate", "--resume", "--grace-ms", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = destroy(first);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(key_states(&db).await.len(), 1);
    assert_eq!(
        scalar(&db, &format!("SELECT count(*) FROM session_activity WHERE activity_type = 'key_destroyed' AND details->>'key_id' = '{first}'")).await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn if_older_than_and_the_nonce_budget_warning() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = open_vault(&db, &key).await;
    let primary = vault.ring().primary_id().0;

    let out = bin_for(&db, &key)
        .args(["rotate", "--if-older-than", "90d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(
        text(&out).0.contains("younger than 90d: not rotating"),
        "{:?}",
        text(&out)
    );
    assert_eq!(key_states(&db).await.len(), 1);
    let out = bin_for(&db, &key)
        .args(["rotate", "--if-older-than", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("s, m, h or d"), "{:?}", text(&out));

    db.client()
        .await
        .execute(
            "UPDATE encryption_keys SET encryption_count = 1073741824",
            &[],
        )
        .await
        .unwrap();
    let out = bin_for(&db, &key)
        .args(["keys", "status", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warning = doc["keys"][0]["warning"].as_str().unwrap();
    assert!(
        warning.contains("rotate (vibee-sessions rotate) to start a new data key"),
        "{warning}"
    );
    let out = bin_for(&db, &key)
        .args(["keys", "status"])
        .output()
        .unwrap();
    assert!(
        text(&out)
            .0
            .contains(&format!("warning: data key {primary} has made 1073741824")),
        "{:?}",
        text(&out)
    );

    // Once the primary is old enough, --if-older-than rotates.
    db.client()
        .await
        .execute(
            "UPDATE encryption_keys SET created_at = now() - interval '91 days'",
            &[],
        )
        .await
        .unwrap();
    let out = bin_for(&db, &key)
        .args(["rotate", "--if-older-than", "90d", "--grace-ms", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let states = key_states(&db).await;
    assert_eq!(states.len(), 2);
    let out = bin_for(&db, &key)
        .args(["keys", "status", "--json"])
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["keys"][1]["warning"].is_null(),
        "the new key starts a fresh budget"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_commands_have_help_and_name_what_is_missing() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    for args in [
        &["rotate", "--help"][..],
        &["rotate-master", "--help"],
        &["keys", "destroy", "--help"],
    ] {
        let out = bin_for(&db, &key).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out).0.contains("Usage:"), "{args:?}");
    }
    // One source of the new key is required, and secrets never go on argv.
    let out = bin_for(&db, &key).arg("rotate-master").output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("--new-key-file"), "{:?}", text(&out));
    let out = bin_for(&db, &key)
        .args(["rotate-master", "--new-key-env", "NO_SUCH_VAR"])
        .env_remove("NO_SUCH_VAR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out)
            .1
            .contains("the environment variable NO_SUCH_VAR is not set"),
        "{:?}",
        text(&out)
    );
    let out = bin_for(&db, &key)
        .args(["rotate-master", "--new-key-env", "BAD_KEY"])
        .env("BAD_KEY", "not base64!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("BAD_KEY is not valid base64") && !stderr.contains("not base64!"),
        "{stderr}"
    );
}
