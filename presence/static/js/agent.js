// agent.js: the agent softphone panel (/agent).
//
// State comes only from the server: a snapshot on every (re)connection, then
// events. Nothing is kept across a reconnection but the token, so a blip
// never leaves a stale offer or a lost item on screen.

import {
  $,
  channelIcon,
  chime,
  crmLink,
  h,
  icon,
  put,
  setText,
  showCenter,
  shortExt,
  statusClass,
  statusIcon,
  toast,
  unlockAudio,
} from "./common.js";
import { Session } from "./session.js";
import {
  fmtClock,
  fmtCountdown,
  fmtDateTime,
  fmtElapsed,
  getLang,
  t,
  tChannel,
  statusLabel,
  tReason,
  tStatus,
} from "./i18n.js";

const DECLINE_REASONS = ["busy", "wrong_skill", "language", "other"];
const DISPOSITIONS = ["resolved", "follow-up", "escalated", "information given", "no answer"];
const FINAL = new Set(["completed", "abandoned", "transferred", "pulled", "cancelled", "closed"]);

const state = {
  me: null,
  ext: "", // the agent's phone extension, from its profile
  view: null,
  selectFor: "", // the status|reason the status select was last set to show
  statuses: [],
  channels: [],
  offers: new Map(),
  work: new Map(),
  notes: new Map(), // work id -> [{author, text, ts}]
  calls: new Map(), // work id -> {state, held, muted, since, ended}
  errors: new Map(), // work id -> {key, e}: the last failed action on it, shown in its panel
  queues: [],
  openId: null,
  detail: null, // last GET /api/v1/work/{id} of the open item
  profile: null, // the agent's own profile (its name fills {agent.name})
  templates: [], // GET /api/v1/templates, read when an item opens
};

const session = new Session({
  role: "agent",
  path: "/ws/agent",
  signedInOnly: ["#who"],
  onSignIn,
  onMessage,
  onReset,
  onLang: renderAll,
});

// -- start, sign-in, sign-out -----------------------------------------------

function start() {
  // signing in is a user gesture: the page may play the offer chime later (autoplay rules)
  $("#signin-form").addEventListener("submit", unlockAudio);
  $("#detail-close").addEventListener("click", closeDetail);
  $("#status-form").addEventListener("submit", (e) => {
    e.preventDefault();
    applyStatus();
  });
  $("#status-select").addEventListener("change", fillReasons);
  setupNotifications();
  document.addEventListener("keydown", onKey);
  // any click lets the page play the offer chime later (autoplay rules)
  document.addEventListener("pointerdown", unlockAudio, { passive: true });
  setInterval(tick, 500);
  session.start();
}

function onSignIn(c) {
  state.me = c.sub;
  setText($("#who-id"), c.sub);
  state.ext = "";
  renderExt();
  session
    .api(`/api/v1/agents/${encodeURIComponent(c.sub)}`)
    .then((p) => {
      state.profile = p || null;
      state.ext = (p && p.extension) || "";
      renderExt();
    })
    .catch(() => {});
  session
    .api("/api/v1/queues")
    .then((b) => {
      state.queues = (b && b.queues) || [];
    })
    .catch(() => {});
}

/** The agent's own phone extension (where the telephony system rings its calls). */
function renderExt() {
  const ext = shortExt(state.ext);
  setText($("#who-ext"), ext ? t("agent.ext", { ext }) : "");
  $("#who-ext").title = state.ext || "";
}

// signed out or refused: nothing of that agent's stays on the page
function onReset() {
  state.view = null;
  state.selectFor = "";
  state.offers.clear();
  state.work.clear();
  state.calls.clear();
  closeDetail();
  renderAll();
}

// -- messages -----------------------------------------------------------------

function onMessage(msg) {
  // an item event that changed the load carries the agent's new view (no separate `load`)
  if (msg.type !== "snapshot" && msg.agent && typeof msg.agent === "object") onView(msg.agent);
  switch (msg.type) {
    case "snapshot":
      return onSnapshot(msg);
    case "status":
    case "load":
      return onView(msg);
    case "offer":
      return onOffer(msg);
    case "offer.rescinded":
      return onRescinded(msg);
    case "work.assigned":
      return onAssigned(msg);
    case "work.updated":
      return onUpdated(msg);
    case "work.note":
      return onNote(msg);
    case "work.reply":
      return onReply(msg);
    case "work.message":
      return onCustomerMessage(msg);
    case "call.state":
      return onCallState(msg);
    case "agent.removed":
      toast(t("agent.removed"), "error");
      return;
    default:
      return; // future types: nothing to draw
  }
}

function onSnapshot(msg) {
  showCenter(msg.center);
  state.statuses = msg.statuses || [];
  state.channels = msg.channels || [];
  state.view = msg.agent || null;
  state.offers = new Map((msg.offers || []).map((o) => [o.work_id, o]));
  const work = new Map();
  for (const w of msg.work || []) {
    if (w.state === "wrapup" && w.expires_at) w.wrapup_until = w.expires_at;
    work.set(w.work_id, { ...(state.work.get(w.work_id) || {}), ...w });
  }
  for (const wid of [...state.errors.keys()]) {
    if (!work.has(wid) && !state.offers.has(wid)) state.errors.delete(wid);
  }
  state.work = work;
  // the call states come from the server again: what happened while away counts
  const calls = new Map();
  for (const w of work.values()) {
    if (!isCall(w)) continue;
    const c = { ...(state.calls.get(w.work_id) || newCall()), state: w.call_state || "" };
    c.held = c.state === "held";
    c.muted = c.state === "muted" || (c.muted && c.state !== "active");
    calls.set(w.work_id, c);
  }
  state.calls = calls;
  if (state.openId && !state.work.has(state.openId)) closeDetail();
  renderStatusOptions();
  renderAll();
  if (state.openId) refreshDetail();
}

function onView(msg) {
  if (state.view && (msg.ver || 0) < (state.view.ver || 0)) return; // an older view
  state.view = { ...(state.view || {}), ...msg };
  renderStatus();
  renderCapacity();
  renderEmpty();
}

function onOffer(msg) {
  state.offers.set(msg.work_id, msg);
  renderOffers();
  announceOffer(msg);
}

function onRescinded(msg) {
  if (!state.offers.has(msg.work_id)) return;
  forgetItem(msg.work_id);
  renderOffers();
  const key = `rescind.${msg.reason}`;
  toast(t(key) !== key ? t(key) : t("rescind.other"), "info");
}

function onAssigned(msg) {
  const offer = state.offers.get(msg.work_id) || {};
  state.offers.delete(msg.work_id);
  state.errors.delete(msg.work_id); // an accept that failed in one tab and worked in another
  state.work.set(msg.work_id, { ...offer, ...msg, state: msg.state || "assigned" });
  renderOffers();
  renderWork();
  if (msg.via === "auto") announceOffer(msg);
}

