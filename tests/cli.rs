//! The binary as an operator runs it: exit codes, files, messages.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use common::{TestDb, TestKey, bin, open_vault};
fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"],
        &["keygen", "--help"],
        &["keys", "--help"],
        &["keys", "status", "--help"],
        &["serve", "--help"],
        &["token", "--help"],
        &["token", "create", "--help"],
        &["token", "list", "--help"],
        &["token", "revoke", "--help"],
        &["session", "--help"],
        &["session", "put", "--help"],
        &["session", "get", "--help"],
        &["session", "list", "--help"],
        &["session", "deactivate", "--help"],
        &["stats", "--help"],
        &["import-env", "--help"],
        &["boot", "--help"],
    ] {
        let out = bin().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out).0.contains("Usage:"), "{args:?}");
    }
}

#[test]
fn keygen_prints_a_32_byte_base64_key() {
    use base64::Engine;
    let out = bin().arg("keygen").output().unwrap();
    assert!(out.status.success());
    let (stdout, _) = text(&out);
    let key = base64::engine::general_purpose::STANDARD
        .decode(stdout.trim())
        .unwrap();
    assert_eq!(key.len(), 32);
    let again = bin().arg("keygen").output().unwrap();
    assert_ne!(text(&again).0, stdout, "every key is fresh");
}

#[test]
fn keygen_writes_a_private_file_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/master.key");
    let out = bin().args(["keygen", "--out"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, stderr) = text(&out);
    assert!(stdout.is_empty(), "the key goes to the file only");
    assert!(stderr.contains("Back it up"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&path).unwrap();

    let out = bin().args(["keygen", "--out"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        first,
        "the old key is intact"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bin()
        .args(["keygen", "--force", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_ne!(std::fs::read_to_string(&path).unwrap(), first);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "--force also tightens the mode");
}

#[test]
fn missing_configuration_is_named() {
    let out = bin().args(["keys", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).1.contains("DATABASE_URL is not set"));
}

#[test]
fn unreachable_database_is_exit_4_with_the_cause() {
    let out = bin()
        .args(["migrate"])
        .env(
            "DATABASE_URL",
            "postgres://nobody:hunter2secret@127.0.0.1:1/none?sslmode=disable",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{:?}", text(&out));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("refused"),
        "the cause is shown: {stderr}"
    );
    assert!(!stderr.contains("hunter2secret"), "the password is not");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_an_empty_database_then_up_to_date() {
    let db = TestDb::empty().await;
    let out = bin()
        .args(["keys", "status"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out).1.contains("run `vibee-sessions migrate`"),
        "{:?}",
        text(&out)
    );
    let out = bin()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.contains("applied"));
    let out = bin()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(text(&out).0.contains("up to date"));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_status_shows_keys_and_refuses_a_wrong_master_key() {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let vault = open_vault(&db, &key).await;
    let kek = vault.master().current().kek_id().to_string();
    drop(vault);

    let out = bin()
        .args(["keys", "status", "--json"])
        .env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", key.base64())
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let doc: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    assert_eq!(doc["master_key"]["kek_id"], kek.as_str());
    assert_eq!(doc["master_key"]["matches"], true);
    assert_eq!(doc["keys"][0]["state"], "primary");
    assert_eq!(doc["keys"][0]["kek_id"], kek.as_str());
    assert!(
        doc["keys"][0].get("wrapped_key").is_none(),
        "no key material"
    );

    let out = bin()
        .args(["keys", "status"])
        .env("DATABASE_URL", &db.url)
        .env("MASTER_KEY", TestKey::generate().base64())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (stdout, stderr) = text(&out);
    assert!(stdout.contains("DOES NOT MATCH"));
    assert!(stderr.contains("the master key does not match the one that wrapped the data keys"));
}

#[test]
fn a_key_file_readable_by_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    std::fs::write(&path, TestKey::generate().base64()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = bin()
        .args(["keys", "status"])
        .env("DATABASE_URL", common::DEFAULT_ADMIN_URL)
        .env("MASTER_KEY_FILE", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
}

/// A key file in a directory others may write could be swapped for
/// theirs; such a directory is refused (a sticky one, like /tmp, is not).
#[test]
fn a_key_file_in_a_directory_writable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let path = keys.join("master.key");
    std::fs::write(&path, TestKey::generate().base64()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = || {
        bin()
            .args(["keys", "status"])
            .env("DATABASE_URL", common::DEFAULT_ADMIN_URL)
            .env("MASTER_KEY_FILE", &path)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(stderr.contains("writable by group or others"), "{stderr}");
    assert!(stderr.contains("chmod go-w"), "{stderr}");
    // Sticky (mode 1777, as /tmp): strangers cannot replace our file there.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (_, stderr) = text(&run());
    assert!(!stderr.contains("writable by group or others"), "{stderr}");
}

#[test]
fn a_malformed_master_key_is_named_not_shown() {
    let out = bin()
        .args(["keys", "status"])
        .env("DATABASE_URL", common::DEFAULT_ADMIN_URL)
        .env("MASTER_KEY", "c2hvcnQtc2VjcmV0LXZhbHVl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("MASTER_KEY decodes to 18 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("c2hvcnQtc2VjcmV0LXZhbHVl"));
}

/// `--scope` reads as its help says (commas, repeats, or several values),
/// a revoked token's name can be given again, and refusals read as sentences.
#[tokio::test(flavor = "multi_thread")]
async fn token_scopes_in_every_form_and_names_reused_after_revocation() {
    let db = TestDb::new().await;
    let token = |args: &[&str]| {
        bin()
            .args(["token", "create"])
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap()
    };
    for (name, scopes) in [
        ("commas", &["--scope", "sessions:read,sessions:list"][..]),
        (
            "repeated",
            &["--scope", "sessions:read", "--scope", "sessions:list"][..],
        ),
        ("spaced", &["--scope", "sessions:read", "sessions:list"][..]),
    ] {
        let out = token(&[&["--name", name][..], scopes].concat());
        assert!(out.status.success(), "{name}: {:?}", text(&out));
        assert!(
            text(&out).1.contains("scopes sessions:read,sessions:list"),
            "{name}: {:?}",
            text(&out)
        );
    }
    let taken = token(&["--name", "commas", "--scope", "admin"]);
    assert_eq!(taken.status.code(), Some(65), "{:?}", text(&taken));
    assert!(
        text(&taken)
            .1
            .contains("invalid name: is already taken by another token"),
        "{:?}",
        text(&taken)
    );
    let bad = token(&["--name", "a b", "--scope", "admin"]);
    assert!(
        text(&bad).1.contains("invalid name: may hold only letters"),
        "{:?}",
        text(&bad)
    );
    let revoke = bin()
        .args(["token", "revoke", "commas"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(revoke.status.success());
    let again = token(&["--name", "commas", "--scope", "admin"]);
    assert!(
        again.status.success(),
        "a revoked name is free: {:?}",
        text(&again)
    );
    let list = bin()
        .args(["token", "list"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let listing = text(&list).0;
    assert_eq!(listing.matches("commas").count(), 2, "{listing}");
    assert!(
        listing.contains("revoked") && listing.contains("active"),
        "{listing}"
    );
}
