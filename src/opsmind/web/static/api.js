// The API client: JSON over fetch with the stored token, the error banner, the token prompt, and server-sent events
// read with fetch + ReadableStream (EventSource cannot send an Authorization header).

const BASE = "/api/v1";
const TOKEN_KEY = "opsmind.token";

/** An API error: the HTTP status and the contract's error model {code, message, field}. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives for this page only */ }
  memoryToken = token || "";
}

let memoryToken = "";

function authHeaders() {
  const token = getToken() || memoryToken;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// ---- token prompt -------------------------------------------------------------------------------------------

let tokenWaiters = null;

/** Show the token dialog; resolves when the user saved a token (true) or cancelled (false). */
export function askToken(reason) {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason || "";
  if (!tokenWaiters) {
    tokenWaiters = [];
    input.value = "";
    if (!dialog.open) dialog.showModal();
    input.focus();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

export function initTokenDialog() {
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const finish = (ok) => {
    const waiters = tokenWaiters || [];
    tokenWaiters = null;
    if (dialog.open) dialog.close();
    waiters.forEach((resolve) => resolve(ok));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) { input.focus(); return; }
    setToken(value);
    finish(true);
    document.dispatchEvent(new CustomEvent("opsmind:token"));
  });
  document.getElementById("token-cancel").addEventListener("click", () => finish(false));
  document.getElementById("token-clear").addEventListener("click", () => {
    setToken("");
    finish(false);
    document.dispatchEvent(new CustomEvent("opsmind:token"));
  });
  dialog.addEventListener("cancel", () => finish(false));
}

// ---- banner -------------------------------------------------------------------------------------------------

/** Show an error in the banner (one line per distinct message, newest first, at most 3). */
export function showError(message) {
  const banner = document.getElementById("banner");
  const list = banner.querySelector("ul");
  for (const li of list.children) {
    if (li.dataset.message === message) li.remove();
  }
  const li = document.createElement("li");
  li.dataset.message = message;
  li.textContent = message;
  list.prepend(li);
  while (list.children.length > 3) list.lastElementChild.remove();
  banner.hidden = false;
}

export function clearErrors() {
  const banner = document.getElementById("banner");
  banner.querySelector("ul").replaceChildren();
  banner.hidden = true;
}

// ---- requests -----------------------------------------------------------------------------------------------

async function errorOf(res, path) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = body && body.error;
  if (e && e.message) {
    const where = e.field ? ` (${e.field})` : "";
    return new ApiError(res.status, e.code || "error", `${e.message}${where}`, e.field || null);
  }
  const detail = body && typeof body.detail === "string" ? body.detail : res.statusText;
  return new ApiError(res.status, "http_error", `${path}: HTTP ${res.status} ${detail}`.trim(), null);
}

/**
 * Call the API: api("/incidents") -> parsed JSON. On 401 the token prompt opens and the call is retried with the
 * new token; other errors throw ApiError (the caller decides whether it goes to the banner).
 */
export async function api(path, { method = "GET", body = undefined, signal = undefined } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: "application/json", ...authHeaders() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(BASE + path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network", `cannot reach the opsmind server (${method} ${path})`, null);
    }
    if (res.status === 401 && attempt < 3) {
      const err = await errorOf(res, path);
      const ok = await askToken(getToken() ? `The token was refused: ${err.message}` : "This server needs an API token.");
      if (ok) continue;
      throw err;
    }
    if (!res.ok) throw await errorOf(res, path);
    if (res.status === 204) return null;
    return res.json();
  }
}

/** Like api(), but errors go to the banner and the result is null. */
export async function load(path, options) {
  try {
    return await api(path, options);
  } catch (err) {
    if (err.name !== "AbortError") showError(err.message);
    return null;
  }
}

// ---- server-sent events -------------------------------------------------------------------------------------

/**
 * Parse a text/event-stream into events; feed chunks with push(text), get {event, data, id} objects through
 * onEvent. Comments (": ping") and retry fields are handled; data lines are joined with "\n".
 */
export class EventStreamParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.reset();
    this.lastId = "";
    this.retry = null;
  }

  reset() {
    this.event = "";
    this.data = [];
    this.id = null;
  }

  push(text) {
    this.buffer += text;
    let nl;
    while ((nl = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      const skip = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + skip);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.id !== null) this.lastId = this.id;
      if (this.data.length) {
        this.onEvent({ event: this.event || "message", data: this.data.join("\n"), id: this.lastId });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
  }
}

/**
 * Listen to /api/v1/events: calls onEvent(name, payload) for each event and onState("live"|"connecting"|"offline")
 * when the connection changes. Reconnects with backoff (1 s doubling to 30 s) and sends Last-Event-ID.
 * Returns a function that stops listening.
 */
export function listen(onEvent, onState) {
  let stopped = false;
  let controller = null;
  let lastId = "";
  let delay = 1000;
  let timer = null;

  async function connect() {
    if (stopped) return;
    onState("connecting");
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let retryAfter = null;
    try {
      const res = await fetch(`${BASE}/events`, { headers, signal: controller.signal, cache: "no-store" });
      if (res.status === 401) {
        onState("auth");
        // a saved token restarts the stream (the "opsmind:token" listener below); a cancelled prompt leaves it
        // offline instead of asking again on every retry
        await askToken("The live event stream needs an API token.");
        return;
      }
      if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
      onState("live");
      delay = 1000;
      const parser = new EventStreamParser((ev) => {
        if (ev.id) lastId = ev.id;
        let payload = ev.data;
        try { payload = JSON.parse(ev.data); } catch { /* not JSON: pass the text */ }
        try { onEvent(ev.event, payload, ev.id); } catch (err) { console.warn("event handler failed", err); }
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
        if (parser.retry !== null) retryAfter = parser.retry;
      }
    } catch (err) {
      if (stopped || (err && err.name === "AbortError")) return;
    }
    if (retryAfter !== null) delay = Math.max(retryAfter, 500);
    schedule();
  }

  function schedule() {
    if (stopped) return;
    onState("offline");
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30000);
  }

  // a new token (or a cleared one) restarts the stream with it
  const restart = () => {
    if (controller) controller.abort();
    clearTimeout(timer);
    delay = 1000;
    connect();
  };
  document.addEventListener("opsmind:token", restart);
  connect();
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("opsmind:token", restart);
    if (controller) controller.abort();
  };
}
