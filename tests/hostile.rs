//! Hostile input: hundreds of malformed and hostile requests, sent
//! byte for byte over raw TCP to a real `serve`. Each must be answered with a
//! 4xx and our JSON error body `{"error", "code"}` — never a 5xx, never a
//! hang — and the server must still be healthy afterwards.
//!
//! A few requests are broken at the HTTP layer itself (oversized or invalid
//! header bytes, a request line that is not HTTP); hyper answers those before
//! any of our code runs, with a bare 4xx (no JSON body) or by closing the
//! connection. They are marked `Layer::Http` and held to "4xx or closed, never
//! 5xx".

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::server::{HASH, Server, create_token};
use common::{TestDb, TestKey};
use serde_json::{Value, json};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Layer {
    /// Reaches the application: a 4xx JSON error is required.
    App,
    /// Refused by the HTTP parser: a 4xx of any shape, or a closed connection.
    Http,
}

struct Case {
    name: String,
    request: Vec<u8>,
    layer: Layer,
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Sends raw bytes and reads the whole answer (`Connection: close`). `None`
/// when the server closed the connection without answering.
fn raw(addr: &str, request: &[u8]) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // The server may answer (and close) before reading a large request whole.
    let _ = stream.write_all(request);
    read_reply(&mut stream)
}

fn read_reply(stream: &mut TcpStream) -> Option<Reply> {
    let mut buf = Vec::new();
    if let Err(e) = stream.read_to_end(&mut buf) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server hung: no answer in 60 s"
        );
    }
    parse_reply(&buf)
}

