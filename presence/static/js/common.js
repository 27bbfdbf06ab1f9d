// common.js: small helpers both pages use: DOM building, toasts, the SVG
// icons (channels, statuses; drawn in icons.js), and the notification
// chime. No framework, no build step. Sign-in and the connection live in
// session.js.

import { ICONS } from "./icons.js";

// -- DOM helpers ----------------------------------------------------------------

/** h("div.card", {attrs}, ...children): small element builder; strings become text nodes. */
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split(".");
  const [tag, id] = head.split("#");
  const el = document.createElement(tag || "div");
  if (id) el.id = id;
  if (classes.length) el.className = classes.join(" ");
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "text") el.textContent = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  put(el, children);
  return el;
}

/** Replace an element's children; null, undefined and false are skipped, arrays flattened. */
export function put(el, ...children) {
  el.replaceChildren();
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export function setText(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}

// At most this many toasts at once: the oldest goes first. A toast is for
// news that belongs to no control on the page; an action's error is shown
// next to the action instead (agent.js), where it cannot cover anything.
const TOASTS_MAX = 3;

/**
 * A short message in the page's toast region (aria-live polite). The same
 * message again restarts the one already shown instead of piling up a copy.
 */
export function toast(message, kind = "info") {
  const region = $("#toasts");
  if (!region) return;
  const text = String(message);
  let el = [...region.children].find((c) => c.dataset.kind === kind && c.textContent === text);
  if (!el) {
    el = h("div.toast." + kind, { role: kind === "error" ? "alert" : "status", dataset: { kind } }, text);
    region.append(el);
    while (region.children.length > TOASTS_MAX) region.firstElementChild.remove();
  }
  clearTimeout(el._timer);
  el._timer = setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

// -- icons --------------------------------------------------------------------

// Icons are the pages' own SVG (icons.js), never a font: an emoji shows as
// an empty box where no emoji font is installed (many Linux desks and thin
// clients), and a status must never be a box. Each icon is a span masked by
// its drawing over the text's colour: no SVG nodes to build, so a thousand
// wallboard rows change their icons in one frame about as cheaply as their
// text (measured in Chromium: a <use> of a sprite cost several times more,
// a cloned <svg> about three times).
let iconSheet = null;

function iconStyles() {
  if (iconSheet) return;
  iconSheet = new CSSStyleSheet();
  const head =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#000" ' +
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">';
  for (const [name, body] of Object.entries(ICONS)) {
    const url = `data:image/svg+xml,${encodeURIComponent(head + body + "</svg>")}`;
    iconSheet.insertRule(`.glyph[data-icon="${name}"] { --icon: url("${url}"); }`);
  }
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, iconSheet];
}

/** An icon of icons.js (decorative: the text next to it says the same). */
export function icon(name) {
  iconStyles();
  const el = document.createElement("span");
  el.className = "glyph";
  el.dataset.icon = name in ICONS ? name : "st-other";
  el.setAttribute("aria-hidden", "true");
  return el;
}

const CHANNELS = new Set(["voice", "video", "chat", "sms", "social", "email", "web"]);

export function channelIcon(ch) {
  return icon(CHANNELS.has(ch) ? `ch-${ch}` : "ch-other");
}

/** What kind of status a name is, so custom statuses still get an icon and a colour. */
function statusKind(name, routable) {
  const n = (name || "").toLowerCase();
  if (n === "offline") return "offline";
  if (routable || n === "available") return "available";
  if (n.includes("break") || n.includes("lunch")) return "break";
  if (n.includes("away")) return "away";
  return "other";
}

// Status icons: the status is never told by colour alone. `working`: in a
// routable status and holding (or being offered) work: blue, a headset, as
// opposed to waiting for work: green, a tick; statusLabel() says it in words.
export function statusIcon(name, routable, working = false) {
  return icon(routable && working ? "st-working" : `st-${statusKind(name, routable)}`);
}

/** A CSS class for a status, so custom statuses still get a colour (one colour, one meaning). */
export function statusClass(name, routable, working = false) {
  if (routable && working) return "st-busy";
  const kind = statusKind(name, routable);
  return `st-${kind === "other" ? "away" : kind}`;
}

/**
 * A queue's CRM link (its `crm_url`, docs/ui.md) for one item, its
 * placeholders filled in and URL-encoded: {customer.id}, {customer.name},
 * {customer.phone}, {customer.email}, {case.id}, {work.id}, {queue},
 * {channel}. "" when there is no template, when a placeholder has no value
 * for this item (a half-filled link would open the wrong record), or when
 * the result is not an http(s) URL.
 */
export function crmLink(template, item) {
  if (!template || !item) return "";
  const c = (item.customer && typeof item.customer === "object" && item.customer) || {};
  const values = {
    "customer.id": c.id,
    "customer.name": c.name,
    "customer.phone": c.phone,
    "customer.email": c.email,
    "case.id": item.work_id,
    "work.id": item.work_id,
    queue: item.queue,
    channel: item.channel,
  };
  let missing = false;
  const url = template.replace(/\{([^{}]*)\}/g, (_, name) => {
    const v = values[name];
    if (v === undefined || v === null || v === "") {
      missing = true;
      return "";
    }
    return encodeURIComponent(String(v));
  });
  return !missing && /^https?:\/\//i.test(url) ? url : "";
}

/** The short form of a phone extension: the user part of a SIP URI ("sip:2003@pbx" -> "2003"). */
export function shortExt(ext) {
  const m = /^(?:sips?|tel):([^@;]+)/i.exec(ext || "");
  return m ? m[1] : ext || "";
}

// -- sound --------------------------------------------------------------------

let audio = null;

/** Create the AudioContext on a user gesture (browsers block it otherwise). */
export function unlockAudio() {
  if (audio) {
    if (audio.state === "suspended") audio.resume();
    return;
  }
  try {
    audio = new (window.AudioContext || window.webkitAudioContext)();
  } catch {
    audio = null;
  }
}

/** A two-note chime, synthesised: no sound file to ship. */
export function chime() {
  if (!audio) return;
  const start = audio.currentTime + 0.01;
  [
    [880, 0],
    [1318.5, 0.16],
  ].forEach(([freq, at]) => {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.type = "sine";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, start + at);
    gain.gain.exponentialRampToValueAtTime(0.25, start + at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + at + 0.45);
    osc.connect(gain).connect(audio.destination);
    osc.start(start + at);
    osc.stop(start + at + 0.5);
  });
}

// The center (workspace) a page serves, from its snapshot: shown beside the
// page's title, so a person signed in to several centers knows which this is.
export function showCenter(center) {
  const el = $("#center-name");
  if (!el || !center) return;
  setText(el, center.name || center.id);
  el.title = center.id;
  el.hidden = false;
  document.title = `${document.title.split(" — ")[0]} — ${center.name || center.id}`;
}