function onUpdated(msg) {
  const w = state.work.get(msg.work_id);
  if (!w) return;
  if (FINAL.has(msg.state) || (msg.agent_id && msg.agent_id !== state.me)) {
    forgetItem(msg.work_id);
    if (msg.state === "transferred") toast(t("work.transferredToast"), "info");
    if (msg.state === "pulled") toast(t("work.pulledToast"), "info");
  } else {
    Object.assign(w, msg);
    if (state.openId === msg.work_id) refreshOpen();
  }
  renderWork();
}

/** An item left this agent: nothing about it stays on the page, its errors included. */
function forgetItem(wid) {
  state.work.delete(wid);
  state.offers.delete(wid);
  state.calls.delete(wid);
  state.errors.delete(wid);
  if (state.openId === wid) closeDetail();
}

function onNote(msg) {
  const note = msg.note || { author: msg.author, text: msg.text, ts: msg.ts };
  addNote(msg.work_id, note);
  if (state.openId === msg.work_id) renderNotes();
}

// -- the conversation: what the customer wrote and the replies sent ---------------

function caseOf(wid) {
  return state.openId === wid && state.detail && state.detail.case ? state.detail.case : null;
}

function onReply(msg) {
  const c = caseOf(msg.work_id);
  if (!c || !msg.reply) return;
  c.replies = c.replies || [];
  if (!c.replies.some((r) => r.ts === msg.reply.ts && r.text === msg.reply.text)) c.replies.push(msg.reply);
  c.answered = msg.reply.message;
  c.answered_by = msg.reply.author;
  c.answered_at = msg.reply.ts;
  renderConversation();
}

function onCustomerMessage(msg) {
  const c = caseOf(msg.work_id);
  if (!c || !msg.message) return;
  c.messages = c.messages || [];
  c.messages.push(msg.message);
  renderConversation();
}

function onCallState(msg) {
  const c = callOf(msg.work_id);
  c.state = msg.state;
  if (msg.state === "held") c.held = true;
  if (msg.state === "active") c.held = false;
  if (msg.state === "muted") c.muted = true;
  if (msg.state === "ended" && !c.ended) c.ended = session.now();
  if (state.openId === msg.work_id) refreshOpen();
}

function addNote(wid, note) {
  const list = state.notes.get(wid) || [];
  if (!list.some((n) => n.ts === note.ts && n.text === note.text)) list.push(note);
  list.sort((a, b) => (a.ts || 0) - (b.ts || 0));
  state.notes.set(wid, list);
}

function newCall() {
  return { state: "", held: false, muted: false, since: 0, ended: 0 };
}

function callOf(wid) {
  let c = state.calls.get(wid);
  if (!c) {
    c = newCall();
    state.calls.set(wid, c);
  }
  return c;
}

/** An item that is a phone call: it came from the telephony system, with its call id. */
function isCall(w) {
  return (w.channel === "voice" || w.channel === "video") && !!(w.payload && w.payload.call_id);
}

// Accepting a call answers it (the telephony system connects it on
// work.assigned), so a call in hand is connected until a call.state says
// otherwise. Once it ended, or the item is in wrap-up, the conversation is
// over: there is nothing left to answer, hold or hang up.
function callPhase(w) {
  const c = callOf(w.work_id);
  if (w.state === "wrapup" || c.state === "ended") return "ended";
  if (c.state === "transferring") return "transferring";
  return "live";
}

// -- offer notifications ----------------------------------------------------------

function setupNotifications() {
  const btn = $("#notify-btn");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  btn.hidden = false;
  btn.addEventListener("click", async () => {
    unlockAudio();
    await Notification.requestPermission();
    btn.hidden = Notification.permission !== "default";
  });
}

function announceOffer(msg) {
  // with two tabs open, only the first to claim the offer rings
  const key = `presence.rang.${msg.work_id}`;
  let first = true;
  try {
    first = !localStorage.getItem(key);
    localStorage.setItem(key, String(Date.now()));
    setTimeout(() => localStorage.removeItem(key), 60000);
  } catch {
    first = true;
  }
  document.title = `(${state.offers.size || 1}) ${t("agent.newOffer")} · presence`;
  if (!first) return;
  if (document.hidden) {
    chime();
    if ("Notification" in window && Notification.permission === "granted") {
      const n = new Notification(t("agent.newOffer"), {
        body: [tChannel(msg.channel), queueTitle(msg.queue), msg.subject].filter(Boolean).join(" · "),
        tag: msg.work_id,
        requireInteraction: true,
      });
      n.onclick = () => {
        window.focus();
        n.close();
      };
    }
  } else {
    chime();
  }
}

// -- actions ----------------------------------------------------------------------

async function send(msg) {
  return session.request(msg);
}

function failText(err) {
  return err.unavailable ? t("err.notAvailable") : err.message;
}

/**
 * An action on an item failed: say so in the item's own panel (or its offer
 * card), next to the control, one message at a time. It goes when the
 * action works, or with the item. `key` names what failed (detail.failed.*).
 */
function itemError(wid, key, err) {
  if (err) state.errors.set(wid, { key, e: failText(err) });
  else state.errors.delete(wid);
  paintItemError(wid);
}

function paintItemError(wid) {
  const err = state.errors.get(wid);
  const text = err ? t(`detail.failed.${err.key}`, { e: err.e }) : "";
  const card = document.querySelector(`.offer[data-id="${CSS.escape(wid)}"] .offer-error`);
  const spots = [card, state.openId === wid ? $("#detail-error") : null];
  for (const el of spots) {
    if (!el) continue;
    setText(el, text);
    el.hidden = !text;
  }
}

async function applyStatus() {
  const status = $("#status-select").value;
  const reason = $("#reason-select").value;
  if (!status) return;
  try {
    await send({ type: "status.set", status, reason: reason || undefined });
  } catch (err) {
    toast(failText(err), "error");
  }
}

async function accept(wid) {
  const card = document.querySelector(`.offer[data-id="${CSS.escape(wid)}"]`);
  if (card) card.classList.add("busy");
  try {
    await send({ type: "offer.accept", work_id: wid });
  } catch (err) {
    if (card) card.classList.remove("busy");
    itemError(wid, "accept", err);
  }
}

async function decline(wid, reason) {
  try {
    await send({ type: "offer.decline", work_id: wid, reason: reason || undefined });
    forgetItem(wid);
    renderOffers();
  } catch (err) {
    itemError(wid, "decline", err);
  }
}

