// The public JSON API (/api/v1), as the page reads it. Response shapes: api/models.py.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** GET /api/v1/{path} with the query `params` (null and empty values left out); the parsed JSON. */
export async function get(path, params = {}) {
  const url = new URL(`/api/v1/${path}`, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, String(value));
  }
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" } });
  } catch (error) {
    throw new ApiError(0, error.message || String(error));
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      // {"error": {"code", "message", "detail"}}
      if (body.error && body.error.message) message = body.error.message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message);
  }
  return response.json();
}
