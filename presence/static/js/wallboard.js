// wallboard.js: the supervisor wallboard (/wallboard).
//
// Built for a thousand agents: deltas are collected as they arrive and
// applied once per animation frame; each agent has one keyed row whose cells
// are touched only when their value changed; rows are re-ordered at most
// once a second, so the grid neither jumps nor re-renders per delta.

import {
  $,
  showCenter,
  channelIcon,
  crmLink,
  h,
  icon,
  put,
  setText,
  shortExt,
  statusClass,
  statusIcon,
} from "./common.js";
import { barChart, columnChart } from "./charts.js";
import { Session } from "./session.js";
import {
  fmtElapsed,
  fmtKpi,
  fmtClock,
  fmtDuration,
  fmtNumber,
  fmtPercent,
  fmtWeekdayTime,
  getLang,
  kpiLabel,
  t,
  tChannel,
  statusLabel,
  tReason,
  tStatus,
} from "./i18n.js";

const STATUS_ORDER = { available: 0, busy: 1, away: 2, break: 3, offline: 4 };

const state = {
  agents: new Map(), // id -> view
  profiles: new Map(), // id -> {queues, skills}
  queues: new Map(), // name -> stats
  queueOrder: [],
  statuses: [],
  channels: [],
  kpis: null,
  pending: new Map(), // id -> newest view not drawn yet
  rows: new Map(), // id -> {tr, cells, drawn}
  frame: 0,
  flushes: 0,
  orderDirty: true,
  lastOrder: 0,
  order: [],
  filter: { text: "", queue: "", skill: "", status: "" },
  sort: { key: "status", dir: 1 },
  profileTimer: 0,
  composing: new Map(), // agent id -> Map(work id -> {until, subject}): "being answered by"
  waitRows: new Map(), // work id -> {tr, cells, drawn}
  queueSettings: new Map(), // name -> the admin API's settings (crm_url ...)
  charts: { data: null, loading: false, at: 0, timer: 0, seen: "" }, // the day's reports
};

const session = new Session({
  role: "supervisor",
  path: "/ws/supervisor",
  onMessage,
  onLang: redrawAll,
});

// -- start ----------------------------------------------------------------------

function start() {
  $("#big-btn").addEventListener("click", toggleBig);
  $("#toolbar").addEventListener("submit", (e) => e.preventDefault());
  for (const [id, key] of [
    ["#f-text", "text"],
    ["#f-queue", "queue"],
    ["#f-skill", "skill"],
    ["#f-status", "status"],
  ]) {
    $(id).addEventListener("input", (e) => {
      state.filter[key] = e.target.value.trim().toLowerCase();
      if (key !== "text") state.filter[key] = e.target.value;
      applyFilters();
      if (key === "queue") drawWaiting();
    });
  }
  $("#kpi-window").addEventListener("change", (e) => {
    state.kpiWindowName = e.target.value;
    drawKpis();
    drawQueues();
  });
  $("#f-sort").addEventListener("change", (e) => setSort(e.target.value, state.sort.dir));
  $("#f-dir").addEventListener("click", () => setSort(state.sort.key, -state.sort.dir));
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.tabIndex = 0;
    const go = () => setSort(th.dataset.sort, state.sort.key === th.dataset.sort ? -state.sort.dir : 1);
    th.addEventListener("click", go);
    th.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        go();
      }
    });
  }
  document.addEventListener("keydown", onKey);
  setInterval(tick, 1000);
  setSort("status", 1);
  session.start();
}

// -- messages --------------------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot":
      return onSnapshot(msg);
    case "agents":
      for (const v of msg.agents || []) queueDelta(v);
      return;
    case "status":
    case "load":
      return queueDelta(msg);
    case "queues":
      return onQueues(msg.queues || []);
    case "kpis":
      return onKpis(msg);
    case "agent.removed":
      state.pending.delete(msg.agent_id);
      state.agents.delete(msg.agent_id);
      removeRow(msg.agent_id);
      updateSummary();
      return;
    case "case.composing":
      return onComposing(msg);
    case "queue.removed":
    case "queue.updated":
      loadQueueSettings();
      return; // the next queues message carries the figures
    default:
      return;
  }
}

function onSnapshot(msg) {
  showCenter(msg.center);
  state.statuses = msg.statuses || [];
  state.channels = msg.channels || [];
  state.pending.clear();
  const ids = new Set();
  for (const v of msg.agents || []) {
    ids.add(v.agent_id);
    state.agents.set(v.agent_id, v);
  }
  for (const id of [...state.agents.keys()]) {
    if (!ids.has(id)) {
      state.agents.delete(id);
      removeRow(id);
    }
  }
  onQueues(msg.queues || [], true);
  fillStatusFilter();
  for (const v of state.agents.values()) drawRow(v);
  // the marks live now replace what this page had (a resync may follow a gap)
  const marked = [...state.composing.keys()];
  state.composing.clear();
  for (const c of msg.composing || []) onComposing(c);
  for (const aid of marked) paintComposing(aid);
  state.orderDirty = true;
  reorder(true);
  updateSummary();
  loadProfiles();
  loadQueueSettings();
  loadCharts(true);
}

