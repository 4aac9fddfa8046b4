import { get } from "../api";
import { columns } from "../charts";
import { fmt, h, time } from "../dom";

interface Stats {
  sessions: { total: number; active: number; authorized: number; unauthorized: number; inactive: number };
  last_seen_at: string | null;
  last_activity_at: string | null;
  leases: { held: number; free: number };
}
interface Hourly {
  hours: { hour: string; events: number }[];
}

function tile(label: string, value: number, href?: string): HTMLElement {
  const body = [h("span", { class: "tile-value" }, fmt(value)), h("span", { class: "tile-label" }, label)];
  return href ? h("a", { class: "tile", href }, body) : h("div", { class: "tile" }, body);
}

async function health(): Promise<HTMLElement> {
  try {
    const r = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
    const ok = r.ok;
    return h("span", { class: ok ? "badge on" : "badge off", id: "health" }, ok ? "ready: database and key ring" : `not ready (HTTP ${r.status})`);
  } catch {
    return h("span", { class: "badge off", id: "health" }, "unreachable");
  }
}

export async function overview(main: HTMLElement): Promise<void> {
  const [stats, hourly, ready] = await Promise.all([
    get<Stats>("/api/v1/stats"),
    get<Hourly>("/api/v1/activity/hourly"),
    health(),
  ]);
  const c = stats.sessions;
  const hours = hourly.hours.map((x) => new Date(x.hour).toISOString().slice(11, 16));
  main.replaceChildren(
    h("h1", {}, "Overview"),
    h("section", { class: "tiles", "aria-label": "Counts" },
      tile("active", c.active, "#/tenants?status=active"),
      tile("authorized", c.authorized, "#/tenants?status=active&auth=yes"),
      tile("inactive", c.inactive, "#/tenants?status=inactive"),
      tile("held leases", stats.leases.held, "#/tenants?lease=held"),
      tile("free", stats.leases.free, "#/tenants?lease=free"),
    ),
    h("section", { class: "card" },
      h("h2", {}, "Health"),
      h("dl", { class: "facts" },
        h("dt", {}, "Server"), h("dd", {}, ready),
        h("dt", {}, "Last activity"), h("dd", {}, time(stats.last_activity_at)),
        h("dt", {}, "Last seen (an agent)"), h("dd", {}, time(stats.last_seen_at)),
        h("dt", {}, "Sessions in total"), h("dd", {}, fmt(c.total)),
      ),
    ),
    h("section", { class: "card" },
      h("h2", {}, "Activity, last 24 h"),
      columns(hourly.hours.map((x) => x.events), hours.map((x) => `${x} UTC`),
        `Audit events per hour: ${fmt(hourly.hours.reduce((a, x) => a + x.events, 0))} in 24 h`),
    ),
  );
}
