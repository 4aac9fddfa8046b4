//! Test databases on a real PostgreSQL: one database per test, copied from a
//! template that already holds the migrations, dropped when the test ends.
//!
//! The server comes from `TEST_DATABASE_URL` (a URL to any database on it that
//! the test user may connect to; default `postgres://postgres@127.0.0.1:5432/postgres`).
//! The user must be allowed to create databases.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use vibee_sessions::crypto::{MasterKey, MasterKeys};
use vibee_sessions::db::{DatabaseTarget, Pool, PoolSettings, Vault, build_pool, migrate};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database name replaced (URL form only).
pub fn url_with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .expect("TEST_DATABASE_URL must be a postgres:// URL")
        + 3;
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

async fn admin_client() -> tokio_postgres::Client {
    DatabaseTarget::parse(&admin_url())
        .expect("TEST_DATABASE_URL parses")
        .connect_client()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL ({e}); run the tests with scripts/test.sh")
        })
}

fn migrations_fingerprint() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = walk(&dir);
    files.sort();
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.to_string_lossy().as_bytes());
        hash.update(std::fs::read(&f).unwrap());
    }
    hex::encode(&hash.finalize()[..6])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn is_busy_template(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|d| d.message().contains("is being accessed by other users"))
}

/// The migrated template database, built once per server and schema version.
/// An advisory lock keeps concurrent test processes from building it twice.
async fn template() -> String {
    let name = format!("vs_template_{}", migrations_fingerprint());
    let admin = admin_client().await;
    admin
        .execute("SELECT pg_advisory_lock(7366001)", &[])
        .await
        .unwrap();
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {building}"))
            .await
            .unwrap();
        let target = DatabaseTarget::parse(&url_with_db(&admin_url(), &building)).unwrap();
        migrate::run_pending(&target)
            .await
            .expect("migrations apply");
        // Renaming needs the database to be idle: end the migration session first.
        let mut renamed = false;
        for _ in 0..50 {
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&building],
                )
                .await
                .unwrap();
            match admin
                .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .await
            {
                Ok(()) => {
                    renamed = true;
                    break;
                }
                Err(e) if is_busy_template(&e) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("cannot rename the template: {e}"),
            }
        }
        assert!(renamed, "the template database never became idle");
    }
    admin
        .execute("SELECT pg_advisory_unlock(7366001)", &[])
        .await
        .unwrap();
    name
}

/// A database of one's own, migrated, dropped on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let template = template().await;
        Self::create(Some(&template)).await
    }

    /// A database with no schema at all.
    pub async fn empty() -> Self {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> Self {
        let admin = admin_client().await;
        // The pid lets scripts/test.sh drop what a killed run left behind
        // without touching the databases of a run still going.
        let name = format!(
            "vs_test_{}_{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        let mut attempt = 0;
        loop {
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                Err(e) if is_busy_template(&e) && attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        let url = url_with_db(&admin_url(), &name);
        Self { name, url }
    }

    pub fn target(&self) -> DatabaseTarget {
        DatabaseTarget::parse(&self.url).unwrap()
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        self.target().connect().await.unwrap()
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        self.target().connect_client().await.unwrap()
    }

    pub fn pool(&self) -> Pool {
        build_pool(&self.target(), &PoolSettings::default())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let admin = admin_client().await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

/// A master key and its base64 form, so a test can build it again.
pub struct TestKey(pub SecretString);

impl TestKey {
    pub fn generate() -> Self {
        Self(MasterKey::generate().1)
    }

    pub fn key(&self) -> MasterKey {
        MasterKey::from_base64(self.0.expose_secret(), "test key").unwrap()
    }

    pub fn keys(&self) -> MasterKeys {
        MasterKeys::new(self.key(), None)
    }

    pub fn base64(&self) -> &str {
        self.0.expose_secret()
    }
}

pub async fn open_vault(db: &TestDb, key: &TestKey) -> Vault {
    let mut conn = db.conn().await;
    Vault::open(&mut conn, key.keys()).await.unwrap()
}

/// A store as most tests need one: its own database, a fresh master key,
/// the vault opened under it (so the first data key exists) and one
/// connection. Keep `db` bound to the end of the test: dropping it drops
/// the database.
pub struct TestStore {
    pub db: TestDb,
    pub key: TestKey,
    pub vault: Vault,
    pub conn: AsyncPgConnection,
}

impl TestStore {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let key = TestKey::generate();
        let vault = open_vault(&db, &key).await;
        let conn = db.conn().await;
        Self {
            db,
            key,
            vault,
            conn,
        }
    }
}

pub mod leases;
pub mod pgbouncer;
pub mod server;

/// The router `serve` builds, on `db` unlocked by `key`, with its audit
/// writer running on the test's runtime; no key or token watcher (tests
/// that need those, or a process, a socket, signals or logs, use
/// `server::Server`).
pub async fn in_process(db: &TestDb, key: &TestKey) -> server::Http {
    use std::sync::Arc;
    use vibee_sessions::api::{self, ApiSettings, AppState};
    use vibee_sessions::db::activity::AuditQueue;
    use vibee_sessions::db::tokens::TokenCache;
    let vault = Arc::new(open_vault(db, key).await);
    let pool = db.pool();
    let (audit, _writer) =
        AuditQueue::spawn(pool.clone(), vibee_sessions::db::activity::MAX_IN_FLIGHT);
    let settings = ApiSettings::default();
    let app = AppState::new(
        pool,
        vault,
        audit,
        Arc::new(TokenCache::default()),
        None,
        &settings,
    );
    server::Http::in_process(api::router(app, &settings))
}

/// The `vibee-sessions` binary as the tests run it: an empty environment but
/// `PATH` (nothing of the developer's `DATABASE_URL`, `MASTER_KEY`,
/// `RUST_LOG`, …), in a fresh empty directory, so no `.env` is found either.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vibee-sessions"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(tempfile::tempdir().unwrap().keep());
    cmd
}

/// `bin()` with `DATABASE_URL` naming `db`.
pub fn bin_at(db: &TestDb) -> Command {
    let mut cmd = bin();
    cmd.env("DATABASE_URL", &db.url);
    cmd
}

/// `bin_at(db)` unlocked by `key` (`MASTER_KEY`).
pub fn bin_for(db: &TestDb, key: &TestKey) -> Command {
    let mut cmd = bin_at(db);
    cmd.env("MASTER_KEY", key.base64());
    cmd
}