async function wrapup(wid) {
  try {
    const reply = await send({ type: "work.wrapup", work_id: wid });
    itemError(wid, "", null);
    const w = state.work.get(wid);
    if (w) {
      w.state = "wrapup";
      w.wrapup_until = reply.wrapup_until;
      renderWork();
      if (state.openId === wid) refreshOpen();
    }
  } catch (err) {
    itemError(wid, "wrapup", err);
  }
}

async function complete(wid, disposition) {
  try {
    await send({ type: "work.complete", work_id: wid, disposition: disposition || undefined });
    itemError(wid, "", null);
  } catch (err) {
    itemError(wid, "complete", err);
  }
}

// -- rendering ----------------------------------------------------------------------

function renderAll() {
  renderExt();
  renderStatusOptions();
  renderStatus();
  renderCapacity();
  renderOffers();
  renderWork();
  if (state.openId) renderDetail();
}

function statusDef(name) {
  return state.statuses.find((s) => s.name === name);
}

function renderStatusOptions() {
  const sel = $("#status-select");
  const current = sel.value || (state.view && state.view.status) || "";
  put(sel,
    ...state.statuses.map((s) =>
      h("option", { value: s.name }, tStatus(s.name)), // an <option> holds text only
    ),
  );
  if (current) sel.value = current;
  fillReasons();
}

function fillReasons() {
  const def = statusDef($("#status-select").value);
  const reasons = (def && def.reasons) || [];
  const sel = $("#reason-select");
  put(sel,
    h("option", { value: "" }, t("agent.noReason")),
    ...reasons.map((r) => h("option", { value: r }, tReason(r))),
  );
  sel.disabled = reasons.length === 0;
}

function renderStatus() {
  const v = state.view;
  setText($("#who-name"), (v && v.name) || state.me || "");
  const pill = $("#status-pill");
  if (!v) {
    setText(pill.querySelector(".st-name"), "—");
    return;
  }
  const def = statusDef(v.status);
  const routable = !!(def && def.routable);
  // the same colours and words as the wallboard: Available (waiting) or Available · working
  const working = routable && (v.items || 0) > 0;
  pill.className = `status-pill ${statusClass(v.status, routable, working)}`;
  put(pill.querySelector(".st-icon"), statusIcon(v.status, routable, working));
  setText(pill.querySelector(".st-name"), statusLabel(v.status, working));
  pill.title = routable ? t(working ? "status.workingHint" : "status.idleHint") : "";
  setText($("#status-reason"), v.reason ? tReason(v.reason) : "");
  $("#status-time").dataset.since = v.since || "";
  // The select follows the status when the status changes, not on every
  // view: the login's own event comes after the snapshot with the same
  // status, and putting the select back then undid a pick made meanwhile
  // ("apply" sent the old status again).
  const shown = `${v.status}|${v.reason || ""}`;
  if (shown !== state.selectFor && document.activeElement !== $("#status-select")) {
    state.selectFor = shown;
    $("#status-select").value = v.status;
    fillReasons();
    if (v.reason) $("#reason-select").value = v.reason;
  }
}

function renderCapacity() {
  const v = state.view || { load: 0, capacity: 0, by_channel: {} };
  const cap = v.capacity || 0;
  const pct = cap ? Math.min(100, Math.round((100 * (v.load || 0)) / cap)) : 0;
  // green while there is room for more work, blue when full: a full agent is
  // working (one call weighs all 100 units), which is no alarm
  const full = cap > 0 && (v.load || 0) >= cap;
  $("#cap-fill").style.width = `${pct}%`;
  $("#cap-fill").className = `gauge-fill ${full ? "full" : ""}`;
  const text = t(full ? "agent.capFull" : "agent.capText", { load: v.load || 0, cap });
  const g = $("#cap-gauge");
  g.setAttribute("aria-valuenow", String(pct));
  g.setAttribute("aria-valuetext", text);
  g.setAttribute("aria-label", t("agent.capacity"));
  setText($("#cap-text"), text);
  const by = v.by_channel || {};
  put($("#cap-channels"),
    ...state.channels.map((c) => {
      const n = by[c.name] || 0;
      const limit = c.cap ? `${n} / ${c.cap}` : String(n);
      return h(
        "li" + (n ? ".busy" : ""),
        null,
        h("span.ch-icon", { "aria-hidden": "true" }, channelIcon(c.name)),
        h("span.ch-name", null, tChannel(c.name)),
        h("span.ch-count", { title: t("agent.channelUnits", { w: c.weight }) }, limit),
      );
    }),
  );
}

/** "Open in CRM" for an item whose queue has a CRM link (crm_url). */
function crmAnchor(w) {
  const q = state.queues.find((x) => x.name === w.queue);
  const url = crmLink(q && q.crm_url, w);
  return url ? h("p.crm", null, h("a.btn.ghost.small.crm-link", { href: url, target: "_blank", rel: "noopener noreferrer" }, t("detail.openCrm"))) : null;
}

function queueTitle(name) {
  const q = state.queues.find((x) => x.name === name);
  return (q && q.title) || name || "";
}

function customerLine(c) {
  if (!c || typeof c !== "object") return "";
  return [c.name, c.phone, c.email].filter(Boolean).join(" · ");
}

function renderOffers() {
  const box = $("#offers");
  const seen = new Set();
  for (const o of [...state.offers.values()].sort((a, b) => (a.offered_at || 0) - (b.offered_at || 0))) {
    seen.add(o.work_id);
    if (!box.querySelector(`.offer[data-id="${CSS.escape(o.work_id)}"]`)) box.append(offerCard(o));
    paintItemError(o.work_id);
  }
  for (const el of [...box.children]) if (!seen.has(el.dataset.id)) el.remove();
  if (state.offers.size === 0) document.title = `${t("agent.title")} · presence`;
  renderEmpty();
}

