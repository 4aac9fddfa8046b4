import { ApiError, Session, SessionPage, TokenInfo, call, can, get } from "../api";
import { badge, confirmAction, h, time } from "../dom";

interface Activity {
  id: number;
  session_id: string | null;
  activity_type: string;
  actor: string;
  request_id: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

export async function tenant(main: HTMLElement, userId: string, info: TokenInfo): Promise<void> {
  const enc = encodeURIComponent(userId);
  const [page, trail] = await Promise.all([
    get<SessionPage>(`/api/v1/sessions?user_id=${enc}&include_inactive=true&limit=1`),
    get<{ activity: Activity[] }>(`/api/v1/users/${enc}/activity?limit=100`),
  ]);
  const s = page.sessions[0];
  if (!s) {
    main.replaceChildren(h("h1", {}, userId), h("p", { class: "error" }, "No session for this tenant."), h("a", { href: "#/tenants" }, "Back to tenants"));
    return;
  }
  const status = h("p", { id: "action-status", role: "status", class: "muted" });
  const reload = () => tenant(main, userId, info).catch((e) => (status.textContent = (e as Error).message));

  async function act(question: string, ok: string, method: string, path: string, done: string): Promise<void> {
    if (!(await confirmAction(question, ok))) return;
    try {
      await call(method, path);
      await reload();
      const again = document.getElementById("action-status");
      if (again) again.textContent = `${done} (audited as ${info.name}).`;
    } catch (e) {
      status.textContent = e instanceof ApiError ? `Refused: ${e.message} (${e.code})` : String(e);
    }
  }

  const sid = encodeURIComponent(s.session_id);
  const actions: HTMLElement[] = [];
  if (can(info, "sessions:write")) {
    actions.push(
      s.is_active
        ? h("button", { id: "deactivate", type: "button", class: "danger",
            onclick: () => act(`Deactivate ${s.user_id}? Its agent can no longer read or write the session until it is reactivated.`, "Deactivate", "DELETE", `/api/v1/sessions/${sid}`, "Deactivated") }, "Deactivate")
        : h("button", { id: "reactivate", type: "button",
            onclick: () => act(`Reactivate ${s.user_id}?`, "Reactivate", "POST", `/api/v1/sessions/${sid}/reactivate`, "Reactivated") }, "Reactivate"),
    );
  }
  if (can(info, "admin") && s.lease) {
    actions.push(h("button", { id: "break-lease", type: "button", class: "danger",
      onclick: () => act(`Break the lease of ${s.user_id} held by ${s.lease?.holder}? The holder's fence becomes stale.`, "Break lease", "POST", `/api/v1/sessions/${sid}/lease/break`, "Lease broken") }, "Break lease"));
  }

  main.replaceChildren(
    h("p", {}, h("a", { href: "#/tenants" }, "← Tenants")),
    h("h1", {}, s.user_id),
    h("div", { class: "cols" },
      h("section", { class: "card" }, h("h2", {}, "Session"), facts(s)),
      h("section", { class: "card" }, h("h2", {}, "Lease"), lease(s),
        actions.length ? h("div", { class: "row actions" }, actions) : h("p", { class: "muted" }, "This token may not change this tenant."),
        status),
    ),
    h("section", { class: "card" }, h("h2", {}, "Audit trail"),
      trail.activity.length
        ? h("ol", { class: "timeline", id: "timeline" }, trail.activity.map(event))
        : h("p", { class: "muted" }, "No events.")),
  );
}

function facts(s: Session): HTMLElement {
  const rows: [string, Node | string][] = [
    ["session_id", h("span", { class: "mono" }, s.session_id)],
    ["username", s.username ?? "—"],
    ["api_id", String(s.api_id)],
    ["active", badge(s.is_active, "active", "inactive")],
    ["authorized", badge(s.is_authorized, "yes", "no")],
    ["digital twin", badge(s.digital_twin_enabled, "on", "off")],
    ["auto reply", badge(s.auto_reply_enabled, "on", "off")],
    ["phone stored", s.has_phone ? "yes (sealed)" : "no"],
    ["session blob stored", s.has_session_data ? "yes (sealed)" : "no"],
    ["data key", String(s.data_key_id)],
    ["version", String(s.version)],
    ["last seen", time(s.last_seen_at)],
    ["created", time(s.created_at)],
    ["updated", time(s.updated_at)],
  ];
  return h("dl", { class: "facts", id: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function lease(s: Session): HTMLElement {
  if (!s.lease) return h("p", { id: "lease" }, badge(false, "held", "free"), " nobody holds it.");
  return h("dl", { class: "facts", id: "lease" },
    h("dt", {}, "holder"), h("dd", {}, s.lease.holder),
    h("dt", {}, "fence"), h("dd", {}, String(s.lease.fence)),
    h("dt", {}, "expires"), h("dd", {}, time(s.lease.expires_at)),
  );
}

function event(a: Activity): HTMLElement {
  const details = Object.entries(a.details ?? {})
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ");
  return h("li", {},
    h("span", { class: "when" }, time(a.created_at)),
    h("span", { class: "what" }, a.activity_type.replace(/_/g, " ")),
    h("span", { class: "actor" }, `by ${a.actor}`),
    details ? h("span", { class: "muted details" }, details) : null,
  );
}
