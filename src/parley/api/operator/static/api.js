// The console's JSON calls: same origin, the session cookie, the CSRF token on every POST.

let csrfToken = null;

export function setCsrfToken(token) {
  csrfToken = token;
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.fields = error.fields;
  }
}

async function answer(response) {
  if (response.status === 401) {
    // Signed out or expired: the page shows the sign-in form again.
    location.reload();
    throw new ApiError(401, {error: {message: "signed out"}});
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export async function get(path, params) {
  const query = params ? new URLSearchParams(
    Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")) : null;
  const url = query && [...query].length ? `${path}?${query}` : path;
  return answer(await fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}}));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: {"Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken},
    body: JSON.stringify(body || {}),
  }));
}