function offerCard(o) {
  const c = o.customer || {};
  const reasonSel = h(
    "select",
    { "aria-label": t("offer.declineReason") },
    ...DECLINE_REASONS.map((r) => h("option", { value: r }, t(`decline.${r}`))),
  );
  const declineForm = h(
    "form.decline-form",
    {
      hidden: true,
      onsubmit: (e) => {
        e.preventDefault();
        decline(o.work_id, reasonSel.value);
      },
    },
    h("label", null, t("offer.declineReason"), reasonSel),
    h("button.btn.danger", { type: "submit" }, t("offer.confirmDecline")),
    h(
      "button.btn.ghost",
      {
        type: "button",
        onclick: () => {
          declineForm.hidden = true;
        },
      },
      t("common.cancel"),
    ),
  );
  const total = o.expires_at && o.offered_at ? o.expires_at - o.offered_at : 0;
  const card = h(
    "article.offer.card",
    { dataset: { id: o.work_id }, "aria-label": t("agent.newOffer"), tabindex: "-1" },
    h(
      "header.offer-head",
      null,
      h("span.ch-badge", { dataset: { ch: o.channel } }, channelIcon(o.channel), tChannel(o.channel)),
      h("span.offer-queue", null, queueTitle(o.queue)),
      o.priority ? h("span.prio", null, t("offer.priority", { p: o.priority })) : null,
      h("span.spacer"),
      o.expires_at
        ? h(
            "span.countdown",
            { dataset: { until: o.expires_at }, "aria-label": t("offer.expiresIn") },
            "",
          )
        : h("span.countdown.none", null, t("offer.noTimeout")),
    ),
    o.expires_at
      ? h(
          "div.countbar",
          { "aria-hidden": "true" },
          h("div.countbar-fill", { dataset: { until: o.expires_at, total } }),
        )
      : null,
    h("h3.offer-subject", { dir: "auto" }, o.subject || t("offer.noSubject")),
    screenPop(c),
    customerHistory(c),
    o.handoff
      ? h(
          "div.handoff",
          null,
          h("strong", null, t("offer.handoffFrom", { from: o.handoff.from || "?" })),
          h("p", { dir: "auto" }, o.handoff.note || ""),
        )
      : null,
    Array.isArray(o.history) && o.history.length
      ? h("p.muted", null, t("offer.historyCount", { n: o.history.length }))
      : null,
    h(
      "div.offer-actions",
      null,
      h(
        "button.btn.accept",
        { type: "button", "aria-keyshortcuts": "A", onclick: () => accept(o.work_id) },
        icon("check"),
        t("offer.accept"),
        h("kbd", null, "A"),
      ),
      h(
        "button.btn.decline",
        {
          type: "button",
          "aria-keyshortcuts": "D",
          onclick: () => {
            declineForm.hidden = false;
            reasonSel.focus();
          },
        },
        icon("cross"),
        t("offer.decline"),
        h("kbd", null, "D"),
      ),
    ),
    declineForm,
    h("p.offer-error.detail-error", { role: "alert", hidden: true }),
  );
  return card;
}

