"""Demo mode: a sample center that lives by itself.

When ``PRESENCE_DEMO=1`` (``presence serve --demo`` or ``presence demo``) the
app's lifespan starts :class:`Demo`. It seeds a dozen agents (some with
Japanese names) and four queues through the same store calls the admin API
uses, so they persist in Redis like any other, then runs, as asyncio tasks
of this process:

* simulated customers, posting items on every channel at a gentle random
  rate through the same intake path as ``POST /api/v1/work``, and hanging up
  now and then on an item that waited too long;
* a simulated phone system (`DemoPhone`): phone calls arrive and end through
  the CTI endpoints (``POST /api/v1/channels/voice/calls`` and ``.../hangup``)
  over HTTP, exactly as a real PBX posts them, so a demo call is a real call
  (a case with a call id) and takes call controls; it carries out the
  agents' hang-ups and transfers (``call.control`` events) by reporting the
  call's end, which moves the item to wrap-up;
* simulated agents: each holds a socket registration (renewing its lease
  like a real socket's process would), goes Available, accepts offers after
  a think time, wraps up and completes after a handle time, and takes breaks.

Everything goes through the store's scripts, so the router, the hub and the
wallboard see exactly what real traffic would produce. A couple of agents are
left free for a real person to sign in with; `presence serve --demo` prints
their links.

With several worker processes only one runs the simulation: it holds a lock
in Redis (`presence.store.lock`, renewed) and another process takes over if
the holder dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from redis.exceptions import RedisError

from presence.auth import mint
from presence.center import Agent, Queue
from presence.kpi.events import stream_fields
from presence.router.dispatcher import Dispatcher
from presence.schema.work import WorkInput
from presence.services.work import submit
from presence.store import ScriptError, Store
from presence.store.cases import get_customer, normalise_phone, put_customer
from presence.store.lock import Lock
from presence.store.templates import get as get_template
from presence.store.templates import put as put_template
from presence.tasks import stop_task

log = logging.getLogger("presence.demo")

QUEUES: Final = (
    Queue(
        "support", title="Support", push_timeout=20, service_level_seconds=20, priority=10, wrapup_seconds=60
    ),
    Queue(
        "billing",
        title="Billing",
        strategy="least_active",
        push_timeout=20,
        service_level_seconds=30,
        priority=5,
        wrapup_seconds=60,
    ),
    Queue(
        "sales",
        title="Sales",
        strategy="longest_idle",
        push_timeout=20,
        service_level_seconds=20,
        priority=5,
        wrapup_seconds=60,
    ),
    Queue(
        "social",
        title="Social & SMS",
        push_timeout=30,
        service_level_seconds=60,
        priority=0,
        wrapup_seconds=60,
    ),
)

# (id, name, queues, skills); the first two are left for a real person.
AGENTS: Final[tuple[tuple[str, str, tuple[str, ...], dict[str, int]], ...]] = (
    ("alice", "Alice Andersen", ("support", "billing"), {"english": 8, "billing": 5}),
    ("hanako", "山田 花子", ("support", "billing", "sales"), {"japanese": 9, "english": 5}),
    ("bob", "Bob Brown", ("support", "sales"), {"english": 6}),
    ("taro", "佐藤 太郎", ("support", "social"), {"japanese": 8}),
    ("yuki", "鈴木 由紀", ("billing", "social"), {"japanese": 7, "english": 4}),
    ("kenji", "高橋 健二", ("sales", "support"), {"japanese": 6, "english": 6}),
    ("mei", "田中 芽衣", ("social", "support"), {"japanese": 8}),
    ("carlos", "Carlos García", ("sales", "billing"), {"english": 7, "spanish": 9}),
    ("fatima", "Fatima Zahra", ("support", "social"), {"english": 7, "arabic": 9}),
    ("lukas", "Lukas Müller", ("billing", "support"), {"english": 7, "german": 9}),
    ("priya", "Priya Sharma", ("sales", "social", "support"), {"english": 9}),
    ("olivia", "Olivia Chen", ("support", "billing", "sales"), {"english": 8, "chinese": 8}),
)
FREE_AGENTS: Final = ("alice", "hanako")

CHANNELS: Final = {
    "support": ("voice", "chat", "email", "web"),
    "billing": ("email", "voice", "chat"),
    "sales": ("voice", "chat", "web"),
    "social": ("social", "sms", "chat"),
}

CUSTOMERS: Final = (
    {
        "id": "C-1001",
        "name": "Emma Wilson",
        "phone": "+44 20 7946 0958",
        "email": "emma@example.com",
        "tier": "gold",
    },
    {
        "id": "C-1002",
        "name": "伊藤 美咲",
        "phone": "+81 3-1234-5678",
        "email": "misaki@example.jp",
        "tier": "platinum",
    },
    {"id": "C-1003", "name": "José Álvarez", "phone": "+34 912 345 678", "email": "jose@example.es"},
    {
        "id": "C-1004",
        "name": "渡辺 翔",
        "phone": "+81 90-8765-4321",
        "email": "sho@example.jp",
        "tier": "silver",
    },
    {"id": "C-1005", "name": "Noah Schmidt", "phone": "+49 30 123456", "email": "noah@example.de"},
    {"id": "C-1006", "name": "Aarav Patel", "phone": "+91 22 5555 0101", "email": "aarav@example.in"},
    {"id": "C-1007", "name": "小林 さくら", "phone": "+81 6-6543-2100", "email": "sakura@example.jp"},
    {
        "id": "C-1008",
        "name": "Chloé Martin",
        "phone": "+33 1 23 45 67 89",
        "email": "chloe@example.fr",
        "tier": "gold",
    },
)

SUBJECTS: Final = {
    "support": (
        "My router keeps dropping the connection",
        "ログインできません",
        "App crashes on start",
        "パスワードを再設定したい",
        "Order arrived damaged",
    ),
    "billing": (
        "Charged twice this month",
        "請求書の再発行をお願いします",
        "Refund status?",
        "Change my payment card",
        "料金プランについて",
    ),
    "sales": (
        "Upgrade to the business plan",
        "見積もりをお願いします",
        "Volume discount for 50 seats",
        "デモを予約したい",
    ),
    "social": (
        "@brand your app is down again 😡",
        "DMで失礼します、配送状況を教えてください",
        "Love the new feature! One question…",
        "返品したいです 🙏",
    ),
}

DISPOSITIONS: Final = ("resolved", "follow-up", "escalated", "resolved", "information given")

# The keys a demo caller presses: the IVR map of the example center
# (presence/center.example.toml, the demo's center unless PRESENCE_CONFIG
# names another), which picks the queue; the number they dialled.
IVR_DIGITS: Final = {"support": "1", "billing": "2", "sales": "3"}
DIALLED: Final = "+1 800 555 0100"
# What the phone system does with an agent's call control: the caller is
# gone from the agent's line, so it reports the end of the call.
ENDS_CALL: Final = {"hangup": "agent hung up", "transfer": "transferred to {target}"}

# Seconds a simulated agent works on an item, by channel (min, max).
HANDLE: Final = {"voice": (25, 70), "video": (25, 70), "chat": (20, 60), "email": (12, 35)}
TICK: Final = 0.5
LOCK_TTL_MS: Final = 10_000


@dataclass
class SimAgent:
    """What a simulated agent intends to do next (its state lives in Redis)."""

    id: str
    conn_id: str
    offers_seen: dict[str, float] = field(default_factory=dict)  # work id -> accept at (monotonic)
    done_at: dict[str, float] = field(default_factory=dict)  # work id -> wrap up / complete at
    break_until: float = 0.0
    forced_since: float = 0.0


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _loopback(base_url: str) -> str:
    """The server's own address for its simulated phone system (a wildcard bind is reached on 127.0.0.1)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    # an address without a port (a proxy's URL) keeps the scheme's default
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{host}{port}"


