// The api over fetch with the operator's token; errors become ApiError with the api's code.

const KEY = "herald.console.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** The claims of a JWT, decoded without checking it (the api checks; this is for display). */
export function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}

/** fetch a path of the api; resolves with {body, headers}, rejects with ApiError. */
export async function call(path, { method = "GET", body, token = session.token } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "network", `the api did not answer (${error.message})`);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) {
    const code = parsed?.code ?? `http_${response.status}`;
    throw new ApiError(response.status, code, parsed?.message ?? response.statusText);
  }
  return { body: parsed, headers: response.headers };
}

export const get = (path) => call(path).then((r) => r.body);

/** The page's settings, from its <meta> tags. */
export function meta(name) {
  return document.querySelector(`meta[name="${name}"]`)?.content ?? "";
}

/** The trace id in a `traceresponse` header, or "". */
export function traceId(headers) {
  const value = headers.get("traceresponse") ?? "";
  const parts = value.split("-");
  return parts.length === 4 && /^[0-9a-f]{32}$/.test(parts[1]) ? parts[1] : "";
}

/** A link to the trace viewer for a trace id, or "" when none is configured. */
export function traceLink(id) {
  const template = meta("herald-trace-url");
  return id && template ? template.replace("{traceId}", encodeURIComponent(id)) : "";
}