function queueDelta(v) {
  if (!v || !v.agent_id) return;
  const prev = state.pending.get(v.agent_id) || state.agents.get(v.agent_id);
  if (prev && (v.ver || 0) < (prev.ver || 0)) return; // an older view than the one we have
  state.pending.set(v.agent_id, v);
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

/** Apply every delta gathered since the last frame: one pass, changed rows only. */
function flush() {
  state.frame = 0;
  state.flushes += 1;
  let unknown = false;
  for (const [id, v] of state.pending) {
    const old = state.agents.get(id);
    const merged = { ...(old || {}), ...v };
    delete merged.type;
    state.agents.set(id, merged);
    if (!old) unknown = true;
    if (!old || old.status !== merged.status || old.load !== merged.load || old.items !== merged.items) {
      state.orderDirty = true;
    }
    drawRow(merged);
  }
  state.pending.clear();
  if (unknown) loadProfilesSoon();
  reorder(false);
  updateSummary();
}

function onQueues(list, replace = false) {
  const names = new Set();
  for (const q of list) {
    names.add(q.name);
    state.queues.set(q.name, { ...(state.queues.get(q.name) || {}), ...q });
  }
  if (replace || list.length) {
    for (const n of [...state.queues.keys()]) if (!names.has(n)) state.queues.delete(n);
  }
  state.queueOrder = [...state.queues.values()]
    .sort((a, b) => (b.priority || 0) - (a.priority || 0) || a.name.localeCompare(b.name))
    .map((q) => q.name);
  drawQueues();
  fillQueueFilter();
}

/** Each agent's CSAT today (the kpis message's agent rows, every 5th push), on its row. */
function paintAgentCsat(msg) {
  if (!Array.isArray(msg.agents)) return;
  for (const a of msg.agents) {
    const row = state.rows.get(a.agent_id);
    if (!row) continue;
    const k = a.today || {};
    let el = row.cells.name.querySelector(".a-csat");
    if (!k.csat_count) {
      if (el) el.remove();
      continue;
    }
    if (!el) {
      el = h("span.a-csat.badge");
      row.cells.name.append(el);
    }
    setText(el, t("wb.agentCsat", { v: fmtKpi("csat", k.csat), n: k.csat_count }));
  }
}

function onKpis(msg) {
  state.kpis = msg;
  drawKpis();
  drawQueues();
  paintAgentCsat(msg);
  // the charts follow the day's counts: a new contact, answer or abandon redraws them
  const today = (msg.center && msg.center.today) || {};
  const seen = `${today.offered}|${today.answered}|${today.abandoned}`;
  if (seen !== state.charts.seen) {
    state.charts.seen = seen;
    loadCharts(false);
  }
}

// -- profiles (queues and skills, for the filters) ------------------------------------

async function loadProfiles() {
  if (!session.token) return;
  try {
    const body = await session.api("/api/v1/agents");
    state.profiles = new Map((body.agents || []).map((a) => [a.id, a]));
    for (const v of state.agents.values()) drawRow(v); // extensions
    fillSkillFilter();
    applyFilters();
  } catch {
    /* filters by queue and skill stay empty; the grid still works */
  }
}

async function loadQueueSettings() {
  if (!session.token) return;
  try {
    const body = await session.api("/api/v1/queues");
    state.queueSettings = new Map((body.queues || []).map((q) => [q.name, q]));
    drawWaiting();
  } catch {
    /* no CRM links; the list still works */
  }
}

function loadProfilesSoon() {
  clearTimeout(state.profileTimer);
  state.profileTimer = setTimeout(loadProfiles, 2000);
}

// -- agent grid ---------------------------------------------------------------------

function statusDef(name) {
  return state.statuses.find((s) => s.name === name);
}

function drawRow(v) {
  let row = state.rows.get(v.agent_id);
  if (!row) {
    const tr = h("tr", { dataset: { id: v.agent_id }, tabindex: "0" });
    const cells = {
      name: h("td.c-name", null, h("span.a-name", { dir: "auto" }), h("span.a-id"), h("span.a-ext")),
      status: h("td.c-status", null, h("span.status-pill", null, h("span.st-icon", { "aria-hidden": "true" }), h("span.st-name")), h("span.conn-flag")),
      reason: h("td.c-reason", { dir: "auto" }),
      since: h("td.c-time.timer"),
      load: h(
        "td.c-load",
        null,
        h("span.minibar", { "aria-hidden": "true" }, h("span.minibar-fill")),
        h("span.load-text"),
      ),
      items: h("td", null, h("div.c-items")),
      actions: h(
        "td.col-actions",
        null,
        h("button.btn.ghost.small", { type: "button", onclick: () => openActions(v.agent_id) }, "⋯"),
      ),
    };
    tr.append(...Object.values(cells));
    tr.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && e.target === tr) openActions(v.agent_id);
    });
    row = { tr, cells, drawn: {} };
    state.rows.set(v.agent_id, row);
    $("#grid-body").append(tr);
    state.orderDirty = true;
  }
  const d = row.drawn;
  const c = row.cells;
  if (d.name !== v.name) {
    setText(c.name.children[0], v.name || v.agent_id);
    setText(c.name.children[1], v.name && v.name !== v.agent_id ? v.agent_id : "");
    d.name = v.name;
  }
  const ext = (state.profiles.get(v.agent_id) || {}).extension || "";
  const extKey = `${ext}|${state.lang}`;
  if (d.ext !== extKey) {
    const el = c.name.children[2];
    setText(el, ext ? t("agent.ext", { ext: shortExt(ext) }) : "");
    el.title = ext;
    d.ext = extKey;
  }
  const def = statusDef(v.status);
  const routable = !!(def && def.routable);
  const busy = routable && (v.items || 0) > 0;
  const stKey = `${v.status}|${busy}|${v.connected}|${state.lang}`;
  if (d.st !== stKey) {
    const pill = c.status.firstChild;
    pill.className = `status-pill ${statusClass(v.status, routable, busy)}`;
    put(pill.firstChild, statusIcon(v.status, routable, busy));
    setText(pill.lastChild, statusLabel(v.status, busy));
    pill.title = routable ? t(busy ? "status.workingHint" : "status.idleHint") : "";
    const flag = c.status.lastChild;
    const disconnected = !v.connected && (v.status || "").toLowerCase() !== "offline";
    put(flag, disconnected ? [icon("warn"), t("wb.disconnected")] : null);
    row.tr.classList.toggle("gone", disconnected);
    row.tr.dataset.status = v.status;
    d.st = stKey;
  }
  const reason = v.reason ? tReason(v.reason) : "";
  if (d.reason !== reason) {
    setText(c.reason, reason);
    d.reason = reason;
  }
  c.since.dataset.since = v.since || "";
  const loadKey = `${v.load}|${v.capacity}|${state.lang}`;
  if (d.load !== loadKey) {
    const pct = v.capacity ? Math.min(100, Math.round((100 * (v.load || 0)) / v.capacity)) : 0;
    // as on the agent panel: green with room for more work, blue when full (no alarm)
    const full = v.capacity > 0 && (v.load || 0) >= v.capacity;
    const fill = c.load.firstChild.firstChild;
    fill.style.width = `${pct}%`;
    fill.className = `minibar-fill ${full ? "full" : ""}`;
    setText(c.load.lastChild, `${v.load || 0} / ${v.capacity || 0}`);
    c.load.title = t(full ? "wb.loadFull" : "wb.loadRoom");
    d.load = loadKey;
  }
  const by = v.by_channel || {};
  const itemsKey = `${JSON.stringify(by)}|${state.lang}`;
  if (d.items !== itemsKey) {
    put(c.items.firstChild,
      ...Object.entries(by)
        .filter(([, n]) => n > 0)
        .map(([ch, n]) =>
          h("span.chip", { title: tChannel(ch) }, channelIcon(ch), `${tChannel(ch)} ${n}`),
        ),
    );
    d.items = itemsKey;
  }
  row.tr.hidden = !matches(v);
}

