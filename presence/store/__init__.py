"""The thin Python side of the Redis state: typed calls and reads.

Redis is the single source of truth. Every change that must be atomic is one
Lua script (``store/lua``); this module only builds arguments, runs scripts
and decodes what it reads back. Nothing here keeps state between calls, so a
process can die at any line and another carries on from Redis.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import msgpack
import msgspec

from presence import hours
from presence.center import Agent, Center, Queue, queue_of
from presence.schema.admin import QueueSettings
from presence.store.client import Client, execute, shard_of
from presence.store.events import Feed
from presence.store.keys import SHORT_FIELDS, Keys
from presence.store.replication import Replication
from presence.store.scripts import BATCHED, Batcher, ScriptError, Scripts, ref_key, retry_key

__all__ = [
    "AgentSnapshot",
    "Keys",
    "NewItem",
    "ScriptError",
    "Store",
    "history_entry",
    "item_history",
    "new_work_id",
    "ref_key",
    "retry_key",
]

Clock = Callable[[], float]
# An agent's snapshot as read from Redis: its view, open offers, work in hand.
AgentSnapshot = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]
log = logging.getLogger("presence.store")

# Items stored per script call by `create_work_many`: large enough to share
# the call's set-up, small enough that Redis is never busy for long.
CREATE_CHUNK = 128


@dataclass(frozen=True, slots=True)
class NewItem:
    """One item for `Store.create_work_many` (the arguments of `intake_work`)."""

    work_id: str
    queue: str
    channel: str
    priority: int
    data: dict[str, Any]
    skills: dict[str, int] = field(default_factory=dict)
    idempotency_key: str = ""
    digest: str = ""


# Fields of a work item hash that are shown as they are (ms timestamps etc.).
_WORK_TIMES = ("created", "offered_at", "accepted_at", "wrapup_at", "ended_at", "expires")


class Created(NamedTuple):
    """What `Store.intake_work` made of a new item."""

    work_id: str
    created: bool  # False: an idempotent retry answered with its first item
    queue: str  # the queue it waits in ("" for a retry)


def _created(reply: list[Any]) -> Created:
    return Created(str(reply[0]), reply[1] == "created", _s(reply[2]) if len(reply) > 2 else "")


def new_work_id(now: float | None = None) -> str:
    """Time-ordered, unguessable item id: 12 hex digits of ms, 10 random."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{secrets.token_hex(5)}"


def _s(v: Any) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def _unpack(raw: Any) -> Any:
    return msgpack.unpackb(raw, raw=False) if raw else None


def history_entry(entry: Any, work_id: str) -> Any:
    """A decoded entry of item `work_id`'s history list, naming its item. The
    scripts leave the item's id (`work`) out of the entries of its own list
    (`record` in store/lua/_lib_core.lua), since the list's key names it: it
    is put back here, and an entry that names it is taken as it is."""
    if isinstance(entry, dict):
        entry.setdefault("work", work_id)
    return entry


def item_history(h: dict[Any, Any], old: list[Any], work_id: str) -> list[Any]:
    """Item `work_id`'s history, oldest first, from its record `h` (HGETALL)
    and its history list `old` (LRANGE). The scripts keep the history in
    the record, one field ``h:<event-stream entry id>`` per stream entry
    (its entries, msgpack, concatenated: `record` in store/lua/_lib_core.lua);
    an item written before that has its older entries in the list. An item
    with both (a rolling upgrade: an older server may still append to the
    list of an item a newer one wrote) has them merged by `ts`, the list's
    first on a tie; otherwise each keeps the order it was written in."""
    listed = [history_entry(_unpack(x), work_id) for x in old]
    out: list[Any] = []
    ids: list[tuple[int, int, Any]] = []
    for k, v in h.items():
        name = _s(k)
        if name.startswith("h:"):
            ms, _, seq = name[2:].partition("-")
            ids.append((int(ms), int(seq or 0), v))
    ids.sort(key=lambda t: (t[0], t[1]))
    for at, _seq, v in ids:
        entries = msgpack.Unpacker(raw=False)
        entries.feed(v)
        first: Any = None
        for e in entries:
            full = _long_entry(e, at, first)
            first = full if first is None else first
            out.append(history_entry(full, work_id))
    if listed and out:
        # (sorted() is stable: the list's entries first, each part in order)
        return sorted(listed + out, key=_entry_ts)
    return listed or out


