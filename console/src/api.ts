// Calls to the REST API with the operator's token. The token lives in
// sessionStorage only (gone when the tab closes), goes out only in the
// Authorization header, and is never logged or put into a URL.

const KEY = "vibee-sessions.token";

export interface TokenInfo {
  name: string;
  scopes: string[];
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

export function token(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(t: string): void {
  sessionStorage.setItem(KEY, t);
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}

export async function call<T>(method: string, path: string, signal?: AbortSignal): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  // cache "default", not "no-store": for "no-store" the browser adds
  // `Cache-Control: no-cache`, which asks the server to count every session
  // anew for each overview (GET /api/v1/stats) instead of sharing its copy.
  // The browser stores none of these answers either way: every API response
  // says `Cache-Control: no-store`.
  const r = await fetch(path, { method, headers, signal, credentials: "omit", cache: "default" });
  if (r.status === 204) return undefined as T;
  let body: unknown = null;
  try {
    body = await r.json();
  } catch {
    body = null;
  }
  if (!r.ok) {
    const b = (body ?? {}) as { code?: string; error?: string };
    throw new ApiError(r.status, b.code ?? "error", b.error ?? `HTTP ${r.status}`);
  }
  return body as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => call<T>("GET", path, signal);

export function can(info: TokenInfo | null, scope: string): boolean {
  return !!info && (info.scopes.includes("admin") || info.scopes.includes(scope));
}

export interface Lease {
  session_id: string;
  holder: string;
  fence: number;
  expires_at: string;
}

export interface Session {
  user_id: string;
  session_id: string;
  username: string | null;
  api_id: number;
  data_key_id: number;
  is_active: boolean;
  is_authorized: boolean;
  digital_twin_enabled: boolean;
  auto_reply_enabled: boolean;
  last_seen_at: string | null;
  version: number;
  created_at: string;
  updated_at: string;
  has_phone: boolean;
  has_session_data: boolean;
  lease: Lease | null;
}

export interface SessionPage {
  sessions: Session[];
  next_cursor: string | null;
}
