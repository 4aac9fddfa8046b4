//! Files that hold secrets (MASTER_KEY_FILE, VIBEE_TOKEN_FILE,
//! `--secrets-file`) are opened once without following symlinks and checked
//! on the open descriptor: a symlink is refused, and so is another user's
//! 0600 file even for root. And `boot`, which holds the master key in
//! database mode, cannot be read by another process of the same user.

mod common;

use common::server::HASH;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, TestKey, TestStore, bin};
use secrecy::SecretString;
use vibee_sessions::db::activity::AuditContext;
use vibee_sessions::db::sessions::{self, SessionInput};

const NOBODY: u32 = 65534;
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_token_and_secrets_files_refuse_symlinks_and_other_users_files() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let key_file = dir.path().join("master.key");
    write_private(&key_file, key.base64());
    let link = dir.path().join("link.key");
    symlink(&key_file, &link).unwrap();

    // The real file works; a symlink to it is refused by name.
    let keys_status = |path: &Path| {
        bin()
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY_FILE", path)
            .args(["keys", "status"])
            .output()
            .unwrap()
    };
    let o = keys_status(&key_file);
    assert!(o.status.success(), "{}", err(&o));
    let o = keys_status(&link);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("symbolic link"), "{}", err(&o));

    // VIBEE_TOKEN_FILE through a symlink: refused before any request.
    let token = dir.path().join("token");
    write_private(&token, "vbs_whatever");
    let token_link = dir.path().join("token.link");
    symlink(&token, &token_link).unwrap();
    let o = bin()
        .env("VIBEE_TOKEN_FILE", &token_link)
        .args(["boot", "--user-id", "u1", "--api-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("VIBEE_TOKEN_FILE") && err(&o).contains("symbolic link"));

    // --secrets-file through a symlink.
    let secrets = dir.path().join("secrets");
    write_private(&secrets, &format!("api_hash={HASH}\n"));
    let secrets_link = dir.path().join("secrets.link");
    symlink(&secrets, &secrets_link).unwrap();
    let put = |path: &Path| {
        bin()
            .env("DATABASE_URL", &db.url)
            .env("MASTER_KEY", key.base64())
            .args(["session", "put", "--user-id", "u1", "--api-id", "1"])
            .arg("--secrets-file")
            .arg(path)
            .output()
            .unwrap()
    };
    let o = put(&secrets_link);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("symbolic link"), "{}", err(&o));
    let o = put(&secrets);
    assert!(o.status.success(), "{}", err(&o));

    if !is_root() {
        eprintln!("not root: the other-owner case needs chown");
        return;
    }
    // Root may read every file, so the mode alone proves nothing: another
    // user's 0600 file is not root's key.
    for f in [&key_file, &token, &secrets] {
        std::os::unix::fs::chown(f, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let o = keys_status(&key_file);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("owned by uid 65534"), "{}", err(&o));
    let o = bin()
        .env("VIBEE_TOKEN_FILE", &token)
        .args(["boot", "--user-id", "u1", "--api-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("owned by uid 65534"), "{}", err(&o));
    let o = put(&secrets);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(err(&o).contains("owned by uid 65534"), "{}", err(&o));
}

/// `boot` in database mode runs as an unprivileged user while its audit
/// insert is held up by a table lock; another process of that same user
/// tries to read its environment (which holds MASTER_KEY) through /proc.
#[tokio::test(flavor = "multi_thread")]
async fn boot_in_database_mode_is_not_readable_by_its_own_user() {
    if !is_root() {
        eprintln!("not root: cannot run boot as another user; skipped");
        return;
    }
    let TestStore {
        db,
        key,
        vault,
        mut conn,
    } = TestStore::new().await;
    let input = SessionInput {
        user_id: "u1".into(),
        api_id: 1,
        api_hash: SecretString::from(HASH),
        ..Default::default()
    };
    sessions::upsert(&mut conn, &vault, &AuditContext::cli(), &input)
        .await
        .unwrap();
    let mut locker = db.client().await;
    let watcher = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE session_activity IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let workdir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(workdir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut boot = bin();
    boot.env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", key.base64())
        .current_dir(workdir.path())
        .args(["boot", "--user-id", "u1", "--format", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .uid(NOBODY)
        .gid(NOBODY);
    let mut child = boot.spawn().unwrap();
    let pid = child.id();
    // Wait until it is blocked on the lock, holding the key by then.
    let started = Instant::now();
    let mut waiting = false;
    while started.elapsed() < Duration::from_secs(4) {
        let row = watcher
            .query_opt(
                "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 'session_activity' AND NOT l.granted",
                &[],
            )
            .await
            .unwrap();
        if row.is_some() {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "boot never reached the audit insert");
    let probe = Command::new("cat")
        .arg(format!("/proc/{pid}/environ"))
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let leaked = String::from_utf8_lossy(&probe.stdout).contains(key.base64());
    drop(tx);
    let _ = child.wait();
    assert!(
        !leaked && !probe.status.success(),
        "a same-user process read boot's environment (MASTER_KEY included)"
    );
    assert!(
        String::from_utf8_lossy(&probe.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
}

/// Plain text across a network is warned about at start, naming the setting
/// and the fix: `sslmode=prefer` (the default) to a remote host name, and
/// `boot --api-url http://` to a host other than loopback. Loopback is not.
#[tokio::test(flavor = "multi_thread")]
async fn cleartext_to_a_remote_host_is_warned_about_at_start() {
    let db = TestDb::new().await;
    // A remote name, reached through hostaddr on loopback: no packet leaves.
    assert!(
        db.url.contains("@127.0.0.1:"),
        "the test database is on 127.0.0.1"
    );
    let remote = format!(
        "{}{}hostaddr=127.0.0.1",
        db.url.replace("@127.0.0.1:", "@db.internal.example:"),
        if db.url.contains('?') { "&" } else { "?" }
    );
    let list = |url: &str| {
        bin()
            .env("DATABASE_URL", url)
            .args(["session", "list", "--json"])
            .output()
            .unwrap()
    };
    let o = list(&remote);
    assert!(o.status.success(), "{}", err(&o));
    let e = err(&o);
    assert!(
        e.contains("db.internal.example")
            && e.contains("sslmode=prefer")
            && e.contains("verify-full"),
        "{e}"
    );
    let o = list(&db.url);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        !err(&o).contains("sslmode="),
        "loopback is not warned about: {}",
        err(&o)
    );
    let o = list(&format!("{remote}&sslmode=disable"));
    assert!(err(&o).contains("sslmode=disable"), "{}", err(&o));

    // boot --api-url: warned before anything else (here the missing token
    // stops it, so nothing is sent anywhere).
    let boot = |url: &str| {
        bin()
            .args(["boot", "--user-id", "u1", "--api-url", url])
            .output()
            .unwrap()
    };
    let o = boot("http://sessions.internal.example:8080");
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        err(&o).contains("plain http:// to sessions.internal.example")
            && err(&o).contains("https://"),
        "{}",
        err(&o)
    );
    for quiet in [
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
        "http://localhost:1",
        "https://sessions.internal.example",
    ] {
        let o = boot(quiet);
        assert_eq!(o.status.code(), Some(3), "{}", err(&o));
        assert!(!err(&o).contains("plain http://"), "{quiet}: {}", err(&o));
    }
}