fn parse_reply(buf: &[u8]) -> Option<Reply> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let mut body = buf[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    Some(Reply { status, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

/// A complete HTTP/1.1 request.
fn request(method: &str, path: &[u8], headers: &[(&str, &[u8])], body: Option<&[u8]>) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(path);
    r.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        r.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        r.extend_from_slice(body);
    }
    r
}

struct Corpus {
    token: String,
    cases: Vec<Case>,
}

impl Corpus {
    fn auth(&self) -> Vec<u8> {
        format!("Bearer {}", self.token).into_bytes()
    }

    fn add(&mut self, name: impl Into<String>, request: Vec<u8>, layer: Layer) {
        self.cases.push(Case {
            name: name.into(),
            request,
            layer,
        });
    }

    /// An authenticated request with a body of the given content type.
    fn with_body(
        &mut self,
        name: impl Into<String>,
        method: &str,
        path: &str,
        ct: &str,
        body: &[u8],
    ) {
        let auth = self.auth();
        let r = request(
            method,
            path.as_bytes(),
            &[("authorization", &auth), ("content-type", ct.as_bytes())],
            Some(body),
        );
        self.add(name, r, Layer::App);
    }

    fn json(&mut self, name: impl Into<String>, method: &str, path: &str, body: &[u8]) {
        self.with_body(name, method, path, "application/json", body);
    }

    /// An authenticated request without a body.
    fn bare(&mut self, name: impl Into<String>, method: &str, path: &[u8]) {
        let auth = self.auth();
        let r = request(method, path, &[("authorization", &auth)], None);
        self.add(name, r, Layer::App);
    }
}

fn valid_session() -> Value {
    json!({
        "user_id": "hostile-ok",
        "api_id": 12345,
        "api_hash": HASH,
        "phone": "+15551234567",
        "session_data": base64::engine::general_purpose::STANDARD.encode(b"blob"),
        "username": "someone",
        "is_authorized": true,
        "digital_twin_enabled": false,
        "auto_reply_enabled": false,
        "target_chats": [1, "@chan"],
    })
}

/// Values that are wrong for every field they are put in (each field has a
/// type or a rule that the value breaks).
fn hostile_values() -> Vec<(&'static str, Value)> {
    vec![
        ("object", json!({"$ne": null})),
        ("nested array", json!([[1, [2, [3]]]])),
        // Past every field's limit (a session_data of 1.05 MiB decoded),
        // yet under the request body limit.
        ("overlong string", json!("x".repeat(1_400_000))),
        ("sql injection", json!("'; DROP TABLE user_sessions; --")),
        ("NUL byte", json!("a\u{0}b")),
        ("control chars", json!("\u{1b}[31m\u{7}\u{8}")),
        ("path traversal", json!("../../etc/passwd")),
        ("percent NUL", json!("a%00b")),
        ("huge float", json!(1e308)),
        ("negative", json!(-1)),
        ("i64 max", json!(i64::MAX)),
        ("u64 max", json!(u64::MAX)),
        ("fraction", json!(0.5)),
    ]
}

/// Values that are wrong for some fields only: sent where they are wrong.
fn field_specific() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("user_id", "empty", json!("")),
        ("user_id", "space", json!("a b")),
        ("user_id", "slash", json!("a/b")),
        ("user_id", "dot start", json!(".hidden")),
        ("user_id", "unicode", json!("tenant\u{202e}gnp")),
        ("user_id", "129 chars", json!("u".repeat(129))),
        ("user_id", "number", json!(42)),
        ("user_id", "null", Value::Null),
        ("user_id", "bool", json!(true)),
        ("api_id", "zero", json!(0)),
        ("api_id", "string", json!("12345")),
        ("api_id", "i32 max + 1", json!(2_147_483_648_i64)),
        ("api_id", "i32 min", json!(i32::MIN)),
        ("api_id", "null", Value::Null),
        ("api_id", "float", json!(12345.0)),
        ("api_id", "exponent", json!(1e5)),
        ("api_id", "bool", json!(false)),
        ("api_hash", "31 hex", json!(&HASH[..31])),
        ("api_hash", "33 hex", json!(format!("{HASH}0"))),
        (
            "api_hash",
            "not hex",
            json!("zz23456789abcdef0123456789abcdef"),
        ),
        ("api_hash", "empty", json!("")),
        ("api_hash", "null", Value::Null),
        ("api_hash", "number", json!(123)),
        (
            "api_hash",
            "unicode digits",
            json!("٠١٢٣٤٥٦٧٨٩abcdef0123456789abcdef"),
        ),
        ("session_id", "empty", json!("")),
        ("session_id", "traversal", json!("../x")),
        ("session_id", "number", json!(7)),
        ("phone", "no plus", json!("15551234567")),
        ("phone", "letters", json!("+1555CALLNOW")),
        ("phone", "too long", json!("+1234567890123456")),
        ("phone", "too short", json!("+12")),
        ("phone", "leading zero", json!("+0123456789")),
        ("phone", "spaces", json!("+1 555 123 4567")),
        ("phone", "number", json!(15551234567_i64)),
        ("username", "257 chars", json!("u".repeat(257))),
        ("username", "newline", json!("evil\nlog line")),
        ("username", "number", json!(1)),
        ("session_data", "not base64", json!("!!!not base64!!!")),
        ("session_data", "no padding", json!("YWJj ZA")),
        ("session_data", "two alphabets", json!("-_+/")),
        ("session_data", "only padding", json!("====")),
        ("session_data", "empty", json!("")),
        (
            "session_data",
            "over 1 MiB",
            json!(base64::engine::general_purpose::STANDARD.encode(vec![7u8; 1024 * 1024 + 1])),
        ),
        ("session_data", "number", json!(5)),
        ("is_authorized", "string", json!("true")),
        ("is_authorized", "number", json!(1)),
        ("digital_twin_enabled", "string", json!("yes")),
        ("auto_reply_enabled", "null string", json!("null")),
        ("target_chats", "object", json!({"a": 1})),
        ("target_chats", "string", json!("@chan")),
        ("target_chats", "float item", json!([1.5])),
        ("target_chats", "empty item", json!([""])),
        ("target_chats", "nested item", json!([[1]])),
        ("target_chats", "null item", json!([null])),
        ("target_chats", "bool item", json!([true])),
        ("target_chats", "control item", json!(["a\u{0}"])),
        ("target_chats", "1001 items", json!(vec![1; 1001])),
        ("target_chats", "u64 item", json!([u64::MAX])),
    ]
}

/// A username is free text: an injection string or `../` is a legal (if odd)
/// name, stored as data and never interpreted. Those are not sent as hostile.
fn wrong_for(field: &str, value: &Value) -> bool {
    match (field, value) {
        ("username", Value::String(s)) => {
            s.chars().count() > 256 || s.chars().any(char::is_control)
        }
        _ => true,
    }
}

const CREATE_FIELDS: [&str; 12] = [
    "user_id",
    "api_id",
    "api_hash",
    "session_id",
    "phone",
    "username",
    "session_data",
    "is_authorized",
    "digital_twin_enabled",
    "auto_reply_enabled",
    "target_chats",
    "last_seen_at",
];