// -- "being answered by": an agent writing a reply to a case -------------------------

function onComposing(msg) {
  const mine = state.composing.get(msg.agent_id) || new Map();
  if (msg.composing && msg.until_ms > session.now()) mine.set(msg.work_id, { until: msg.until_ms, subject: msg.subject || "" });
  else mine.delete(msg.work_id);
  if (mine.size) state.composing.set(msg.agent_id, mine);
  else state.composing.delete(msg.agent_id);
  paintComposing(msg.agent_id);
}

/** The agent's row says which case it is answering, until the mark runs out. */
function paintComposing(aid) {
  const row = state.rows.get(aid);
  if (!row) return;
  const now = session.now();
  const mine = state.composing.get(aid);
  const live = mine ? [...mine.entries()].filter(([, c]) => c.until > now) : [];
  let el = row.cells.items.querySelector(".composing");
  if (!live.length) {
    if (el) el.remove();
    if (mine && !live.length) state.composing.delete(aid);
    return;
  }
  if (!el) {
    el = h("div.composing", { role: "status" });
    row.cells.items.append(el);
  }
  const subjects = live.map(([, c]) => c.subject).filter(Boolean).join(", ");
  el.dataset.work = live.map(([wid]) => wid).join(" ");
  put(el, icon("pen"), t("wb.answering", { subject: subjects || "…" }));
}

function removeRow(id) {
  const row = state.rows.get(id);
  if (row) row.tr.remove();
  state.rows.delete(id);
}

function matches(v) {
  const f = state.filter;
  if (f.status && v.status !== f.status) return false;
  if (f.text) {
    const hay = `${v.name || ""} ${v.agent_id} ${v.reason || ""}`.toLowerCase();
    if (!hay.includes(f.text)) return false;
  }
  if (f.queue || f.skill) {
    const p = state.profiles.get(v.agent_id);
    if (!p) return false;
    if (f.queue && !(p.queues || []).includes(f.queue)) return false;
    if (f.skill && !(p.skills && p.skills[f.skill])) return false;
  }
  return true;
}

function applyFilters() {
  let shown = 0;
  for (const [id, row] of state.rows) {
    const v = state.agents.get(id);
    const ok = !!v && matches(v);
    row.tr.hidden = !ok;
    if (ok) shown += 1;
  }
  $("#grid-empty").hidden = shown > 0 || state.rows.size === 0;
  state.filterActive = !!(state.filter.text || state.filter.queue || state.filter.skill || state.filter.status);
  setText($("#agent-count"), state.filterActive ? `${shown} / ${state.agents.size}` : String(state.agents.size));
}

function statusRank(v) {
  const def = statusDef(v.status);
  const n = (v.status || "").toLowerCase();
  if (n === "offline") return STATUS_ORDER.offline;
  if (def && def.routable) return (v.items || 0) > 0 ? STATUS_ORDER.busy : STATUS_ORDER.available;
  if (n.includes("break") || n.includes("lunch")) return STATUS_ORDER.break;
  return STATUS_ORDER.away;
}

let collatorCache = null;
function collator() {
  // one Collator, not one per comparison: localeCompare(x, y, lang) builds one each call
  if (!collatorCache || collatorCache.lang !== getLang()) {
    collatorCache = { lang: getLang(), c: new Intl.Collator(getLang(), { numeric: true }) };
  }
  return collatorCache.c;
}

function compare(a, b) {
  const k = state.sort.key;
  let r = 0;
  if (k === "status") r = statusRank(a) - statusRank(b) || (a.since || 0) - (b.since || 0);
  else if (k === "since") r = (a.since || 0) - (b.since || 0);
  else if (k === "load") r = (b.load || 0) - (a.load || 0);
  else if (k === "items") r = (b.items || 0) - (a.items || 0);
  if (r === 0) r = collator().compare(a.name || a.agent_id, b.name || b.agent_id);
  return r * state.sort.dir;
}

function setSort(key, dir) {
  state.sort = { key, dir };
  $("#f-sort").value = key;
  setText($("#f-dir"), dir > 0 ? "↑" : "↓");
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === key ? (dir > 0 ? "ascending" : "descending") : "none");
  }
  state.orderDirty = true;
  reorder(true);
}

/** Put rows in sort order; throttled so live changes do not make the grid jump. */
function reorder(now) {
  if (!state.orderDirty) return;
  if (!now && Date.now() - state.lastOrder < 1000) return;
  state.orderDirty = false;
  state.lastOrder = Date.now();
  const ids = [...state.agents.values()].sort(compare).map((v) => v.agent_id);
  if (ids.length === state.order.length && ids.every((id, i) => id === state.order[i])) return;
  state.order = ids;
  const body = $("#grid-body");
  const frag = document.createDocumentFragment();
  for (const id of ids) {
    const row = state.rows.get(id);
    if (row) frag.append(row.tr);
  }
  body.append(frag);
}

/** Agents counted by status, a routable status split into waiting and working: one pill per
 *  colour the grid shows, with its words, so the summary is also the grid's legend. */
