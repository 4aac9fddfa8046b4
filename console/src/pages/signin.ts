import { ApiError, TokenInfo, clearToken, get, setToken } from "../api";
import { h } from "../dom";

/// The sign-in form: the token is checked against GET /api/v1/token before it is kept.
export function signin(main: HTMLElement, done: (info: TokenInfo) => void, notice?: string): void {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  }) as HTMLInputElement;
  const error = h("p", { id: "signin-error", class: "error", role: "alert" });
  if (notice) error.textContent = notice;
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "muted" },
      "Paste a token made with `vibee-sessions token create`. It is kept in this tab only and sent only in the Authorization header."),
    error,
    button,
  ) as HTMLFormElement;
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    const t = input.value.trim();
    if (!t) return;
    setToken(t);
    button.setAttribute("disabled", "");
    try {
      done(await get<TokenInfo>("/api/v1/token"));
    } catch (err) {
      clearToken();
      error.textContent =
        err instanceof ApiError && err.status === 401 ? "This token is not valid (unknown or revoked)." : `Cannot sign in: ${(err as Error).message}`;
      input.select();
    } finally {
      button.removeAttribute("disabled");
    }
  });
  main.replaceChildren(form);
  input.focus();
}