# The short names of an entry written into an item's record (`history_entry`
# in store/lua/_lib_core.lua, which says what it leaves out), and the names
# the entry is read with (those of the event stream).
_HISTORY_LONG = {"e": "ev", **SHORT_FIELDS}


def _long_entry(entry: Any, ms: int, first: Any) -> Any:
    """An entry of a ``h:<ms>-<seq>`` field as the stream entry names it:
    one written short (`e`, not `ev`) gets its names back, its `ts` (the
    field's millisecond plus its `t`, or the field's first entry's) and, after the
    field's first entry, that entry's `queue` and `channel`; one written
    before (with `ev`) is taken as it is."""
    if not isinstance(entry, dict) or "ev" in entry or "e" not in entry:
        return entry
    full = {_HISTORY_LONG.get(k, k): v for k, v in entry.items()}
    since = full.pop("t", 0)
    if isinstance(first, dict):
        for f in ("ts", "queue", "channel"):
            if f not in full and f in first:
                full[f] = first[f]
    full.setdefault("ts", ms + since)
    return full


def _entry_ts(entry: Any) -> float:
    return _num(entry.get("ts")) if isinstance(entry, dict) else 0.0


def _num(v: Any) -> float:
    try:
        x = float(_s(v))
    except (TypeError, ValueError):
        return 0.0
    return int(x) if x.is_integer() else x


@dataclass(frozen=True, slots=True)
class Memory:
    """Redis's memory: bytes used, its `maxmemory` (0: no limit) and policy."""

    used: int
    limit: int
    policy: str

    # from this share of maxmemory /metrics warns and /readyz names the figure
    WARN: ClassVar[float] = 0.8

    @property
    def ratio(self) -> float:
        return self.used / self.limit if self.limit else 0.0

    @property
    def full(self) -> bool:
        """Writes are refused: at the limit with a policy that evicts nothing."""
        return self.limit > 0 and self.used >= self.limit and self.policy == "noeviction"

    def sentence(self) -> str:
        return (
            f"Redis is full: used_memory {self.used} bytes of maxmemory {self.limit} "
            f"({self.ratio:.0%}, maxmemory-policy {self.policy}); writes are refused"
        )