function updateSummary() {
  const counts = new Map();
  for (const v of state.agents.values()) {
    const def = statusDef(v.status);
    const working = !!(def && def.routable) && (v.items || 0) > 0;
    const key = JSON.stringify([v.status, working]);
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const box = $("#status-summary");
  put(box,
    ...[...counts.entries()]
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([key, n]) => {
        const [s, working] = JSON.parse(key);
        const routable = !!(statusDef(s) || {}).routable;
        return h(
          `span.status-pill.${statusClass(s, routable, working)}`,
          { title: routable ? t(working ? "status.workingHint" : "status.idleHint") : undefined },
          h("span.st-icon", { "aria-hidden": "true" }, statusIcon(s, routable, working)),
          h("span.st-name", null, `${statusLabel(s, working)} ${n}`),
        );
      }),
  );
  applyFilters();
}

function redrawAll() {
  state.lang = getLang();
  for (const v of state.agents.values()) drawRow(v);
  fillStatusFilter();
  fillQueueFilter();
  fillSkillFilter();
  drawQueues();
  drawKpis();
  drawCharts();
  updateSummary();
}

function fillSelect(sel, options, allKey) {
  const current = sel.value;
  put(sel, h("option", { value: "" }, t(allKey)), ...options.map(([v, label]) => h("option", { value: v }, label)));
  sel.value = options.some(([v]) => v === current) ? current : "";
}

function fillStatusFilter() {
  fillSelect($("#f-status"), state.statuses.map((s) => [s.name, tStatus(s.name)]), "wb.allStatuses");
}

function fillQueueFilter() {
  fillSelect($("#f-queue"), state.queueOrder.map((n) => [n, state.queues.get(n).title || n]), "wb.allQueues");
}

function fillSkillFilter() {
  const skills = new Set();
  for (const p of state.profiles.values()) for (const s of Object.keys(p.skills || {})) skills.add(s);
  fillSelect($("#f-skill"), [...skills].sort().map((s) => [s, s]), "wb.allSkills");
}

// -- queues ----------------------------------------------------------------------------

function waitLevel(q, waitMs) {
  const sl = (q.service_level_seconds || 20) * 1000;
  if (!q.waiting || !waitMs) return "ok";
  if (waitMs < sl * 0.5) return "ok";
  if (waitMs < sl) return "warn";
  return "over";
}

const LEVEL_ICON = { ok: "●", warn: "▲", over: "■" };

function drawQueues() {
  const box = $("#queue-tiles");
  const seen = new Set();
  state.queueOrder.forEach((name, i) => {
    const q = state.queues.get(name);
    seen.add(name);
    let tile = box.querySelector(`[data-queue="${CSS.escape(name)}"]`);
    if (!tile) {
      tile = h(
        "article.queue-tile",
        { dataset: { queue: name }, tabindex: "0", role: "button" },
        h("header", null, h("h3.q-title", { dir: "auto" }), h("span.q-sl")),
        h("div.q-hours", { hidden: true }, h("span.q-hours-state"), h("span.q-hours-next")),
        h("div.q-main", null, h("span.q-waiting"), h("span.q-waiting-label")),
        h("div.q-oldest", null, h("span.q-level", { "aria-hidden": "true" }), h("span.q-oldest-label"), h("strong.q-oldest-time.timer"), h("span.sr-only.q-level-text")),
        h("dl.q-stats"),
        h("dl.q-kpis"),
      );
      const pick = () => {
        $("#f-queue").value = name;
        state.filter.queue = name;
        applyFilters();
        drawWaiting();
      };
      tile.addEventListener("click", pick);
      tile.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          pick();
        }
      });
    }
    if (box.children[i] !== tile) box.insertBefore(tile, box.children[i] || null);
    setText(tile.querySelector(".q-title"), q.title || name);
    setText(tile.querySelector(".q-sl"), t("wb.slThreshold", { s: q.service_level_seconds || 20 }));
    setText(tile.querySelector(".q-waiting"), q.waiting || 0);
    setText(tile.querySelector(".q-waiting-label"), t("wb.waiting"));
    setText(tile.querySelector(".q-oldest-label"), t("wb.oldest"));
    tile.setAttribute("aria-label", `${q.title || name}: ${t("wb.waiting")} ${q.waiting || 0}`);
    const stats = tile.querySelector(".q-stats");
    const pairs = [
      ["wb.available", q.routable ?? 0],
      ["wb.ready", q.ready ?? 0],
      ["wb.loggedIn", `${q.logged_in ?? 0} / ${q.members ?? 0}`],
    ];
    put(stats, ...pairs.flatMap(([k, v]) => [h("dt", null, t(k)), h("dd", null, String(v))]));
    const qk = queueKpis(name);
    const kbox = tile.querySelector(".q-kpis");
    put(kbox,
      ...Object.entries(qk)
        .filter(([k]) => ["service_level", "asa", "abandonment_rate", "csat", "staffing_needed"].includes(k))
        .flatMap(([k, v]) => [h("dt", null, kpiLabel(k)), h("dd", { dataset: { key: k } }, fmtKpi(k, v))]),
    );
    paintOldest(tile, q);
    paintHours(tile, q);
  });
  for (const el of [...box.children]) if (!seen.has(el.dataset.queue)) el.remove();
  drawWaiting();
}

// -- the waiting list ----------------------------------------------------------------------

/** Who a waiting item is about, in one line: name, else id, phone or e-mail. */
function customerText(c) {
  if (!c || typeof c !== "object") return "";
  for (const f of ["name", "id", "phone", "email"]) if (c[f] !== undefined && c[f] !== null && c[f] !== "") return String(c[f]);
  return "";
}

/** Every listed waiting item (the queue filter applied), in queue order then routing order. */
function waitingItems() {
  const out = [];
  for (const name of state.queueOrder) {
    if (state.filter.queue && state.filter.queue !== name) continue;
    const q = state.queues.get(name);
    for (const it of (q && q.items) || []) out.push({ ...it, queue: name });
  }
  return out;
}

