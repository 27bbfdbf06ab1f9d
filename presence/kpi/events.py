"""Stream entries as events: the input of the KPI tracker (pure).

Owns `Event` (one entry of ``stream:events`` or ``stream:status``, decoded)
and the vocabulary of event names the tracker reacts to besides the plain
``create``/``accept``/``abandon``/``complete``: reopens, transfers and case
status changes. Unknown names (from newer scripts) are kept as they are; the
tracker ignores them, except that a transfer-like name spoils an item's
first-contact resolution.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from presence.store.keys import SHORT_FIELDS

# A finished item routed again (case_intake / reroute in _lib_work.lua).
REOPEN_EVENTS = frozenset({"reopen", "case.reopen", "case_reopen"})
# Ownership handed on: transfer, transfer.agent, transfer.queue, escalate ...
TRANSFER_PREFIXES = ("transfer", "escalat")
CASE_STATUS_EVENTS = frozenset({"case.status", "case_status"})


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event, decoded: ``ev`` and ``ts`` (ms) plus its fields."""

    ev: str
    ts: int
    work: str = ""
    agent: str = ""
    queue: str = ""
    channel: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.extra.get(name, default)


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


# The fields whose text is interned (`sys.intern`: one string for all the
# events that name it, freed with the last): the names the tracker keeps in
# its facts, spans and items for minutes (every fact of an item names its
# queue, channel, agent and work). Decoded afresh for each event, they were
# half of the live tracker's allocated blocks per recent item (11 of 21),
# and its recent items are most of the server's memory high-water mark
# (docs/RELIABILITY.md, rss16). Field names are interned too (a handful).
#
# Item ids are unique and unbounded: interned only where an interned string
# is freed with its last reference. CPython 3.12.0-3.12.5 made every
# interned string immortal (PEP 683; made mortal again in 3.12.6, gh-113993):
# there each id would stay for the process's life, a leak that grows with
# every item, so those versions keep a copy per event, as before.
MORTAL_INTERNING = not ((3, 12, 0) <= sys.version_info[:3] < (3, 12, 6))
INTERNED = frozenset(
    {"ev", "agent", "queue", "channel", "status", "reason", "prev", "prev_reason", "via"}
    | ({"work"} if MORTAL_INTERNING else set())
)


# A stream's field names as text, by their raw form (bytes from redis-py):
# a handful, decoded and interned once rather than for every field of every
# entry (the live task decodes a second's entries each tick); bounded, for
# a stream written with names of its own.
_NAMES: dict[Any, str] = {}
NAMES_MAX = 256


def _name(k: Any) -> str:
    name = _NAMES.get(k)
    if name is None:
        name = sys.intern(_text(k))
        if len(_NAMES) < NAMES_MAX:
            _NAMES[k] = name
    return name


def _value(name: str, v: Any) -> str:
    text = _text(v)
    return sys.intern(text) if name in INTERNED else text


# The one-letter field names of a ``stream:events`` entry (`xadd` in
# store/lua/_lib_core.lua) and the names they stand for; an entry written
# before has the long names, and no event has a field of one letter.
STREAM_LONG = {"w": "work", **SHORT_FIELDS}


# Events whose entry leaves out a priority of 0 (the scripts write one only
# on a create, and since aof18 not when it is 0).
PRIORITISED = frozenset({"create", "create+accept"})


def stream_fields(raw: Mapping[Any, Any]) -> dict[str, str]:
    """A ``stream:events`` entry's fields as text, by their long names
    (either form: written short, or before, long), a create's priority
    of 0 given back."""
    out = {}
    for k, v in raw.items():
        name = _name(k)
        name = STREAM_LONG.get(name, name)
        out[name] = _value(name, v)
    if out.get("ev") in PRIORITISED:
        out.setdefault("priority", "0")
    return out


def parse_event(raw: Mapping[Any, Any]) -> Event | None:
    """An event from a stream entry's fields; None when it has no ev or ts."""
    return _event(stream_fields(raw))


def parse_status(raw: Mapping[Any, Any]) -> Event | None:
    """A ``stream:status`` entry as a ``status`` event (with prev, prev_since)."""
    d = {}
    for k, v in raw.items():
        name = _name(k)
        d[name] = _value(name, v)
    d["ev"] = "status"
    return _event(d)


def is_status(raw: Mapping[Any, Any]) -> bool:
    """Whether a ``stream:events`` entry records a status change (whose
    ``stream:status`` entry is the one read), told without decoding it."""
    ev = raw.get(b"ev")
    if ev is None:
        ev = raw.get("ev")
    return ev in (b"status", "status")


def _event(d: dict[str, str]) -> Event | None:
    ev = d.pop("ev", "")
    try:
        ts = int(float(d.pop("ts", "")))
    except ValueError:
        return None
    if not ev:
        return None
    return Event(ev, ts, d.pop("work", ""), d.pop("agent", ""), d.pop("queue", ""), d.pop("channel", ""), d)


# One stream entry for two events of one item at one instant (`record` in
# store/lua/_lib_core.lua): an intake the same call assigned. name ->
# (first event, second event, the fields of the second alone); the others
# (ts, work, queue, channel) are both events'; the rest the first's.
MERGED: dict[str, tuple[str, str, frozenset[str]]] = {
    "create+accept": ("create", "accept", frozenset({"agent", "via", "paused"})),
}


def parse_events(raw: Mapping[Any, Any]) -> list[Event]:
    """The events of a ``stream:events`` entry: one, or two for an entry
    that records two (`MERGED`); none when it has no ev or ts. Entries of
    either form may be in a stream (written before and after the merge)."""
    e = parse_event(raw)
    if e is None:
        return []
    merged = MERGED.get(e.ev)
    if merged is None:
        return [e]
    first, second, own = merged
    extra1 = {k: v for k, v in e.extra.items() if k not in own}
    extra2 = {k: v for k, v in e.extra.items() if k in own and k != "agent"}
    return [
        Event(first, e.ts, e.work, "", e.queue, e.channel, extra1),
        Event(second, e.ts, e.work, e.agent, e.queue, e.channel, extra2),
    ]


def is_transfer(e: Event) -> bool:
    """Whether `e` hands the item on to another agent or queue."""
    if e.ev.startswith(TRANSFER_PREFIXES):
        return True
    return e.ev == "call.control" and e.get("action") == "transfer"
