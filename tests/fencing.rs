//! Fencing and conditional deletes, against a real `serve` and PostgreSQL:
//! while a lease is live, every write that replaces what its holder uses
//! (`PUT …/data`, an upsert that replaces api_hash or session_data,
//! `DELETE …/data`) must carry the live fence; `DELETE /sessions/{id}`
//! honours `If-Match`; a purge waits for the lease.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::leases::{Env, HASH, create, expire, release, start, take};
use common::server::Response;
use serde_json::{Value, json};

const OTHER_HASH: &str = "fedcba9876543210fedcba9876543210";

fn code(r: &Response) -> (u16, Value) {
    let code = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()["code"].clone()
    };
    (r.status, code)
}

fn fenced(fence: Option<&str>) -> Vec<(&str, &str)> {
    fence.map(|f| ("lease-fence", f)).into_iter().collect()
}

/// `POST /api/v1/sessions` for u1/s1 with `body`'s fields added.
fn upsert(env: &Env, body: Value, fence: Option<&str>) -> Response {
    let mut full = json!({"user_id": "u1", "session_id": "s1", "api_id": 1, "api_hash": HASH});
    for (k, v) in body.as_object().unwrap() {
        full[k] = v.clone();
    }
    env.admin.send(
        "POST",
        "/api/v1/sessions",
        Some(("application/json", full.to_string().as_bytes())),
        &fenced(fence),
    )
}

fn put_blob(env: &Env, blob: &[u8], fence: Option<&str>) -> Response {
    env.admin.send(
        "PUT",
        "/api/v1/sessions/s1/data",
        Some(("application/octet-stream", blob)),
        &fenced(fence),
    )
}

fn delete_blob(env: &Env, fence: Option<&str>) -> Response {
    env.admin
        .send("DELETE", "/api/v1/sessions/s1/data", None, &fenced(fence))
}

/// Session s1 with blob `v1`, leased to host-a; its fence.
async fn leased_blob() -> (Env, String) {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    assert_eq!(put_blob(&env, b"v1", None).status, 200);
    let (_, a) = take(&env.reader, "s1", "host-a", None);
    let fa = a["fence"].as_i64().unwrap().to_string();
    (env, fa)
}

/// The stored api_hash, blob and version of s1 (an audited read).
fn stored(env: &Env) -> (String, Option<Vec<u8>>, i64) {
    let r = env.reader.get("/api/v1/sessions/s1");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let blob = v["session_data"]
        .as_str()
        .map(|b| BASE64.decode(b).unwrap());
    let version = v["version"].as_i64().unwrap();
    (v["api_hash"].as_str().unwrap().to_owned(), blob, version)
}

