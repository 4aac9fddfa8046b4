//! The transit master key against a real OpenBao (`bao server -dev`, started
//! per test): serving across restarts, a wrong key, a policy without decrypt,
//! the engine down at start and after it, token renewal and AppRole re-login,
//! rotate-master file → transit → file, and a transit key rotation followed
//! by `rotate-master --rewrap`.

#[path = "transit_support/bao.rs"]
mod bao;
mod common;

use std::process::{Command, Output};
use std::time::Duration;

use bao::{Bao, ROOT_TOKEN};
use common::server::{HASH, Http, Server, create_token};
use common::{TestDb, TestKey};
use serde_json::{Value, json};

const KEY: &str = "vibee";

macro_rules! bao_or_skip {
    () => {
        bao_or_skip!(start)
    };
    ($how:ident) => {
        match Bao::$how() {
            Some(b) => b,
            None => {
                eprintln!("SKIPPED: {} (no bao)", module_path!());
                return;
            }
        }
    };
}

/// The environment of a service whose master key is `key` on `bao`.
fn transit_env(bao: &Bao, token: &str, key: &str) -> Vec<(String, String)> {
    vec![
        ("VAULT_ADDR".into(), bao.addr.clone()),
        ("VAULT_TOKEN".into(), token.into()),
        ("MASTER_KEY_TRANSIT_KEY".into(), key.into()),
    ]
}

fn vibee(db: &TestDb, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vibee-sessions"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn serve(db: &TestDb, env: &[(String, String)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("MASTER_KEY_TRANSIT_PROBE_SECS", "1")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(std::env::temp_dir());
    Server::spawn(cmd)
}

fn client(server: &Server, db: &TestDb) -> Http {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("t{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    server.client().with_token(&create_token(
        db,
        &name,
        "sessions:read,sessions:write,sessions:list,admin",
    ))
}

fn phone(user: &str) -> String {
    let n = user
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("+1555{:07}", n % 10_000_000)
}

