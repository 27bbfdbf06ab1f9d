"""Cases in Redis: the typed calls into the case scripts and the case reads.

A case is a work item plus case fields, kept in ``case:<work id>`` (same id
as the item): status (``[cases] statuses``, New -> In progress -> Waiting
close -> Closed by default, any move allowed so a case can be re-opened),
channel, source, category, customer, lead flag, queue, owner, created,
first response (the first accept), closed, updated. Its timeline is two
append-only lists: ``comments`` (notes by agents, supervisors, services)
and ``messages`` (what the customer sent, on any channel).

Completing the item does not close the case, and closing the case does not
end the item. When a customer writes again to a case whose item is
finished, the same item routes again (``reroute`` in ``store/lua/_lib_work.lua``)
to its last owner first: the checker sees a new routing (created + 1).

Transfer and escalation (``store/lua/work_transfer.lua``): an agent hands
an item in hand to another agent or to a queue with a handoff note; a
supervisor reassigns, pushes or pulls by force. The receiver gets an
``offer`` carrying ``handoff {from, note, by}`` and the item's ``history``.

This module owns every Redis call about cases and customers: the case
configuration the scripts read, intake, the customer directory, the reads
of a case and its timeline, and notes, status, transfers and call control.
What a case means beyond Redis (the expected wait, opening a case from a
contact) is in ``presence/services/cases.py``; the transports that call it
are ``presence/http/`` and ``presence/ws/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgpack

from presence.center import Center
from presence.store import Store


def _s(v: Any) -> str:
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


async def sync_config(store: Store, center: Center) -> None:
    """Write the case statuses and webhook subscriptions the scripts read."""
    k = store.keys
    c = center.cases
    pipe = store.redis.pipeline(transaction=True)
    # the scripts' kept copy of the webhooks is stale now (_lib_config.lua)
    pipe.delete(k.case_config, k.webhooks, k.settings_version)
    pipe.hset(
        k.case_config,
        mapping={
            "statuses": _pack(list(c.statuses)),
            "initial": c.initial,
            "working": c.working,
            "closed": c.closed,
            "reopen": c.reopen,
        },
    )
    if not c.working:
        pipe.hdel(k.case_config, "working")
    if center.webhooks:
        pipe.hset(k.webhooks, mapping={h.name: _pack(list(h.events)) for h in center.webhooks})
    await pipe.execute()


# -- intake -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Intake:
    """What became of one inbound contact."""

    work_id: str
    outcome: str  # created | joined | reopened | duplicate
    holder: str  # the agent the message went to ("" when none)
    woke: str  # a queue to wake ("" when none)


async def intake(
    store: Store,
    *,
    work_id: str,
    queue: str,
    channel: str,
    priority: int,
    data: dict[str, Any],
    skills: dict[str, int],
    case: dict[str, Any],
    message: dict[str, Any] | None,
    dedupe: str,
    lookup: list[str],
    register: list[str],
    on_match: str = "join",
    reopen_closed: bool = True,
    ttl_days: int = 180,
) -> Intake:
    """Create a case, or join the case of its thread, in one script call."""
    reply = await store.scripts.call(
        "case_intake",
        store.keys.prefix,
        store.now_ms(),
        work_id,
        queue,
        channel,
        priority,
        _pack(data),
        _pack(skills),
        _pack({k: v for k, v in case.items() if v is not None}),
        _pack({"message": message}) if message else "",
        _pack(message) if message else "",
        dedupe,
        _pack(lookup),
        _pack(register),
        on_match,
        "1" if reopen_closed else "0",
        ttl_days * 86400,
    )
    return Intake(str(reply[0]), str(reply[1]), str(reply[2] or ""), str(reply[3] or ""))


# -- customers --------------------------------------------------------------------


def normalise_phone(raw: str) -> str:
    """Digits with a leading + kept: "+81 (3) 1234-5678" -> "+81312345678"."""
    raw = raw.strip()
    digits = re.sub(r"\D", "", raw)
    return ("+" + digits) if raw.startswith("+") and digits else digits


async def find_customer(store: Store, *, phone: str = "", email: str = "") -> dict[str, Any] | None:
    k = store.keys
    cid = None
    if phone and normalise_phone(phone):
        cid = await store.redis.hget(k.customer_phones, normalise_phone(phone))
    if cid is None and email:
        cid = await store.redis.hget(k.customer_emails, email.strip().lower())
    if cid is None:
        return None
    return await get_customer(store, _s(cid))


async def get_customer(store: Store, customer_id: str) -> dict[str, Any] | None:
    raw = await store.redis.hget(store.keys.customers, customer_id)
    if raw is None:
        return None
    profile: dict[str, Any] = msgpack.unpackb(raw, raw=False)
    return {"id": customer_id, **profile}


async def put_customer(store: Store, customer_id: str, profile: dict[str, Any]) -> str:
    reply = await store.scripts.call(
        "customer_put", store.keys.prefix, store.now_ms(), customer_id, _pack(profile)
    )
    return str(reply[0])


# -- reads ------------------------------------------------------------------------

# what a customer's history shows of each case
HISTORY_FIELDS = ("created", "channel", "subject", "status", "owner", "queue", "closed", "updated")


async def customer_cases(
    store: Store, customer_id: str, *, limit: int, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the customer's cases, newest first, and the cursor of the
    next page (the creation time to pass as `before`; None: no more)."""
    k = store.keys
    top = f"({before}" if before is not None else "+inf"
    got: Any = await store.redis.zrevrangebyscore(
        k.customer_cases(customer_id), top, "-inf", start=0, num=limit + 1, withscores=True
    )
    rows: list[tuple[bytes, float]] = [(w, float(sc)) for w, sc in got]
    page = rows[:limit]
    pipe = store.redis.pipeline(transaction=False)
    for wid, _ in page:
        pipe.hmget(k.case(_s(wid)), HISTORY_FIELDS)
    cases = []
    owners: set[str] = set()
    for (wid, _score), vals in zip(page, await pipe.execute() if page else [], strict=True):
        if all(v is None for v in vals):
            continue  # expired with its item (PRESENCE_RETENTION_DAYS)
        c = _case(_s(wid), {f: v for f, v in zip(HISTORY_FIELDS, vals, strict=True) if v is not None}, 0)
        c.pop("lead", None)
        cases.append(c)
        if c.get("owner"):
            owners.add(str(c["owner"]))
    names: dict[str, str] = {}
    if owners:
        pipe = store.redis.pipeline(transaction=False)
        ids = sorted(owners)
        for aid in ids:
            pipe.hget(k.agent(aid), "name")
        names = {aid: _s(n) for aid, n in zip(ids, await pipe.execute(), strict=True) if n}
    for c in cases:
        c["owner_name"] = names.get(str(c.get("owner") or ""), c.get("owner") or "")
    more = len(rows) > limit
    return cases, int(page[-1][1]) if more and page else None


