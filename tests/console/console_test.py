"""The operator console in real headless Chromium (Debian's), driven by
Playwright, against a real `vibee-sessions serve` on a scratch database of
10,000 seeded tenants. Run by scripts/console-test.sh, which sets:

  CONSOLE_BASE  http://127.0.0.1:PORT of the server
  ADMIN_TOKEN   an admin token (its name: console-admin)
  LIST_TOKEN    a sessions:list token
  VIBEE_BIN     the vibee-sessions binary (for `rotate`, with the server's env)
  SHOTS_DIR     where screenshots go
"""

import base64
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import expect, sync_playwright

BASE = os.environ["CONSOLE_BASE"]
ADMIN = os.environ["ADMIN_TOKEN"]
LISTER = os.environ["LIST_TOKEN"]
BIN = os.environ["VIBEE_BIN"]
SHOTS = os.environ["SHOTS_DIR"]
os.makedirs(SHOTS, exist_ok=True)

api = httpx.Client(base_url=BASE, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1
    print(f"ok {checks} - {what}", flush=True)


# Tenants with known plaintexts: none of these may reach the page.
plaintexts = []
for i in range(3):
    api_hash = secrets.token_hex(16)
    phone = "+1999" + "".join(secrets.choice("0123456789") for _ in range(7))
    blob = secrets.token_bytes(96)
    body = {
        "user_id": f"console-{i}",
        "api_id": 4242 + i,
        "api_hash": api_hash,
        "phone": phone,
        "username": f"alice{i}",
        "session_data": base64.b64encode(blob).decode(),
        "is_authorized": i != 1,
    }
    r = api.post("/api/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    plaintexts += [
        api_hash,
        api_hash.upper(),
        phone,
        phone[1:],
        base64.b64encode(blob).decode(),
        base64.urlsafe_b64encode(blob).decode().rstrip("="),
        blob.hex(),
    ]
sid0 = api.get("/api/v1/users/console-0").json()["session_id"]

# Two boot loaders with heartbeats and leases: the Holders page and the held filter.
for holder in ("agent-a", "agent-b"):
    assert api.post("/api/v1/leases/holders", json={"holder": holder, "ttl_seconds": 600}).status_code == 200
assert api.post(f"/api/v1/sessions/{sid0}/lease", json={"holder": "agent-a", "ttl_seconds": 600}).status_code in (200, 201)
for n in range(1, 31):
    holder = "agent-a" if n <= 20 else "agent-b"
    r = api.post(f"/api/v1/sessions/sid{n:07d}/lease", json={"holder": holder, "ttl_seconds": 600})
    assert r.status_code in (200, 201), r.text

responses = []  # (method, url, body) of everything the page loaded
foreign = []
browser_errors = []


def shot(page, name, full_page=True):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=full_page)


def dom_snapshots(page, store):
    store.append(page.content())


def measure(page, action_js, arg):
    """Milliseconds from the action to the table rendered, timed in the page."""
    return page.evaluate(
        """async ([action, arg]) => {
            const main = document.getElementById('main');
            const before = Number(main.dataset.loaded || 0);
            const t0 = performance.now();
            (new Function('arg', action))(arg);
            while (Number(main.dataset.loaded || 0) <= before) {
                if (performance.now() - t0 > 10000) throw new Error('the table did not render within 10 s');
                await new Promise(r => requestAnimationFrame(r));
            }
            return performance.now() - t0;
        }""",
        [action_js, arg],
    )


SEARCH_JS = "const el = document.getElementById('search'); el.value = arg; el.dispatchEvent(new Event('input'));"
NEXT_JS = "document.getElementById('next').click();"
PREV_JS = "document.getElementById('prev').click();"


def first_user(page):
    return page.locator("#rows tr").first.locator("td").first.inner_text()


def sign_in(page, token):
    page.goto(f"{BASE}/console/")
    expect(page.locator("#token")).to_be_visible()
    # Keyboard only: the field has focus on load; Enter submits.
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page.locator("#signout")).to_be_visible()