/** A value as a person reads it: lists joined, a nested map as "key: value" pairs, never JSON. */
function fmtValue(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "boolean") return t(v ? "common.yes" : "common.no");
  if (Array.isArray(v)) return v.map(fmtValue).filter(Boolean).join(", ");
  if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${fieldLabel(k)}: ${fmtValue(x)}`).join(" · ");
  return String(v);
}

// the directory's fields, in the order the screen pop shows them
const CUSTOMER_FIELDS = ["name", "company", "tier", "language", "phone", "phones", "email", "emails", "handle", "id", "notes"];
const LTR = new Set(["phone", "phones", "email", "emails", "handle", "id"]);

/** A field's label: the page's own word for a known one, the key made readable otherwise. */
function fieldLabel(k) {
  const key = `customer.${k}`;
  const known = t(key);
  if (known !== key) return known;
  const words = String(k).replace(/[_-]+/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A posted detail's label: the page's word for what the channels post (call id, IVR keys ...), else readable. */
function payloadLabel(k) {
  const key = `payload.${k}`;
  const known = t(key);
  return known !== key ? known : fieldLabel(k);
}

/** The screen pop: the customer's directory fields and attributes as labelled fields. */
function screenPop(c) {
  const rows = [];
  const field = (k, v) => {
    const text = fmtValue(v);
    if (!text) return;
    rows.push(h("dt", null, fieldLabel(k)), h("dd", { dir: LTR.has(k) ? "ltr" : "auto", dataset: { field: k } }, text));
  };
  for (const k of CUSTOMER_FIELDS) if (k in c) field(k, c[k]);
  const attrs = c.attributes && typeof c.attributes === "object" ? c.attributes : {};
  for (const [k, v] of Object.entries(attrs)) field(k, v);
  const skip = new Set([...CUSTOMER_FIELDS, "attributes", "lead"]);
  for (const [k, v] of Object.entries(c)) if (!skip.has(k)) field(k, v);
  return h(
    "div.screenpop-box",
    null,
    c.lead ? h("p.badge.lead", null, t("customer.lead")) : null,
    h("dl.screenpop", null, rows),
  );
}

/** "Past cases": the customer's last cases (GET /api/v1/customers/{id}/cases), a page at a time. */
function customerHistory(c) {
  if (!c || !c.id) return null;
  const list = h("ol.customer-history", { hidden: true });
  const more = h("button.btn.ghost.small.history-more", { type: "button", hidden: true });
  let next = null;
  const load = async () => {
    const q = next ? `&before=${next}` : "";
    try {
      const page = await session.api(`/api/v1/customers/${encodeURIComponent(c.id)}/cases?limit=5${q}`);
      if (!next) put(list);
      for (const k of page.cases || []) {
        list.append(
          h(
            "li",
            { dataset: { id: k.work_id } },
            h("time", null, k.created ? fmtDateTime(k.created) : ""),
            h("span.ch-badge", { dataset: { ch: k.channel || "" } }, channelIcon(k.channel), tChannel(k.channel || "")),
            h("span.past-subject", { dir: "auto" }, k.subject || t("offer.noSubject")),
            h("span.badge", null, k.status || ""),
            h("span.muted", null, k.owner ? t("history.handledBy", { who: k.owner_name || k.owner }) : t("history.unhandled")),
          ),
        );
      }
      if (!list.children.length) list.append(h("li.muted", null, t("history.none")));
      next = page.next;
      more.hidden = !next;
      setText(more, t("history.more"));
    } catch (err) {
      put(list, h("li.error", null, t("history.failed", { e: err.message })));
    }
  };
  const open = h(
    "button.btn.ghost.small.history-btn",
    {
      type: "button",
      "aria-expanded": "false",
      onclick: () => {
        const show = list.hidden;
        list.hidden = !show;
        open.setAttribute("aria-expanded", String(show));
        if (show) {
          next = null;
          put(list, h("li.muted", null, t("common.loading")));
          load();
        } else {
          more.hidden = true;
        }
      },
    },
    icon("history"),
    t("history.open"),
  );
  more.addEventListener("click", load);
  return h("div.history-box", null, open, list, more);
}

/** The line under an empty "Work in hand": what is true now, and what to do. */
function renderEmpty() {
  const el = $("#work-empty");
  el.hidden = state.work.size > 0;
  if (el.hidden) return;
  const def = state.view && statusDef(state.view.status);
  const key = state.offers.size ? "agent.noWorkOffered" : def && def.routable ? "agent.noWorkWaiting" : "agent.noWork";
  setText(el, t(key));
}

function renderWork() {
  const list = $("#work-list");
  const items = [...state.work.values()].sort((a, b) => (a.accepted_at || 0) - (b.accepted_at || 0));
  setText($("#work-count"), items.length);
  renderEmpty();
  const rows = new Map([...list.children].map((el) => [el.dataset.id, el]));
  items.forEach((w, i) => {
    let row = rows.get(w.work_id);
    if (!row) {
      row = h(
        "li.work-row",
        { dataset: { id: w.work_id } },
        h(
          "button.work-open",
          { type: "button", onclick: () => openDetail(w.work_id) },
          h("span.work-idx"),
          h("span.ch-badge"),
          h("span.work-subject", { dir: "auto" }),
          h("span.work-customer", { dir: "auto" }),
          h("span.work-state"),
          h("span.timer.work-elapsed"),
        ),
      );
    }
    rows.delete(w.work_id);
    setText(row.querySelector(".work-idx"), i < 9 ? String(i + 1) : "");
    const badge = row.querySelector(".ch-badge");
    badge.dataset.ch = w.channel;
    if (badge.dataset.drawn !== `${w.channel}|${getLang()}`) {
      put(badge, channelIcon(w.channel), tChannel(w.channel));
      badge.dataset.drawn = `${w.channel}|${getLang()}`;
    }
    setText(row.querySelector(".work-subject"), w.subject || t("offer.noSubject"));
    setText(row.querySelector(".work-customer"), (w.customer && w.customer.name) || "");
    const st = row.querySelector(".work-state");
    st.className = `work-state ws-${w.state}`;
    setText(st, t(`state.${w.state}`));
    const el = row.querySelector(".work-elapsed");
    if (w.state === "wrapup" && w.wrapup_until) {
      delete el.dataset.since;
      el.dataset.until = w.wrapup_until;
    } else {
      delete el.dataset.until;
      el.dataset.since = w.accepted_at || "";
    }
    row.classList.toggle("open", state.openId === w.work_id);
    if (list.children[i] !== row) list.insertBefore(row, list.children[i] || null);
  });
  for (const el of rows.values()) el.remove();
}

// -- detail -------------------------------------------------------------------------

async function openDetail(wid) {
  state.openId = wid;
  state.detail = null;
  renderDetail();
  renderWork();
  $("#detail").hidden = false;
  $("#detail-title").focus?.();
  refreshDetail();
}

async function loadTemplates() {
  try {
    const b = await session.api("/api/v1/templates");
    state.templates = (b && b.templates) || [];
  } catch {
    state.templates = []; // a server without templates: the boxes offer none
  }
  for (const kind of ["reply", "note"]) fillTemplateSelect(kind);
}

async function refreshDetail() {
  const wid = state.openId;
  if (!wid) return;
  loadTemplates();
  try {
    const d = await session.api(`/api/v1/work/${encodeURIComponent(wid)}`);
    if (state.openId !== wid) return;
    state.detail = d;
    for (const ev of d.history || []) {
      if ((ev.ev === "note" || ev.ev === "comment") && ev.text) {
        addNote(wid, { author: ev.author || ev.agent || ev.by, text: ev.text, ts: Number(ev.ts) });
      }
    }
    for (const n of d.notes || []) addNote(wid, n);
    renderHistory();
    renderNotes();
    renderConversation();
  } catch (err) {
    const box = $("#detail-history");
    if (box) put(box, h("p.error", null, t("detail.historyFailed", { e: err.message })));
  }
}

function closeDetail() {
  state.openId = null;
  state.detail = null;
  const d = $("#detail");
  if (d) d.hidden = true;
  const body = $("#detail-body");
  if (body) {
    put(body); // nothing of the closed item (its typing, its errors) stays behind
    delete body.dataset.id;
  }
  if ($("#work-list")) renderWork();
}

// What the agent is typing in the open item's panel survives a redraw (a new language).
const TYPED = ["#dispo", "#note-text", "#call-target", "#xfer-agent", "#xfer-note", "#reply-text"];

function renderDetail() {
  const w = state.work.get(state.openId);
  const body = $("#detail-body");
  if (!w) {
    put(body);
    return;
  }
  const typed = body.dataset.id === w.work_id ? TYPED.map((sel) => [sel, $(sel, body)?.value]) : [];
  body.dataset.id = w.work_id;
  setText($("#detail-title"), w.subject || t("offer.noSubject"));
  $("#detail-title").setAttribute("dir", "auto");
  const c = w.customer || {};
  const voice = isCall(w);
  put(body,
    h(
      "div.detail-meta",
      null,
      h("span.ch-badge", { dataset: { ch: w.channel } }, channelIcon(w.channel), tChannel(w.channel)),
      h("span", null, queueTitle(w.queue)),
      h("span#detail-state.work-state"),
      h("span.timer", { dataset: { since: w.accepted_at || "" }, title: t("detail.elapsed") }),
    ),
    h("p.muted.small", null, `${t("detail.id")}: `, h("code", null, w.work_id)),
    w.handoff
      ? h(
          "div.handoff",
          null,
          h("strong", null, t("offer.handoffFrom", { from: w.handoff.from || "?" })),
          h("p", { dir: "auto" }, w.handoff.note || ""),
        )
      : null,
    h("h3", null, t("detail.customer")),
    crmAnchor(w),
    screenPop(c),
    customerHistory(c),
    w.payload && Object.keys(w.payload).length
      ? [
          h("h3", null, t("detail.payload")),
          h(
            "dl.screenpop",
            null,
            Object.entries(w.payload).map(([k, v]) => [
              h("dt", null, payloadLabel(k)),
              h("dd", { dir: "auto", dataset: { field: k } }, fmtValue(v)),
            ]),
          ),
        ]
      : null,
    voice ? h("section#call.call", { "aria-label": t("call.title") }) : null,
    h("p#detail-error.detail-error", { role: "alert", hidden: true }),
    h("section#detail-actions.detail-actions"),
    transferForm(w),
    voice ? null : h("section#conversation.conversation", { "aria-labelledby": "convo-title", hidden: true }),
    h(
      "section.notes",
      { "aria-labelledby": "notes-title" },
      h("h3#notes-title", null, t("detail.notes")),
      h("ul#notes-list.notes-list"),
      noteForm(w),
    ),
    h(
      "section",
      { "aria-labelledby": "history-title" },
      h("h3#history-title", null, t("detail.history")),
      h("ol#detail-history.history", null, h("li.muted", null, t("common.loading"))),
    ),
  );
  updateDetailState();
  if (voice) renderCall();
  if (state.detail) renderConversation();
  fillTemplateSelect("note");
  for (const [sel, value] of typed) if (value && $(sel, body)) $(sel, body).value = value;
  paintItemError(w.work_id);
  renderNotes();
  if (state.detail) renderHistory();
}

function updateDetailState() {
  const w = state.work.get(state.openId);
  const box = $("#detail-actions");
  if (!w || !box) return;
  const st = $("#detail-state");
  st.className = `work-state ws-${w.state}`;
  setText(st, t(`state.${w.state}`));
  const dispo = h(
    "input#dispo",
    { list: "dispo-list", placeholder: t("detail.disposition"), "aria-label": t("detail.disposition") },
  );
  dispo.value = $("#dispo", box)?.value || "";
  const datalist = h("datalist#dispo-list", null, ...DISPOSITIONS.map((d) => h("option", { value: d })));
  put(box,
    canWrapUp(w)
      ? h(
          "button.btn",
          { type: "button", id: "wrapup-btn", "aria-keyshortcuts": "W", onclick: () => wrapup(w.work_id) },
          t("detail.wrapup"),
        )
      : null,
    w.state === "wrapup"
      ? h(
          "p.wrapup-line",
          null,
          t("detail.inWrapup"),
          " ",
          w.wrapup_until
            ? h("strong.timer", { dataset: { until: w.wrapup_until }, title: t("detail.wrapupLeft") })
            : null,
        )
      : null,
    h(
      "form.complete-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (!callIsLive(w)) complete(w.work_id, dispo.value.trim());
        },
      },
      dispo,
      datalist,
      // a call still connected is not completed under the customer: the
      // item would end, its capacity come free and the next call ring while
      // this one is still on the line; hanging up starts the wrap-up
      h(
        "button.btn.primary",
        { type: "submit", id: "complete-btn", disabled: callIsLive(w), title: callIsLive(w) ? t("detail.hangUpFirst") : undefined },
        t("detail.complete"),
      ),
      callIsLive(w) ? h("p.hangup-first", { role: "note" }, t("detail.hangUpFirst")) : null,
    ),
  );
}

/** A phone call still on the line (not hung up, not in wrap-up). */
function callIsLive(w) {
  return isCall(w) && callPhase(w) !== "ended";
}

/** Wrap-up starts by hand on an item in progress; a live call ends by hanging up instead (which starts it). */
function canWrapUp(w) {
  return w.state === "assigned" && !callIsLive(w);
}

/** The open item's state, actions and call box, after its state changed. */
function refreshOpen() {
  updateDetailState();
  renderCall();
}

function unavailableNote(type) {
  return session.unavailable.has(type) ? h("p.note-unavailable", { role: "note" }, t("err.notAvailable")) : null;
}

function renderCall() {
  const box = $("#call");
  const w = state.work.get(state.openId);
  if (!box || !w) return;
  const c = callOf(w.work_id);
  const phase = callPhase(w);
  const since = c.since || w.accepted_at || 0;
  const ctl = (action, label, cls = "") =>
    h(
      `button.btn${cls}`,
      { type: "button", dataset: { action }, onclick: () => callControl(w.work_id, action) },
      label,
    );
  const target = h("input#call-target", {
    placeholder: t("call.transferTarget"),
    "aria-label": t("call.transferTarget"),
  });
  target.value = $("#call-target", box)?.value || ""; // typed before a call.state redrew the box
  const label =
    phase === "ended"
      ? t("call.state.ended")
      : phase === "transferring"
        ? t("call.state.transferring")
        : c.held
          ? t("call.state.held")
          : c.muted
            ? t("call.state.muted")
            : t("call.state.active");
  // an ended call shows how long it lasted; a live one ticks
  const end = c.ended || w.wrapup_at || 0;
  const timer =
    phase === "ended"
      ? h("strong.timer.call-timer", { title: t("call.length") }, since && end ? fmtElapsed(end - since) : "")
      : h("strong.timer.call-timer", { dataset: { since: since || "" }, title: t("call.timer") });
  box.dataset.phase = phase;
  put(box,
    h(
      "div.call-head",
      null,
      h("h3", null, channelIcon(w.channel), t("call.title")),
      h("span.call-state", null, label),
      timer,
    ),
    phase === "live"
      ? [
          h(
            "div.call-buttons",
            null,
            c.held ? ctl("resume", t("call.resume")) : ctl("hold", t("call.hold")),
            c.muted ? ctl("unmute", t("call.unmute")) : ctl("mute", t("call.mute")),
            ctl("hangup", t("call.hangup"), ".danger"),
          ),
          h(
            "form.call-transfer",
            {
              onsubmit: (e) => {
                e.preventDefault();
                if (target.value.trim()) callControl(w.work_id, "transfer", target.value.trim());
              },
            },
            target,
            h("button.btn", { type: "submit" }, t("call.transfer")),
          ),
        ]
      : phase === "transferring"
        ? h("div.call-buttons", null, ctl("hangup", t("call.hangup"), ".danger"))
        : h("p.muted.small.call-over", null, t(w.state === "wrapup" ? "call.overWrapup" : "call.over")),
    unavailableNote("call.control"),
  );
}

async function callControl(wid, action, target) {
  try {
    const reply = await send({ type: "call.control", work_id: wid, action, target });
    const c = callOf(wid);
    if (action === "hold") c.held = true;
    if (action === "resume") c.held = false;
    if (action === "mute") c.muted = true;
    if (action === "unmute") c.muted = false;
    c.state = (reply && reply.state) || c.state;
    if (c.state === "ended" && !c.ended) c.ended = session.now();
    itemError(wid, "", null); // the box shows the new state: no message needed
  } catch (err) {
    // not deployed on this server: the box says so itself (unavailableNote)
    itemError(wid, "call", err.unavailable ? null : err);
  }
  if (state.openId === wid) refreshOpen();
}

function noteForm(w) {
  const text = h("textarea#note-text", { rows: 2, "aria-label": t("detail.addNote"), dir: "auto" });
  return h(
    "form.note-form",
    {
      onsubmit: async (e) => {
        e.preventDefault();
        const value = text.value.trim();
        if (!value) return;
        try {
          await send({ type: "work.note", work_id: w.work_id, text: value });
          text.value = "";
          addNote(w.work_id, { author: state.me, text: value, ts: session.now(), local: true });
          itemError(w.work_id, "", null);
        } catch (err) {
          itemError(w.work_id, "note", err.unavailable ? null : err);
        }
        renderNotes();
      },
    },
    h("div.row.reply-tools", null, templateSelect("note")),
    text,
    h("button.btn", { type: "submit" }, t("detail.addNote")),
  );
}

function renderNotes() {
  const list = $("#notes-list");
  if (!list) return;
  const wid = state.openId;
  // a note echoed by the server replaces the one drawn at once on "ok"
  const notes = (state.notes.get(wid) || []).filter(
    (n, _, all) => !n.local || !all.some((m) => !m.local && m.text === n.text),
  );
  put(list,
    ...notes.map((n) =>
      h(
        "li",
        null,
        h("span.note-meta", null, `${n.author || ""} · ${n.ts ? fmtDateTime(n.ts) : ""}`),
        h("p", { dir: "auto" }, n.text || ""),
      ),
    ),
  );
  if (!notes.length) list.append(h("li.muted", null, t("detail.noNotes")));
  const old = list.parentElement.querySelector(".note-unavailable");
  if (old) old.remove();
  const note = unavailableNote("work.note");
  if (note) list.after(note);
}

/** Who wrote a customer message: a name, an address, a handle. */
function senderOf(m) {
  const f = m.from;
  if (f && typeof f === "object") return f.name || f.handle || f.email || f.phone || f.id || "";
  return m.name ? `${m.name} <${f || ""}>` : f || "";
}

/** The customer's messages in order, each followed by the replies that answered it. */
function renderConversation() {
  const box = $("#conversation");
  const w = state.work.get(state.openId);
  const c = state.detail && state.detail.case;
  if (!box || !w) return;
  if (!c) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  if (!box.dataset.id || box.dataset.id !== w.work_id || !$("#reply-form", box)) {
    box.dataset.id = w.work_id;
    put(box, h("h3#convo-title", null, t("reply.conversation")), h("ol#convo-list.convo-list"), replyForm(w));
    fillTemplateSelect("reply");
  }
  const messages = c.messages || [];
  const replies = c.replies || [];
  const answers = (n) => replies.filter((r) => (r.message || 0) === n);
  const replyItem = (r) =>
    h(
      "li.convo-reply",
      null,
      h("span.note-meta", null, `${t("reply.by", { who: r.author || "" })} · ${r.ts ? fmtDateTime(r.ts) : ""}`),
      r.again ? h("span.badge.again", null, t("reply.again")) : null,
      h("p", { dir: "auto" }, r.text || ""),
    );
  put($("#convo-list", box),
    answers(0).map(replyItem),
    messages.map((m, i) => [
      h(
        "li.convo-in",
        null,
        h("span.note-meta", { dir: "auto" }, senderOf(m)),
        m.subject ? h("strong", { dir: "auto" }, m.subject) : null,
        h("p", { dir: "auto" }, m.text || ""),
      ),
      answers(i + 1).map(replyItem),
    ]),
    !messages.length && !replies.length ? h("li.muted", null, t("reply.none")) : null,
  );
}

/** Who answered the customer's latest message, and when, in the page's language. */
function alreadyText(wid, err) {
  const c = caseOf(wid);
  if (!c || !c.answered_by) return err.message;
  return t("reply.already", { who: c.answered_by, at: c.answered_at ? fmtDateTime(c.answered_at) : "?" });
}

// -- reply templates ----------------------------------------------------------------

/** The templates for this item and box: its channel, queue, the customer's language, the kind of text. */
function templatesFor(w, kind) {
  const c = w.customer || {};
  const lang = String(c.language || "").toLowerCase();
  return state.templates.filter((tp) => {
    if (tp.kind !== "any" && tp.kind !== kind) return false;
    if (tp.channels.length && !tp.channels.includes(w.channel)) return false;
    if (tp.queues.length && !tp.queues.includes(w.queue)) return false;
    if (tp.language && lang) {
      const have = tp.language.toLowerCase();
      if (have !== lang && have !== lang.split("-")[0]) return false;
    }
    return true;
  });
}

/** A template's text with its placeholders filled from the item in hand ({{ and }} are braces). */
function fillTemplate(text, w) {
  const c = w.customer || {};
  const q = state.queues.find((x) => x.name === w.queue) || {};
  const kase = (state.detail && state.detail.case) || {};
  const first = (v) => (Array.isArray(v) ? v[0] : v);
  const values = {
    "customer.name": c.name,
    "customer.company": c.company,
    "customer.email": c.email || first(c.emails),
    "customer.phone": c.phone || first(c.phones),
    "customer.id": c.id,
    "agent.name": (state.profile && state.profile.name) || state.me,
    "agent.id": state.me,
    "case.id": w.work_id,
    "case.subject": w.subject,
    "case.status": kase.status,
    "case.status_url": state.detail && state.detail.status_path ? location.origin + state.detail.status_path : "",
    "queue.name": w.queue,
    "queue.title": q.title || w.queue,
    channel: w.channel,
  };
  return text.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (tok, name) => {
    if (tok === "{{") return "{";
    if (tok === "}}") return "}";
    const v = values[name.trim()];
    return v === undefined || v === null ? "" : String(v);
  });
}

function templateSelect(kind) {
  return h("select.template-select", {
    id: `${kind}-template`,
    "aria-label": t("tpl.insert"),
    onchange: (e) => {
      const sel = e.target;
      const w = state.work.get(state.openId);
      const tp = state.templates.find((x) => x.id === sel.value);
      sel.value = "";
      if (!w || !tp) return;
      const box = $(kind === "reply" ? "#reply-text" : "#note-text");
      if (!box) return;
      const text = fillTemplate(tp.text, w);
      const at = box.selectionStart ?? box.value.length;
      box.value = box.value.slice(0, at) + text + box.value.slice(box.selectionEnd ?? at);
      box.focus();
      box.dispatchEvent(new Event("input"));
    },
  });
}

function fillTemplateSelect(kind) {
  const sel = $(`#${kind}-template`);
  const w = state.work.get(state.openId);
  if (!sel || !w) return;
  const list = templatesFor(w, kind);
  put(sel,
    h("option", { value: "" }, t(list.length ? "tpl.insert" : "tpl.none")),
    ...list.map((tp) => h("option", { value: tp.id }, tp.name)),
  );
  sel.disabled = !list.length;
}