def _case(wid: str, h: dict[Any, Any], now_ms: int) -> dict[str, Any]:
    d = {_s(k): _s(v) for k, v in h.items()}
    out: dict[str, Any] = {"work_id": wid}
    for f, v in d.items():
        if f in ("reopened", "answered", "replies", "csat"):
            out[f] = int(float(v or 0))
        elif f in (
            "created",
            "first_response",
            "closed",
            "updated",
            "answered_at",
            "composing_until",
            "csat_at",
        ):
            out[f] = int(float(v or 0)) or None  # 0 means: not yet
        elif f == "lead":
            out[f] = v == "1"
        else:
            out[f] = v
    out.setdefault("lead", False)
    # "being answered by": only while the mark has not run out
    if out.get("composing") and (out.get("composing_until") or 0) <= now_ms:
        out.pop("composing", None)
        out.pop("composing_until", None)
    return out


async def get_case(store: Store, wid: str, *, timeline: bool = True) -> dict[str, Any] | None:
    k = store.keys
    pipe = store.redis.pipeline(transaction=False)
    pipe.hgetall(k.case(wid))
    pipe.lrange(k.case_comments(wid), 0, -1)
    pipe.lrange(k.case_messages(wid), -200, -1)
    pipe.lrange(k.case_replies(wid), -200, -1)
    h, comments, messages, replies = await pipe.execute()
    out: dict[str, Any] = _case(wid, h, store.now_ms()) if h else {}
    if not timeline:
        return out or None
    notes = [msgpack.unpackb(x, raw=False) for x in comments]
    if not out and not notes:
        return None
    out["comments"] = notes
    out["messages"] = [msgpack.unpackb(x, raw=False) for x in messages]
    out["replies"] = [msgpack.unpackb(x, raw=False) for x in replies]
    return out


async def comments(store: Store, wid: str) -> list[dict[str, Any]]:
    raw = await store.redis.lrange(store.keys.case_comments(wid), 0, -1)
    return [msgpack.unpackb(x, raw=False) for x in raw]


@dataclass(frozen=True, slots=True)
class WaitFigures:
    """What the expected wait of a queued item is computed from."""

    position: int  # 1 = next in its queue
    handle_ms: float  # total of the queue's last handle times (accept to complete)
    samples: int  # how many handle times that total holds (at most 50)
    staffed: int  # the queue's members signed in with a routable status


