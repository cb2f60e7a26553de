// The public JSON API (/api/v1), as the page reads it (and the two writes a receipt holder makes). Response shapes:
// api/schemas/.

export class ApiError extends Error {
  constructor(status, message, code = null, body = null) {
    super(message);
    this.status = status;
    // the API's error code ({"error": {"code"}}), and the whole answer (a 409 duplicate carries its submission)
    this.code = code;
    this.body = body;
  }
}

// a read answered 429 (a budget spent) or 503 with Retry-After (work shed under load) is asked again after the wait
// it names, as the API asks every client to: at most this many times, each wait at most MAX_WAIT_S seconds
const READ_RETRIES = 3;
const MAX_WAIT_S = 10;

function comeBackAfter(response) {
  const header = response.headers.get("Retry-After");
  if (response.status !== 429 && !(response.status === 503 && header !== null)) return null;
  const seconds = Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, MAX_WAIT_S) : 1;
}

async function send(url, init, retries = 0) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(0, error.message || String(error));
  }
  const wait = retries > 0 ? comeBackAfter(response) : null;
  if (wait !== null) {
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return send(url, init, retries - 1);
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = null;
    let body = null;
    try {
      body = await response.json();
      // {"error": {"code", "message", "detail"}}
      if (body.error && body.error.message) message = body.error.message;
      if (body.error && body.error.code) code = body.error.code;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message, code, body);
  }
  return response.json();
}

/** GET /api/v1/{path} with the query `params` (null and empty values left out); the parsed JSON. */
export async function get(path, params = {}) {
  const url = new URL(`/api/v1/${path}`, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  return send(url, { headers: { Accept: "application/json" } }, READ_RETRIES);
}

/** POST /api/v1/{path} with a JSON body; the parsed JSON answer, or an ApiError carrying the API's error code. */
export async function post(path, body) {
  const url = new URL(`/api/v1/${path}`, window.location.origin);
  return send(url, {
    method: "POST",
    headers: { Accept: "application/json", "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}