// the composing mark lasts 15 s on the server; renewed at most every 5 s while typing
const COMPOSE_EVERY = 5000;

function replyForm(w) {
  const text = h("textarea#reply-text", { rows: 3, "aria-label": t("reply.text"), placeholder: t("reply.text"), dir: "auto" });
  const confirmBox = h("div#reply-confirm.reply-confirm", { role: "alert", hidden: true });
  let lastMark = 0;
  const mark = (on) => {
    const now = Date.now();
    if (on && now - lastMark < COMPOSE_EVERY) return;
    lastMark = on ? now : 0;
    send({ type: "work.composing", work_id: w.work_id, composing: on }).catch(() => {});
  };
  text.addEventListener("input", () => {
    if (text.value.trim()) mark(true);
  });
  text.addEventListener("blur", () => {
    if (!text.value.trim() && lastMark) mark(false);
  });
  const sendReply = async (confirm) => {
    const value = text.value.trim();
    if (!value) return;
    confirmBox.hidden = true;
    try {
      const ok = await send({ type: "work.reply", work_id: w.work_id, text: value, confirm });
      text.value = "";
      lastMark = 0;
      itemError(w.work_id, "", null);
      // the conversation shows it: no toast over the box
      if (ok && ok.reply) onReply({ work_id: w.work_id, reply: ok.reply });
    } catch (err) {
      if (err.code === "conflict" && err.field === "confirm") {
        // 二重返信防止: the customer's message was answered already; say by whom, and ask
        put(confirmBox,
          h("p", null, alreadyText(w.work_id, err)),
          h("button.btn.danger", { type: "button", id: "reply-confirm-btn", onclick: () => sendReply(true) }, t("reply.sendAnyway")),
          h("button.btn.ghost", { type: "button", onclick: () => { confirmBox.hidden = true; } }, t("common.cancel")),
        );
        confirmBox.hidden = false;
      } else {
        itemError(w.work_id, "reply", err.unavailable ? null : err);
      }
    }
  };
  return h(
    "form#reply-form.reply-form",
    {
      onsubmit: (e) => {
        e.preventDefault();
        sendReply(false);
      },
    },
    h("div.row.reply-tools", null, templateSelect("reply")),
    text,
    confirmBox,
    h("button.btn.primary", { type: "submit", id: "reply-send" }, t("reply.send")),
  );
}