# Reply and note templates the panel offers on demo items (issue 15): the
# placeholders are filled from the item in hand. Checked against the schema's
# placeholders by tests/integration/test_demo.py.
TEMPLATES: Final = (
    ("demo-greeting", {"name": "Greeting", "kind": "reply", "language": "en",
     "text": "Hello {customer.name},\n\nthank you for contacting us. I am looking into it.\n\n{agent.name}"}),
    ("demo-greeting-ja", {"name": "ご挨拶", "kind": "reply", "language": "ja",
     "text": "{customer.name} 様\n\nお問い合わせありがとうございます。担当の{agent.name}が確認いたします。"}),
    ("demo-call-note", {"name": "Call summary", "kind": "note", "language": "", "channels": ["voice"],
     "text": "Spoke with {customer.name} ({customer.phone}) about: {case.subject}"}),
)  # fmt: skip


class DemoPhone:
    """The demo's phone system: a CTI client of this server's HTTP API.

    It posts call arrivals and hang-ups like a real PBX, with a service token,
    so demo calls take the one path every call takes. A request that fails
    (the server not listening yet, a busy moment) is logged and skipped: the
    next caller tries again.
    """

    def __init__(self, base_url: str, secret: str) -> None:
        self.secret = secret
        self.http = httpx.AsyncClient(base_url=_loopback(base_url), timeout=5.0)
        self._token = ("", 0.0)

    def _auth(self) -> dict[str, str]:
        tok, until = self._token
        if time.monotonic() > until:
            tok = mint(self.secret, "demo-pbx", "service", 3600)
            self._token = (tok, time.monotonic() + 1800)
        return {"Authorization": f"Bearer {tok}"}

    async def _post(self, path: str, body: dict[str, Any], method: str = "POST") -> dict[str, Any] | None:
        try:
            r = await self.http.request(method, path, json=body, headers=self._auth())
        except httpx.HTTPError as exc:
            log.debug("demo phone: %s %s failed: %s", method, path, exc)
            return None
        if r.status_code >= 400:
            log.debug("demo phone: %s %s answered %s: %s", method, path, r.status_code, r.text)
            return None
        reply: dict[str, Any] = r.json()
        return reply

    async def call(self, queue: str, caller: dict[str, Any], subject: str) -> tuple[str, str] | None:
        """A call arrives; (work id, call id), or None when the server refused it."""
        call_id = f"call-{secrets.token_hex(4)}"
        body = {"call_id": call_id, "from": caller.get("phone", "+1 555 0100"), "to": DIALLED,
                "digits": IVR_DIGITS.get(queue, ""), "caller_name": caller.get("name", ""),
                "subject": subject}  # fmt: skip
        reply = await self._post("/api/v1/channels/voice/calls", body)
        return (str(reply["id"]), call_id) if reply else None

    async def hangup(self, call_id: str, reason: str) -> bool:
        path = f"/api/v1/channels/voice/calls/{call_id}/hangup"
        return await self._post(path, {"reason": reason}) is not None

    async def close(self) -> None:
        await self.http.aclose()