class Store:
    """One center's state in Redis."""

    def __init__(
        self,
        redis: Client,
        center: str,
        clock: Clock = time.time,
        replication: Replication | None = None,
        timezone: str = "UTC",
        events: Client | None = None,
    ) -> None:
        self.redis = redis
        # the client of the center's event feed (`events`): `redis` unless
        # given one of its own (``client.open_events``)
        self.events_redis = redis if events is None else events
        # the center's time zone (PRESENCE_TIMEZONE): a queue's hours without
        # a time zone of their own are on its clock
        self.timezone = timezone
        self.keys = Keys(center)
        self.clock = clock
        self.scripts = Scripts(redis, replication)
        self.batched = {name: Batcher(self.scripts, name, self.keys.prefix, self.now_ms) for name in BATCHED}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _call(self, name: str, *args: Any) -> list[Any]:
        return await self.scripts.call(name, self.keys.prefix, self.now_ms(), *args)

    # -- configuration -------------------------------------------------------

    async def sync_center(
        self, center: Center, *, update: bool = False, retention_days: float = 90.0
    ) -> list[str]:
        """Write statuses, channels and rules; seed queues and agents once
        (`update`: write them over what is there, as a re-applied center
        document does; their live state and everything else stay). Returns
        the queues to wake. `retention_days`: how long a finished item is
        kept (0: forever), read by the script that finishes it (``retain``
        in _lib_work.lua)."""
        await self.scripts.load()
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(k.anchor, "1")
        # the scripts' kept copy of the channels and rules is stale now (_lib_config.lua)
        pipe.delete(k.statuses, k.channels, k.settings_version)
        pipe.hset(
            k.statuses,
            mapping={
                s.name: msgpack.packb({"routable": s.routable, "reasons": list(s.reasons)})
                for s in center.statuses.values()
            },
        )
        pipe.hset(
            k.channels,
            mapping={
                c.name: msgpack.packb({"weight": c.weight, "cap": c.cap}) for c in center.channels.values()
            },
        )
        r = center.rules
        pipe.hset(
            k.rules,
            mapping={
                "login_status": r.login_status,
                "offline_status": r.offline_status,
                "missed_offers_limit": r.missed_offers_limit,
                "missed_offers_status": r.missed_offers_status,
                "missed_offers_reason": r.missed_offers_reason,
                "name": center.name,
                "retention_ms": int(retention_days * 86_400_000),
            },
        )
        await pipe.execute()
        woke: set[str] = set()
        for q in center.queues.values():
            await self.put_queue(q, create_only=not update)
            woke.add(q.name)
        for a in center.agents.values():
            try:
                woke.update((await self.put_agent(a, create_only=not update))[1])
            except ScriptError as exc:
                # e.g. the file names a queue the admin API has since deleted:
                # the API's change wins, and the server still starts
                log.warning("agent %s from the center file not seeded: %s", a.id, exc.message)
        await self.repair_hands()
        return sorted(woke)

    async def repair_hands(self, page: int = 500) -> int:
        """Every agent's work in hand as its field `w` alone (``agent_hand.lua``:
        an older version's set moved in, ids an older server's end of an item
        left there taken out); returns how many agents changed. Each start
        runs it, a page of agents per call."""
        ids = sorted(_s(a) for a in await self.redis.smembers(self.keys.agents))
        n = 0
        for i in range(0, len(ids), page):
            reply = await self._call("agent_hand", *ids[i : i + page])
            n += int(reply[0])
        return n

    async def put_agent(self, agent: Agent, *, create_only: bool = False) -> tuple[str, list[str]]:
        reply = await self._call(
            "agent_put",
            agent.id,
            agent.name or agent.id,
            agent.capacity,
            agent.extension,
            msgpack.packb(list(agent.queues)),
            msgpack.packb(dict(agent.skills)),
            "1" if create_only else "0",
        )
        return reply[0], reply[1:]

    async def delete_agent(self, agent_id: str) -> None:
        await self._call("agent_delete", agent_id)

    async def put_queue(self, queue: Queue, *, create_only: bool = False) -> str:
        settings = queue.to_json()
        settings.pop("name")
        settings.pop("priority")
        # a list cannot be a hash field: relaxation steps and hours travel packed
        for f in ("relax", "hours", "holidays"):
            settings[f] = msgpack.packb(settings.get(f) or [])
        settings["escalate_at"] = queue.escalate_at()
        # when the queue opens and closes (presence/hours.py), for the scripts
        settings["plan"] = msgpack.packb(hours.plan(queue.schedule(self.timezone), self.now_ms()))
        reply = await self._call(
            "queue_put",
            queue.name,
            queue.priority,
            # no bin type: Redis 7's cmsgpack cannot read it (the packed relax steps are bytes)
            msgpack.packb(settings, use_bin_type=False),
            "1" if create_only else "0",
        )
        return str(reply[0])

    async def delete_queue(self, name: str) -> None:
        await self._call("queue_delete", name)

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        h = await self.redis.hgetall(self.keys.agent(agent_id))
        if not h or not await self.redis.sismember(self.keys.agents, agent_id):
            return None
        return self._profile(agent_id, h)

    @staticmethod
    def _profile(agent_id: str, h: dict[Any, Any]) -> dict[str, Any]:
        return {
            "id": agent_id,
            "name": _s(h.get(b"name", agent_id.encode())),
            "capacity": int(_num(h.get(b"cap", b"0"))),
            "skills": _unpack(h.get(b"skills")) or {},
            "queues": _unpack(h.get(b"queues")) or [],
            "extension": _s(h.get(b"ext", b"")),
        }

    async def list_agents(self) -> list[dict[str, Any]]:
        ids = sorted(_s(x) for x in await self.redis.smembers(self.keys.agents))
        out: list[dict[str, Any]] = []
        # In pipelines of a few hundred: packing and parsing 10,000 replies at
        # once held the event loop (every socket of the process) for ~0.5 s.
        for i in range(0, len(ids), 250):
            chunk = ids[i : i + 250]
            pipe = self.redis.pipeline(transaction=False)
            for aid in chunk:
                pipe.hgetall(self.keys.agent(aid))
            out += [self._profile(aid, h) for aid, h in zip(chunk, await pipe.execute(), strict=True) if h]
        return out

    async def agent_roster(self, chunk: int = 100) -> list[tuple[str, int, list[str]]]:
        """Every agent's (id, capacity, queues), by id: what the KPI engine
        counts by. Read `chunk` agents per script call (`agent_roster.lua`),
        so the loop runs between; one reply per chunk decodes in a fraction
        of what `list_agents`' one HGETALL per agent costs (with 500 agents,
        ~8 ms of the loop held in two steps)."""
        ids = sorted(_s(x) for x in await self.redis.smembers(self.keys.agents))
        out: list[tuple[str, int, list[str]]] = []
        for i in range(0, len(ids), chunk):
            raw = await self.scripts.raw("agent_roster", self.keys.prefix, self.now_ms(), *ids[i : i + chunk])
            for aid, cap, queues in msgpack.unpackb(raw, raw=False) if raw else ():
                out.append((aid, int(cap), list(queues)))
        return out

    async def get_queue(self, name: str) -> dict[str, Any] | None:
        h = await self.redis.hgetall(self.keys.queue(name))
        if not h or await self.redis.zscore(self.keys.queues, name) is None:
            return None
        return self._queue(name, h)

    @staticmethod
    def _queue(name: str, h: dict[Any, Any]) -> dict[str, Any]:
        d = {_s(k): _s(v) for k, v in h.items()}
        return {
            "name": name,
            "title": d.get("title") or name,
            "strategy": d.get("strategy", "most_available"),
            "push_timeout": _num(d.get("push_timeout", 30)),
            "auto_accept": d.get("auto_accept") == "1",
            "service_level_seconds": _num(d.get("service_level_seconds", 20)),
            "service_level_target": _num(d.get("service_level_target", 0.8)),
            "priority": int(_num(d.get("priority", 0))),
            "wrapup_seconds": _num(d.get("wrapup_seconds", 120)),
            "overflow_to": d.get("overflow_to", ""),
            "overflow_after": _num(d.get("overflow_after", 0)),
            "overflow_when_unstaffed": d.get("overflow_when_unstaffed") == "1",
            "relax": _unpack(h.get(b"relax")) or [],
            "time_zone": d.get("time_zone", ""),
            "hours": _unpack(h.get(b"hours")) or [],
            "holidays": _unpack(h.get(b"holidays")) or [],
            "after_hours": d.get("after_hours", "queue"),
            "after_hours_queue": d.get("after_hours_queue", ""),
            "closed_message": d.get("closed_message", ""),
            "crm_url": d.get("crm_url", ""),
        }

    async def plan_hours(self) -> int:
        """Renew every queue's plan of hours (the window moves on with the
        clock; `presence.services.hours` calls it every hour); how many
        queues have hours."""
        n = 0
        now = self.now_ms()
        args: list[Any] = []
        for q in await self.list_queues():
            if not q["hours"] and not q["holidays"]:
                continue
            n += 1
            queue = queue_of(
                q["name"], msgspec.convert({k: v for k, v in q.items() if k != "name"}, QueueSettings)
            )
            args += [q["name"], msgpack.packb(hours.plan(queue.schedule(self.timezone), now))]
        if args:
            await self._call("queue_plan", *args)
        return n

    async def list_queues(self) -> list[dict[str, Any]]:
        names = [_s(x) for x in await self.redis.zrange(self.keys.queues, 0, -1, desc=True)]
        pipe = self.redis.pipeline(transaction=False)
        for n in names:
            pipe.hgetall(self.keys.queue(n))
        return [self._queue(n, h) for n, h in zip(names, await pipe.execute(), strict=True) if h]

    async def queue_names(self) -> list[str]:
        return [_s(x) for x in await self.redis.zrange(self.keys.queues, 0, -1, desc=True)]

    async def statuses(self) -> list[dict[str, Any]]:
        h = await self.redis.hgetall(self.keys.statuses)
        return [{"name": _s(k), **_unpack(v)} for k, v in h.items()]

    async def channels(self) -> list[dict[str, Any]]:
        h = await self.redis.hgetall(self.keys.channels)
        return [{"name": _s(k), **_unpack(v)} for k, v in sorted(h.items())]

    # -- presence ------------------------------------------------------------

    async def conn_open(self, agent_id: str, conn_id: str, lease: float) -> list[str]:
        return await self._call("conn_open", agent_id, conn_id, int(lease * 1000))

    async def conn_open_snapshot(
        self, agent_id: str, conn_id: str, lease: float
    ) -> tuple[list[str], AgentSnapshot]:
        """`conn_open` and the agent's snapshot read in the same script call:
        a connect is one round trip. Returns (woken queues, snapshot)."""
        raw = await self.scripts.raw(
            "conn_open", self.keys.prefix, self.now_ms(), agent_id, conn_id, int(lease * 1000), "1"
        )
        if not raw or raw[0] != b"ok":
            refused = self.scripts.outcome("conn_open", raw)
            assert isinstance(refused, ScriptError)
            raise refused
        return [_s(q) for q in raw[1]], self._snapshot(agent_id, raw[2], raw[3])

    async def conn_close(self, agent_id: str, conn_id: str, grace: float) -> None:
        await self._call("conn_close", agent_id, conn_id, int(grace * 1000))

    async def renew_leases(self, members: Iterable[str], lease: float) -> list[str]:
        """Push back the leases of these live sockets of this process, 500
        per script call; returns the members whose lease was gone (see
        conn_renew.lua)."""
        ms, gone = list(members), []
        for i in range(0, len(ms), 500):
            reply = await self.scripts.raw(
                "conn_renew", self.keys.prefix, self.now_ms(), int(lease * 1000), *ms[i : i + 500]
            )
            gone += [_s(x) for x in reply]
        return gone

    async def set_status(self, agent_id: str, status: str, reason: str, by: str) -> list[str]:
        """The queues to wake (none when the server routes inline: the call
        routed them itself). Concurrent changes (a burst of sign-ins, many
        wallboards' agents at once) share one script call: one round trip
        and one pub/sub message for all of them, and a burst of hundreds
        takes one Redis connection, not one each."""
        return await self.batched["agent_status"](agent_id, status, reason, by)

    async def sweep(self, grace: float, limit: int = 500) -> list[str]:
        reply = await self.scripts.raw("sweep", self.keys.prefix, self.now_ms(), int(grace * 1000), limit)
        return [_s(q) for q in reply]

    async def escalate(self, limit: int = 500) -> list[str]:
        """Overflow and relax the items whose next check is due; the queues to wake."""
        reply = await self.scripts.raw("queue_escalate", self.keys.prefix, self.now_ms(), limit)
        return [_s(q) for q in reply]

    # -- work ----------------------------------------------------------------

    async def intake_work(
        self,
        work_id: str,
        queue: str,
        channel: str,
        priority: int,
        data: dict[str, Any],
        skills: dict[str, int],
        idempotency_key: str = "",
        idempotency_ttl: int = 86400,
        digest: str = "",
    ) -> Created:
        """Store a new item; returns its id, whether it is new (False: an
        idempotent retry) and the queue it waits in (outside its queue's
        hours, maybe another: `intake_queue` in _lib_queue.lua).

        With an idempotency key, `digest` says what the body was: a reuse of
        the key with a different digest is refused (ScriptError on field
        ``Idempotency-Key``). Concurrent calls (many single POSTs at once)
        share one script call."""
        reply = await self.batched["work_create"](
            work_id,
            queue,
            channel,
            priority,
            msgpack.packb(data, use_bin_type=True),
            msgpack.packb(skills),
            idempotency_key,
            idempotency_ttl,
            digest,
        )
        return _created(reply)

    async def create_work_many(
        self,
        items: list[NewItem],
        idempotency_ttl: int = 86400,
    ) -> list[Created | ScriptError]:
        """`intake_work` for many items in one script call per `CREATE_CHUNK`.

        Each item is still its own atomic change: one refusal (an unknown
        queue) never affects another. Results are in order.
        """
        calls = [
            (
                it.work_id,
                it.queue,
                it.channel,
                it.priority,
                msgpack.packb(it.data, use_bin_type=True),
                msgpack.packb(it.skills),
                it.idempotency_key,
                idempotency_ttl,
                it.digest,
            )
            for it in items
        ]
        out: list[Created | ScriptError] = []
        for start in range(0, len(calls), CREATE_CHUNK):
            chunk = calls[start : start + CREATE_CHUNK]
            for raw in await self.scripts.many("work_create", self.keys.prefix, self.now_ms(), chunk):
                r = self.scripts.outcome("work_create", raw)
                out.append(r if isinstance(r, ScriptError) else _created(r))
        return out

    async def route(self, queues: Iterable[str], budget: int = 256, scan: int = 512) -> tuple[int, list[str]]:
        reply = await self.scripts.raw("route", self.keys.prefix, self.now_ms(), budget, scan, *queues)
        return int(reply[0]), [_s(q) for q in reply[1:]]

    async def accept(self, agent_id: str, work_id: str) -> None:
        await self.batched["offer_accept"](agent_id, work_id)

    async def decline(self, agent_id: str, work_id: str, reason: str) -> list[str]:
        return await self.batched["offer_decline"](agent_id, work_id, reason)

    async def wrapup(self, agent_id: str, work_id: str) -> int:
        return int((await self.batched["work_wrapup"](agent_id, work_id))[0])

    async def complete(self, agent_id: str, work_id: str, disposition: str) -> list[str]:
        return await self.batched["work_complete"](agent_id, work_id, disposition)

    async def cancel(self, work_id: str, reason: str) -> list[str]:
        return await self._call("work_cancel", work_id, reason)

    async def count_dropped(self, role: str, reason: str) -> None:
        """Count a socket the server dropped (``presence_websocket_dropped_total``):
        one atomic increment of the Prometheus counters' hash."""
        await self.redis.hincrby(self.keys.metrics, f"ws_dropped|{role}|{reason}", 1)

    async def exists(self) -> bool:
        """Whether a server has run this center on this Redis (sync_center
        writes its statuses at every start), so that a check of a center that
        is not there is not mistaken for a healthy one."""
        return bool(await self.redis.exists(self.keys.statuses))

    async def check(self) -> list[str]:
        reply = await self.scripts.raw("check", self.keys.prefix, self.now_ms())
        return [_s(x) for x in reply]

    # -- reads ---------------------------------------------------------------

    async def views(self, agent_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Agents' public views, built by the same Lua code as the events."""
        raw = await self.scripts.raw("views", self.keys.prefix, self.now_ms(), *(agent_ids or ()))
        out: list[dict[str, Any]] = msgpack.unpackb(raw, raw=False) if raw else []
        for v in out:
            if v.get("by_channel") == []:
                v["by_channel"] = {}
        return out

    def work_view(self, h: dict[Any, Any], work_id: str = "") -> dict[str, Any]:
        """An item's public fields from its stored hash (`work_id`: the item's
        id, which its key names; a record written before the scripts left
        the field `id` out names it too)."""
        d = {_s(k): v for k, v in h.items()}
        data = _unpack(d.pop("data", None)) or {}
        item: dict[str, Any] = {
            "work_id": _s(d.get("id", b"")) or work_id,
            "state": _s(d.get("state", b"")),
            "queue": _s(d.get("queue", b"")),
            "channel": _s(d.get("channel", b"")),
            "priority": int(_num(d.get("priority", 0))),
            "agent_id": _s(d.get("agent", b"")) or None,
            "weight": int(_num(d.get("weight", 0))),
            "offers": int(_num(d.get("offers", 0))),
        }
        if "at" in d:
            # assigned by the call that made it: both times are its `created`
            # where not written since (`accepted_of` in store/lua/_lib_work.lua)
            for f in ("offered_at", "accepted_at"):
                d.setdefault(f, d.get("created", 0))
        for f in _WORK_TIMES:
            if f in d and _num(d[f]):
                item["expires_at" if f == "expires" else f] = _num(d[f])
        for f in ("disposition", "reason"):
            if f in d:
                item[f] = _s(d[f])
        # cases (store/cases.py): the handoff note survives a reconnect's snapshot
        if d.get("handoff"):
            item["handoff"] = _unpack(d["handoff"])
        if d.get("call_state"):
            item["call_state"] = _s(d["call_state"])
        if d.get("ovf"):
            item["overflow_to"] = _s(d["ovf"])
        for f in ("subject", "customer", "payload", "skills"):
            item[f] = data.get(f)
        return item

    async def get_work(self, work_id: str, *, history: bool = True) -> dict[str, Any] | None:
        if not history:
            # the intake reply's read: one command, no pipeline, no history list
            # (the lean path: a lane of its own, on a cluster to the slot's primary)
            raw = await execute(self.redis, "HGETALL", self.keys.work(work_id))
            # redis-py's path (a redirected call, a client without lanes)
            # already made it a dict; a lane's reply is the flat list
            h0 = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
            return self.work_view(h0, work_id) if h0 else None
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.work(work_id))
        pipe.lrange(self.keys.work_history(work_id), 0, -1)
        h, hist = await pipe.execute()
        if not h:
            return None
        item = self.work_view(h, work_id)
        if history:
            item["history"] = item_history(h, hist, work_id)
        return item

    async def agent_items(self, agent_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The agent's open offers and work in hand (for its snapshot)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(self.keys.agent_offers(agent_id))
        # work in hand: the agent's field `w` (msgpack ids), and the set of an
        # agent written before (`in_hand` in store/lua/_lib_agent.lua)
        pipe.hget(self.keys.agent(agent_id), "w")
        pipe.smembers(self.keys.agent_work(agent_id))
        offer_ids, held, work_ids = await pipe.execute()
        in_hand = [_s(x) for x in (_unpack(held) or [])]
        ids = [_s(x) for x in offer_ids] + in_hand + [w for x in work_ids if (w := _s(x)) not in in_hand]
        pipe = self.redis.pipeline(transaction=False)
        for wid in ids:
            pipe.hgetall(self.keys.work(wid))
        hashes = await pipe.execute()
        return self._split(agent_id, [self.work_view(h, w) for h, w in zip(hashes, ids, strict=True) if h])

    @staticmethod
    def _split(
        agent_id: str, items: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        mine = [i for i in items if i["agent_id"] == agent_id]
        offers = [i for i in mine if i["state"] == "offered"]
        work = [i for i in mine if i["state"] in ("assigned", "wrapup")]
        return offers, work

    async def agent_snapshot(self, agent_id: str) -> AgentSnapshot:
        """The agent's view, open offers and work in hand, read in one script call."""
        raw = await self.scripts.raw("agent_snapshot", self.keys.prefix, self.now_ms(), agent_id)
        return self._snapshot(agent_id, raw[1], raw[2])

    def _snapshot(self, agent_id: str, view: bytes, hashes: list[list[bytes]]) -> AgentSnapshot:
        """Decode agent_snapshot's reply (_lib_agent.lua) exactly as `views` and `agent_items` would."""
        agent: dict[str, Any] = msgpack.unpackb(view, raw=False) if view else {"agent_id": agent_id}
        if view and agent.get("by_channel") == []:
            agent["by_channel"] = {}
        items = [self.work_view(dict(zip(h[::2], h[1::2], strict=True))) for h in hashes]
        offers, work = self._split(agent_id, items)
        return agent, offers, work

    async def queue_stats(self, items: int = 0) -> list[dict[str, Any]]:
        """Every queue's live figures; with `items`, each also lists its first
        `items` waiting items (the wallboard's waiting list)."""
        raw = await self.scripts.raw("queue_stats", self.keys.prefix, self.now_ms(), items)
        out: list[dict[str, Any]] = msgpack.unpackb(raw, raw=False) if raw else []
        return out

    async def queue_waiting(self, name: str, limit: int) -> dict[str, Any] | None:
        """The first `limit` items waiting in queue `name` and how many wait
        in all; None for no such queue."""
        raw = await self.scripts.raw("queue_waiting", self.keys.prefix, self.now_ms(), name, limit)
        if raw is None:
            return None
        out: dict[str, Any] = msgpack.unpackb(raw, raw=False)
        out.setdefault("items", [])
        return out

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def memory(self) -> Memory:
        """Redis's memory use against its limit (``INFO memory``; on a
        cluster, of the primary that holds this center)."""
        node = shard_of(self.redis, self.keys.prefix)
        if node is None:
            info = await self.redis.info("memory")
        else:
            info = await self.redis.info("memory", target_nodes=node)
        return Memory(
            used=int(info.get("used_memory", 0)),
            limit=int(info.get("maxmemory", 0)),
            policy=str(info.get("maxmemory_policy", "")),
        )

    def events(self) -> Feed:
        """This center's event channel (the hub's listener), on its shard."""
        return Feed(self.events_redis, self.keys.events_channel)
