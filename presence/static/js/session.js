// session.js: what both pages do the same way to sign in and stay connected.
//
// It owns the token (from the link's #token= or sessionStorage), the sign-in
// card, the one websocket (subprotocol, reconnection with jittered backoff,
// pings and the dead-link check, request/reply by ref, the server's clock),
// the connection-level frames (snapshot opens, pong sets the clock, resync
// and error), the connection indicator and the top bar's language, help and
// sign-out controls. A page creates one Session with its callbacks and keeps
// only its own logic; a change to how the pages connect, notice a silent
// link or show the connection goes here, once, for both.

import { $, setText, toast } from "./common.js";
import { applyI18n, getLang, onLangChange, setLang, t } from "./i18n.js";

// -- token ------------------------------------------------------------------

const TOKEN_KEY = (role) => `presence.token.${role}`;

/** The token from the link's #token= (then removed from the address bar) or sessionStorage. */
function loadToken(role) {
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

function saveToken(role, token) {
  sessionStorage.setItem(TOKEN_KEY(role), token.trim());
}

function clearToken(role) {
  sessionStorage.removeItem(TOKEN_KEY(role));
}

/** The claims of a JWT, unverified (display only: the server verifies). */
function claims(token) {
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

// The encoding both pages speak (docs/protocol.md, "Subprotocols").
const SUBPROTOCOL = "presence.v1.json";
// Heartbeats. A link can die without a close: the network went away, the
// server froze, a NAT forgot the flow; the socket then stays "open" and
// silent, and only an unanswered ping tells. The page pings every PING_MS;
// if nothing at all has arrived SILENT_MS after a ping, the link is dead: it
// is dropped without waiting for a close handshake that cannot complete, and
// the page reconnects (a dead link shows within PING_MS + SILENT_MS). Any
// frame answers a ping: on a busy wallboard the pong may queue behind events.
// The pings also keep the server's heartbeat timeout (60 s) from closing an
// idle page.
const PING_MS = 4000;
const SILENT_MS = 4000;
// An attempt not open after this long is given up: a frozen server still
// accepts the TCP connection (the kernel does) but never answers the upgrade.
const CONNECT_MS = 10000;

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
// waits before each retry of a request answered `unavailable`, ms
const RETRY_DELAYS = [500, 1000, 2000, 4000];

class Socket {
  constructor(path, token, { onmessage, onstate }) {
    this.path = path;
    this.token = token;
    this.onmessage = onmessage;
    this.onstate = onstate;
    this.ws = null;
    this.attempt = 0;
    this.refs = 0;
    // Refs are unique per page load, not just per socket: the server keeps an
    // agent's answer under its ref for a minute, to answer a retry with it.
    this.refBase = `r${Math.random().toString(36).slice(2, 10)}-`;
    this.pending = new Map();
    this.offset = 0; // server clock minus local clock, ms
    this.stopped = false;
    this.timer = null;
    this.pingTimer = null;
    this.connectTimer = null;
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
      ws = new WebSocket(url, [SUBPROTOCOL]);
    } catch {
      this.schedule();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => this.drop(ws), CONNECT_MS);
    ws.onopen = () => {
      clearTimeout(this.connectTimer);
      this.lastFrame = Date.now();
      this.startPing(ws);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return; // a dropped socket's late frames
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
      clearTimeout(this.connectTimer);
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

  startPing(ws) {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws || ws.readyState !== 1) return;
      const sent = Date.now();
      ws.send(JSON.stringify({ type: "ping", ts: sent }));
      setTimeout(() => {
        if (this.ws === ws && this.lastFrame < sent) this.drop(ws);
      }, SILENT_MS);
    }, PING_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Give up on a silent socket (or a stalled attempt) at once, and try again. */
  drop(ws) {
    if (this.ws !== ws) return;
    this.ws = null; // its close event, whenever it comes, changes nothing
    clearTimeout(this.connectTimer);
    this.stopPing();
    this.failPending();
    try {
      ws.close(4000, "no answer");
    } catch {
      /* already closing */
    }
    if (!this.stopped) this.schedule();
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

  /** Send a message; resolves with the reply (ok, pong, snapshot) or rejects with the error.
   * An `unavailable` answer (the server's store paused) may hide an action
   * that was applied all the same: it is sent again with the same ref, which
   * the server answers with the first result instead of applying it twice. */
  async request(msg, timeout = 10000) {
    const ref = `${this.refBase}${++this.refs}`;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send(msg, ref, timeout);
      } catch (err) {
        if (err.code !== "unavailable" || attempt >= RETRY_DELAYS.length) throw err;
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS[attempt]));
      }
    }
  }

  send(msg, ref, timeout) {
    return new Promise((resolve, reject) => {
      if (!this.open) {
        reject(new RequestError({ code: "disconnected", message: t("err.disconnected") }));
        return;
      }
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
    clearTimeout(this.connectTimer);
    this.stopPing();
    window.removeEventListener("online", this.onOnline);
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
  }
}

class RequestError extends Error {
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
async function api(token, path, options = {}) {
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
function showConnection(el, state, info) {
  el.dataset.state = state;
  const text = el.querySelector(".conn-text");
  clearInterval(el._tick);
  if (state === "open") text.textContent = t("conn.open");
  // a first attempt connects; any later one (after a drop) reconnects
  else if (state === "connecting") text.textContent = t(info.attempt ? "conn.reconnecting" : "conn.connecting");
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

// -- the session a page uses -----------------------------------------------------

/**
 * A page's sign-in and connection. The page passes
 *
 *   role          "agent" | "supervisor": the role its token must carry
 *   path          its websocket endpoint ("/ws/agent", "/ws/supervisor")
 *   signedInOnly  selectors shown only while signed in (besides #app and #signout)
 *   onSignIn(claims)  a token was admitted; the socket connects right after
 *   onMessage(msg)    a `snapshot` (on every (re)connection: replace all local
 *                     state with it) or an event; never a reply to request(),
 *                     nor `pong`, `resync` or `error`, which the session handles
 *   onReset()         signed out, or the server refused the token: forget
 *                     everything shown for that user
 *   onLang()          the language changed (the [data-i18n] labels are done):
 *                     redraw what the page drew itself
 *
 * then wires its own controls and calls start() once. What it reads back:
 *
 *   token, claims   the signed-in user's (null while signed out)
 *   signedIn        true from sign-in to sign-out, reconnecting included
 *   state           "connecting" | "open" | "waiting" | "closed"
 *   now()           the server's clock in ms (for countdowns against expires_at)
 *   request(msg)    send; resolves with the reply, rejects with an Error that
 *                   has `code`, `field` and `unavailable`
 *   unavailable     message types this server answered `unknown_type`
 *   api(path, opts) HTTP with the bearer token; the parsed JSON body
 *   signOut()
 */
export class Session {
  #hooks;
  #socket = null;
  #started = false;
  #shown = { state: "closed", info: {} }; // the indicator's state, repainted in a new language

  constructor({ role, path, signedInOnly = [], onSignIn, onMessage, onReset, onLang }) {
    this.role = role;
    this.path = path;
    this.signedInOnly = signedInOnly;
    const none = () => {};
    this.#hooks = {
      onSignIn: onSignIn || none,
      onMessage: onMessage || none,
      onReset: onReset || none,
      onLang: onLang || none,
    };
    this.token = null;
    this.claims = null;
    this.state = "closed";
    this.unavailable = new Set();
  }

  /** Wire the top bar and the sign-in card, then sign in with the link's or the tab's token. */
  start() {
    if (this.#started) throw new Error("Session.start() was already called");
    this.#started = true;
    $("#lang").value = getLang();
    $("#lang").addEventListener("change", (e) => setLang(e.target.value));
    onLangChange(() => {
      applyI18n(document);
      showConnection($("#conn"), this.#shown.state, this.#shown.info);
      this.#hooks.onLang();
    });
    applyI18n(document);
    $("#signin-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const tok = $("#token-input").value.trim();
      if (!tok) return;
      saveToken(this.role, tok);
      this.#signIn(tok);
    });
    $("#signout").addEventListener("click", () => this.signOut());
    $("#help-btn").addEventListener("click", () => $("#help").showModal());
    const tok = loadToken(this.role);
    if (tok) this.#signIn(tok);
    else this.#showSignIn(null);
  }

  get signedIn() {
    return this.#socket !== null;
  }

  now() {
    return this.#socket ? this.#socket.now() : Date.now();
  }

  async request(msg, timeout) {
    if (!this.#socket) throw new Error("not signed in");
    try {
      return await this.#socket.request(msg, timeout);
    } catch (err) {
      if (err.unavailable) this.unavailable.add(msg.type);
      throw err;
    }
  }

  api(path, options) {
    return api(this.token, path, options);
  }

  #signIn(tok) {
    const c = claims(tok);
    // display-only checks, to say at once what is wrong; the server verifies
    const why = !c || !c.sub ? "err.badToken" : c.role && c.role !== this.role ? "err.forbidden" : null;
    if (why) {
      clearToken(this.role);
      this.#showSignIn(why);
      return;
    }
    if (this.#socket) this.#socket.close(); // one socket per page, whatever calls this
    this.token = tok;
    this.claims = c;
    this.#showSignedIn();
    this.#hooks.onSignIn(c);
    this.#socket = new Socket(this.path, tok, {
      onmessage: (msg) => this.#onFrame(msg),
      onstate: (state, info) => this.#onState(state, info),
    });
    this.#socket.connect();
  }

  signOut() {
    this.#forget();
    this.#show("closed", {});
    this.#showSignIn(null);
  }

  /** Drop the socket, the token and the page's state. */
  #forget() {
    if (this.#socket) this.#socket.close();
    this.#socket = null;
    this.token = null;
    this.claims = null;
    clearToken(this.role);
    this.#hooks.onReset();
  }

  #onState(state, info) {
    this.#show(state, info);
    // refused for good (bad token, wrong role, unknown agent): back to sign-in, saying why
    if (state === "closed" && info.key) {
      this.#forget();
      this.#showSignIn(info.key);
    }
  }

  #onFrame(msg) {
    switch (msg.type) {
      case "pong": // the socket has taken the server's clock from it
      case "resync": // the server lost events; the snapshot that follows replaces everything
        return;
      case "error": // not the reply to a request (those reject it): nobody else shows it
        toast(msg.message || msg.code, "error");
        return;
      default:
        this.#hooks.onMessage(msg);
    }
  }

  /** The indicator, and the page dimmed while its data may be stale. */
  #show(state, info) {
    this.state = state;
    this.#shown = { state, info };
    showConnection($("#conn"), state, info);
    $("#app").classList.toggle("stale", state !== "open");
  }

  #showSignIn(errorKey) {
    $("#signin").hidden = false;
    this.#toggleSignedIn(false);
    setText($("#signin-error"), errorKey ? t(errorKey) : "");
    $("#token-input").focus();
  }

  #showSignedIn() {
    $("#signin").hidden = true;
    this.#toggleSignedIn(true);
  }

  #toggleSignedIn(on) {
    for (const sel of ["#app", "#signout", ...this.signedInOnly]) $(sel).hidden = !on;
  }
}
