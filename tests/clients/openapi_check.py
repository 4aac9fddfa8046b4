"""The OpenAPI document as clients no one here wrote meet it.

    openapi_check.py spec DOC
        DOC validates with openapi-spec-validator.
    openapi_check.py exchanges DOC FILE...
        Every response recorded by the Rust test client (JSON lines, see
        tests/common/server.rs) validates against the schema DOC declares
        for it (openapi-core); one that matches no operation (an unknown
        route, a method not allowed) must still be an ErrorBody.
    openapi_check.py client BASE TOKEN WORKDIR
        Generates a client with openapi-python-client from BASE's served
        document (fetched without a token), then performs every operation of
        the document through it against the real server, each response also
        checked by openapi-core.

Run by tests/clients.rs with the venv scripts/openapi-client-test.sh makes.
"""

import base64
import json
import subprocess
import sys
from pathlib import Path

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse


def fail(message):
    print(f"openapi_check: {message}", file=sys.stderr)
    sys.exit(1)


def spec(doc_path):
    from openapi_spec_validator import validate
    from openapi_spec_validator.readers import read_from_filename

    doc, _ = read_from_filename(doc_path)
    validate(doc)
    print(f"{doc_path}: valid OpenAPI {doc['openapi']}")


def validator(doc_path):
    with open(doc_path) as f:
        doc = json.load(f)
    # OpenAPI 3.1 describes raw bytes as a string (format: binary); openapi-core
    # hands octet-stream bodies over as bytes, which its string check refuses.
    # Read them as latin-1 text: every byte is one character, nothing is lost.
    config = Config(extra_media_type_deserializers={
        "application/octet-stream": lambda value, **_: value.decode("latin-1"),
    })
    return doc, OpenAPI.from_dict(doc, config=config)


def check_response(api, doc, method, url, status, headers, body):
    """Validates one response; returns False when it matches no operation."""
    from urllib.parse import urlsplit, parse_qs

    parts = urlsplit(url)
    if parts.path == "/console" or parts.path.startswith("/console/"):
        # The operator console's static page and assets: not API operations
        # (tests/console.rs and scripts/console-test.sh check them).
        return False
    args = {k: v[0] for k, v in parse_qs(parts.query).items()}
    content_type = headers.get("content-type", "application/json")
    request = MockRequest("http://server", method.lower(), parts.path, args=args)
    response = MockResponse(body, status_code=status, headers=headers, content_type=content_type)
    try:
        api.validate_response(request, response)
        return True
    except Exception as e:  # openapi-core's errors have no common public base
        name = type(e).__name__
        if name in ("PathNotFound", "OperationNotFound"):
            # Not an operation (e.g. /api/v1/nothing-here, or a 405): the body
            # is still the one error type the document describes.
            error_schema_check(doc, status, content_type, body, f"{method} {url}")
            return False
        detail = getattr(e, "__cause__", None) or e
        fail(f"{method} {url} -> {status}: {name}: {detail}\n  body: {body[:400]!r}")


def error_schema_check(doc, status, content_type, body, what):
    import jsonschema

    if status < 400:
        fail(f"{what} -> {status}: a success from no documented operation")
    if not content_type.startswith("application/json"):
        fail(f"{what} -> {status}: an error that is not JSON ({content_type})")
    schema = dict(doc["components"]["schemas"]["ErrorBody"])
    jsonschema.validate(json.loads(body), schema)


def exchanges(doc_path, files):
    doc, api = validator(doc_path)
    checked = unmatched = 0
    for path in files:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                x = json.loads(line)
                body = base64.b64decode(x["body"])
                headers = {k.lower(): v for k, v in x["headers"].items()}
                if check_response(api, doc, x["method"], x["url"], x["status"], headers, body):
                    checked += 1
                else:
                    unmatched += 1
    if checked == 0:
        fail("no recorded responses to check: were the tests run with VIBEE_RECORD_EXCHANGES?")
    print(f"exchanges: {checked} responses valid against their operation, "
          f"{unmatched} outside any operation valid as ErrorBody")