doms = []
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()

    def on_response(r):
        try:
            body = r.body().decode("utf-8", "replace")
        except Exception:
            body = ""
        responses.append((r.request.method, r.url, body))

    def on_request(req):
        host = urlsplit(req.url).hostname
        if req.url.startswith(("http:", "https:")) and host not in ("127.0.0.1", "localhost", "::1"):
            foreign.append(req.url)

    page.on("response", on_response)
    page.on("request", on_request)
    page.on("pageerror", lambda e: browser_errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: m.type == "error"
        and not re.search(r"status of 40[13]", m.text)
        and browser_errors.append(f"console: {m.text}"),
    )

    # The page itself: its CSP and security headers.
    r = page.goto(f"{BASE}/console/")
    csp = r.headers.get("content-security-policy", "")
    check("script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, f"/console/ has a strict CSP: {csp}")
    check(r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff", "/console/ has the API's security headers")
    check(httpx.get(f"{BASE}/console", follow_redirects=False).headers.get("location") == "/console/", "/console redirects to /console/")

    # Sign-in: a wrong token is refused and not kept.
    expect(page.locator("#token")).to_be_visible()
    shot(page, "signin")
    page.fill("#token", "vbs_" + secrets.token_urlsafe(32))
    page.click("button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    check(page.evaluate("sessionStorage.length") == 0, "a wrong token is refused and not kept")
    shot(page, "signin-wrong-token")

    # A sessions:list token: lists and stats, no Keys page.
    sign_in(page, LISTER)
    expect(page.locator("h1")).to_have_text("Overview")
    nav = page.locator("#nav").inner_text()
    check("Tenants" in nav and "Keys" not in nav, f"a sessions:list token sees no Keys page (nav: {nav!r})")
    page.goto(f"{BASE}/console/#/keys")
    expect(page.locator("#denied")).to_contain_text("admin")
    check(not any("/api/v1/keys" in u for _, u, _ in responses), "a sessions:list token never calls /api/v1/keys")
    page.goto(f"{BASE}/console/#/tenant/console-0")
    expect(page.locator("#facts")).to_be_visible()
    check(page.locator("#deactivate").count() == 0 and page.locator("#break-lease").count() == 0, "a sessions:list token is offered no actions")
    page.click("#signout")
    expect(page.locator("#token")).to_be_visible()

    # An admin token.
    sign_in(page, ADMIN)
    check(page.evaluate("sessionStorage.getItem('vibee-sessions.token')") == ADMIN, "the token is kept in sessionStorage")
    check(page.evaluate("document.cookie") == "" and ADMIN not in page.url, "the token is in no cookie and no URL")
    check("Keys" in page.locator("#nav").inner_text(), "an admin token sees the Keys page")

    # Overview.
    expect(page.locator(".tile").first).to_be_visible()
    expect(page.locator("#health")).to_contain_text("ready")
    tiles = page.locator(".tiles").inner_text()
    check("10,003" in tiles and "31" in tiles, f"the overview counts 10,003 active and 31 held (tiles: {tiles!r})")
    check(page.locator("figure svg rect").count() == 24, "the activity chart has 24 hours")
    dom_snapshots(page, doms)
    shot(page, "overview")

    # Tenants: paging and search over 10,003 tenants, timed in the page.
    page.click("#nav a[data-page=tenants]")
    expect(page.locator("#rows tr")).to_have_count(50)
    check(first_user(page) == "bench0000000", "page 1 starts at bench0000000")
    turns = []
    for _ in range(5):
        turns.append(measure(page, NEXT_JS, None))
    check(first_user(page) == "bench0000250", f"five page turns reach bench0000250 ({first_user(page)})")
    turns.append(measure(page, PREV_JS, None))
    check(first_user(page) == "bench0000200", "Previous goes back one page")
    expect(page.locator("#page-info")).to_contain_text("Page 5")
    searches = []
    for q, want in [("bench00012", "bench0001200"), ("sid0009999", "bench0009999"), ("alice2", "console-2"), ("CONSOLE-1", "console-1"), ("99_9", None)]:
        searches.append(measure(page, SEARCH_JS, q))
        if want:
            check(first_user(page) == want, f"search {q!r} finds {want}")
        else:
            expect(page.locator("#rows")).to_contain_text("No tenant matches")
            check(True, "a LIKE wildcard in a search is literal")
    measure(page, SEARCH_JS, "bench00012")
    expect(page.locator("#rows tr")).to_have_count(50)
    turns.append(measure(page, NEXT_JS, None))
    check(first_user(page) == "bench0001250" and page.locator("#rows tr").count() == 50, "paging within a search")
    check(page.locator("#next").is_disabled(), "the last page of a search disables Next")
    measure(page, SEARCH_JS, "")
    page.select_option("#lease", "held")
    expect(page.locator("#rows tr")).to_have_count(31)
    check(all(t in page.locator("#rows").inner_text() for t in ("agent-a", "agent-b")), "the held filter shows the holders")
    page.select_option("#lease", "any")
    page.select_option("#auth", "no")
    expect(page.locator("#rows tr")).to_have_count(1)
    check(first_user(page) == "console-1", "the authorized filter")
    page.select_option("#auth", "any")
    expect(page.locator("#rows tr")).to_have_count(50)
    print(f"# page turn in the browser, ms: median {statistics.median(turns):.1f}, max {max(turns):.1f} ({len(turns)} turns)")
    print(f"# search in the browser, ms: median {statistics.median(searches):.1f}, max {max(searches):.1f} ({len(searches)} searches)")
    print(f"# over 300 ms: {sum(t > 300 for t in turns + searches)} of {len(turns) + len(searches)}")
    measure(page, SEARCH_JS, "console-")
    expect(page.locator("#rows tr")).to_have_count(3)
    dom_snapshots(page, doms)
    shot(page, "tenants")

    # One tenant: metadata, lease, trail; break the lease, then deactivate.
    page.click("text=console-0")
    expect(page.locator("#lease")).to_contain_text("agent-a")
    expect(page.locator("#timeline")).to_contain_text("session created")
    dom_snapshots(page, doms)
    shot(page, "tenant")
    page.click("#deactivate")
    expect(page.locator("#confirm")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    check(api.get("/api/v1/users/console-0").json()["is_active"] is True, "a cancelled confirmation changes nothing")
    page.click("#break-lease")
    shot(page, "tenant-confirm")
    page.click("#confirm-ok")
    expect(page.locator("#action-status")).to_contain_text("Lease broken")
    check(api.get(f"/api/v1/sessions/{sid0}/lease").status_code == 404, "the broken lease is gone in the API")
    page.click("#deactivate")
    page.click("#confirm-ok")
    expect(page.locator("#reactivate")).to_be_visible()
    expect(page.locator("#action-status")).to_contain_text("audited as console-admin")
    meta = api.get("/api/v1/users/console-0").json()
    check(meta["is_active"] is False, "the deactivation is seen in the API")
    trail = api.get("/api/v1/users/console-0/activity").json()["activity"]
    kinds = [(a["activity_type"], a["actor"]) for a in trail]
    check(("session_deactivated", "console-admin") in kinds and ("lease_broken", "console-admin") in kinds, "both actions are audited under the token's name")
    expect(page.locator("#timeline")).to_contain_text("session deactivated")
    page.click("#reactivate")
    page.click("#confirm-ok")
    expect(page.locator("#deactivate")).to_be_visible()
    check(api.get("/api/v1/users/console-0").json()["is_active"] is True, "reactivated")

    # Keys: rotation progress moving while `rotate` runs in another process.
    page.click("#nav a[data-page=keys]")
    expect(page.locator("#keys tbody tr")).to_have_count(1)
    expect(page.locator("#master-fingerprint")).not_to_be_empty()
    expect(page.locator("#rotation-percent")).to_contain_text("no rotation is pending")
    rotate = subprocess.Popen(
        [BIN, "rotate", "--batch-size", "100", "--pause-ms", "150", "--grace-ms", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    seen = []
    deadline = time.time() + 120
    shot_taken = False
    while time.time() < deadline:
        text = page.locator("#rotation-percent").inner_text()
        if not seen or seen[-1] != text:
            seen.append(text)
        if "%" in text and not shot_taken and len(seen) >= 3:
            shot(page, "keys-rotation")
            shot_taken = True
        if "no rotation is pending" in text and len(seen) > 1:
            break
        time.sleep(0.3)
    out, _ = rotate.communicate(timeout=120)
    print("# rotate:", out.strip().splitlines()[-1] if out.strip() else "")
    moving = [t for t in seen if "%" in t]
    check(rotate.returncode == 0, "rotate finished")
    check(len(moving) >= 3, f"the rotation progress moved while rotate ran ({len(moving)} readings: {moving[:3]}…)")
    check("no rotation is pending" in seen[-1], "the page saw the rotation finish")
    expect(page.locator("#keys tbody tr")).to_have_count(2)
    dom_snapshots(page, doms)
    shot(page, "keys")

    # Holders.
    page.click("#nav a[data-page=holders]")
    expect(page.locator("#holders tbody tr")).to_have_count(2)
    check("20" in page.locator("#holders").inner_text(), "agent-a holds 20 tenants")
    dom_snapshots(page, doms)
    shot(page, "holders")

    # Phone width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("#nav a[data-page=overview]")
    expect(page.locator(".tile").first).to_be_visible()
    shot(page, "overview-phone", full_page=False)
    page.click("#nav a[data-page=tenants]")
    expect(page.locator("#rows tr")).to_have_count(50)
    check(page.evaluate("document.documentElement.scrollWidth") <= 400, "no sideways scrolling of the page at phone width (the table scrolls in its box)")
    shot(page, "tenants-phone", full_page=False)
    page.set_viewport_size({"width": 1280, "height": 860})

    # Keyboard: Tab reaches the navigation, Enter follows a link.
    page.locator("#search").focus()
    page.keyboard.press("Shift+Tab")
    for _ in range(10):
        if page.evaluate("document.activeElement.dataset.page") == "holders":
            break
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Holders")
    check(True, "the navigation is driven by keyboard")

    # Sign out: the token is gone, a reload asks again.
    page.click("#signout")
    expect(page.locator("#token")).to_be_visible()
    check(page.evaluate("sessionStorage.length") == 0, "sign-out clears the token")
    page.reload()
    expect(page.locator("#token")).to_be_visible()
    check(True, "after sign-out a reload asks for a token")
    browser.close()

# Never a secret: not in any response the page loaded, not in the DOM.
leaks = [(u, s) for _, u, body in responses for s in plaintexts if s in body]
check(not leaks, f"no stored plaintext in any of the {len(responses)} responses the page loaded {leaks[:2]}")
check(not [s for d in doms for s in plaintexts if s in d], f"no stored plaintext in the DOM ({len(doms)} snapshots)")
called = sorted({f"{m} {urlsplit(u).path}" for m, u, _ in responses if "/api/v1/" in u})
credential_routes = [
    c for c in called
    if c.endswith("/data") or re.search(r"/users/[^/]+/session$", c) or re.fullmatch(r"GET /api/v1/sessions/[^/]+", c)
]
check(not credential_routes, f"the page called no credential route ({credential_routes})")
check(not foreign, f"no request left loopback ({foreign[:3]})")
check(not browser_errors, f"no script error or CSP violation in the browser ({browser_errors[:3]})")
print(f"# api routes the page called: {', '.join(called)}")
print(f"all {checks} checks passed")
