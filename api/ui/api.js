// Every call to the API: the pasted token in the Authorization header (never in a URL),
// and the service's error body {"detail", "errors"} turned into one ApiError.
const TOKEN_KEY = "sam3v.token";

export const token = {
  get: () => localStorage.getItem(TOKEN_KEY) || "",
  set: (value) => localStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, detail, errors = []) {
    super(status ? `${status}: ${detail}` : detail);
    this.status = status;
    this.detail = detail;
    this.errors = errors;
  }
}

// Called on any 401, so the page can ask for a token again.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) { onUnauthorized = callback; }

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${token.get()}`, ...extra };
}

async function errorOf(response) {
  let body = {};
  try { body = await response.json(); } catch { /* not JSON: a proxy's page */ }
  const detail = typeof body.detail === "string" ? body.detail : response.statusText || "request failed";
  return new ApiError(response.status, detail, Array.isArray(body.errors) ? body.errors : []);
}

// fetch() with the token; throws ApiError on a non-2xx answer or a network failure.
export async function request(path, { method = "GET", body, headers = {}, signal } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, signal, headers: authHeaders(headers) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the API (${err.message})`);
  }
  if (!response.ok) {
    const err = await errorOf(response);
    if (response.status === 401) onUnauthorized(err);
    throw err;
  }
  return response;
}

export async function getJson(path, options) {
  return (await request(path, options)).json();
}

export async function sendJson(path, method, value) {
  const response = await request(path, {
    method, body: JSON.stringify(value), headers: { "Content-Type": "application/json" },
  });
  return response.status === 204 ? null : response.json();
}

// A file fetched with the token, as a blob: URL for <img>, <video> or a download link.
export async function blobUrl(path) {
  const blob = await (await request(path)).blob();
  return URL.createObjectURL(blob);
}

export async function download(path, fileName) {
  const url = await blobUrl(path);
  const link = Object.assign(document.createElement("a"), { href: url, download: fileName });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