def enabled() -> bool:
    return os.environ.get("PRESENCE_DEMO", "") in ("1", "true", "yes")


class Demo:
    """Seeds the sample center and runs the simulation until stopped."""

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        secret: str,
        lease: float,
        grace: float,
        base_url: str,
        seed: int | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.lease = lease
        self.grace = grace
        self.rng = random.Random(seed)
        self.me = secrets.token_hex(6)
        self.lock = Lock(store, store.keys.demo_lock, LOCK_TTL_MS, holder=self.me)
        self.sims = [SimAgent(a[0], f"demo-{a[0]}-{self.me}") for a in AGENTS if a[0] not in FREE_AGENTS]
        # (work id, posted at, call id or "")
        self.posted: deque[tuple[str, float, str]] = deque(maxlen=500)
        self.phone = DemoPhone(base_url, secret)
        self._events = "0-0"  # the last routing event the phone system has seen
        self._task: asyncio.Task[None] | None = None
        self._opened = False

    # -- lifecycle -------------------------------------------------------------

    async def seed(self) -> None:
        """Create the demo queues and agents unless Redis already has them."""
        for q in QUEUES:
            await self.store.put_queue(q, create_only=True)
        for i, (aid, name, queues, skills) in enumerate(AGENTS):
            # each agent its own phone: the call.control webhook names it
            ext = f"sip:{2001 + i}@demo.pbx"
            outcome, _ = await self.store.put_agent(
                Agent(aid, name, 100, dict(skills), queues, ext), create_only=True
            )
            if outcome == "exists":
                await self._own_extension(aid, ext)
        await self._seed_directory()
        for tid, template in TEMPLATES:
            if await get_template(self.store, tid) is None:  # one changed since is theirs
                await put_template(self.store, tid, {"channels": [], "queues": [], **template})
        self.dispatcher.wake(q.name for q in QUEUES)

    async def _seed_directory(self) -> None:
        """The demo's customers in the directory, so that a demo call from one of
        them pops their profile and past cases (the voice intake looks the caller
        up by phone) rather than a "new contact". One already there is theirs."""
        for c in CUSTOMERS:
            if await get_customer(self.store, c["id"]) is not None:
                continue
            profile: dict[str, Any] = {k: c[k] for k in ("name", "tier") if k in c}
            # the language the panel picks reply templates by
            profile["language"] = "ja" if c["phone"].startswith("+81") else "en"
            profile |= {
                "phones": [normalise_phone(c["phone"])],
                "emails": [c["email"].lower()],
                "attributes": {},
            }
            await put_customer(self.store, c["id"], profile)

    async def _own_extension(self, aid: str, ext: str) -> None:
        """An agent an earlier demo seeded with an extension it shared gets its own."""
        p = await self.store.get_agent(aid)
        if p is None or p["extension"] != f"sip:{2000 + len(aid)}@demo.pbx":
            return  # set by the center file or the API: theirs to keep
        agent = Agent(aid, p["name"], p["capacity"], p["skills"], tuple(p["queues"]), ext)
        with contextlib.suppress(ScriptError):
            self.dispatcher.wake((await self.store.put_agent(agent))[1])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="demo")

    async def stop(self) -> None:
        await stop_task(self._task)
        await self.phone.close()
        # hand over at once rather than after the lock's TTL (bounded: a
        # shutdown must not hang on a Redis that went away)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.lock.release(), 1.0)

    async def _run(self) -> None:
        """Hold the lock, then simulate; on losing Redis, retry later."""
        while True:
            try:
                if await self.lock.acquire():
                    await self.seed()
                    log.info(
                        "demo running: %d simulated agents; free for you: %s",
                        len(self.sims),
                        ", ".join(FREE_AGENTS),
                    )
                    await self._simulate()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("demo paused, Redis unavailable: %s", exc)
            except Exception:
                log.exception("demo simulation failed; restarting it")
            await asyncio.sleep(2.0)

    async def _simulate(self) -> None:
        try:
            await self._open_all()
            await self._start_phone()
            last_renew = 0.0
            next_customer = 0.0
            while True:
                now = time.monotonic()
                if now - last_renew > self.lease / 3:
                    if not await self.lock.renew():
                        log.info("another process runs the demo now")
                        return
                    members = [f"{s.id}|{s.conn_id}" for s in self.sims]
                    for gone in await self.store.renew_leases(members, self.lease):
                        # simulated agents never close: a lost lease is re-registered
                        aid, _, conn = gone.rpartition("|")
                        self.dispatcher.wake(await self.store.conn_open(aid, conn, self.lease))
                    last_renew = now
                if now >= next_customer:
                    await self._customer()
                    await self._abandon_old()
                    next_customer = now + self.rng.uniform(1.5, 4.0)
                await self._carry_out_call_controls()
                for sim in self.sims:
                    await self._step(sim, now)
                await asyncio.sleep(TICK)
        finally:
            await asyncio.shield(self._close_all())

    async def _open_all(self) -> None:
        for sim in self.sims:
            woke = await self.store.conn_open(sim.id, sim.conn_id, self.lease)
            self.dispatcher.wake(woke)
            # stagger: the wallboard shows agents arriving, not a block flip
            sim.break_until = time.monotonic() + self.rng.uniform(0.5, 4.0)
        self._opened = True

    async def _close_all(self) -> None:
        if not self._opened:
            return
        self._opened = False
        for sim in self.sims:
            with contextlib.suppress(Exception):
                await self.store.conn_close(sim.id, sim.conn_id, self.grace)

    # -- customers -------------------------------------------------------------

    async def _customer(self) -> None:
        waiting = sum(q.get("waiting", 0) for q in await self.store.queue_stats())
        if waiting > 12:
            return  # keep it gentle: a queue that only grows is not a good demo
        queue = self.rng.choice(list(CHANNELS))
        channel = self.rng.choice(CHANNELS[queue])
        customer = dict(self.rng.choice(CUSTOMERS))
        subject = self.rng.choice(SUBJECTS[queue])
        if channel == "voice":
            placed = await self.phone.call(queue, customer, subject)
            if placed is not None:
                self.posted.append((placed[0], time.monotonic(), placed[1]))
            return
        # no "source": a plain item's source is its channel, which the wallboard's
        # "cases by source" chart then names in the page's words
        payload: dict[str, Any] = {}
        if channel == "email":
            payload |= {"from": customer.get("email", ""), "to": f"{queue}@example.com"}
        else:
            payload |= {"message": subject}
        req = WorkInput(
            channel=channel,
            queue=queue,
            priority=self.rng.choice((0, 0, 0, 1, 5)),
            subject=subject,
            customer=customer,
            payload=payload,
        )
        wid, _ = await submit(self.store, self.dispatcher, req)
        self.posted.append((wid, time.monotonic(), ""))

    async def _abandon_old(self) -> None:
        """Now and then a customer who waited long hangs up."""
        now = time.monotonic()
        for wid, at, call_id in list(self.posted)[:20]:
            if now - at < 45 or self.rng.random() > 0.3:
                continue
            item = await self.store.get_work(wid, history=False)
            if item is not None and item["state"] == "queued":
                if call_id:
                    await self.phone.hangup(call_id, "caller hung up")
                    return
                with contextlib.suppress(ScriptError):
                    self.dispatcher.wake(await self.store.cancel(wid, "abandoned"))
                return
        while self.posted and now - self.posted[0][1] > 600:
            self.posted.popleft()

    # -- the phone system --------------------------------------------------------

    async def _start_phone(self) -> None:
        last: list[Any] = await self.store.redis.xrevrange(self.store.keys.event_stream, count=1) or []
        self._events = _text(last[0][0]) if last else "0-0"

    async def _carry_out_call_controls(self) -> None:
        """Do what a PBX does with the agents' hang-ups and transfers: end the call."""
        key = self.store.keys.event_stream
        entries: list[Any] = await self.store.redis.xrange(key, min=f"({self._events}", count=500) or []
        for entry_id, fields in entries:
            self._events = _text(entry_id)
            ev = stream_fields(fields or {})
            why = ENDS_CALL.get(ev.get("action", "")) if ev.get("ev") == "call.control" else None
            if why is None:
                continue
            item = await self.store.get_work(ev.get("work", ""), history=False)
            call_id = ((item or {}).get("payload") or {}).get("call_id")
            if call_id:
                await self.phone.hangup(str(call_id), why.format(target=ev.get("target", "")))

    # -- agents ----------------------------------------------------------------

    async def _step(self, sim: SimAgent, now: float) -> None:
        try:
            await self._act(sim, now)
        except ScriptError as exc:
            # a race with the sweeper (offer timed out, wrap-up ran out): harmless
            log.debug("demo agent %s: %s", sim.id, exc.message)

    async def _act(self, sim: SimAgent, now: float) -> None:
        views = await self.store.views([sim.id])
        if not views:
            return
        view = views[0]
        offers, work = await self.store.agent_items(sim.id)
        status = view.get("status")
        if status != "Available":
            if sim.break_until and now >= sim.break_until and not work:
                sim.break_until = 0.0
                sim.forced_since = 0.0
                self.dispatcher.wake(await self.store.set_status(sim.id, "Available", "", "demo"))
            elif not sim.break_until:
                # moved by a supervisor (or missed offers): comply for a while
                sim.forced_since = sim.forced_since or now
                if now - sim.forced_since > 60:
                    sim.break_until = now
        for o in offers:
            wid = o["work_id"]
            at = sim.offers_seen.setdefault(wid, now + self.rng.uniform(1.0, 4.0))
            if now >= at:
                sim.offers_seen.pop(wid, None)
                if self.rng.random() < 0.05:
                    self.dispatcher.wake(await self.store.decline(sim.id, wid, "busy"))
                else:
                    await self.store.accept(sim.id, wid)
        for w in work:
            wid = w["work_id"]
            if wid not in sim.done_at:
                lo, hi = HANDLE.get(w["channel"], (15, 45))
                sim.done_at[wid] = now + self.rng.uniform(lo, hi)
            elif now >= sim.done_at[wid]:
                if w["state"] == "assigned":
                    # a call ends when the customer hangs up: the phone system reports it
                    call_id = (w.get("payload") or {}).get("call_id")
                    if not call_id or not await self.phone.hangup(str(call_id), "customer hung up"):
                        await self.store.wrapup(sim.id, wid)
                    sim.done_at[wid] = now + self.rng.uniform(3, 10)
                else:
                    sim.done_at.pop(wid, None)
                    woke = await self.store.complete(sim.id, wid, self.rng.choice(DISPOSITIONS))
                    self.dispatcher.wake(woke)
        held = {w["work_id"] for w in work}
        for wid in [k for k in sim.done_at if k not in held]:
            del sim.done_at[wid]
        if status == "Available" and not work and not offers and self.rng.random() < 0.03:
            status_name, reason = self.rng.choice((("Break", "Coffee"), ("Break", "Meeting"), ("Lunch", "")))
            sim.break_until = now + self.rng.uniform(20, 50)
            self.dispatcher.wake(await self.store.set_status(sim.id, status_name, reason, "demo"))
