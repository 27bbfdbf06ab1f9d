"""Icons show on a machine with no emoji font (like this one: DejaVu, Liberation, Noto CJK).

Two checks on both pages, in both languages, with every channel, several
statuses and a dropped connection on screen:

* no character of the pages' own text draws as the missing-glyph box (the
  character is drawn on a canvas in the element's font and compared with a
  code point no font has); customer text (``dir`` set) is not ours to check;
* every icon is one of the pages' own drawings (``static/js/icons.js``,
  shown as a CSS mask from a ``data:`` URL, so nothing is fetched), and it
  draws something (its image has opaque pixels).
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.support import open_agent, open_wallboard, post_call, set_status, shot
from tests.harness import ServerProcess, post_work

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

# (element, character, code point) of every character that draws as a box
BOXES = """
() => {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 48;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const draw = (ch, font) => {
    g.clearRect(0, 0, 48, 48);
    g.font = font;
    g.fillText(ch, 4, 34);
    return g.getImageData(0, 0, 48, 48).data.join(",");
  };
  const missing = new Map();
  const out = [];
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest("[dir], script, style, [hidden], .sr-only, #signin")) continue;
    if (!el.getClientRects().length) continue;  // not drawn
    const cs = getComputedStyle(el);
    const font = `${cs.fontWeight} 24px ${cs.fontFamily}`;
    if (!missing.has(font)) missing.set(font, draw("\\u{10FFFD}", font));
    for (const ch of new Set(n.textContent)) {
      if (/[\\s\\w]/.test(ch)) continue;
      if (draw(ch, font) === missing.get(font)) {
        out.push([el.className || el.tagName, ch, ch.codePointAt(0).toString(16)]);
      }
    }
  }
  return out;
}
"""

# every icon spot holds one of the pages' own icons (icons.js), drawing something; [spot, problem]
ICONS = """
async (spots) => {
  const { ICONS } = await import("/static/js/icons.js");
  const draws = async (url) => {
    const img = new Image(48, 48);
    img.src = url;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = c.height = 48;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0, 48, 48);
    return g.getImageData(0, 0, 48, 48).data.some((v, i) => i % 4 === 3 && v > 0);
  };
  const out = [];
  let seen = 0;
  for (const spot of document.querySelectorAll(spots)) {
    if (!spot.getClientRects().length) continue;
    const el = spot.querySelector(".glyph");
    if (!el) { out.push([spot.className, "no icon", spot.textContent]); continue; }
    seen += 1;
    const name = el.dataset.icon;
    if (!(name in ICONS)) out.push([spot.className, "not one of the pages' icons", name]);
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) out.push([spot.className, "no room", name]);
    const mask = getComputedStyle(el).maskImage || getComputedStyle(el).webkitMaskImage;
    const url = mask.startsWith('url("') ? mask.slice(5, -2) : "";
    if (!url.startsWith("data:image/svg+xml,")) out.push([spot.className, "drawn from elsewhere", mask]);
    else if (!(await draws(url))) out.push([spot.className, "draws nothing", name]);
  }
  return { out, seen };
}
"""

AGENT_SPOTS = ".st-icon, .ch-icon, .ch-badge, .call-head h3, .offer-actions .btn"
WALL_SPOTS = ".st-icon, .chip, .conn-flag"


def check(page: Any, spots: str, least: int) -> None:
    assert page.evaluate(BOXES) == []
    icons = page.evaluate(ICONS, spots)
    assert icons["out"] == [], icons["out"]
    assert icons["seen"] >= least, icons


def test_icons_are_the_pages_own(context: Any, server: ServerProcess) -> None:
    wall = open_wallboard(context, server)
    hanako = open_agent(context, server, "hanako")
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    set_status(hanako, "Break", "Coffee")
    # a call in hand
    wid = post_call(server, "call-icons")
    page.locator(f'.offer[data-id="{wid}"] .btn.accept').click()
    page.locator(f'.work-row[data-id="{wid}"] .work-open').click()
    expect(page.locator("#call")).to_be_visible()
    hanako.close()  # within the grace period: the wallboard flags the lost connection
    row = wall.locator('#grid-body tr[data-id="hanako"]')
    expect(row.locator(".conn-flag")).to_be_visible(timeout=10_000)
    expect(wall.locator('#grid-body tr[data-id="alice"] .chip')).to_have_count(1)

    for lang in ("en", "ja"):
        for p in (page, wall):
            p.select_option("#lang", lang)
        title = "My status" if lang == "en" else "自分のステータス"
        expect(page.locator("#status-title")).to_have_text(title)
        # status pill, seven channels, the call's badges and title
        check(page, AGENT_SPOTS, 1 + 7 + 3)
        # alice, hanako, the summary's pills, alice's call chip, hanako's flag
        check(wall, WALL_SPOTS, 2 + 2 + 1 + 1)
    shot(page, "agent-icons")
    shot(wall, "wallboard-icons")
    for p in (page, wall):
        p.select_option("#lang", "en")


def test_offer_cards_use_the_pages_icons(context: Any, server: ServerProcess) -> None:
    page = open_agent(context, server, "alice")
    set_status(page, "Available")
    for ch in ("chat", "email", "sms"):
        post_work(server, channel=ch, subject=f"by {ch}")
    expect(page.locator(".offer")).to_have_count(3)
    check(page, AGENT_SPOTS, 1 + 7 + 3 + 3 * 2)