function drawWaiting() {
  const body = $("#waiting-body");
  const items = waitingItems();
  const seen = new Set();
  items.forEach((it, i) => {
    seen.add(it.work_id);
    let row = state.waitRows.get(it.work_id);
    if (!row) {
      const cells = {
        queue: h("td.w-queue", { dir: "auto" }),
        age: h("td.w-age", null, h("span.w-level", { "aria-hidden": "true" }), h("strong.timer.w-time"), h("span.sr-only.w-level-text")),
        channel: h("td.w-channel"),
        priority: h("td.w-priority"),
        customer: h("td.w-customer", { dir: "auto" }),
        subject: h("td.w-subject", { dir: "auto" }),
        actions: h("td.col-actions", null, h("button.btn.small.w-push", { type: "button", onclick: () => openPush(it.work_id) })),
      };
      const tr = h("tr", { dataset: { id: it.work_id } });
      tr.append(...Object.values(cells));
      row = { tr, cells, drawn: {} };
      state.waitRows.set(it.work_id, row);
    }
    row.item = it;
    if (body.children[i] !== row.tr) body.insertBefore(row.tr, body.children[i] || null);
    const c = row.cells;
    const crm = crmLink((state.queueSettings.get(it.queue) || {}).crm_url, it);
    const key = `${it.queue}|${it.channel}|${it.priority}|${customerText(it.customer)}|${it.subject || ""}|${crm}|${it.overflow_to || ""}|${!!it.handed_over}|${state.lang}`;
    if (row.drawn.key !== key) {
      const q = state.queues.get(it.queue) || {};
      setText(c.queue, q.title || it.queue);
      put(c.channel, h("span.chip", { title: tChannel(it.channel) }, channelIcon(it.channel), tChannel(it.channel)));
      setText(c.priority, it.priority || 0);
      c.priority.title = t("wb.priorityHint");
      const who = customerText(it.customer) || "—";
      if (crm) put(c.customer, h("a.crm-link", { href: crm, target: "_blank", rel: "noopener noreferrer", title: t("wb.openCrm") }, who));
      else setText(c.customer, who);
      // an overflowed item (other queues' agents may take it too) and one handed over with a note
      const flags = [
        it.overflow_to ? h("span.chip.w-flag", { title: t("wb.overflowHint") }, t("wb.overflowTo", { queue: (state.queues.get(it.overflow_to) || {}).title || it.overflow_to })) : null,
        it.handed_over ? h("span.chip.w-flag", { title: t("wb.handedOverHint") }, t("wb.handedOver")) : null,
      ];
      put(c.subject, it.subject || "", ...flags);
      const btn = c.actions.firstChild;
      setText(btn, t("wb.pushTo"));
      btn.setAttribute("aria-label", `${t("wb.pushTo")}: ${customerText(it.customer) || it.subject || it.work_id}`);
      row.drawn.key = key;
    }
    paintAge(row);
  });
  for (const [id, row] of state.waitRows) {
    if (!seen.has(id)) {
      row.tr.remove();
      state.waitRows.delete(id);
    }
  }
  let total = 0;
  let more = [];
  for (const name of state.queueOrder) {
    if (state.filter.queue && state.filter.queue !== name) continue;
    const q = state.queues.get(name);
    total += q.waiting || 0;
    const listed = (q.items || []).length;
    if (q.items && (q.waiting || 0) > listed) more.push(t("wb.waitingMore", { n: q.waiting - listed, queue: q.title || name }));
  }
  setText($("#waiting-count"), total);
  $("#waiting-empty").hidden = items.length > 0;
  $("#waiting").hidden = items.length === 0;
  const moreEl = $("#waiting-more");
  setText(moreEl, more.join(" · "));
  moreEl.hidden = more.length === 0;
}

/** An item's age, coloured against its queue's service level (the same levels as the tiles). */
function paintAge(row) {
  const it = row.item;
  const q = state.queues.get(it.queue) || {};
  const wait = Math.max(0, session.now() - (it.created || 0));
  const level = waitLevel({ ...q, waiting: 1 }, wait || 1);
  const c = row.cells.age;
  if (row.drawn.level !== level || row.drawn.lang !== state.lang) {
    c.className = `w-age lvl-${level}`;
    setText(c.children[0], LEVEL_ICON[level]);
    setText(c.children[2], t(`wb.level.${level}`));
    c.title = t(`wb.level.${level}`);
    row.drawn.level = level;
    row.drawn.lang = state.lang;
  }
  setText(c.children[1], fmtElapsed(wait));
}

/** A one-line label of a work item for a list to choose from. */
function itemLabel(it) {
  const q = state.queues.get(it.queue) || {};
  const parts = [q.title || it.queue, tChannel(it.channel)];
  if (it.state && it.state !== "queued") parts.push(t(`wb.itemState.${it.state}`, null, it.state));
  else if (it.created) parts.push(fmtElapsed(Math.max(0, session.now() - it.created)));
  const who = customerText(it.customer);
  if (who) parts.push(who);
  if (typeof it.subject === "string" && it.subject) parts.push(it.subject);
  return parts.join(" · ");
}

/** Agents a supervisor can move work to: signed in, members of `queue` first, then the others;
 *  each labelled with its status and load, so the choice needs no other screen. */
function agentChoices(queue, except = "") {
  const members = [];
  const others = [];
  for (const v of state.agents.values()) {
    if (!v.connected || v.agent_id === except) continue;
    const p = state.profiles.get(v.agent_id);
    ((p && (p.queues || []).includes(queue)) ? members : others).push(v);
  }
  const order = (a, b) => statusRank(a) - statusRank(b) || (a.load || 0) - (b.load || 0) || collator().compare(a.name || a.agent_id, b.name || b.agent_id);
  const label = (v) => {
    const def = statusDef(v.status);
    const working = !!(def && def.routable) && (v.items || 0) > 0;
    return `${v.name || v.agent_id} · ${statusLabel(v.status, working)} · ${v.load || 0}/${v.capacity || 0}`;
  };
  const group = (key, list) =>
    list.length ? h("optgroup", { label: t(key) }, ...list.sort(order).map((v) => h("option", { value: v.agent_id }, label(v)))) : null;
  return [group("wb.inQueue", members), group("wb.otherAgents", others)].filter(Boolean);
}

