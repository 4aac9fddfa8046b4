import { SessionPage, get } from "../api";
import { badge, h, time } from "../dom";

const PAGE = 50;

interface Filters {
  q: string;
  status: string; // active | inactive | all
  auth: string; // any | yes | no
  lease: string; // any | held | free
}

function query(f: Filters, cursor: string | null): string {
  const p = new URLSearchParams({ limit: String(PAGE) });
  if (f.q) p.set("q", f.q);
  if (f.status === "all") p.set("include_inactive", "true");
  else p.set("is_active", f.status === "inactive" ? "false" : "true");
  if (f.auth !== "any") p.set("is_authorized", f.auth === "yes" ? "true" : "false");
  if (f.lease !== "any") p.set("held", f.lease === "held" ? "true" : "false");
  if (cursor) p.set("cursor", cursor);
  return `/api/v1/sessions?${p}`;
}

function select(id: string, label: string, value: string, options: [string, string][]): [HTMLElement, HTMLSelectElement] {
  const sel = h("select", { id, name: id }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))) as HTMLSelectElement;
  return [h("div", { class: "field" }, h("label", { for: id }, label), sel), sel];
}

export function tenants(main: HTMLElement, params: URLSearchParams): void {
  const f: Filters = {
    q: params.get("q") ?? "",
    status: params.get("status") ?? "active",
    auth: params.get("auth") ?? "any",
    lease: params.get("lease") ?? "any",
  };
  const search = h("input", { id: "search", type: "search", value: f.q, autocomplete: "off", placeholder: "user_id, session_id or username" }) as HTMLInputElement;
  const [statusField, status] = select("status", "Status", f.status, [["active", "active"], ["inactive", "inactive"], ["all", "all"]]);
  const [authField, auth] = select("auth", "Authorized", f.auth, [["any", "any"], ["yes", "authorized"], ["no", "not authorized"]]);
  const [leaseField, lease] = select("lease", "Lease", f.lease, [["any", "any"], ["held", "held"], ["free", "free"]]);
  const tbody = h("tbody", { id: "rows" });
  const summary = h("p", { id: "page-info", class: "muted", "aria-live": "polite" });
  const prev = h("button", { id: "prev", type: "button" }, "← Previous") as HTMLButtonElement;
  const next = h("button", { id: "next", type: "button" }, "Next →") as HTMLButtonElement;
  // Cursors of the pages before this one: Previous pops one.
  let cursors: (string | null)[] = [];
  let cursor: string | null = null;
  let nextCursor: string | null = null;
  let seq = 0;
  let inflight: AbortController | null = null;

  async function load(): Promise<void> {
    const mine = ++seq;
    inflight?.abort();
    inflight = new AbortController();
    main.setAttribute("aria-busy", "true");
    try {
      const page = await get<SessionPage>(query(f, cursor), inflight.signal);
      if (mine !== seq) return;
      nextCursor = page.next_cursor;
      tbody.replaceChildren(...page.sessions.map(row));
      if (page.sessions.length === 0) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No tenant matches.")));
      const first = cursors.length * PAGE + 1;
      summary.textContent = page.sessions.length
        ? `Page ${cursors.length + 1}: tenants ${first}–${first + page.sessions.length - 1}${nextCursor ? "" : " (last page)"}`
        : "No tenant matches.";
      prev.disabled = cursors.length === 0;
      next.disabled = !nextCursor;
      main.dataset.loaded = String(mine);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      summary.textContent = `Cannot list: ${(e as Error).message}`;
    } finally {
      if (mine === seq) main.removeAttribute("aria-busy");
    }
  }

  function remember(): void {
    const p = new URLSearchParams();
    if (f.q) p.set("q", f.q);
    if (f.status !== "active") p.set("status", f.status);
    if (f.auth !== "any") p.set("auth", f.auth);
    if (f.lease !== "any") p.set("lease", f.lease);
    history.replaceState(null, "", `#/tenants${p.toString() ? "?" + p : ""}`);
  }

  function restart(): void {
    cursors = [];
    cursor = null;
    remember();
    void load();
  }

  search.addEventListener("input", () => {
    f.q = search.value.trim().slice(0, 128);
    restart();
  });
  for (const [sel, key] of [[status, "status"], [auth, "auth"], [lease, "lease"]] as const) {
    sel.addEventListener("change", () => {
      f[key] = sel.value;
      restart();
    });
  }
  next.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(cursor);
    cursor = nextCursor;
    void load();
  });
  prev.addEventListener("click", () => {
    if (!cursors.length) return;
    cursor = cursors.pop() ?? null;
    void load();
  });

  main.replaceChildren(
    h("h1", {}, "Tenants"),
    h("form", { class: "filters", role: "search", onsubmit: (e: Event) => e.preventDefault() },
      h("div", { class: "field grow" }, h("label", { for: "search" }, "Search"), search),
      statusField, authField, leaseField,
    ),
    h("div", { class: "table-wrap" },
      h("table", { class: "grid" },
        h("caption", { class: "sr-only" }, "Tenants, in user_id order"),
        h("thead", {}, h("tr", {}, ["user_id", "session_id", "username", "active", "authorized", "lease", "last seen", "key", "holder"].map((c) => h("th", { scope: "col" }, c)))),
        tbody,
      ),
    ),
    h("div", { class: "pager" }, prev, summary, next),
  );
  void load();
}

function row(x: SessionPage["sessions"][number]): HTMLElement {
  return h("tr", {},
    h("td", {}, h("a", { href: `#/tenant/${encodeURIComponent(x.user_id)}` }, x.user_id)),
    h("td", { class: "mono" }, x.session_id),
    h("td", {}, x.username ?? ""),
    h("td", {}, badge(x.is_active, "active", "inactive")),
    h("td", {}, badge(x.is_authorized, "yes", "no")),
    h("td", {}, badge(!!x.lease, "held", "free")),
    h("td", {}, time(x.last_seen_at)),
    h("td", { class: "num" }, String(x.data_key_id)),
    h("td", {}, x.lease?.holder ?? ""),
  );
}