fn put(http: &Http, user: &str) {
    let r = http.post_json(
        "/api/v1/sessions",
        &json!({"user_id": user, "api_id": 7, "api_hash": HASH, "phone": phone(user)}),
    );
    assert!(
        r.status == 201 || r.status == 200,
        "{} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
}

fn get(http: &Http, user: &str) -> Value {
    let r = http.get(&format!("/api/v1/users/{user}/session"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["api_hash"], HASH);
    assert_eq!(v["phone"], phone(user));
    v
}

async fn wraps(db: &TestDb) -> Vec<(i32, String, Vec<u8>)> {
    let c = db.client().await;
    c.query(
        "SELECT id, kek_id, wrapped_key FROM encryption_keys ORDER BY id",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

/// Every column of every `user_sessions` row, hashed.
async fn sessions_fingerprint(db: &TestDb) -> String {
    let c = db.client().await;
    c.query_one(
        "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY id)), '') FROM user_sessions t",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

fn kek_id(bao: &Bao, key: &str) -> String {
    format!(
        "transit://{}/transit/keys/{key}",
        bao.addr.trim_start_matches("http://")
    )
}

fn metric(http: &Http, name: &str, label: &str) -> f64 {
    let r = http.get("/metrics");
    String::from_utf8_lossy(&r.body)
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_reads_and_writes_across_restarts_with_no_local_key() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    let token = bao.token_with_policy("svc", &Bao::service_policy(KEY), &[]);
    let db = TestDb::new().await;
    let env = transit_env(&bao, &token, KEY);

    let mut server = serve(&db, &env);
    let http = client(&server, &db);
    put(&http, "alice");
    get(&http, "alice");
    let ready = server.client().get("/readyz");
    assert_eq!(ready.status, 200);
    let body = ready.json();
    assert_eq!(body["master_key"]["kind"], "transit", "{body}");
    assert_eq!(body["master_key"]["kek_id"], kek_id(&bao, KEY));
    assert!(metric(&http, "vibee_transit_requests_total", "op=\"decrypt\"") >= 1.0);
    assert!(server.stop().success());
    assert!(!server.logs().contains(&token), "the token was logged");

    let stored = wraps(&db).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, kek_id(&bao, KEY));
    assert!(stored[0].2.starts_with(b"vault:v1:"), "a transit wrap");

    // A restart unwraps from the engine again and reads what was written.
    let mut server = serve(&db, &env);
    let http = client(&server, &db);
    get(&http, "alice");
    put(&http, "bob");
    get(&http, "bob");
    assert!(server.stop().success());

    let status = vibee(&db, &env, &["keys", "status", "--json"]);
    assert!(status.status.success(), "{}", text(&status));
    let doc: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["master_key"]["kind"], "transit");
    assert_eq!(doc["master_key"]["mount"], "transit");
    assert_eq!(doc["master_key"]["key"], KEY);
    assert_eq!(doc["master_key"]["matches"], true);
    assert_eq!(doc["keys"][0]["transit_key_version"], 1);
    let table = vibee(&db, &env, &["keys", "status"]);
    assert!(text(&table).contains("transit v1"), "{}", text(&table));
    assert!(
        text(&table).contains("mount transit, key vibee"),
        "{}",
        text(&table)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_name_or_a_key_that_cannot_decrypt_stops_the_start() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    bao.create_key("other");
    let db = TestDb::new().await;
    let mut server = serve(&db, &transit_env(&bao, ROOT_TOKEN, KEY));
    assert!(server.stop().success());

    let out = vibee(&db, &transit_env(&bao, ROOT_TOKEN, "other"), &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("does not match"), "{msg}");
    assert!(
        msg.contains(&kek_id(&bao, KEY)) && msg.contains(&kek_id(&bao, "other")),
        "{msg}"
    );

    // Same name, other key material (deleted and made again).
    bao.ok(&[
        "write",
        &format!("transit/keys/{KEY}/config"),
        "deletion_allowed=true",
    ]);
    bao.ok(&["delete", &format!("transit/keys/{KEY}")]);
    bao.create_key(KEY);
    let out = vibee(&db, &transit_env(&bao, ROOT_TOKEN, KEY), &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("cannot decrypt the stored wrap of data key"),
        "{}",
        text(&out)
    );

    // A key that does not exist at all.
    let out = vibee(&db, &transit_env(&bao, ROOT_TOKEN, KEY), &["serve"]);
    assert_eq!(out.status.code(), Some(3));
    bao.ok(&[
        "write",
        &format!("transit/keys/{KEY}/config"),
        "deletion_allowed=true",
    ]);
    bao.ok(&["delete", &format!("transit/keys/{KEY}")]);
    let out = vibee(&db, &transit_env(&bao, ROOT_TOKEN, KEY), &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("not found"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_without_decrypt_is_refused_with_a_clear_message() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    let encrypt_only =
        format!("path \"transit/encrypt/{KEY}\" {{ capabilities = [\"update\"] }}\n");
    let token = bao.token_with_policy("enc-only", &encrypt_only, &[]);
    let db = TestDb::new().await;
    let out = vibee(&db, &transit_env(&bao, &token, KEY), &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("permission denied") && msg.contains("transit/decrypt/vibee"),
        "{msg}"
    );
    assert!(!msg.contains(&token));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_down_after_start_is_survived_and_rotate_is_refused() {
    let mut bao = bao_or_skip!();
    bao.create_key(KEY);
    let db = TestDb::new().await;
    let env = transit_env(&bao, ROOT_TOKEN, KEY);
    let server = serve(&db, &env);
    let http = client(&server, &db);
    put(&http, "alice");

    bao.kill();
    // Reads and writes go on from the ring in memory.
    get(&http, "alice");
    put(&http, "bob");
    get(&http, "bob");
    // The probe (every second here) notices the engine is gone.
    let mut body = Value::Null;
    for _ in 0..100 {
        let r = server.client().get("/readyz");
        assert_eq!(r.status, 200, "stays ready");
        body = r.json();
        if body["master_key"]["engine"] == "down" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(body["master_key"]["engine"], "down", "{body}");
    assert!(
        body["master_key"]["engine_error"]
            .as_str()
            .unwrap()
            .contains("unreachable")
    );
    assert!(metric(&http, "vibee_transit_failures_total", "op=\"health\"") >= 1.0);

    // No new data key without the engine.
    let out = vibee(&db, &env, &["rotate", "--grace-ms", "0"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("unreachable"), "{}", text(&out));
    get(&http, "alice");

    // And a start with the engine down stops with a clear message.
    let out = vibee(&db, &env, &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("secrets engine") && msg.contains("unreachable"),
        "{msg}"
    );
    assert!(!msg.contains(ROOT_TOKEN));
}

/// Waits until the server's ring has `primary` (it reloads on NOTIFY).
fn wait_for_primary(server: &Server, primary: u64) -> Value {
    let mut body = Value::Null;
    for _ in 0..100 {
        body = server.client().get("/readyz").json();
        if body["primary_data_key"] == primary {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_token_is_renewed_and_approle_logs_in_again() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    let policy = Bao::service_policy(KEY);

    // A renewable token that dies 4 s after its last renewal.
    let token = bao.token_with_policy("svc", &policy, &["-ttl=4s", "-explicit-max-ttl=120s"]);
    let db = TestDb::new().await;
    let server = serve(&db, &transit_env(&bao, &token, KEY));
    let http = client(&server, &db);
    put(&http, "alice");
    std::thread::sleep(Duration::from_secs(7));
    let out = vibee(
        &db,
        &transit_env(&bao, ROOT_TOKEN, KEY),
        &["rotate", "--grace-ms", "0"],
    );
    assert!(out.status.success(), "{}", text(&out));
    // The reload needs a decrypt with the service's own token: still valid.
    let body = wait_for_primary(&server, 2);
    assert_eq!(body["primary_data_key"], 2, "{body}\n{}", server.logs());
    assert!(metric(&http, "vibee_transit_requests_total", "op=\"renew\"") >= 1.0);
    get(&http, "alice");
    drop(server);

    // AppRole: tokens of 4 s that cannot be renewed past it; the service logs in again.
    bao.ok(&["auth", "enable", "approle"]);
    bao.ok(&[
        "write",
        "auth/approle/role/vibee",
        "token_policies=svc",
        "token_ttl=4s",
        "token_max_ttl=4s",
    ]);
    let role_id = bao.ok(&["read", "-field=role_id", "auth/approle/role/vibee/role-id"]);
    let secret_id = bao.ok(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/vibee/secret-id",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, &secret_id).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let env = vec![
        ("VAULT_ADDR".to_owned(), bao.addr.clone()),
        ("VAULT_ROLE_ID".to_owned(), role_id),
        (
            "VAULT_SECRET_ID_FILE".to_owned(),
            secret_file.display().to_string(),
        ),
        ("MASTER_KEY_TRANSIT_KEY".to_owned(), KEY.to_owned()),
    ];
    let server = serve(&db, &env);
    let http = client(&server, &db);
    get(&http, "alice");
    std::thread::sleep(Duration::from_secs(7));
    let out = vibee(
        &db,
        &transit_env(&bao, ROOT_TOKEN, KEY),
        &["rotate", "--grace-ms", "0"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let body = wait_for_primary(&server, 3);
    assert_eq!(body["primary_data_key"], 3, "{body}\n{}", server.logs());
    // The start's login and at least one more: no token of this role outlives 4 s.
    assert!(metric(&http, "vibee_transit_requests_total", "op=\"login\"") >= 2.0);
    // Logged in again *before* the token ran out: the reload's decrypt was never refused.
    assert_eq!(
        metric(&http, "vibee_transit_failures_total", "op=\"decrypt\""),
        0.0,
        "{}",
        server.logs()
    );
    put(&http, "bob");
    get(&http, "bob");
    assert!(
        !server.logs().contains(&secret_id),
        "the secret id was logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_master_moves_file_to_transit_and_back_touching_no_session_row() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    let db = TestDb::new().await;
    let local = TestKey::generate();
    let mut server = Server::start(&db, &local);
    let http = client(&server, &db);
    let users: Vec<String> = (0..5).map(|i| format!("u{i}")).collect();
    for u in &users {
        put(&http, u);
    }
    assert!(server.stop().success());
    // Two data keys, so the batch holds more than one.
    let local_env = vec![("MASTER_KEY".to_owned(), local.base64().to_owned())];
    let out = vibee(&db, &local_env, &["rotate", "--grace-ms", "0"]);
    assert!(out.status.success(), "{}", text(&out));

    // Both sources at once is an error naming both.
    let mut both = transit_env(&bao, ROOT_TOKEN, KEY);
    both.extend(local_env.clone());
    let out = vibee(&db, &both, &["serve"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out).contains("MASTER_KEY_TRANSIT_KEY and MASTER_KEY are both set"),
        "{}",
        text(&out)
    );

    // file → transit
    let before = sessions_fingerprint(&db).await;
    let mut env = local_env.clone();
    env.push(("VAULT_ADDR".into(), bao.addr.clone()));
    env.push(("VAULT_TOKEN".into(), ROOT_TOKEN.into()));
    let out = vibee(&db, &env, &["rotate-master", "--new-transit-key", KEY]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("under master key {}", kek_id(&bao, KEY))),
        "{}",
        text(&out)
    );
    assert_eq!(
        sessions_fingerprint(&db).await,
        before,
        "no session row touched"
    );
    let stored = wraps(&db).await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored
            .iter()
            .all(|(_, k, w)| *k == kek_id(&bao, KEY) && w.starts_with(b"vault:v1:"))
    );

    let transit = transit_env(&bao, ROOT_TOKEN, KEY);
    let mut server = serve(&db, &transit);
    let http = client(&server, &db);
    for u in &users {
        get(&http, u);
    }
    assert!(server.stop().success());

    // transit → file
    let dir = tempfile::tempdir().unwrap();
    let new_key = dir.path().join("master.key");
    let out = vibee(&db, &[], &["keygen", "--out", new_key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let before = sessions_fingerprint(&db).await;
    let out = vibee(
        &db,
        &transit,
        &["rotate-master", "--new-key-file", new_key.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        sessions_fingerprint(&db).await,
        before,
        "no session row touched"
    );
    assert!(
        wraps(&db)
            .await
            .iter()
            .all(|(_, k, w)| !k.starts_with("transit://") && w[0] == 1)
    );

    let file_env = vec![("MASTER_KEY_FILE".to_owned(), new_key.display().to_string())];
    let mut server = serve(&db, &file_env);
    let http = client(&server, &db);
    for u in &users {
        get(&http, u);
    }
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_transit_key_rotation_rewrap_moves_every_wrap_to_the_newest_version() {
    let bao = bao_or_skip!();
    bao.create_key(KEY);
    let db = TestDb::new().await;
    let env = transit_env(&bao, ROOT_TOKEN, KEY);
    let mut server = serve(&db, &env);
    let http = client(&server, &db);
    put(&http, "alice");
    assert!(server.stop().success());
    let out = vibee(&db, &env, &["rotate", "--grace-ms", "0"]);
    assert!(out.status.success(), "{}", text(&out));

    bao.ok(&["write", "-f", &format!("transit/keys/{KEY}/rotate")]);
    let before = sessions_fingerprint(&db).await;
    let out = vibee(&db, &env, &["rotate-master", "--rewrap"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("transit key version 2"),
        "{}",
        text(&out)
    );
    assert_eq!(sessions_fingerprint(&db).await, before);
    let stored = wraps(&db).await;
    assert!(stored.len() >= 2);
    assert!(stored.iter().all(|(_, _, w)| w.starts_with(b"vault:v2:")));
    let status = vibee(&db, &env, &["keys", "status"]);
    assert!(text(&status).contains("transit v2") && !text(&status).contains("transit v1"));

    // Version 1 can now be retired in the engine, and everything still opens.
    bao.ok(&[
        "write",
        &format!("transit/keys/{KEY}/config"),
        "min_decryption_version=2",
    ]);
    let mut server = serve(&db, &env);
    let http = client(&server, &db);
    get(&http, "alice");
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_engine_is_reached_over_verified_tls_trusting_vault_cacert() {
    let bao = bao_or_skip!(start_tls);
    bao.create_key(KEY);
    let db = TestDb::new().await;
    let mut env = transit_env(&bao, ROOT_TOKEN, KEY);

    // The engine's CA is not one of the Mozilla roots: refused, nothing sent.
    let out = vibee(&db, &env, &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("certificate"),
        "{}",
        text(&out)
    );

    env.push((
        "VAULT_CACERT".into(),
        bao.ca.as_ref().unwrap().display().to_string(),
    ));
    let mut server = serve(&db, &env);
    let http = client(&server, &db);
    put(&http, "alice");
    get(&http, "alice");
    assert!(server.stop().success());
    assert!(wraps(&db).await[0].2.starts_with(b"vault:v1:"));

    // A CA file that holds no certificate is a configuration error that says so.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut bad = transit_env(&bao, ROOT_TOKEN, KEY);
    bad.push(("VAULT_CACERT".into(), empty.path().display().to_string()));
    let out = vibee(&db, &bad, &["serve"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("holds no PEM certificate"),
        "{}",
        text(&out)
    );
}
