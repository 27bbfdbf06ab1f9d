// session.js: a page's sign-in and connection: the token, the socket
// (reconnect with jittered backoff, request/reply by ref, server clock
// offset), the connection indicator and the sign-in card.

import { $, setText } from "./common.js";
import { t } from "./i18n.js";

// -- token ------------------------------------------------------------------

const TOKEN_KEY = (role) => `presence.token.${role}`;

/** The token from the link's #token= (then removed from the address bar) or sessionStorage. */
export function loadToken(role) {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromLink = hash.get("token");
  if (fromLink) {
    sessionStorage.setItem(TOKEN_KEY(role), fromLink.trim());
    hash.delete("token");
    const rest = hash.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return sessionStorage.getItem(TOKEN_KEY(role));
}

export function saveToken(role, token) {
  sessionStorage.setItem(TOKEN_KEY(role), token.trim());
}

export function clearToken(role) {
  sessionStorage.removeItem(TOKEN_KEY(role));
}

/** The claims of a JWT, unverified (display only: the server verifies). */
export function claims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      atob(part + "===".slice((part.length + 3) % 4))
        .split("")
        .map((c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0"))
        .join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

// -- socket -----------------------------------------------------------------

// Close codes after which retrying with the same token cannot help.
const FATAL = { 4401: "err.unauthorized", 4403: "err.forbidden", 4404: "err.unknownAgent" };

/**
 * One logical connection that survives blips: it reconnects by itself with
 * exponential backoff and full jitter, and every (re)connection starts with
 * a fresh snapshot from the server, so nothing is lost while it was away.
 *
 * Events: onmessage(msg), onstate(state, info) with state in
 * "connecting" | "open" | "waiting" | "closed".
 */
export class Socket {
  constructor(path, token, { onmessage, onstate }) {
    this.path = path;
    this.token = token;
    this.onmessage = onmessage;
    this.onstate = onstate;
    this.ws = null;
    this.attempt = 0;
    this.refs = 0;
    this.pending = new Map();
    this.offset = 0; // server clock minus local clock, ms
    this.stopped = false;
    this.timer = null;
    this.pingTimer = null;
    this.lastFrame = 0;
    this.retryAt = 0;
    this.onOnline = () => this.retryNow();
    window.addEventListener("online", this.onOnline);
  }

  /** Server time now, in ms (for countdowns against expires_at). */
  now() {
    return Date.now() + this.offset;
  }

  connect() {
    clearTimeout(this.timer);
    this.stopped = false;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}${this.path}?token=${encodeURIComponent(this.token)}`;
    this.onstate("connecting", { attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(url, ["presence.v1.json"]);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrame = Date.now();
      this.startPing();
    };
    ws.onmessage = (ev) => {
      this.lastFrame = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === "snapshot") {
        this.attempt = 0;
        this.onstate("open", {});
      }
      if (typeof msg.server_time === "number" && (msg.type === "snapshot" || msg.type === "pong")) {
        this.offset = msg.server_time - Date.now();
      }
      if (msg.ref !== undefined && this.pending.has(msg.ref)) {
        const p = this.pending.get(msg.ref);
        this.pending.delete(msg.ref);
        clearTimeout(p.timer);
        if (msg.type === "error") p.reject(new RequestError(msg));
        else p.resolve(msg);
        if (msg.type !== "snapshot") return;
      }
      this.onmessage(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      this.failPending();
      if (this.stopped) return;
      const fatal = FATAL[ev.code];
      if (fatal) {
        this.stopped = true;
        this.onstate("closed", { code: ev.code, reason: ev.reason, key: fatal });
        return;
      }
      // 1008 (abuse) and 1013 (store down): wait longer before trying again
      this.schedule(ev.code === 1008 || ev.code === 1013 ? 3 : 0);
    };
  }

  schedule(extra = 0) {
    this.attempt += 1;
    const cap = Math.min(30000, 500 * 2 ** Math.min(this.attempt + extra, 8));
    const delay = 250 + Math.random() * cap; // full jitter: a restart is not a stampede
    this.retryAt = Date.now() + delay;
    this.onstate("waiting", { attempt: this.attempt, at: this.retryAt });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  retryNow() {
    if (this.stopped || (this.ws && this.ws.readyState <= 1)) return;
    clearTimeout(this.timer);
    this.connect();
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== 1) return;
      // no frame at all for 45 s: the link is dead even if the OS has not noticed
      if (Date.now() - this.lastFrame > 45000) {
        this.ws.close(4000, "heartbeat");
        return;
      }
      this.ws.send(JSON.stringify({ type: "ping", ts: Date.now() }));
    }, 15000);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  failPending() {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new RequestError({ code: "disconnected", message: t("err.disconnected") }));
    }
    this.pending.clear();
  }

  get open() {
    return !!this.ws && this.ws.readyState === 1;
  }

  /** Send a message; resolves with the reply (ok, pong, snapshot) or rejects with the error. */
  request(msg, timeout = 10000) {
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject(new RequestError({ code: "disconnected", message: t("err.disconnected") }));
        return;
      }
      const ref = `r${++this.refs}`;
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new RequestError({ code: "timeout", message: t("err.timeout") }));
      }, timeout);
      this.pending.set(ref, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...msg, ref }));
    });
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    window.removeEventListener("online", this.onOnline);
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
  }
}

export class RequestError extends Error {
  constructor(msg) {
    super(msg.message || msg.code);
    this.code = msg.code;
    this.field = msg.field;
  }
  /** The server does not know this message type yet (a feature not deployed). */
  get unavailable() {
    return this.code === "unknown_type";
  }
}

/** GET/POST JSON with the bearer token; throws an Error with the problem's detail. */
export async function api(token, path, options = {}) {
  const res = await fetch(path, {
    ...options,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(options.body ? { "Content-Type": "application/json" } : {}),
      ...(options.headers || {}),
    },
  });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = new Error((body && (body.detail || body.title)) || `${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// -- connection indicator -----------------------------------------------------

/** Render a Socket state into the header's indicator (dot + words, never colour alone). */
export function showConnection(el, state, info) {
  el.dataset.state = state;
  const text = el.querySelector(".conn-text");
  clearInterval(el._tick);
  if (state === "open") text.textContent = t("conn.open");
  else if (state === "connecting") text.textContent = t("conn.connecting");
  else if (state === "closed") text.textContent = t("conn.closed");
  else if (state === "waiting") {
    const paint = () => {
      const s = Math.max(0, Math.ceil((info.at - Date.now()) / 1000));
      text.textContent = t("conn.retry", { s });
    };
    paint();
    el._tick = setInterval(paint, 500);
  }
}

/** Show the sign-in card, with the reason when there is one, and hide what
 *  only shows while signed in (the app, sign-out and the `extra` selectors). */
export function showSignInCard(errorKey, extra = []) {
  $("#signin").hidden = false;
  $("#app").hidden = true;
  $("#signout").hidden = true;
  for (const sel of extra) $(sel).hidden = true;
  setText($("#signin-error"), errorKey ? t(errorKey) : "");
  $("#token-input").focus();
}

/** The claims of a token fit for `role`, with the app shown; or null, the
 *  token forgotten and the sign-in card shown with the reason. */
export function admit(role, tok, extra = []) {
  const c = claims(tok);
  const why = !c || !c.sub ? "err.badToken" : c.role && c.role !== role ? "err.forbidden" : null;
  if (why) {
    clearToken(role);
    showSignInCard(why, extra);
    return null;
  }
  $("#signin").hidden = true;
  $("#app").hidden = false;
  $("#signout").hidden = false;
  for (const sel of extra) $(sel).hidden = false;
  return c;
}
