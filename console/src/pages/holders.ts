import { get } from "../api";
import { bars } from "../charts";
import { badge, h, time } from "../dom";

interface Holder {
  holder: string;
  seen_at: string | null;
  expires_at: string | null;
  live: boolean;
  tenants: number;
}

export async function holders(main: HTMLElement): Promise<void> {
  const { holders } = await get<{ holders: Holder[] }>("/api/v1/leases/holders");
  main.replaceChildren(
    h("h1", {}, "Holders"),
    holders.length === 0
      ? h("p", { class: "muted" }, "No boot loader holds a lease or sends heartbeats.")
      : h("div", {},
          h("section", { class: "card" }, h("h2", {}, "Tenants per holder"),
            bars(holders.map((x) => ({ label: x.holder, value: x.tenants })), "Live leases held by each boot loader")),
          h("section", { class: "card" },
            h("div", { class: "table-wrap" },
              h("table", { class: "grid", id: "holders" },
                h("thead", {}, h("tr", {}, ["holder", "heartbeat", "last heartbeat", "expires", "tenants"].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, holders.map((x) => h("tr", {},
                  h("td", {}, x.holder),
                  h("td", {}, x.seen_at ? badge(x.live, "live", "expired") : h("span", { class: "muted" }, "none")),
                  h("td", {}, time(x.seen_at)),
                  h("td", {}, time(x.expires_at)),
                  h("td", { class: "num" }, String(x.tenants)),
                ))))))),
  );
}