const PATCH_FIELDS: [&str; 6] = [
    "username",
    "is_authorized",
    "digital_twin_enabled",
    "auto_reply_enabled",
    "target_chats",
    "last_seen_at",
];

/// Path ids: each is refused (never reaching a query as is).
fn hostile_ids() -> Vec<&'static [u8]> {
    vec![
        b"..",
        b"..%2F..%2Fetc%2Fpasswd",
        b"%2e%2e",
        b"a%00b",
        b"%00",
        b"a%20b",
        b"a%2Fb",
        b"%ff%fe",
        b"%c0%ae%c0%ae",
        b"'%20OR%201=1--",
        b"%3Cscript%3E",
        b"a%0d%0aSet-Cookie:x",
        b"%E2%80%AE",
        b".hidden",
        b"%zz",
        b"uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu",
        b"no-such-session",
    ]
}

fn corpus(token: &str, session_id: &str) -> Corpus {
    let mut c = Corpus {
        token: token.to_owned(),
        cases: Vec::new(),
    };

    // --- POST /api/v1/sessions: every field with every hostile value. ---
    for field in CREATE_FIELDS {
        for (what, value) in hostile_values() {
            if !wrong_for(field, &value) {
                continue;
            }
            let mut body = valid_session();
            body[field] = value;
            if field == "last_seen_at" {
                // Not a field of a create: refused as unknown whatever its value.
                body.as_object_mut()
                    .unwrap()
                    .insert(field.into(), json!(what));
            }
            c.json(
                format!("POST {field} = {what}"),
                "POST",
                "/api/v1/sessions",
                body.to_string().as_bytes(),
            );
        }
    }
    for (field, what, value) in field_specific() {
        let mut body = valid_session();
        body[field] = value;
        c.json(
            format!("POST {field} = {what}"),
            "POST",
            "/api/v1/sessions",
            body.to_string().as_bytes(),
        );
    }
    for field in ["user_id", "api_id", "api_hash"] {
        let mut body = valid_session();
        body.as_object_mut().unwrap().remove(field);
        c.json(
            format!("POST without {field}"),
            "POST",
            "/api/v1/sessions",
            body.to_string().as_bytes(),
        );
    }
    for extra in ["admin", "id", "data_key_id", "version", "__proto__", ""] {
        let mut body = valid_session();
        body.as_object_mut()
            .unwrap()
            .insert(extra.into(), json!(true));
        c.json(
            format!("POST extra field {extra:?}"),
            "POST",
            "/api/v1/sessions",
            body.to_string().as_bytes(),
        );
    }

    // --- PATCH /api/v1/sessions/{id}: every field with every hostile value. ---
    for field in PATCH_FIELDS {
        for (what, value) in hostile_values() {
            if !wrong_for(field, &value) {
                continue;
            }
            let body = json!({ field: value });
            c.json(
                format!("PATCH {field} = {what}"),
                "PATCH",
                "/api/v1/sessions/victim",
                body.to_string().as_bytes(),
            );
        }
    }
    for (what, body) in [
        (
            "api_hash (secret, not patchable)",
            json!({"api_hash": HASH}),
        ),
        ("user_id", json!({"user_id": "other"})),
        (
            "last_seen_at not a date",
            json!({"last_seen_at": "yesterday"}),
        ),
        (
            "last_seen_at year 99999",
            json!({"last_seen_at": "99999-01-01T00:00:00Z"}),
        ),
        (
            "last_seen_at no zone",
            json!({"last_seen_at": "2024-01-01T00:00:00"}),
        ),
        ("last_seen_at number", json!({"last_seen_at": 1700000000})),
        (
            "is_authorized null string",
            json!({"is_authorized": "null"}),
        ),
    ] {
        c.json(
            format!("PATCH {what}"),
            "PATCH",
            "/api/v1/sessions/victim",
            body.to_string().as_bytes(),
        );
    }

    // --- Bodies that are not JSON, or not the JSON expected. ---
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let deep_in_field = {
        let mut s = valid_session().to_string();
        s.pop();
        format!(
            "{s},\"target_chats\":{}{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        )
    };
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("number", b"123".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("empty object", b"{}".to_vec()),
        ("truncated", b"{\"user_id\": \"a".to_vec()),
        ("trailing garbage", format!("{} x", valid_session()).into_bytes()),
        ("two objects", format!("{0}{0}", valid_session()).into_bytes()),
        ("invalid UTF-8", b"{\"user_id\": \"\xff\xfe\"}".to_vec()),
        ("invalid UTF-8 key", b"{\"\xc0\xae\": 1}".to_vec()),
        ("UTF-8 BOM", [b"\xef\xbb\xbf".as_slice(), valid_session().to_string().as_bytes()].concat()),
        ("lone surrogate", b"{\"user_id\": \"\\ud800\"}".to_vec()),
        ("raw NUL", b"{\"user_id\": \"a\0b\"}".to_vec()),
        ("single quotes", b"{'user_id': 'a'}".to_vec()),
        ("comment", b"{/* c */}".to_vec()),
        ("NaN", b"{\"api_id\": NaN}".to_vec()),
        ("huge exponent", b"{\"api_id\": 1e999999}".to_vec()),
        ("400 digits", format!("{{\"api_id\": {}}}", "9".repeat(400)).into_bytes()),
        ("duplicate keys", b"{\"user_id\":\"a\",\"user_id\":\"b\",\"api_id\":1,\"api_hash\":\"0123456789abcdef0123456789abcdef\"}".to_vec()),
        ("deep array", deep_array.into_bytes()),
        ("deep object", deep_object.into_bytes()),
        ("deep target_chats", deep_in_field.into_bytes()),
        ("binary", (0u8..=255).collect()),
        ("whitespace only", b" \r\n\t ".to_vec()),
    ];
    for (what, body) in &bodies {
        c.json(
            format!("POST body {what}"),
            "POST",
            "/api/v1/sessions",
            body,
        );
        // An empty patch is a legal no-op.
        if *what != "empty object" {
            c.json(
                format!("PATCH body {what}"),
                "PATCH",
                "/api/v1/sessions/victim",
                body,
            );
        }
    }
    c.json(
        "POST body over 256 KiB",
        "POST",
        "/api/v1/sessions",
        &vec![b' '; 300 * 1024],
    );

    // --- Content types. ---
    let good = valid_session().to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/octet-stream",
        "",
        "application/json\u{0}",
    ] {
        let layer = if ct.contains('\0') {
            Layer::Http
        } else {
            Layer::App
        };
        let auth = c.auth();
        let r = request(
            "POST",
            b"/api/v1/sessions",
            &[("authorization", &auth), ("content-type", ct.as_bytes())],
            Some(good.as_bytes()),
        );
        c.add(format!("POST content-type {ct:?}"), r, layer);
    }
    {
        let auth = c.auth();
        let r = request(
            "POST",
            b"/api/v1/sessions",
            &[("authorization", &auth)],
            Some(good.as_bytes()),
        );
        c.add("POST without content-type", r, Layer::App);
    }

    // --- Path ids on every route that takes one. ---
    for id in hostile_ids() {
        let shown = String::from_utf8_lossy(id)
            .chars()
            .take(24)
            .collect::<String>();
        let path = |suffix: &str| [b"/api/v1/sessions/".as_slice(), id, suffix.as_bytes()].concat();
        c.bare(format!("GET id {shown}"), "GET", &path(""));
        c.bare(format!("DELETE id {shown}"), "DELETE", &path(""));
        c.bare(
            format!("DELETE purge id {shown}"),
            "DELETE",
            &path("?purge=true"),
        );
        // The audit trail outlives its session: an unknown user_id has an
        // empty trail, not a 404.
        if id != b"no-such-session" {
            c.bare(
                format!("GET activity id {shown}"),
                "GET",
                &path("/activity"),
            );
        }
        c.bare(format!("GET data id {shown}"), "GET", &path("/data"));
        let auth = c.auth();
        let r = request(
            "PUT",
            &path("/data"),
            &[
                ("authorization", &auth),
                ("content-type", b"application/octet-stream"),
            ],
            Some(b"blob"),
        );
        c.add(format!("PUT data id {shown}"), r, Layer::App);
        let auth = c.auth();
        let r = request(
            "PATCH",
            &path(""),
            &[
                ("authorization", &auth),
                ("content-type", b"application/json"),
            ],
            Some(b"{\"auto_reply_enabled\": true}"),
        );
        c.add(format!("PATCH id {shown}"), r, Layer::App);
    }
    // Raw bytes in the request target: refused by the HTTP parser.
    for (what, target) in [
        ("raw invalid UTF-8", b"/api/v1/sessions/\xff\xfe".as_slice()),
        ("raw NUL", b"/api/v1/sessions/a\0b"),
        ("raw space", b"/api/v1/sessions/a b"),
    ] {
        let auth = c.auth();
        let r = request("GET", target, &[("authorization", &auth)], None);
        c.add(format!("GET {what} in path"), r, Layer::Http);
    }
    for path in [
        b"/api/v1/../../etc/passwd".as_slice(),
        b"/api/v1/sessions/victim/../../keys",
        b"/api/v1/sessions//victim",
        b"/api/v1/sessions/victim/unknown",
        b"/api/v2/sessions",
        b"/API/V1/SESSIONS",
        b"//api/v1/sessions",
        b"/api/v1/sessions/victim%2F..%2F..%2Fkeys",
        b"*",
    ] {
        let shown = String::from_utf8_lossy(path).to_string();
        c.bare(format!("GET odd path {shown}"), "GET", path);
    }

    // --- Query strings. ---
    for q in [
        "limit=abc",
        "limit=0",
        "limit=-1",
        "limit=1001",
        "limit=99999999999999999999999",
        "limit=1.5",
        "limit=",
        "include_inactive=maybe",
        "is_authorized=2",
        "cursor=%00",
        "limit=%zz",
        "limit=1&limit=2",
        "cursor=../../etc",
        "cursor=",
    ] {
        c.bare(
            format!("GET list ?{q}"),
            "GET",
            format!("/api/v1/sessions?{q}").as_bytes(),
        );
    }
    for q in [
        "limit=0",
        "limit=abc",
        "before=abc",
        "before=99999999999999999999",
        "limit=2000",
    ] {
        c.bare(
            format!("GET activity ?{q}"),
            "GET",
            format!("/api/v1/sessions/victim/activity?{q}").as_bytes(),
        );
    }
    for q in ["purge=yes", "purge=1x", "purge=", "purge=true&purge=false"] {
        c.bare(
            format!("DELETE ?{q}"),
            "DELETE",
            format!("/api/v1/sessions/{session_id}?{q}").as_bytes(),
        );
    }

    // --- The raw blob route. ---
    for (what, ct, body) in [
        ("empty", "application/octet-stream", Vec::new()),
        (
            "over 1 MiB",
            "application/octet-stream",
            vec![1u8; 1024 * 1024 + 1],
        ),
        ("json type", "application/json", b"{}".to_vec()),
        ("no type", "", b"blob".to_vec()),
    ] {
        c.with_body(
            format!("PUT data {what}"),
            "PUT",
            &format!("/api/v1/sessions/{session_id}/data"),
            ct,
            &body,
        );
    }

    // --- Authentication. ---
    let long_token = format!("Bearer vs_{}", "a".repeat(8000));
    let auths: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("scheme only", b"Bearer".to_vec()),
        ("scheme and space", b"Bearer ".to_vec()),
        ("basic", b"Basic YWRtaW46YWRtaW4=".to_vec()),
        ("wrong token", b"Bearer vs_0000000000000000".to_vec()),
        ("no prefix", b"Bearer 1234".to_vec()),
        ("8 KB token", long_token.into_bytes()),
        ("sql in token", b"Bearer ' OR '1'='1".to_vec()),
        ("latin-1 byte", b"Bearer vs_\xe9".to_vec()),
        (
            "two tokens",
            format!("Bearer {token}, Bearer {token}").into_bytes(),
        ),
        ("token without scheme", token.as_bytes().to_vec()),
        (
            "lowercase scheme, trailing junk",
            format!("bearer {token}x").into_bytes(),
        ),
    ];
    for (what, value) in &auths {
        for (method, path) in [
            ("GET", "/api/v1/sessions/victim"),
            ("GET", "/api/v1/sessions"),
            ("GET", "/api/v1/keys"),
        ] {
            let r = request(method, path.as_bytes(), &[("authorization", value)], None);
            c.add(format!("{method} {path} auth {what}"), r, Layer::App);
        }
    }
    let r = request("GET", b"/api/v1/sessions/victim", &[], None);
    c.add("GET without authorization", r, Layer::App);

    // --- Methods. ---
    for (method, path) in [
        ("PUT", "/api/v1/sessions"),
        ("DELETE", "/api/v1/sessions"),
        ("POST", "/api/v1/sessions/victim"),
        ("TRACE", "/api/v1/sessions"),
        ("BREW", "/api/v1/sessions"),
        ("POST", "/healthz"),
        ("DELETE", "/api/v1/keys"),
        ("PATCH", "/api/v1/stats"),
    ] {
        c.bare(format!("{method} {path}"), method, path.as_bytes());
    }

    // --- Headers. ---
    let big = vec![b'a'; 100 * 1024];
    let r = request("GET", b"/api/v1/sessions", &[("x-padding", &big)], None);
    c.add("100 KiB header", r, Layer::Http);
    let many: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("x-h{i}"), b"v".to_vec()))
        .collect();
    let many_refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let r = request("GET", b"/api/v1/sessions", &many_refs, None);
    c.add("200 headers", r, Layer::Http);
    let auth = c.auth();
    let r = request(
        "GET",
        b"/api/v1/sessions",
        &[("authorization", &auth), ("x-request-id", b"a\x01b")],
        None,
    );
    c.add("control byte in x-request-id", r, Layer::Http);
    let auth = c.auth();
    let long_id = "r".repeat(4000);
    let r = request(
        "GET",
        b"/api/v1/sessions/nobody",
        &[
            ("authorization", &auth),
            ("x-request-id", long_id.as_bytes()),
        ],
        None,
    );
    c.add("4000-byte x-request-id", r, Layer::App);
    let auth = c.auth();
    let r = request(
        "GET",
        b"/api/v1/sessions/nobody",
        &[
            ("authorization", &auth),
            ("x-request-id", b"'; DROP TABLE session_activity;--"),
        ],
        None,
    );
    c.add("injection in x-request-id", r, Layer::App);
    let auth = c.auth();
    let mut r = request(
        "POST",
        b"/api/v1/sessions",
        &[
            ("authorization", &auth),
            ("content-type", b"application/json"),
            ("content-length", b"10"),
        ],
        Some(b"{}"),
    );
    r.truncate(r.len() - 2);
    c.add("two content-lengths", r, Layer::Http);
    let auth = c.auth();
    let r = request(
        "POST",
        b"/api/v1/sessions",
        &[
            ("authorization", &auth),
            ("content-type", b"application/json"),
            ("content-length", b"-1"),
        ],
        None,
    );
    c.add("negative content-length", r, Layer::Http);
    let auth = c.auth();
    let r = request(
        "POST",
        b"/api/v1/sessions",
        &[
            ("authorization", &auth),
            ("content-type", b"application/json"),
            ("content-length", b"99999999999999999999999"),
        ],
        None,
    );
    c.add("huge content-length", r, Layer::Http);
    let auth = c.auth();
    let r = request(
        "POST",
        b"/api/v1/sessions",
        &[
            ("authorization", &auth),
            ("content-type", b"application/json"),
            ("content-length", b"1000000000"),
        ],
        None,
    );
    c.add("declared 1 GB body", r, Layer::App);
    let auth = c.auth();
    let mut r = Vec::new();
    r.extend_from_slice(b"POST /api/v1/sessions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nauthorization: ");
    r.extend_from_slice(&auth);
    r.extend_from_slice(b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n");
    c.add("bad chunk size", r, Layer::Http);

    // --- Not HTTP at all. ---
    c.add(
        "garbage request line",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
        Layer::Http,
    );
    c.add("HTTP/0.9", b"GET /healthz\r\n\r\n".to_vec(), Layer::Http);
    c.add(
        "HTTP/9.9",
        b"GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
        Layer::Http,
    );
    c
}

