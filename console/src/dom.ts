// A tiny element builder: text always goes in as text nodes (never HTML),
// so nothing the API returns can become markup or script.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | EventListener | null | undefined>;

export function h(tag: string, attrs: Attrs = {}, ...children: (Child | Child[])[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v as EventListener);
    } else if (k === "style") {
      // CSSOM, not a style attribute: the CSP allows no inline style attributes.
      el.style.cssText = String(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else el.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
}

const SVG = "http://www.w3.org/2000/svg";

export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return el;
}

export function ago(iso: string | null): string {
  if (!iso) return "never";
  const secs = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const abs = Math.abs(secs);
  const unit =
    abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return secs >= 0 ? `${unit} ago` : `in ${unit}`;
}

export function time(iso: string | null): HTMLElement {
  if (!iso) return h("span", { class: "muted" }, "never");
  return h("time", { datetime: iso, title: iso }, ago(iso));
}

export function badge(on: boolean, yes: string, no: string): HTMLElement {
  return h("span", { class: on ? "badge on" : "badge off" }, on ? yes : no);
}

export function fmt(n: number): string {
  return n.toLocaleString("en-US");
}

/// Asks for confirmation in the page's modal dialog (keyboard: Tab, Enter, Esc).
export function confirmAction(text: string, ok: string): Promise<boolean> {
  const dialog = document.getElementById("confirm") as HTMLDialogElement;
  (document.getElementById("confirm-text") as HTMLElement).textContent = text;
  (document.getElementById("confirm-ok") as HTMLElement).textContent = ok;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
    (document.getElementById("confirm-cancel") as HTMLElement).focus();
  });
}
