"""Both pages sign in and stay connected through one shared module, session.js.

An init script records in each page every websocket it opens, with the script
that opened it, and every state its connection indicator passes through. The
agent panel and the wallboard must take the same path: the same opener, the
same subprotocol, the same states in the same order while the server is gone,
and the same way back to the sign-in card when the server refuses the token.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Servers
from tests.browser.support import open_agent, open_wallboard
from tests.harness import ServerProcess, token

# the `server` fixture is served from the test process (tests/browser/conftest.py)
pytestmark = pytest.mark.in_process

SHARED = "/static/js/session.js"

# Runs before the page's own scripts. The opener is the first page script on
# the constructor's stack; the indicator's states are the old value of every
# change of #conn's data-state (the page's current state is the last one);
# uncaught errors are kept too.
RECORDER = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const frame = (new Error().stack || "").split("\\n").find((l) => l.includes("/static/js/")) || "";
      const opener = (frame.match(/\\/static\\/js\\/[\\w.-]+\\.js/) || ["?"])[0];
      window.__sockets.push({ path: new URL(url).pathname, protocols: [].concat(protocols || []), opener });
    }
  };
  window.__states = [];
  window.__errors = [];
  window.addEventListener("error", (e) => window.__errors.push(String(e.message)));
  window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
  new MutationObserver((records) => {
    for (const r of records) if (r.target.id === "conn") window.__states.push(r.oldValue);
  }).observe(document, {
    subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ["data-state"],
  });
})();
"""

# Loaded, then the server killed and restarted on the same port: one retry
# or more, each a wait with its countdown and then a connection attempt.
RECONNECTED = re.compile(r"^closed connecting open( waiting connecting)+ open$")


def sockets(page: Any) -> list[dict[str, Any]]:
    return page.evaluate("window.__sockets")


def states(page: Any) -> str:
    return " ".join(page.evaluate("[...window.__states, document.querySelector('#conn').dataset.state]"))


def test_both_pages_connect_and_reconnect_through_the_shared_session(context: Any, servers: Servers) -> None:
    context.add_init_script(script=RECORDER)
    server = servers.start()
    pages = {"/ws/agent": open_agent(context, server), "/ws/supervisor": open_wallboard(context, server)}
    for path, page in pages.items():
        assert sockets(page) == [{"path": path, "protocols": ["presence.v1.json"], "opener": SHARED}]
        assert page.evaluate("location.hash") == "", "the token stays in the address bar"
        expect(page.locator("#conn .conn-text")).to_have_text("Connected")

    server.kill()
    for page in pages.values():
        countdown = re.compile(r"^Reconnecting in \d+ s…$")
        expect(page.locator("#conn .conn-text")).to_have_text(countdown, timeout=5000)
        expect(page.locator("#app")).to_have_class(re.compile(r"\bstale\b"))

    servers.start(port=server.port)
    for path, page in pages.items():
        expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=20_000)
        expect(page.locator("#conn .conn-text")).to_have_text("Connected")
        expect(page.locator("#app")).not_to_have_class(re.compile(r"\bstale\b"))
        seen = states(page)
        assert RECONNECTED.match(seen), f"{path}: {seen}"
        opened = sockets(page)
        # one socket per attempt, every one of them opened by the shared module
        assert len(opened) == seen.split().count("connecting"), (path, opened, seen)
        assert {(s["path"], s["opener"]) for s in opened} == {(path, SHARED)}, opened
        assert page.evaluate("window.__errors") == [], path


def test_both_pages_go_back_to_sign_in_when_the_server_refuses_the_token(
    context: Any, server: ServerProcess
) -> None:
    context.add_init_script(script=RECORDER)
    context.clock.install()
    expired = {
        "agent": token("agent", "alice", ttl=-60),
        "wallboard": token("supervisor", "sue", ttl=-60),
    }
    for name, tok in expired.items():
        page = context.new_page()
        page.goto(f"{server.http}/{name}#token={tok}")
        # the server closes with 4401: no retry, the token forgotten, the reason shown
        expect(page.locator("#conn")).to_have_attribute("data-state", "closed", timeout=10_000)
        expect(page.locator("#conn .conn-text")).to_have_text("Disconnected")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#signin-error")).to_have_text(
            "The token was refused (missing, wrong or expired). Sign in again."
        )
        expect(page.locator("#app")).to_be_hidden()
        expect(page.locator("#signout")).to_be_hidden()
        assert states(page) == "closed connecting closed", name
        assert page.evaluate("Object.keys(sessionStorage)") == [], name
        # a minute later (on the page's clock) it has still not tried again
        page.clock.run_for(60_000)
        assert [s["opener"] for s in sockets(page)] == [SHARED], name
        assert states(page) == "closed connecting closed", name
        page.close()


def test_both_pages_refuse_the_other_role_s_token_before_connecting(
    context: Any, server: ServerProcess
) -> None:
    context.add_init_script(script=RECORDER)
    wrong = {"agent": token("supervisor", "sue"), "wallboard": token("agent", "alice")}
    for name, tok in wrong.items():
        page = context.new_page()
        page.goto(f"{server.http}/{name}#token={tok}")
        expect(page.locator("#signin-error")).to_have_text("This token is not for this page.")
        expect(page.locator("#app")).to_be_hidden()
        expect(page.locator("#token-input")).to_be_focused()
        assert sockets(page) == [], name
        assert page.evaluate("Object.keys(sessionStorage)") == [], name
        page.close()


def test_both_pages_sign_out_and_back_in(context: Any, server: ServerProcess) -> None:
    context.add_init_script(script=RECORDER)
    pages = {
        "/ws/agent": (open_agent(context, server), token("agent", "alice")),
        "/ws/supervisor": (open_wallboard(context, server), token("supervisor", "sue")),
    }
    for path, (page, tok) in pages.items():
        page.click("#signout")
        expect(page.locator("#signin")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        expect(page.locator("#conn .conn-text")).to_have_text("Disconnected")
        expect(page.locator("#signin-error")).to_have_text("")
        assert page.evaluate("Object.keys(sessionStorage)") == [], path
        # a reload finds no token: the sign-in card, no socket
        page.reload()
        expect(page.locator("#signin")).to_be_visible()
        assert sockets(page) == [], path
        page.fill("#token-input", tok)
        page.click("#signin-form button[type=submit]")
        expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
        expect(page.locator("#signout")).to_be_visible()
        assert sockets(page) == [{"path": path, "protocols": ["presence.v1.json"], "opener": SHARED}]
    agent = pages["/ws/agent"][0]
    expect(agent.locator("#who")).to_be_visible()
    expect(agent.locator("#who-id")).to_have_text("alice")