fn b64(bytes: &[u8]) -> Value {
    json!(BASE64.encode(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upsert_that_replaces_credentials_needs_the_live_fence() {
    let env = start().await;
    assert_eq!(
        upsert(&env, json!({"session_data": b64(b"v1")}), None).status,
        201
    );
    let (_, a) = take(&env.reader, "s1", "host-a", None);
    let fa = a["fence"].as_i64().unwrap().to_string();
    let before = stored(&env);

    // A new api_hash, or a new blob, without the fence: refused, nothing written.
    let r = upsert(&env, json!({"api_hash": OTHER_HASH}), None);
    assert_eq!(code(&r), (409, json!("lease_required")));
    let r = upsert(&env, json!({"session_data": b64(b"v2")}), None);
    assert_eq!(code(&r), (409, json!("lease_required")));
    // A fence that is not the live one: stale, whatever the write.
    for body in [
        json!({"api_hash": OTHER_HASH}),
        json!({"session_data": b64(b"v2")}),
        json!({"username": "meta"}),
    ] {
        let r = upsert(&env, body, Some("999999"));
        assert_eq!(code(&r), (409, json!("stale_lease")));
    }
    assert_eq!(code(&upsert(&env, json!({}), Some("x"))).0, 400);
    assert_eq!(stored(&env), before, "refused upserts write nothing");

    // The stored values sent again change only metadata: no fence needed.
    let r = upsert(
        &env,
        json!({"username": "meta", "is_authorized": true}),
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["username"], "meta");
    let r = upsert(&env, json!({"session_data": b64(b"v1")}), None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // A metadata-only PATCH needs none either.
    let p = env
        .admin
        .patch_json("/api/v1/sessions/s1", &json!({"auto_reply_enabled": true}));
    assert_eq!(p.status, 200);
    let (hash, blob, _) = stored(&env);
    assert_eq!((hash.as_str(), blob.as_deref()), (HASH, Some(&b"v1"[..])));

    // The holder's fence replaces both.
    let both = json!({"api_hash": OTHER_HASH, "session_data": b64(b"v2")});
    assert_eq!(upsert(&env, both, Some(&fa)).status, 200);
    let (hash, blob, _) = stored(&env);
    assert_eq!(
        (hash.as_str(), blob.as_deref()),
        (OTHER_HASH, Some(&b"v2"[..]))
    );

    // Released: no lease is live, so no fence is needed, and the old one is stale.
    assert_eq!(
        release(&env.reader, "s1", "host-a", fa.parse().unwrap()).0,
        204
    );
    let r = upsert(&env, json!({"session_data": b64(b"v3")}), Some(&fa));
    assert_eq!(code(&r), (409, json!("stale_lease")));
    assert_eq!(
        upsert(&env, json!({"session_data": b64(b"v3")}), None).status,
        200
    );
    // A create carrying a fence has no lease to match.
    let r = env.admin.send(
        "POST",
        "/api/v1/sessions",
        Some((
            "application/json",
            json!({"user_id": "u2", "api_id": 1, "api_hash": HASH})
                .to_string()
                .as_bytes(),
        )),
        &fenced(Some(&fa)),
    );
    assert_eq!(code(&r), (409, json!("stale_lease")));
    assert_eq!(env.admin.get("/api/v1/users/u2").status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn clearing_the_blob_is_fenced() {
    let (env, fa) = leased_blob().await;

    assert_eq!(
        code(&delete_blob(&env, None)),
        (409, json!("lease_required"))
    );
    assert_eq!(
        code(&delete_blob(&env, Some("999999"))),
        (409, json!("stale_lease"))
    );
    assert_eq!(code(&delete_blob(&env, Some("x"))).0, 400);
    assert_eq!(
        stored(&env).1.as_deref(),
        Some(&b"v1"[..]),
        "nothing cleared"
    );

    let r = delete_blob(&env, Some(&fa));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["has_session_data"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_of_a_session_honours_if_match() {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    let (_, _, version) = stored(&env);
    let delete = |query: &str, tag: &str| {
        env.admin.send(
            "DELETE",
            &format!("/api/v1/sessions/s1{query}"),
            None,
            &[("if-match", tag)],
        )
    };
    let wrong = format!("\"{}\"", version + 100);
    for query in ["", "?purge=true"] {
        assert_eq!(
            code(&delete(query, &wrong)),
            (412, json!("precondition_failed"))
        );
        let r = env.admin.get("/api/v1/users/u1");
        assert_eq!(r.status, 200, "the row is still there");
        assert_eq!(r.json()["is_active"], true);
        assert_eq!(r.json()["version"], version, "untouched");
    }
    assert_eq!(code(&delete("", "\"abc\"")).0, 412);
    assert_eq!(code(&delete("", "nonsense")).0, 400);

    assert_eq!(delete("", &format!("\"{version}\"")).status, 204);
    let r = env.admin.get("/api/v1/users/u1");
    assert_eq!(r.json()["is_active"], false);
    let deactivated = r.json()["version"].as_i64().unwrap();
    // The tag of the session before deactivation no longer matches.
    let r = delete("?purge=true", &format!("\"{version}\""));
    assert_eq!(code(&r), (412, json!("precondition_failed")));
    assert_eq!(env.admin.get("/api/v1/users/u1").status, 200);
    assert_eq!(
        delete("?purge=true", &format!("\"{deactivated}\"")).status,
        204
    );
    assert_eq!(env.admin.get("/api/v1/users/u1").status, 404);
    // No such session: 404 before any precondition.
    assert_eq!(code(&delete("", "*")).0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_waits_for_the_live_lease() {
    let env = start().await;
    create(&env.admin, "u1", "s1");
    let (_, a) = take(&env.reader, "s1", "host-a", None);
    let fa = a["fence"].as_i64().unwrap();

    let r = env.admin.delete("/api/v1/sessions/s1?purge=true");
    assert_eq!(code(&r), (409, json!("lease_held")));
    assert_eq!(r.json()["holder"], "host-a");
    // Deactivation is how the holder is told to let go: allowed.
    assert_eq!(env.admin.delete("/api/v1/sessions/s1").status, 204);
    let r = env.admin.delete("/api/v1/sessions/s1?purge=true");
    assert_eq!(code(&r), (409, json!("lease_held")));
    assert_eq!(env.admin.get("/api/v1/users/u1").status, 200);

    // Released, or expired: the purge goes through.
    assert_eq!(release(&env.reader, "s1", "host-a", fa).0, 204);
    assert_eq!(
        env.admin.delete("/api/v1/sessions/s1?purge=true").status,
        204
    );
    create(&env.admin, "u2", "s2");
    take(&env.reader, "s2", "host-a", None);
    expire(&env.db, "s2").await;
    assert_eq!(
        env.admin.delete("/api/v1/sessions/s2?purge=true").status,
        204
    );
}

/// A writer that lost its lease, by every route that writes the blob or the
/// api_hash: refused, and the live holder's blob stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_stale_writer_cannot_overwrite_the_blob_by_any_route() {
    // No lease: no fence needed (in `leased_blob`).
    let (env, fa) = leased_blob().await;
    assert_eq!(
        code(&put_blob(&env, b"v2", None)),
        (409, json!("lease_required"))
    );
    assert_eq!(
        code(&put_blob(&env, b"v2", Some("999999"))),
        (409, json!("stale_lease"))
    );
    assert_eq!(put_blob(&env, b"v2", Some("x")).status, 400);
    assert_eq!(put_blob(&env, b"v2", Some(&fa)).status, 200);

    // host-a's lease expires and host-b takes over: every late write of
    // host-a fails.
    expire(&env.db, "s1").await;
    let (_, b) = take(&env.reader, "s1", "host-b", None);
    let fb = b["fence"].as_i64().unwrap();
    assert_eq!(put_blob(&env, b"v3", Some(&fb.to_string())).status, 200);
    let stale_writes = |env: &Env| {
        [
            put_blob(env, b"stale auth key", Some(&fa)),
            upsert(
                env,
                json!({"session_data": b64(b"stale auth key")}),
                Some(&fa),
            ),
            upsert(env, json!({"api_hash": OTHER_HASH}), Some(&fa)),
            delete_blob(env, Some(&fa)),
        ]
    };
    for r in stale_writes(&env) {
        assert_eq!(code(&r), (409, json!("stale_lease")));
    }
    assert_eq!(stored(&env).1.as_deref(), Some(&b"v3"[..]));

    // host-b releases: no lease is live, and host-a's fence is still stale.
    assert_eq!(release(&env.reader, "s1", "host-b", fb).0, 204);
    for r in stale_writes(&env) {
        assert_eq!(code(&r), (409, json!("stale_lease")));
    }
    let (hash, blob, _) = stored(&env);
    assert_eq!((hash.as_str(), blob.as_deref()), (HASH, Some(&b"v3"[..])));
}

/// `pg_dump -Fc` of the test database, as an operator's backup.
fn backup(env: &Env) -> Vec<u8> {
    let out = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner"])
        .arg(format!("--dbname={}", env.db.url))
        .output()
        .expect("pg_dump runs (install postgresql-client)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Restores `dump` over the test database (`pg_restore --clean`).
fn restore(env: &Env, dump: &[u8]) {
    use std::io::Write;
    let mut child = std::process::Command::new("pg_restore")
        .args([
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
        ])
        .arg(format!("--dbname={}", env.db.url))
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("pg_restore runs (install postgresql-client)");
    child.stdin.take().unwrap().write_all(dump).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A restore from a backup brings the fence sequence back to where it was.
/// The fences handed out since must still never be handed out again: a
/// holder from before the restore would otherwise write under the new
/// holder's fence, over its blob.
#[tokio::test(flavor = "multi_thread")]
async fn no_fence_is_handed_out_again_after_a_restore_from_backup() {
    let (mut env, _) = leased_blob().await;
    let dump = backup(&env);
    expire(&env.db, "s1").await;
    let (_, b) = take(&env.reader, "s1", "host-b", None);
    let fb = b["fence"].as_i64().unwrap().to_string();
    assert_eq!(put_blob(&env, b"v2", Some(&fb)).status, 200);

    env.server.stop();
    restore(&env, &dump);
    env.server = common::server::Server::start(&env.db, &env.key);
    let token = common::server::create_token(&env.db, "admin-after-restore", "admin");
    env.admin = env.server.client().with_token(&token);
    env.reader = env.admin.clone();
    // host-a's lease, as restored, lapses; host-c takes the session and
    // writes its blob.
    expire(&env.db, "s1").await;
    let (status, c) = take(&env.reader, "s1", "host-c", None);
    assert_eq!(status, 200, "{c}");
    let fc = c["fence"].as_i64().unwrap().to_string();
    assert_ne!(fc, fb, "host-b's fence was handed out again, to host-c");
    assert_eq!(put_blob(&env, b"v3", Some(&fc)).status, 200);
    // host-b, still running from before the restore, writes late.
    assert_eq!(
        code(&put_blob(&env, b"stale auth key", Some(&fb))),
        (409, json!("stale_lease"))
    );
    assert_eq!(stored(&env).1.as_deref(), Some(&b"v3"[..]));
}

/// A lease that was live when its session was deactivated stays (that is
/// how its holder is told), but it serves and writes nothing: its fence
/// moves no blob, its holder reads no credentials, nobody else can take
/// the session, and a purge still waits for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_lease_on_a_deactivated_session_serves_and_writes_nothing() {
    let (env, fa) = leased_blob().await;
    assert_eq!(env.admin.delete("/api/v1/sessions/s1").status, 204);
    let inactive = (409, json!("session_inactive"));
    assert_eq!(code(&put_blob(&env, b"v2", Some(&fa))), inactive);
    assert_eq!(
        code(&upsert(
            &env,
            json!({"session_data": b64(b"v2")}),
            Some(&fa)
        )),
        inactive
    );
    assert_eq!(code(&delete_blob(&env, Some(&fa))), inactive);
    assert_eq!(code(&env.reader.get("/api/v1/sessions/s1/data")), inactive);
    assert_eq!(
        code(&env.reader.get("/api/v1/users/u1/session?boot=true")),
        inactive
    );
    let (status, other) = take(&env.reader, "s1", "host-b", None);
    assert_eq!((status, other["code"].clone()), inactive);
    assert_eq!(
        code(&env.admin.delete("/api/v1/sessions/s1?purge=true")),
        (409, json!("lease_held"))
    );
    // Back on: the blob is the one before the deactivation.
    assert_eq!(
        env.admin
            .post_json("/api/v1/sessions/s1/reactivate", &json!({}))
            .status,
        200
    );
    assert_eq!(stored(&env).1.as_deref(), Some(&b"v1"[..]));
}

/// What a live lease does not fence (docs/SECURITY.md "Leases and
/// fencing"): metadata, `phone`, `api_id` and a new `session_id` (the lease
/// follows the rename) go through without `Lease-Fence`, and leave the
/// blob and api_hash the holder uses as they were.
#[tokio::test(flavor = "multi_thread")]
async fn metadata_phone_api_id_and_a_rename_need_no_fence() {
    let (env, fa) = leased_blob().await;
    let r = upsert(
        &env,
        json!({"api_id": 99, "phone": "+15550001111", "username": "renamed"}),
        None,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = env
        .admin
        .patch_json("/api/v1/sessions/s1", &json!({"is_authorized": true}));
    assert_eq!(r.status, 200);
    let mut renamed =
        json!({"user_id": "u1", "session_id": "s1-new", "api_id": 99, "api_hash": HASH});
    let r = env.admin.post_json("/api/v1/sessions", &renamed);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let lease = env.reader.get("/api/v1/sessions/s1-new/lease");
    assert_eq!(lease.status, 200);
    assert_eq!(lease.json()["fence"].as_i64().unwrap().to_string(), fa);
    let read = env.reader.get("/api/v1/sessions/s1-new");
    assert_eq!(read.json()["api_hash"], HASH);
    assert_eq!(read.json()["session_data"], b64(b"v1"));
    // A new api_hash under the new name still needs the fence.
    renamed["api_hash"] = json!(OTHER_HASH);
    let r = env.admin.post_json("/api/v1/sessions", &renamed);
    assert_eq!(code(&r), (409, json!("lease_required")));
}
