import { get } from "../api";
import { gauge } from "../charts";
import { fmt, h, time } from "../dom";

interface Key {
  id: number;
  state: string;
  kek_id: string;
  algorithm: string;
  rows: number;
  encryptions: number;
  created_at: string;
  retired_at: string | null;
  warning: string | null;
}

const BUDGET = 2 ** 32;
const POLL_MS = 1000;

/// Data keys and the master key; polled every second while the page is open,
/// so a `rotate` running in another process shows as rows moving.
export async function keys(main: HTMLElement, still: () => boolean): Promise<void> {
  const master = await get<{ kind: string; kek_id: string }>("/api/v1/keys/master");
  const body = h("div", { id: "keys-live" });
  main.replaceChildren(
    h("h1", {}, "Keys"),
    h("section", { class: "card" }, h("h2", {}, "Master key"),
      h("dl", { class: "facts" },
        h("dt", {}, "kind"), h("dd", { id: "master-kind" }, master.kind),
        h("dt", {}, "fingerprint"), h("dd", { class: "mono", id: "master-fingerprint" }, master.kek_id))),
    body,
  );
  const tick = async () => {
    if (!still()) return;
    try {
      const view = await get<{ keys: Key[] }>("/api/v1/keys");
      if (!still()) return;
      render(body, view.keys);
    } catch (e) {
      body.prepend(h("p", { class: "error" }, `Cannot read keys: ${(e as Error).message}`));
    }
    setTimeout(tick, POLL_MS);
  };
  await tick();
}

function render(body: HTMLElement, keys: Key[]): void {
  const total = keys.reduce((a, k) => a + k.rows, 0);
  const remaining = keys.filter((k) => k.state !== "primary").reduce((a, k) => a + k.rows, 0);
  const done = total ? (total - remaining) / total : 1;
  const rotation = remaining > 0
    ? h("section", { class: "card", id: "rotation" },
        h("h2", {}, "Rotation"),
        h("p", {}, `${fmt(remaining)} rows still sealed under older keys of ${fmt(total)}.`),
        h("progress", { id: "rotation-progress", max: total, value: total - remaining, "aria-label": "Rows on the primary key" }),
        h("p", { class: "muted", id: "rotation-percent" }, `${(done * 100).toFixed(1)} % on the primary key`),
        h("ul", {}, keys.filter((k) => k.state !== "primary" && k.rows > 0).map((k) => h("li", {}, `key ${k.id}: ${fmt(k.rows)} rows remaining`))))
    : h("section", { class: "card", id: "rotation" }, h("h2", {}, "Rotation"),
        h("p", { id: "rotation-percent" }, "Every row is on the primary key: no rotation is pending."));
  body.replaceChildren(
    rotation,
    h("section", { class: "card" }, h("h2", {}, "Data keys"),
      h("div", { class: "table-wrap" },
        h("table", { class: "grid", id: "keys" },
          h("thead", {}, h("tr", {}, ["id", "state", "rows", "encryptions of 2³²", "created", "retired"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, keys.map((k) => h("tr", { "data-key": k.id },
            h("td", { class: "num" }, String(k.id)),
            h("td", {}, h("span", { class: `badge ${k.state === "retired" ? "off" : "on"}` }, k.state)),
            h("td", { class: "num key-rows" }, fmt(k.rows)),
            h("td", {}, gauge(k.encryptions, BUDGET, `key ${k.id}: ${fmt(k.encryptions)} encryptions of 2^32`),
              h("span", { class: "muted" }, ` ${fmt(k.encryptions)}`), k.warning ? h("p", { class: "error" }, k.warning) : null),
            h("td", {}, time(k.created_at)),
            h("td", {}, time(k.retired_at)),
          ))),
        ))),
  );
}
