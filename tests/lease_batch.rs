//! Batched takes and releases (`POST /api/v1/leases/take`, `/release`)
//! against a real `serve` and PostgreSQL: what is granted and what is not,
//! one audit row per change of hands and none per renewal, fences that only
//! grow, two holders racing over the same sessions, and the 422s.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::TestDb;
use common::leases::{create, expire, start, take};
use common::server::Http;
use serde_json::{Value, json};

fn take_batch(api: &Http, holder: &str, ttl: Option<i64>, ids: &[&str]) -> (u16, Value) {
    let mut body = json!({ "holder": holder, "session_ids": ids });
    if let Some(t) = ttl {
        body["ttl_seconds"] = json!(t);
    }
    let r = api.post_json("/api/v1/leases/take", &body);
    (r.status, r.json())
}

fn release_batch(api: &Http, holder: &str, fences: &BTreeMap<String, i64>) -> (u16, Value) {
    let r = api.post_json(
        "/api/v1/leases/release",
        &json!({ "holder": holder, "fences": fences }),
    );
    (r.status, r.json())
}

/// session_id → fence of the granted leases, checking the holder.
fn granted(body: &Value, holder: &str) -> BTreeMap<String, i64> {
    body["granted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["holder"], holder, "{l}");
            (
                l["session_id"].as_str().unwrap().to_owned(),
                l["fence"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The lease audit rows of a session, oldest first: (kind, details).
fn lease_trail(admin: &Http, sid: &str) -> Vec<(String, Value)> {
    let trail = admin
        .get(&format!("/api/v1/sessions/{sid}/activity"))
        .json();
    trail["activity"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["activity_type"].as_str().unwrap().starts_with("lease"))
        .map(|a| {
            assert_eq!(a["actor"], "agent", "{a}");
            (
                a["activity_type"].as_str().unwrap().to_owned(),
                a["details"].clone(),
            )
        })
        .rev()
        .collect()
}

async fn count_changes(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM session_activity \
             WHERE activity_type IN ('lease_taken', 'lease_taken_over')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Makes the leases of the holders matching `pattern` (LIKE) look expired.
async fn expire_held_by(db: &TestDb, pattern: &str) {
    db.client()
        .await
        .execute(
            "UPDATE session_leases SET expires_at = now() - interval '1 second' WHERE holder LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_take_grants_what_is_free_and_audits_each_change_once() {
    let env = start().await;
    let r = &env.reader;
    for i in 0..6 {
        create(&env.admin, &format!("u{i}"), &format!("s{i}"));
    }
    // s1: another holder's live lease; s3: already ours; s4: another
    // holder's, expired; s2: deactivated; s0, s5: free.
    assert_eq!(take(r, "s1", "host-b", None).0, 200);
    let (_, ours) = take(r, "s3", "host-a", Some(10));
    let (_, old) = take(r, "s4", "host-b", None);
    expire(&env.db, "s4").await;
    assert_eq!(env.admin.delete("/api/v1/sessions/s2").status, 204);

    let ids = ["s5", "s0", "s1", "s2", "s3", "s4", "nope", "s0"];
    let (status, body) = take_batch(r, "host-a", Some(30), &ids);
    assert_eq!(status, 200, "{body}");
    let got = granted(&body, "host-a");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["s0", "s3", "s4", "s5"],
        "granted, in session_id order: {body}"
    );
    assert_eq!(strings(&body["not_granted"]), ["s1", "s2", "nope"]);
    assert_eq!(
        got["s3"],
        ours["fence"].as_i64().unwrap(),
        "a renewal keeps its fence"
    );
    assert!(
        got["s4"] > old["fence"].as_i64().unwrap(),
        "a take-over grows it"
    );
    let lease = |sid: &str| {
        body["granted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["session_id"] == sid)
            .unwrap()
            .clone()
    };
    assert!(
        common::leases::time(&lease("s3")["expires_at"])
            > common::leases::time(&ours["expires_at"])
    );
    let secs =
        (common::leases::time(&lease("s0")["expires_at"]) - chrono::Utc::now()).num_seconds();
    assert!((25..=31).contains(&secs), "ttl_seconds 30: {secs}");
    assert_eq!(
        r.get("/api/v1/sessions/s1/lease").json()["holder"],
        "host-b"
    );

    // One audit row per change of hands, with the single take's details.
    let kinds = |sid: &str| -> Vec<String> {
        lease_trail(&env.admin, sid)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let s0 = lease_trail(&env.admin, "s0");
    assert_eq!(s0.len(), 1);
    assert_eq!(
        s0[0],
        (
            "lease_taken".to_owned(),
            json!({"holder": "host-a", "fence": got["s0"], "ttl_seconds": 30})
        )
    );
    assert_eq!(kinds("s3"), ["lease_taken"], "the renewal is not audited");
    let s4 = lease_trail(&env.admin, "s4");
    assert_eq!(
        s4[1],
        (
            "lease_taken_over".to_owned(),
            json!({"holder": "host-a", "fence": got["s4"], "ttl_seconds": 30,
                   "prior_holder": "host-b"})
        )
    );
    assert_eq!(kinds("s1"), ["lease_taken"], "host-b's own take only");
    assert!(kinds("s2").is_empty());

    // The same batch again: every granted one renewed, nothing audited.
    let before = count_changes(&env.db).await;
    let (status, again) = take_batch(r, "host-a", None, &ids);
    assert_eq!(status, 200);
    assert_eq!(granted(&again, "host-a"), got, "renewals keep their fences");
    assert_eq!(count_changes(&env.db).await, before);

    // Released and taken again by another holder: a larger fence.
    let (status, rel) = release_batch(r, "host-a", &got);
    assert_eq!(status, 200, "{rel}");
    let (_, b) = take_batch(r, "host-b", None, &["s0", "s4"]);
    let b = granted(&b, "host-b");
    assert!(b["s0"] > got["s0"] && b["s4"] > got["s4"], "{b:?} {got:?}");
    assert_eq!(
        kinds("s0"),
        ["lease_taken", "lease_released", "lease_taken"]
    );
}

/// Two holders take the same 500 sessions at once, from free, from expired
/// (take-overs) and from a mix: each session is granted to exactly one of
/// them, neither request fails, and every change of hands is audited once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_batch_takes_never_grant_a_session_twice() {
    let env = start().await;
    let ids: Vec<String> = (0..500).map(|i| format!("s{i:03}")).collect();
    std::thread::scope(|scope| {
        for part in ids.chunks(125) {
            let admin = &env.admin;
            scope.spawn(move || {
                for sid in part {
                    create(admin, &format!("u{}", &sid[1..]), sid);
                }
            });
        }
    });
    let ascending: Vec<&str> = ids.iter().map(String::as_str).collect();
    let descending: Vec<&str> = ascending.iter().rev().copied().collect();
    let mut fences: HashMap<String, i64> = HashMap::new();
    for round in 0..3 {
        let before = count_changes(&env.db).await;
        let barrier = std::sync::Barrier::new(2);
        let (x, y) = std::thread::scope(|scope| {
            let x = scope.spawn(|| {
                barrier.wait();
                take_batch(&env.reader, "host-x", Some(30), &ascending)
            });
            let y = scope.spawn(|| {
                barrier.wait();
                take_batch(&env.reader, "host-y", Some(30), &descending)
            });
            (x.join().unwrap(), y.join().unwrap())
        });
        assert_eq!(x.0, 200, "round {round}: {}", x.1);
        assert_eq!(y.0, 200, "round {round}: {}", y.1);
        let (gx, gy) = (granted(&x.1, "host-x"), granted(&y.1, "host-y"));
        let both: BTreeSet<&String> = gx.keys().filter(|s| gy.contains_key(*s)).collect();
        assert!(both.is_empty(), "round {round}: granted twice: {both:?}");
        assert_eq!(gx.len() + gy.len(), 500, "round {round}: every one granted");
        assert_eq!(
            strings(&x.1["not_granted"]).len() + strings(&y.1["not_granted"]).len(),
            500
        );
        for (sid, fence) in gx.iter().chain(&gy) {
            if let Some(old) = fences.insert(sid.clone(), *fence) {
                assert!(*fence > old, "round {round}: {sid}: {fence} after {old}");
            }
        }
        assert_eq!(
            count_changes(&env.db).await - before,
            500,
            "round {round}: one audit row per change of hands"
        );
        // Next round: every lease expired (take-overs), then x's released
        // and y's expired.
        if round == 0 {
            expire_held_by(&env.db, "%").await;
        } else {
            let (status, body) = release_batch(&env.reader, "host-x", &gx);
            assert_eq!((status, body["stale"].clone()), (200, json!([])));
            expire_held_by(&env.db, "host-y").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_release_releases_only_matching_fences() {
    let env = start().await;
    let r = &env.reader;
    for i in 0..5 {
        create(&env.admin, &format!("u{i}"), &format!("s{i}"));
    }
    let (_, a) = take_batch(r, "host-a", None, &["s0", "s1", "s2", "s3"]);
    let a = granted(&a, "host-a");
    let (_, b) = take_batch(r, "host-b", None, &["s4"]);
    let b = granted(&b, "host-b");

    let mut fences = BTreeMap::new();
    fences.insert("s0".to_owned(), a["s0"]);
    fences.insert("s1".to_owned(), a["s1"] + 1); // not its fence
    fences.insert("s2".to_owned(), a["s2"]);
    fences.insert("s4".to_owned(), b["s4"]); // another holder's
    fences.insert("nope".to_owned(), 1); // no such session
    let (status, body) = release_batch(r, "host-a", &fences);
    assert_eq!(status, 200, "{body}");
    assert_eq!(strings(&body["released"]), ["s0", "s2"]);
    assert_eq!(strings(&body["stale"]), ["nope", "s1", "s4"]);
    assert_eq!(
        r.get("/api/v1/sessions/s0/lease").json()["code"],
        "no_lease"
    );
    assert_eq!(
        r.get("/api/v1/sessions/s1/lease").json()["holder"],
        "host-a"
    );
    assert_eq!(
        r.get("/api/v1/sessions/s3/lease").json()["holder"],
        "host-a"
    );
    assert_eq!(
        r.get("/api/v1/sessions/s4/lease").json()["holder"],
        "host-b"
    );
    for sid in ["s0", "s2"] {
        let trail = lease_trail(&env.admin, sid);
        assert_eq!(trail.len(), 2, "{trail:?}");
        assert_eq!(
            trail[1],
            (
                "lease_released".to_owned(),
                json!({"holder": "host-a", "fence": a[sid]})
            )
        );
    }
    assert_eq!(lease_trail(&env.admin, "s1").len(), 1);
    assert_eq!(lease_trail(&env.admin, "s4").len(), 1);

    // Released twice: stale, nothing audited again.
    let (status, body) = release_batch(r, "host-a", &fences);
    assert_eq!(status, 200);
    assert_eq!(body["released"], json!([]));
    assert_eq!(lease_trail(&env.admin, "s0").len(), 2);
    // Nothing named, nothing done.
    assert_eq!(
        release_batch(r, "host-a", &BTreeMap::new()),
        (200, json!({"released": [], "stale": []}))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_batch_routes_refuse_bad_input_with_a_422() {
    let env = start().await;
    let r = &env.reader;
    create(&env.admin, "u1", "s1");
    let field = |(status, body): (u16, Value)| (status, body["field"].as_str().map(str::to_owned));
    let f = |name: &str| (422, Some(name.to_owned()));

    assert_eq!(
        field(take_batch(r, "bad holder/..", None, &["s1"])),
        f("holder")
    );
    assert_eq!(field(take_batch(r, "", None, &["s1"])), f("holder"));
    assert_eq!(
        field(take_batch(r, "h", Some(4), &["s1"])),
        f("ttl_seconds")
    );
    assert_eq!(
        field(take_batch(r, "h", Some(3601), &["s1"])),
        f("ttl_seconds")
    );
    assert_eq!(
        field(take_batch(r, "h", None, &["s1", "bad id"])),
        f("session_ids")
    );
    assert_eq!(
        field(take_batch(r, "h", None, &["s1", ""])),
        f("session_ids")
    );
    let missing = r.post_json("/api/v1/leases/take", &json!({"holder": "h"}));
    assert_eq!(missing.status, 422);
    let unknown = r.post_json(
        "/api/v1/leases/take",
        &json!({"holder": "h", "session_ids": [], "extra": 1}),
    );
    assert_eq!(unknown.status, 422);
    // Nothing was taken by the refused requests.
    assert_eq!(r.get("/api/v1/sessions/s1/lease").status, 404);

    // 10,000 long ids (over the default body limit) are accepted; one more is not.
    let many: Vec<String> = (0..10_000)
        .map(|i| format!("session-{i:06}-{}", "x".repeat(100)))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let (status, body) = take_batch(r, "h", None, &refs);
    assert_eq!(status, 200);
    assert_eq!(body["not_granted"].as_array().unwrap().len(), 10_000);
    let mut too_many = refs.clone();
    too_many.push("s1");
    assert_eq!(field(take_batch(r, "h", None, &too_many)), f("session_ids"));

    let fences = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    };
    assert_eq!(
        field(release_batch(r, "bad holder", &fences(&[("s1", 1)]))),
        f("holder")
    );
    assert_eq!(
        field(release_batch(r, "h", &fences(&[("bad id", 1)]))),
        f("session_id")
    );
    let too_many: BTreeMap<String, i64> = (0..10_001).map(|i| (format!("s-{i}"), 1)).collect();
    assert_eq!(field(release_batch(r, "h", &too_many)), f("fences"));
    let missing = r.post_json("/api/v1/leases/release", &json!({"holder": "h"}));
    assert_eq!(missing.status, 422);
}