function transferForm(w) {
  const kind = h(
    "select#xfer-kind",
    { "aria-label": t("xfer.to") },
    h("option", { value: "queue" }, t("xfer.queue")),
    h("option", { value: "agent" }, t("xfer.agent")),
  );
  const queueSel = h(
    "select#xfer-queue",
    { "aria-label": t("xfer.queue") },
    ...state.queues.map((q) => h("option", { value: q.name }, q.title || q.name)),
  );
  const agentIn = h("input#xfer-agent", { placeholder: t("xfer.agentId"), "aria-label": t("xfer.agentId"), hidden: true });
  kind.addEventListener("change", () => {
    queueSel.hidden = kind.value !== "queue";
    agentIn.hidden = kind.value !== "agent";
  });
  const note = h("textarea#xfer-note", { rows: 2, placeholder: t("xfer.note"), "aria-label": t("xfer.note"), dir: "auto" });
  const box = h("div.xfer-status");
  return h(
    "details.xfer",
    null,
    h("summary", null, t("xfer.title")),
    h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          const msg = { type: "work.transfer", work_id: w.work_id, note: note.value.trim() };
          if (kind.value === "agent") msg.to_agent = agentIn.value.trim();
          else msg.to_queue = queueSel.value;
          if (!msg.to_agent && !msg.to_queue) return;
          try {
            await send(msg);
            toast(t("xfer.done"));
            put(box);
          } catch (err) {
            put(box,
              h("p.note-unavailable", { role: "note" }, err.unavailable ? t("err.notAvailable") : err.message),
            );
          }
        },
      },
      h("div.row", null, kind, queueSel, agentIn),
      note,
      h("button.btn", { type: "submit" }, t("xfer.submit")),
      box,
    ),
  );
}