function resultLine() {
  const out = h("p.action-result", { role: "status" });
  const run = (promise, okKey, after) =>
    promise
      .then(() => {
        out.className = "action-result ok";
        setText(out, t(okKey));
        if (after) after();
      })
      .catch((err) => {
        out.className = "action-result error";
        setText(out, err.unavailable ? t("err.notAvailable") : err.message);
      });
  return { out, run };
}

/** Push one waiting item to an agent chosen from a list. */
function openPush(wid) {
  const row = state.waitRows.get(wid);
  if (!row) return;
  const it = row.item;
  setText($("#actions-title"), t("wb.pushTitle"));
  const { out, run } = resultLine();
  const choices = agentChoices(it.queue);
  const agent = h("select#push-agent", { "aria-label": t("wb.pushAgent") }, ...choices);
  const apply = h("button#push-apply.btn.primary", { type: "submit", disabled: choices.length ? undefined : true }, t("wb.pushBtn"));
  put($("#actions-body"),
    h(
      "form.action",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (agent.value) run(session.request({ type: "work.push", work_id: wid, agent_id: agent.value }), "wb.pushed");
        },
      },
      h("p.w-summary", { dir: "auto" }, itemLabel(it)),
      h("p.muted.small", null, t("wb.pushHelp")),
      choices.length ? null : h("p.muted", null, t("wb.nobodySignedIn")),
      h("label", null, h("span", null, t("wb.pushAgent")), agent),
      h("div.row", null, apply),
    ),
    out,
  );
  $("#actions").showModal();
  agent.focus();
}

/** A queue with business hours: open or closed now, and when that changes
 *  (on the queue's own clock); a queue without hours shows nothing. */
function paintHours(tile, q) {
  const box = tile.querySelector(".q-hours");
  const has = typeof q.open === "boolean";
  box.hidden = !has;
  tile.classList.toggle("closed", has && !q.open);
  if (!has) return;
  box.className = `q-hours ${q.open ? "is-open" : "is-closed"}`;
  setText(box.firstChild, t(q.open ? "wb.open" : "wb.closed"));
  const at = q.changes_at ? fmtWeekdayTime(q.changes_at, q.time_zone) : "";
  setText(box.lastChild, at ? t(q.open ? "wb.closesAt" : "wb.opensAt", { at }) : "");
  box.title = q.open ? "" : t("wb.closedHint");
}

function paintOldest(tile, q) {
  const now = session.now();
  const wait = q.waiting && q.oldest_created ? Math.max(0, now - q.oldest_created) : 0;
  const level = waitLevel(q, wait);
  const box = tile.querySelector(".q-oldest");
  box.className = `q-oldest lvl-${level}`;
  setText(tile.querySelector(".q-level"), LEVEL_ICON[level]);
  setText(tile.querySelector(".q-oldest-time"), wait ? fmtElapsed(wait) : "—");
  setText(tile.querySelector(".q-level-text"), t(`wb.level.${level}`));
  box.title = t(`wb.level.${level}`);
}

// -- charts: the day per 15 minutes, and cases by type, source and customer ------------------

// At most one reading of the reports per CHART_MIN_MS however fast contacts
// arrive (each reading folds the day's events on the server), and one every
// CHART_EVERY_MS regardless, so the last interval's bar grows with the day.
const CHART_MIN_MS = 15_000;
const CHART_EVERY_MS = 60_000;

function loadCharts(now) {
  const c = state.charts;
  clearTimeout(c.timer);
  const wait = now ? 0 : Math.max(0, c.at + CHART_MIN_MS - Date.now());
  c.timer = setTimeout(readCharts, wait);
}

async function readCharts() {
  const c = state.charts;
  if (!session.token || c.loading) return;
  c.loading = true;
  c.at = Date.now();
  try {
    // one fold of the day's events on the server for all the charts
    const g = (await session.api("/api/v1/reports/charts")).groups || {};
    c.data = { intervals: g["15m"] || {}, type: g.type || {}, source: g.source || {}, customer: g.customer || {} };
    drawCharts();
  } catch {
    /* the charts keep their last picture; the next reading tries again */
  } finally {
    c.loading = false;
    clearTimeout(c.timer);
    c.timer = setTimeout(readCharts, CHART_EVERY_MS);
  }
}

const pct = (v) => fmtPercent(v);
const secs = (v) => fmtDuration(v);

function drawCharts() {
  const d = state.charts.data;
  $("#charts").hidden = !d;
  if (!d) return;
  const rows = dayRows(d.intervals.rows || []);
  const labels = rows.map((r) => String(r["15m"] || "").slice(11, 16));
  columnChart($("#chart-sl"), {
    title: t("chart.sl"),
    labels,
    series: [{ name: t("kpi.service_level"), values: rows.map((r) => r.service_level) }],
    max: 1,
    target: slTarget(),
    format: pct,
  });
  const volume = [
    ["kpi.offered", "offered"],
    ["kpi.answered", "answered"],
    ["kpi.abandoned", "abandoned"],
  ];
  columnChart($("#chart-volume"), {
    title: t("chart.volume"),
    labels,
    series: volume.map(([key, col]) => ({ name: kpiLabel(col) || t(key), values: rows.map((r) => r[col] || 0) })),
    format: (v) => fmtNumber(v),
    integer: true,
  });
  put($("#legend-volume"),
    volume.map(([, col], k) => h("span.legend-item", null, h(`span.swatch.series-${k}`, { "aria-hidden": "true" }), kpiLabel(col))),
  );
  columnChart($("#chart-wait"), {
    title: t("chart.wait"),
    labels,
    series: [{ name: kpiLabel("asa"), values: rows.map((r) => r.asa) }],
    format: secs,
    // whole seconds on the axis: durations are written to the second, so a
    // half-second step read "1 sec, 1 sec, 2 sec, 2 sec" under a 2 s ASA
    integer: true,
  });
  for (const [id, report, key] of [
    ["#chart-type", d.type, "type"],
    ["#chart-source", d.source, "source"],
    ["#chart-customer", d.customer, "customer"],
  ]) {
    const bars = (report.rows || [])
      .filter((r) => (r.offered || 0) > 0)
      .map((r) => ({ label: r[key] ? (key === "source" ? sourceLabel(r[key]) : r[key]) : t("chart.none"), value: r.offered }));
    const svg = $(id);
    barChart(svg, { title: `${t(`chart.by${key[0].toUpperCase()}${key.slice(1)}`)}`, rows: bars, format: (v) => fmtNumber(v) });
    svg.parentElement.classList.toggle("empty", bars.length === 0);
    svg.parentElement.dataset.empty = t("chart.noCases");
  }
}

