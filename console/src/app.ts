// The console's shell: sign-in, navigation by the URL's fragment (which never
// holds the token), and the pages a token's scopes allow.

import { ApiError, TokenInfo, can, clearToken, get, token } from "./api";
import { h } from "./dom";
import { holders } from "./pages/holders";
import { keys } from "./pages/keys";
import { overview } from "./pages/overview";
import { signin } from "./pages/signin";
import { tenant } from "./pages/tenant";
import { tenants } from "./pages/tenants";

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
let info: TokenInfo | null = null;
let generation = 0;

const PAGES: { path: string; label: string; scope: string }[] = [
  { path: "overview", label: "Overview", scope: "sessions:list" },
  { path: "tenants", label: "Tenants", scope: "sessions:list" },
  { path: "keys", label: "Keys", scope: "admin" },
  { path: "holders", label: "Holders", scope: "sessions:list" },
];

function signOut(notice?: string): void {
  clearToken();
  info = null;
  nav.hidden = true;
  nav.replaceChildren();
  who.replaceChildren();
  history.replaceState(null, "", "#/");
  showSignin(notice);
}

function showSignin(notice?: string): void {
  generation++;
  document.title = "Sign in · vibee-sessions";
  signin(main, (i) => {
    info = i;
    shell();
    if (!location.hash || location.hash === "#/") location.hash = "#/overview";
    else void route();
  }, notice);
}

function shell(): void {
  if (!info) return;
  const allowed = PAGES.filter((p) => can(info, p.scope));
  nav.replaceChildren(...allowed.map((p) => h("a", { href: `#/${p.path}`, "data-page": p.path }, p.label)));
  nav.hidden = false;
  who.replaceChildren(
    h("span", { id: "token-name", title: `scopes: ${info.scopes.join(", ")}` }, `${info.name} · ${info.scopes.join(", ")}`),
    h("button", { id: "signout", type: "button", onclick: () => signOut() }, "Sign out"),
  );
}

async function route(): Promise<void> {
  if (!info) return;
  const mine = ++generation;
  const still = () => mine === generation && !!info;
  const [path, qs] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = (path || "overview").split("/");
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page || (page === "tenant" && a.dataset.page === "tenants")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const meta = PAGES.find((p) => p.path === (page === "tenant" ? "tenants" : page));
  document.title = `${meta?.label ?? "Console"} · vibee-sessions`;
  if (meta && !can(info, meta.scope)) {
    main.replaceChildren(h("h1", {}, meta.label), h("p", { class: "error", id: "denied" }, `This token lacks the ${meta.scope} scope this page needs.`));
    return;
  }
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    switch (page) {
      case "tenants":
        tenants(main, new URLSearchParams(qs ?? ""));
        break;
      case "tenant":
        await tenant(main, decodeURIComponent(rest.join("/")), info);
        break;
      case "keys":
        await keys(main, still);
        break;
      case "holders":
        await holders(main);
        break;
      default:
        await overview(main);
    }
  } catch (e) {
    if (!still()) return;
    if (e instanceof ApiError && e.status === 401) return signOut("The token is no longer valid; sign in again.");
    main.replaceChildren(h("p", { class: "error", role: "alert" }, `Cannot load this page: ${(e as Error).message}`));
  }
}

window.addEventListener("hashchange", () => void route());

async function start(): Promise<void> {
  if (!token()) return showSignin();
  try {
    info = await get<TokenInfo>("/api/v1/token");
    shell();
    await route();
  } catch {
    signOut("Sign in again.");
  }
}

void start();