async def wait_figures(store: Store, wid: str) -> WaitFigures | None:
    """The figures of a queued item, read in one script call; None when not queued."""
    st, _queue, pos, total, n, staffed = await store.scripts.raw(
        "work_position", store.keys.prefix, store.now_ms(), wid
    )
    if _s(st) != "queued":
        return None
    return WaitFigures(int(pos), float(total), int(n), int(staffed))


# -- changes ----------------------------------------------------------------------


async def add_note(store: Store, wid: str, author: str, text: str, holder_only: str = "") -> dict[str, Any]:
    note = {"author": author, "text": text, "ts": store.now_ms()}
    await store.scripts.call(
        "work_note",
        store.keys.prefix,
        store.now_ms(),
        wid,
        author,
        holder_only,
        _pack(note),
        _pack({"note": note}),
    )
    return note


async def reply(store: Store, wid: str, agent_id: str, text: str, *, confirm: bool = False) -> dict[str, Any]:
    """The holder's reply to the customer, kept on the case and sent as the
    `reply` webhook event (``store/lua/work_reply.lua``); ScriptError
    ``conflict`` on field ``confirm`` when the customer's latest message was
    already answered and `confirm` is not set."""
    now = store.now_ms()
    reply = await store.scripts.call(
        "work_reply", store.keys.prefix, now, wid, agent_id, text, "1" if confirm else "0"
    )
    return {
        "author": agent_id,
        "text": text,
        "ts": now,
        "message": int(reply[0]),
        "again": reply[2] == "1",
    }


async def replies(store: Store, wid: str) -> list[dict[str, Any]]:
    raw = await store.redis.lrange(store.keys.case_replies(wid), 0, -1)
    return [msgpack.unpackb(x, raw=False) for x in raw]


async def csat(store: Store, wid: str, score: int, comment: str) -> str:
    """The customer's survey answer, once per case (``store/lua/case_csat.lua``); the agent it counts for.
    ScriptError ``conflict`` when the case was answered already or is not completed."""
    reply = await store.scripts.call("case_csat", store.keys.prefix, store.now_ms(), wid, score, comment)
    return str(reply[0])


# how long "being answered by" lasts unless the panel renews it
COMPOSING_MS = 15_000


async def composing(store: Store, wid: str, agent_id: str, on: bool) -> int:
    """Mark (or unmark) the case as being answered by its holder; the mark's end (ms, 0: none)."""
    reply = await store.scripts.call(
        "work_composing", store.keys.prefix, store.now_ms(), wid, agent_id, "1" if on else "0", COMPOSING_MS
    )
    return int(reply[0])


async def composing_marks(store: Store) -> list[dict[str, Any]]:
    """The center's live "being answered by" marks, as the ``case.composing``
    messages that started them (``store/lua/composing_marks.lua``)."""
    raw = await store.scripts.raw("composing_marks", store.keys.prefix, store.now_ms())
    return list(msgpack.unpackb(raw, raw=False)) if raw else []


async def set_status(store: Store, wid: str, status: str, by: str, holder_only: str = "") -> bool:
    reply = await store.scripts.call(
        "case_status", store.keys.prefix, store.now_ms(), wid, status, by, holder_only
    )
    return bool(reply[1] == "changed")


async def transfer(
    store: Store,
    wid: str,
    mode: str,
    by: str,
    *,
    holder_only: str = "",
    to_agent: str = "",
    to_queue: str = "",
    note: str = "",
) -> tuple[str, list[str]]:
    """Run one transfer/reassign/push/pull; (new state, queues to wake)."""
    reply = await store.scripts.call(
        "work_transfer",
        store.keys.prefix,
        store.now_ms(),
        wid,
        mode,
        by,
        holder_only,
        to_agent,
        to_queue,
        note,
    )
    return str(reply[0]), [str(q) for q in reply[1:]]


async def call_control(store: Store, wid: str, agent_id: str, action: str, target: str) -> str:
    reply = await store.scripts.call(
        "call_control", store.keys.prefix, store.now_ms(), wid, agent_id, action, target
    )
    return str(reply[0])


async def call_end(store: Store, call_id: str, reason: str) -> tuple[str, str, list[str]]:
    """A hang-up: (work id, "abandoned"|"ended"|"already", queues to wake)."""
    reply = await store.scripts.call("call_end", store.keys.prefix, store.now_ms(), f"call:{call_id}", reason)
    return str(reply[0]), str(reply[1]), [str(q) for q in reply[2:]]