/** A case's source in the page's words: a channel ("chat"), or a channel and
 *  where it came in ("voice:+1 800 555 0100", "email:support@example.com"),
 *  as the intakes write it: "Voice · +1 800 555 0100", not the raw "voice:". */
function sourceLabel(source) {
  const at = source.indexOf(":");
  return at > 0 ? `${tChannel(source.slice(0, at))} · ${source.slice(at + 1)}` : tChannel(source);
}

/** The day's quarter hours from the hour of the first contact on (a quiet
 *  night would squeeze the day into a corner), at least the last two hours. */
function dayRows(rows) {
  let first = rows.findIndex((r) => (r.offered || 0) + (r.answered || 0) + (r.abandoned || 0) > 0);
  if (first < 0) first = rows.length;
  first = Math.max(0, Math.min(first, rows.length - 8));
  return rows.slice(first - (first % 4));
}

/** The service-level goal drawn on its chart: the queues' target when they share one. */
function slTarget() {
  const targets = new Set([...state.queueSettings.values()].map((q) => q.service_level_target));
  return targets.size === 1 ? [...targets][0] : 0.8;
}

// -- KPIs ------------------------------------------------------------------------------

// The KPI message carries live figures (waiting, staffing_needed ...) next to
// one map per time window ("today", "15m" ...); the strip shows the live
// figures and the chosen window's.
function kpiWindow() {
  const m = state.kpis || {};
  const root = m.kpis && typeof m.kpis === "object" ? m.kpis : m;
  const windows = Array.isArray(root.windows) ? root.windows : [];
  if (!windows.includes(state.kpiWindowName)) state.kpiWindowName = windows[0] || "";
  return { root, windows, name: state.kpiWindowName };
}

function flatten(o, win) {
  if (!o || typeof o !== "object") return {};
  const out = {};
  for (const [k, v] of Object.entries(o)) if (typeof v === "number" || v === null) out[k] = v;
  const w = (win && o[win]) || o.today || o.live;
  if (w && typeof w === "object") for (const [k, v] of Object.entries(w)) if (typeof v === "number" || v === null) out[k] = v;
  return out;
}

/** The center-wide figures of a kpis message, whatever its exact shape. */
function centerKpis() {
  if (!state.kpis) return {};
  const { root, name } = kpiWindow();
  return flatten(root.center || root.total || root.all || root.overall || root, name);
}

/** "Voice 3 · Chat 1": a center figure per channel, in the chosen window, largest first. */
function byChannel(key) {
  if (!state.kpis) return "";
  const { root, name } = kpiWindow();
  return (Array.isArray(root.channels) ? root.channels : [])
    .map((ch) => [ch.name, flatten(ch, name)[key] || 0])
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([ch, n]) => `${tChannel(ch)} ${fmtKpi(key, n)}`)
    .join(" · ");
}

// Figures whose tile also says which channels they came from.
const PER_CHANNEL = new Set(["abandoned"]);

function queueKpis(qname) {
  if (!state.kpis) return {};
  const { root, name } = kpiWindow();
  const qs = root.queues;
  let q = null;
  if (Array.isArray(qs)) q = qs.find((x) => x && (x.queue === qname || x.name === qname));
  else if (qs && typeof qs === "object") q = qs[qname];
  return flatten(q, name);
}

const KPI_ORDER = [
  "service_level",
  "asa",
  "aht",
  "abandonment_rate",
  "occupancy",
  "utilisation",
  "utilization",
  "fcr",
  "csat",
  "offered",
  "answered",
  "abandoned",
  "waiting",
  "longest_wait",
  "logged_in",
  "staffing_needed",
];

function drawKpis() {
  const c = centerKpis();
  let keys = KPI_ORDER.filter((k) => k in c);
  if (!keys.length) keys = Object.keys(c).filter((k) => !["server_time", "ts", "ver", "version"].includes(k));
  $("#kpis").hidden = keys.length === 0;
  const { windows, name } = kpiWindow();
  const sel = $("#kpi-window");
  if (sel.dataset.opts !== windows.join("|") + getLang()) {
    put(sel, windows.map((w) => h("option", { value: w }, t(`kpi.window.${w}`, null, w))));
    sel.dataset.opts = windows.join("|") + getLang();
  }
  sel.value = name;
  sel.parentElement.hidden = windows.length < 2;
  const strip = $("#kpi-strip");
  const existing = new Map([...strip.children].map((el) => [el.dataset.key, el]));
  keys.forEach((k, i) => {
    let el = existing.get(k);
    if (!el) {
      el = h("div.kpi", { dataset: { key: k } }, h("span.kpi-value"), h("span.kpi-label"), h("span.kpi-sub"));
    }
    existing.delete(k);
    setText(el.children[0], fmtKpi(k, c[k]));
    setText(el.children[1], kpiLabel(k));
    setText(el.children[2], PER_CHANNEL.has(k) ? byChannel(k) : "");
    if (strip.children[i] !== el) strip.insertBefore(el, strip.children[i] || null);
  });
  for (const el of existing.values()) el.remove();
}

// -- supervisor actions -----------------------------------------------------------------

