"""Reading the event history back from Redis for the KPI engine.

Stream entry ids are stamped by Redis's clock (``XADD *``) while each
event's ``ts`` is the clock of the process that ran the script; the two
agree to within the servers' clock skew. A time range is therefore read by
id with a margin (`MARGIN_MS`) on both sides and then filtered by ``ts``,
so an event is placed by the time the business saw, never lost to skew.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container, Iterable
from typing import Any

import msgpack

from presence.kpi.events import Event, is_status, parse_event, parse_events, parse_status
from presence.kpi.facts import Settings
from presence.store import Store, item_history
from presence.store.client import execute, run_many

MARGIN_MS = 5 * 60_000
PAGE = 5000


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


async def pages(
    store: Store, key: str, lo: str, hi: str = "+", *, page_size: int = PAGE
) -> AsyncIterator[list[tuple[str, dict[Any, Any]]]]:
    """Entries of a stream with ids in [lo, hi], one call of `page_size` at a
    time; `lo` may be exclusive "(id". The event loop runs between pages."""
    start = lo
    while True:
        page = await _xrange(store, key, start, hi, page_size)
        if page:
            yield page
        if len(page) < page_size:
            return
        start = "(" + page[-1][0]


async def _xrange(store: Store, key: str, lo: str, hi: str, count: int) -> list[tuple[str, dict[Any, Any]]]:
    """One XRANGE's entries as (id, fields), on the store's lean path where it
    has one (`client.execute`: the raw reply, each entry's fields a flat list
    made a dict here), else redis-py's (its own dict of each entry's fields,
    not copied). The live task reads a second of both streams every tick:
    redis-py's call, its retry wrapper, its parser and a dict per entry made
    twice were most of that read."""
    raw: list[Any] = await execute(store.redis, "XRANGE", key, lo, hi, "COUNT", count) or []
    out: list[tuple[str, dict[Any, Any]]] = []
    for entry in raw:
        if entry is None:  # as redis-py's parser gives it
            out.append((_s(None), {}))
            continue
        i, f = entry
        if type(f) is list:
            it = iter(f)
            out.append((_s(i), dict(zip(it, it, strict=False))))  # as redis-py pairs them
        else:
            out.append((_s(i), f if isinstance(f, dict) else dict(f or {})))
    return out


async def read_stream(
    store: Store, key: str, lo: str, hi: str = "+", *, limit: int = 2_000_000, page_size: int = PAGE
) -> list[tuple[str, dict[Any, Any]]]:
    """Entries of a stream with ids in [lo, hi] (`pages`, read until `limit`)."""
    out: list[tuple[str, dict[Any, Any]]] = []
    async for page in pages(store, key, lo, hi, page_size=page_size):
        out.extend(page)
        if len(out) >= limit:
            break
    return out


def decode(entries: Iterable[tuple[str, dict[Any, Any]]], *, status: bool) -> list[Event]:
    out = []
    for _, fields in entries:
        if status:
            e = parse_status(fields)
            if e is not None:
                out.append(e)
        elif not is_status(fields):
            # a status change's copy here is skipped before it is decoded:
            # status changes are read from stream:status, which knows the
            # previous one
            out.extend(parse_events(fields))
    return out


async def load(
    store: Store, start_ms: int, end_ms: int, *, routing: bool = True, status: bool = True
) -> list[Event]:
    """Every event (routing and/or status) with start <= ts <= end, in time order."""
    lo, hi = f"{max(0, start_ms - MARGIN_MS)}-0", f"{end_ms + MARGIN_MS}-18446744073709551615"
    k = store.keys
    events: list[Event] = []
    if routing:
        events += decode(await read_stream(store, k.event_stream, lo, hi), status=False)
    if status:
        events += decode(await read_stream(store, k.status_stream, lo, hi), status=True)
    events = [e for e in events if start_ms <= e.ts <= end_ms]
    events.sort(key=lambda e: e.ts)
    return events


async def settings(store: Store) -> Settings:
    """What the engine needs to know about the center, as Redis has it now."""
    queues = await store.list_queues()
    # capacities and queues alone, in chunks: the whole records of every
    # agent (`list_agents`) held the loop for ms every few seconds
    agents = await store.agent_roster()
    statuses = await store.statuses()
    channels = await store.channels()
    offline = _s(await store.redis.hget(store.keys.rules, "offline_status") or b"Offline")
    closed = await store.redis.hget(store.keys.case_config, "closed")
    members: dict[str, list[str]] = {}
    for aid, _, in_queues in agents:
        for q in in_queues:
            members.setdefault(q, []).append(aid)
    return Settings(
        thresholds={q["name"]: float(q["service_level_seconds"]) for q in queues},
        weights={c["name"]: int(c.get("weight", 10)) for c in channels},
        routable=frozenset(s["name"] for s in statuses if s.get("routable")),
        offline=offline,
        capacities={aid: cap for aid, cap, _ in agents},
        members=members,
        closed=frozenset({_s(closed)}) if closed else frozenset({"Closed"}),
    )


async def item_times(
    store: Store,
    events: Iterable[Event],
    known: Container[str] = (),
    arrived: Container[str] = (),
    *,
    more: bool = False,
) -> tuple[dict[str, int], dict[str, int]]:
    """Arrival and accept times of items whose create or accept precede `events`.

    Read from the item hashes (``created``, ``accepted_at``), so an item
    answered or completed just after the events' start keeps its exact wait
    and handle time. `known` names the items a tracker already follows (it
    needs no accept time for them), `arrived` those whose arrival it knows.
    With `more` (`events` is one page of a longer read), the accept time of
    every item first met here without its create or accept: its completion
    may come in a later page, when the tracker already follows it.
    """
    events = list(events)
    created = {e.work for e in events if e.ev in ("create", "reopen")}
    accepted = {e.work for e in events if e.ev == "accept"}
    need = sorted(
        {
            e.work
            for e in events
            if e.work
            and (
                (e.ev in ("accept", "abandon") and e.work not in created and e.work not in arrived)
                or (e.ev == "complete" and e.work not in accepted and e.work not in known)
                or (
                    more
                    and e.ev != "csat"
                    and e.work not in known
                    and e.work not in created
                    and e.work not in accepted
                )
            )
        }
    )
    if not need:
        return {}, {}
    pipe = store.redis.pipeline(transaction=False)
    for wid in need:
        # (`at`: assigned by the call that made it, accepted at `created`;
        # `accepted_of` in store/lua/_lib_work.lua)
        pipe.hmget(store.keys.work(wid), "created", "accepted_at", "at")
    arrivals: dict[str, int] = {}
    accepts: dict[str, int] = {}
    for wid, (c, a, at) in zip(need, await pipe.execute(), strict=True):
        a = a or (c if at else None)
        if c and wid not in created and wid not in arrived:
            arrivals[wid] = int(float(_s(c)))
        if a and wid not in accepted and wid not in known:
            accepts[wid] = int(float(_s(a)))
    return arrivals, accepts


async def item_histories(store: Store, work_ids: Iterable[str]) -> dict[str, list[Event]]:
    """Each item's own history (kept in its record, and for an item written
    before that also in ``work:<id>:history``: `item_history`; written by the
    same call as its stream entries), decoded as events, oldest first."""
    ids = list(work_ids)
    pipe = store.redis.pipeline(transaction=False)
    for wid in ids:
        pipe.hgetall(store.keys.work(wid))
        pipe.lrange(store.keys.work_history(wid), 0, -1)
    raw = await pipe.execute()
    out: dict[str, list[Event]] = {}
    for j, wid in enumerate(ids):
        try:
            entries = item_history(raw[2 * j], raw[2 * j + 1], wid)
        except Exception:  # a record this version cannot read: its entries are left out
            entries = []
        out[wid] = [e for fields in entries if isinstance(fields, dict) and (e := parse_event(fields))]
    return out


def earlier(history: list[Event], batch: list[Event], since: int) -> list[Event]:
    """The events of an item's `history` before `batch` (its events just read
    from the stream, in stream order), from `since` on: what a tracker fed
    the stream from `since` was fed of that item before (pure).

    The history list is appended in the same call as each stream entry, so
    the batch is a run of its entries (more may follow it, written since the
    read); without such a run (a history that was cut), the entries older
    than the batch.
    """

    def key(e: Event) -> tuple[str, int, str, str, str]:
        return (e.ev, e.ts, e.agent, e.queue, e.channel)

    want, keys = [key(e) for e in batch], [key(e) for e in history]
    for p in range(len(keys) - len(want), -1, -1):
        if keys[p : p + len(want)] == want:
            return [e for e in history[:p] if e.ts >= since]
    first = min((e.ts for e in batch), default=0)
    return [e for e in history if since <= e.ts < first]


def _customer(data: dict[str, Any], case: dict[str, str]) -> str:
    if case.get("customer"):
        return case["customer"]
    c = data.get("customer")
    if isinstance(c, dict):
        for f in ("id", "email", "phone", "name"):
            if c.get(f) not in (None, ""):
                return str(c[f])
    return ""


async def attributes(store: Store, work_ids: Iterable[str]) -> dict[str, dict[str, str]]:
    """Per item: customer, type and source, from its case (issue 6) or its posted data.

    customer: the case's customer id, else the posted customer's id, email,
    phone or name; type: the case's type or category, else payload.type;
    source: the case's source, else payload.source, else the channel.
    """
    ids = sorted(set(work_ids))
    commands: list[tuple[Any, ...]] = []
    for wid in ids:
        commands.append(("HMGET", store.keys.work(wid), "data", "channel"))
        commands.append(("HMGET", store.keys.case(wid), "customer", "type", "category", "source"))
    # on the store's lean path: through redis-py's pipeline a roll-up chunk of
    # 500 items held the event loop 20-50 ms (the soak's stall watchdog saw it)
    raw = await run_many(store.redis, commands)
    out: dict[str, dict[str, str]] = {}
    for i, wid in enumerate(ids):
        blob, channel = raw[2 * i]
        c = raw[2 * i + 1]
        case = {k: _s(v) for k, v in zip(("customer", "type", "category", "source"), c, strict=True) if v}
        try:
            data = msgpack.unpackb(blob, raw=False) if blob else {}
        except Exception:  # a blob this version cannot read is reported as unknown
            data = {}
        if not isinstance(data, dict):
            data = {}
        payload = data.get("payload") if isinstance(data.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        out[wid] = {
            "customer": _customer(data, case),
            "type": case.get("type") or case.get("category") or str(payload.get("type") or ""),
            "source": case.get("source") or str(payload.get("source") or "") or _s(channel or b""),
        }
    return out