function renderHistory() {
  const list = $("#detail-history");
  const d = state.detail;
  if (!list || !d) return;
  const hist = d.history || [];
  put(list,
    ...hist.map((ev) => {
      const key = `ev.${ev.ev}`;
      const what = t(key) !== key ? t(key) : ev.ev;
      const bits = [ev.agent, ev.queue && queueTitle(ev.queue), ev.reason && tReason(ev.reason), ev.disposition, ev.note]
        .filter(Boolean)
        .join(" · ");
      return h(
        "li",
        null,
        h("time", { datetime: new Date(Number(ev.ts)).toISOString() }, fmtClock(Number(ev.ts))),
        h("span.ev", null, what),
        bits ? h("span.muted", { dir: "auto" }, bits) : null,
        ev.text ? h("p", { dir: "auto" }, ev.text) : null,
      );
    }),
  );
  if (!hist.length) list.append(h("li.muted", null, t("detail.noHistory")));
}

// -- timers -------------------------------------------------------------------------

function tick() {
  if (!session.signedIn) return;
  const now = session.now();
  for (const el of document.querySelectorAll("[data-since]")) {
    const since = Number(el.dataset.since);
    setText(el, since ? fmtElapsed(now - since) : "");
  }
  for (const el of document.querySelectorAll("[data-until]")) {
    const until = Number(el.dataset.until);
    const left = until - now;
    if (el.classList.contains("countbar-fill")) {
      const total = Number(el.dataset.total) || 1;
      el.style.width = `${Math.max(0, Math.min(100, (100 * left) / total))}%`;
      el.classList.toggle("low", left < 5000);
    } else {
      setText(el, fmtCountdown(left));
      el.classList.toggle("low", left < 5000);
    }
  }
}

// -- keyboard -----------------------------------------------------------------------

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = (e.target.tagName || "").toLowerCase();
  const typing = tag === "input" || tag === "textarea" || tag === "select" || e.target.isContentEditable;
  if (e.key === "Escape") {
    if (state.openId && !$("#help").open) closeDetail();
    return;
  }
  if (typing || $("#help").open || $("#app").hidden) return;
  const oldest = [...state.offers.values()].sort((a, b) => (a.offered_at || 0) - (b.offered_at || 0))[0];
  const k = e.key.toLowerCase();
  if (k === "a" && oldest) {
    e.preventDefault();
    accept(oldest.work_id);
  } else if (k === "d" && oldest) {
    e.preventDefault();
    const card = document.querySelector(`.offer[data-id="${CSS.escape(oldest.work_id)}"]`);
    if (card) {
      card.querySelector(".decline-form").hidden = false;
      card.querySelector(".decline-form select").focus();
    }
  } else if (k === "s") {
    e.preventDefault();
    const sel = $("#status-select");
    sel.focus();
    try {
      sel.showPicker();
    } catch {
      /* focus is enough */
    }
  } else if (k === "w" && state.openId) {
    const w = state.work.get(state.openId);
    if (w && canWrapUp(w)) {
      e.preventDefault();
      wrapup(w.work_id);
    }
  } else if (k === "n" && state.openId) {
    e.preventDefault();
    $("#note-text")?.focus();
  } else if (e.key === "?") {
    e.preventDefault();
    $("#help").showModal();
  } else if (/^[1-9]$/.test(e.key)) {
    const rows = [...$("#work-list").children];
    const row = rows[Number(e.key) - 1];
    if (row) {
      e.preventDefault();
      openDetail(row.dataset.id);
    }
  }
}

start();