function openActions(aid) {
  const v = state.agents.get(aid);
  if (!v) return;
  setText($("#actions-title"), `${v.name || aid} (${aid})`);
  const status = h(
    "select#force-status",
    { "aria-label": t("wb.forceStatus") },
    ...state.statuses.map((s) => h("option", { value: s.name }, tStatus(s.name))),
  );
  status.value = v.status;
  const reason = h("select#force-reason", { "aria-label": t("agent.reason") });
  const fill = () => {
    const def = statusDef(status.value);
    put(reason, h("option", { value: "" }, t("agent.noReason")), ...((def && def.reasons) || []).map((r) => h("option", { value: r }, tReason(r))));
  };
  status.addEventListener("change", fill);
  fill();
  const { out, run: result } = resultLine();
  const profile = state.profiles.get(aid);
  const queues = profile ? profile.queues || [] : state.queueOrder;
  const waiting = queues.flatMap((q) => ((state.queues.get(q) || {}).items || []).map((it) => ({ ...it, queue: q })));
  const pushId = h(
    "select#push-id",
    { "aria-label": t("wb.pushPick") },
    ...waiting.map((it) => h("option", { value: it.work_id }, itemLabel(it))),
  );
  // the agent's own items, read when the dialog opens (they are not in the grid's view)
  const heldId = h("select#held-id", { "aria-label": t("wb.heldPick"), disabled: true }, h("option", { value: "" }, t("common.loading")));
  const reassignTo = h("select#reassign-to", { "aria-label": t("wb.reassignTo") });
  const reassignNote = h("input#reassign-note", { placeholder: t("xfer.note"), "aria-label": t("xfer.note"), dir: "auto" });
  const pullBtn = h("button#pull-apply.btn", { type: "submit", disabled: true }, t("wb.pullBtn"));
  const reassignBtn = h("button#reassign-apply.btn", { type: "button", disabled: true }, t("wb.reassignBtn"));
  const held = new Map();
  const fillTargets = () => {
    const it = held.get(heldId.value);
    put(reassignTo, ...agentChoices(it ? it.queue : "", aid));
    reassignBtn.disabled = !it || !reassignTo.value;
  };
  const loadHeld = () =>
    session
      .request({ type: "agent.work.get", agent_id: aid })
      .then((reply) => {
        held.clear();
        for (const it of [...(reply.offers || []), ...(reply.work || [])]) held.set(it.work_id, it);
        put(heldId, ...(held.size ? [...held.values()].map((it) => h("option", { value: it.work_id }, itemLabel(it))) : [h("option", { value: "" }, t("wb.nothingHeld"))]));
        heldId.disabled = held.size === 0;
        pullBtn.disabled = held.size === 0;
        fillTargets();
      })
      .catch((err) => {
        put(heldId, h("option", { value: "" }, err.message));
      });
  heldId.addEventListener("change", fillTargets);
  reassignTo.addEventListener("change", fillTargets);
  reassignBtn.addEventListener("click", () => {
    if (heldId.value && reassignTo.value) {
      result(session.request({ type: "work.reassign", work_id: heldId.value, agent_id: reassignTo.value, note: reassignNote.value.trim() || undefined }), "wb.done").then(loadHeld);
    }
  });
  put($("#actions-body"),
    h(
      "form.action",
      {
        onsubmit: (e) => {
          e.preventDefault();
          result(session.request({ type: "agent.status.set", agent_id: aid, status: status.value, reason: reason.value || undefined }), "wb.statusForced");
        },
      },
      h("h3", null, t("wb.forceStatus")),
      h("div.row", null, status, reason, h("button.btn.primary", { type: "submit", id: "force-apply" }, t("agent.apply"))),
    ),
    h(
      "form.action",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (pushId.value) result(session.request({ type: "work.push", work_id: pushId.value, agent_id: aid }), "wb.done");
        },
      },
      h("h3", null, t("wb.push")),
      h("p.muted.small", null, t(waiting.length ? "wb.pushHelp" : "wb.nothingWaitingHere")),
      waiting.length ? h("div.row", null, pushId, h("button#push-apply.btn", { type: "submit" }, t("wb.pushBtn"))) : null,
    ),
    h(
      "form.action",
      {
        onsubmit: (e) => {
          e.preventDefault();
          if (heldId.value) result(session.request({ type: "work.pull", work_id: heldId.value }), "wb.done").then(loadHeld);
        },
      },
      h("h3", null, t("wb.held")),
      h("p.muted.small", null, t("wb.heldHelp")),
      h("div.row", null, heldId, pullBtn),
      h("div.row", null, reassignTo, reassignNote, reassignBtn),
    ),
    out,
  );
  loadHeld();
  $("#actions").showModal();
  status.focus();
}

// -- big screen, clock, keys ----------------------------------------------------------------

function toggleBig() {
  const on = !document.body.classList.contains("big");
  document.body.classList.toggle("big", on);
  $("#big-btn").setAttribute("aria-pressed", String(on));
  drawCharts(); // the bar labels are fitted to the text size, which the big screen changes
  try {
    if (on && !document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
    if (!on && document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
  } catch {
    /* fullscreen is a bonus */
  }
}

function tick() {
  const now = session.now();
  setText($("#clock"), fmtClock(now));
  for (const row of state.rows.values()) {
    if (row.tr.hidden) continue;
    const since = Number(row.cells.since.dataset.since);
    setText(row.cells.since, since ? fmtElapsed(now - since) : "");
  }
  for (const tile of document.querySelectorAll(".queue-tile")) {
    const q = state.queues.get(tile.dataset.queue);
    if (q) paintOldest(tile, q);
  }
  for (const aid of [...state.composing.keys()]) paintComposing(aid);
  for (const row of state.waitRows.values()) paintAge(row);
  if (state.orderDirty) reorder(false);
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const tag = (e.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "textarea" || tag === "select") return;
  if ($("#actions").open || $("#help").open || $("#app").hidden) return;
  if (e.key === "/") {
    e.preventDefault();
    $("#f-text").focus();
  } else if (e.key.toLowerCase() === "b") {
    e.preventDefault();
    toggleBig();
  } else if (e.key === "?") {
    e.preventDefault();
    $("#help").showModal();
  }
}

// A hook for tests and load checks: feed messages as if from the server.
window.presenceWallboard = { onmessage: onMessage, state };

start();
