// The gateway's public API, as the console calls it: the key goes with every call,
// errors come back as ApiError with the gateway's own message.

const KEY = "agent-gateway.key";

// The key lives in this tab's sessionStorage only: closing the tab forgets it.
export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  clear() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }

  // What a person should read: the gateway's message, and the field it names.
  get words() {
    const where = this.param ? ` (field: ${this.param})` : "";
    return `${this.message}${where}`;
  }
}

function headers(extra = {}, json = false) {
  const h = { ...extra };
  const key = session.key;
  if (key) h.Authorization = `Bearer ${key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function errorOf(resp) {
  let error = {};
  try {
    const body = await resp.json();
    error = body.error || {};
  } catch {
    // not JSON: fall back to the status line
  }
  const message = error.message || `${resp.status} ${resp.statusText}`;
  return new ApiError(resp.status, message, error.code || null, error.param || null);
}

async function send(path, options) {
  try {
    return await fetch(path, options);
  } catch (exc) {
    throw new ApiError(0, `The gateway could not be reached (${exc.message}).`);
  }
}

export async function api(path, { method = "GET", body, extraHeaders } = {}) {
  const json = body !== undefined;
  const resp = await send(path, {
    method,
    headers: headers(extraHeaders, json),
    body: json ? JSON.stringify(body) : undefined,
  });
  if (!resp.ok) throw await errorOf(resp);
  return resp.status === 204 ? null : resp.json();
}

// POST a streaming chat completion; yields each SSE event's parsed data.
export async function* streamChat(body, extraHeaders = {}) {
  const resp = await send("/v1/chat/completions", {
    method: "POST",
    headers: headers(extraHeaders, true),
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!resp.ok) throw await errorOf(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data || data === "[DONE]") continue;
      const parsed = JSON.parse(data);
      if (parsed.error) {
        const e = parsed.error;
        throw new ApiError(200, e.message || "the stream failed", e.code, e.param);
      }
      yield parsed;
    }
  }
}