def client(base, token, workdir):
    workdir = Path(workdir)
    config = workdir / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))
    out = workdir / "generated"
    subprocess.run(
        [str(Path(sys.executable).parent / "openapi-python-client"), "generate",
         "--url", f"{base}/api/v1/openapi.json", "--meta", "none",
         "--output-path", str(out), "--config", str(config), "--overwrite"],
        check=True,
    )
    sys.path.insert(0, str(out.parent))
    pkg = out.name
    doc, api = validator_from_url(base, workdir)
    wanted = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    done = set()

    from importlib import import_module

    c = import_module(f"{pkg}.client")
    types = import_module(f"{pkg}.types")
    models = import_module(f"{pkg}.models")
    authed = c.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    anon = c.Client(base_url=base, raise_on_unexpected_status=True)

    def op(name):
        for tag in ("sessions", "users", "session_data", "operations", "leases"):
            try:
                return import_module(f"{pkg}.api.{tag}.{name}")
            except ModuleNotFoundError:
                continue
        fail(f"the generated client has no function for {name}")

    def call(name, expect, client_=authed, **kwargs):
        r = op(name).sync_detailed(client=client_, **kwargs)
        if r.status_code != expect:
            fail(f"{name}: {r.status_code} (expected {expect}): {r.content[:300]!r}")
        method, url = r_method_url(name, kwargs)
        check_response(api, doc, method, url, r.status_code,
                       {k.lower(): v for k, v in r.headers.items()}, r.content)
        done.add(name)
        return r

    def r_method_url(name, kwargs):
        for path, item in doc["paths"].items():
            for method, o in item.items():
                if o["operationId"] == name:
                    url = path
                    for k in ("session_id", "user_id", "holder"):
                        if k in kwargs:
                            url = url.replace("{" + k + "}", kwargs[k])
                    return method.upper(), url
        fail(f"{name} is not in the document")

    CreateSession = models.CreateSession
    PatchSession = models.PatchSession
    File = types.File
    from io import BytesIO

    created = call("upsert_session", 201, body=CreateSession.from_dict({
        "user_id": "gen-user", "session_id": "gen-sid", "api_id": 7,
        "api_hash": "0123456789abcdef0123456789abcdef", "phone": "+15551234567",
        "target_chats": [-100123, "@news"], "session_data": "AQIDBA",
    }))
    assert created.parsed.target_chats == [-100123, "@news"], created.parsed.target_chats
    assert created.headers["location"] == "/api/v1/sessions/gen-sid"
    call("upsert_session", 200, body=CreateSession.from_dict({
        "user_id": "gen-user", "api_id": 8, "api_hash": "0123456789abcdef0123456789abcdef"}))
    page = call("list_sessions", 200, user_id="gen-user").parsed
    assert [s.session_id for s in page.sessions] == ["gen-sid"]
    assert call("get_user", 200, user_id="gen-user").parsed.session_id == "gen-sid"
    got = call("get_session", 200, session_id="gen-sid").parsed
    assert got.api_hash == "0123456789abcdef0123456789abcdef" and got.session_data == "AQIDBA=="
    assert call("get_user_session", 200, user_id="gen-user").parsed.phone == "+15551234567"
    etag = call("update_session", 200, session_id="gen-sid",
                body=PatchSession.from_dict({"is_authorized": True})).headers["etag"]
    call("update_session", 412, session_id="gen-sid", if_match='"1"',
         body=PatchSession.from_dict({"is_authorized": False}))
    stored = call("put_session_data", 200, session_id="gen-sid", if_match=etag,
                  body=File(payload=BytesIO(b"\x00auth key\xff")))
    assert stored.parsed.has_session_data
    blob = call("get_session_data", 200, session_id="gen-sid")
    assert blob.content == b"\x00auth key\xff", blob.content
    call("delete_session_data", 200, session_id="gen-sid")
    call("get_session_data", 404, session_id="gen-sid")
    trail = call("list_session_activity", 200, session_id="gen-sid").parsed
    assert trail.activity and all(a.session_id == "gen-sid" for a in trail.activity)
    assert call("list_user_activity", 200, user_id="gen-user").parsed.activity
    call("delete_session", 204, session_id="gen-sid")
    call("get_session", 409, session_id="gen-sid")
    assert call("reactivate_session", 200, session_id="gen-sid").parsed.is_active
    call("get_stats", 200)
    call("list_keys", 200)
    TakeLease = models.TakeLease
    lease = call("take_lease", 200, session_id="gen-sid",
                 body=TakeLease(holder="gen-host", ttl_seconds=30)).parsed
    assert call("get_lease", 200, session_id="gen-sid").parsed.fence == lease.fence
    call("take_lease", 409, session_id="gen-sid", body=TakeLease(holder="other-host"))
    fences = models.RenewLeasesFences.from_dict({"gen-sid": lease.fence})
    renewed = call("renew_leases", 200,
                   body=models.RenewLeases(holder="gen-host", fences=fences)).parsed
    assert [x.session_id for x in renewed.renewed] == ["gen-sid"]
    call("release_lease", 409, session_id="gen-sid", holder="gen-host", fence=lease.fence + 1)
    call("release_lease", 204, session_id="gen-sid", holder="gen-host", fence=lease.fence)
    call("take_lease", 200, session_id="gen-sid", body=TakeLease(holder="gen-host"))
    call("break_lease", 200, session_id="gen-sid")
    taken = call("take_leases", 200, body=models.TakeLeases(
        holder="gen-host", session_ids=["gen-sid", "gen-none"])).parsed
    assert [x.session_id for x in taken.granted] == ["gen-sid"]
    assert taken.not_granted == ["gen-none"]
    fences = models.ReleaseLeasesFences.from_dict({"gen-sid": taken.granted[0].fence})
    released = call("release_leases", 200,
                    body=models.ReleaseLeases(holder="gen-host", fences=fences)).parsed
    assert (released.released, released.stale) == (["gen-sid"], [])
    call("announce_lease_holder", 200, body=models.Heartbeat(holder="gen-host"))
    call("withdraw_lease_holder", 204, holder="gen-host")
    call("get_master_key", 200)
    assert "admin" in call("get_token", 200).parsed.scopes
    assert len(call("get_hourly_activity", 200).parsed.hours) == 24
    call("list_lease_holders", 200)
    call("get_openapi", 200, client_=anon)
    call("healthz", 200, client_=anon)
    call("readyz", 200, client_=anon)
    call("metrics", 200, client_=anon)
    call("delete_session", 204, session_id="gen-sid", purge=True)
    call("get_user", 404, user_id="gen-user")
    missing = wanted - done
    if missing:
        fail(f"operations the generated client did not perform: {sorted(missing)}")
    print(f"generated client: all {len(done)} operations performed and valid")


def validator_from_url(base, workdir):
    import urllib.request

    path = Path(workdir) / "served-openapi.json"
    with urllib.request.urlopen(f"{base}/api/v1/openapi.json") as r:
        path.write_bytes(r.read())
    return validator(str(path))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        fail(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "spec":
        spec(*args)
    elif command == "exchanges":
        exchanges(args[0], args[1:])
    elif command == "client":
        client(*args)
    else:
        fail(__doc__)