fn check(case: &Case, reply: Option<Reply>) -> Result<(), String> {
    let Some(reply) = reply else {
        return match case.layer {
            Layer::Http => Ok(()),
            Layer::App => Err("closed without an answer".into()),
        };
    };
    if !(400..500).contains(&reply.status) {
        return Err(format!(
            "status {} (body {})",
            reply.status,
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    if case.layer == Layer::Http {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&reply.body).map_err(|_| {
        format!(
            "status {} with a body that is not JSON: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
                .chars()
                .take(300)
                .collect::<String>()
        )
    })?;
    if !(body["error"].is_string() && body["code"].is_string()) {
        return Err(format!(
            "status {} without error/code: {body}",
            reply.status
        ));
    }
    Ok(())
}

struct Env {
    _db: TestDb,
    server: Server,
    token: String,
    session_id: String,
}

async fn start() -> Env {
    let db = TestDb::new().await;
    let key = TestKey::generate();
    let server = Server::start_with(
        &db,
        &key,
        &[
            ("HTTP_BODY_TIMEOUT_SECS", "1"),
            ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ],
    );
    let token = create_token(&db, "hostile", "admin");
    let admin = server.client().with_token(&token);
    let mut victim = valid_session();
    victim["user_id"] = json!("victim");
    // Its session_id equals its user_id (as import-env stores a client
    // without USER_ID), so `/sessions/victim` names it on every route.
    victim["session_id"] = json!("victim");
    assert_eq!(admin.post_json("/api/v1/sessions", &victim).status, 201);
    let session_id = admin.get("/api/v1/sessions/victim").json()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    Env {
        _db: db,
        server,
        token,
        session_id,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_corpus_gets_4xx_json_and_the_server_stays_up() {
    let env = start().await;
    let corpus = corpus(&env.token, &env.session_id);
    let addr = addr(&env.server.base);
    let n = corpus.cases.len();
    assert!(n >= 300, "the corpus has {n} cases");
    let cases = corpus.cases;
    // Sent from a few threads at once, as hostile traffic would be.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(cases.len().div_ceil(4))
            .map(|chunk| {
                let addr = addr.clone();
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|case| {
                            check(case, raw(&addr, &case.request))
                                .err()
                                .map(|e| format!("{}: {e}", case.name))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {n} hostile requests were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
    println!("hostile corpus: {n} requests, every one answered 4xx (or refused by the HTTP layer)");
    // Still up, still right.
    let client = env.server.client().with_token(&env.token);
    assert_eq!(client.get("/healthz").status, 200);
    let victim = client.get("/api/v1/sessions/victim");
    assert_eq!(victim.status, 200);
    assert_eq!(victim.json()["api_hash"], HASH);
    assert_eq!(victim.json()["phone"], "+15551234567");
    // Nothing hostile was stored.
    let page = client
        .get("/api/v1/sessions?limit=1000&include_inactive=true")
        .json();
    let ids: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["victim"], "{page}");
    assert!(!env.server.logs().contains("panicked"));
}

/// Regression (found by the corpus): a list cursor holding a NUL byte went
/// to PostgreSQL, which refuses NUL in text, and came back as a 500.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_cursor_with_a_nul_byte_is_a_422() {
    let env = start().await;
    let client = env.server.client().with_token(&env.token);
    for cursor in ["%00", "a%00b", "..%2F..", "%FF"] {
        let r = client.get(&format!("/api/v1/sessions?cursor={cursor}"));
        assert_eq!(
            r.status,
            422,
            "{cursor}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["field"], "cursor");
    }
    let r = client.get("/api/v1/sessions?cursor=victim");
    assert_eq!(r.status, 200);
}

/// A body that trickles in but arrives whole is served; one that stops
/// arriving is answered 408 once the body timeout (1 s here) passes, instead
/// of holding the connection until the 30 s request timeout (a 503).
#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_are_bounded_and_answered_4xx() {
    let env = start().await;
    let addr = addr(&env.server.base);
    let body = b"{\"auto_reply_enabled\": \"not a bool\"}";
    let head = |len: usize| {
        format!(
            "PATCH /api/v1/sessions/victim HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             authorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n",
            env.token
        )
    };
    // Trickled, 4 bytes every 100 ms: slow but alive.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head(body.len()).as_bytes()).unwrap();
    for chunk in body.chunks(4) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let reply = read_reply(&mut s).expect("an answer");
    assert_eq!(
        reply.status,
        422,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // Stalled: half the body, then nothing (a slowloris body).
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head(1000).as_bytes()).unwrap();
    s.write_all(&body[..10]).unwrap();
    let reply = read_reply(&mut s).expect("an answer");
    assert_eq!(
        reply.status,
        408,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["code"], "request_timeout");
    // Stalled headers: the connection is closed (hyper answers 408 or hangs up).
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    if let Some(reply) = read_reply(&mut s) {
        assert!((400..500).contains(&reply.status), "{}", reply.status);
    }
    assert_eq!(env.server.client().get("/healthz").status, 200);
}
