"""A queue's business hours: when it is open, as a pure function of its
schedule and a clock.

A schedule is weekly opening ranges in the queue's time zone (``mon`` to
``fri`` 09:00-18:00 ...) and whole-day holidays; no range at all means always
open. The Lua scripts cannot read time zones, so the store keeps, per queue,
its *plan*: the instants (UTC ms) at which the queue opens or closes over a
window around now (`PLAN_BEHIND` back, `PLAN_AHEAD` on), computed here with
`zoneinfo`, daylight-saving changes included. ``store/lua/_lib_queue.lua``
reads the plan to tell whether a queue is open at an instant (intake) and
how long it was closed between two (the wait left out of service level and
ASA). The plan is written with the queue and renewed every hour
(`presence.services.hours`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MS: Final = 86_400_000
PLAN_BEHIND: Final = 8 * DAY_MS
PLAN_AHEAD: Final = 15 * DAY_MS


@dataclass(frozen=True, slots=True)
class Range:
    """Open on `days` from `open` to `close` (minutes after local midnight;
    close 1440 is the end of the day; a close at or before the opening is on
    the next day)."""

    days: tuple[str, ...]
    open: int
    close: int


@dataclass(frozen=True, slots=True)
class Schedule:
    time_zone: str
    ranges: tuple[Range, ...] = ()
    holidays: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        return not self.ranges and not self.holidays


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"is not an IANA time zone such as Asia/Tokyo: {name!r}") from None


def minutes(clock: str) -> int:
    """ "09:30" -> 570; "24:00" -> 1440."""
    h, m = clock.split(":")
    return int(h) * 60 + int(m)


def _local_ms(day: date, minute: int, tz: ZoneInfo) -> int:
    # a local time that does not exist (the hour skipped in spring) is read
    # with the offset before the change, as zoneinfo does (fold=0)
    # (aware arithmetic is on the wall clock: the offset is the one in force then)
    at = datetime.combine(day, time(0), tz) + timedelta(minutes=minute)
    return int(at.timestamp() * 1000)


def intervals(s: Schedule, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The open intervals [from, to) in ms that meet [start_ms, end_ms),
    merged and in order."""
    tz = zone(s.time_zone)
    if not s.ranges:
        # holidays only: open all the time except on them
        ranges: Sequence[Range] = (Range(DAYS, 0, 1440),)
    else:
        ranges = s.ranges
    first = datetime.fromtimestamp(start_ms / 1000, tz).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end_ms / 1000, tz).date() + timedelta(days=1)
    out: list[tuple[int, int]] = []
    day = first
    while day <= last:
        if day not in s.holidays:
            name = DAYS[day.weekday()]
            for r in ranges:
                if name in r.days:
                    # a close at or before the opening is on the next day (a night shift)
                    shut = r.close if r.close > r.open else r.close + 1440
                    a, b = _local_ms(day, r.open, tz), _local_ms(day, shut, tz)
                    if b > start_ms and a < end_ms:
                        out.append((a, b))
        day += timedelta(days=1)
    return _merged(out)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def is_open(s: Schedule, at_ms: int) -> bool:
    if s.always_open:
        return True
    return any(a <= at_ms < b for a, b in intervals(s, at_ms, at_ms + 1))


def plan(s: Schedule, now_ms: int) -> list[int]:
    """The plan the scripts read: ``[open at the start (1/0), start, t1, t2 ...]``
    where the queue's state flips at each t (ascending) within the window
    [now - PLAN_BEHIND, now + PLAN_AHEAD]. Before the start the first state
    is assumed, after the last flip the last one. Empty for always open."""
    if s.always_open:
        return []
    start, end = now_ms - PLAN_BEHIND, now_ms + PLAN_AHEAD
    spans = intervals(s, start, end)
    open_now = any(a <= start < b for a, b in spans)
    flips = [t for a, b in spans for t in (a, b) if start < t < end]
    return [1 if open_now else 0, start, *flips]


def state_at(p: Sequence[int], at_ms: int) -> tuple[bool, int]:
    """(open, the next flip after `at_ms` or 0) from a plan, as the scripts read it."""
    if not p:
        return True, 0
    state = p[0] == 1
    for t in p[2:]:
        if t > at_ms:
            return state, t
        state = not state
    return state, 0


def closed_ms(p: Sequence[int], t0: int, t1: int) -> int:
    """How long a queue was closed within [t0, t1), from its plan (the
    reference for ``closed_ms`` in _lib_queue.lua)."""
    if not p or t1 <= t0:
        return 0
    state = p[0] == 1
    total = 0
    seg = t0
    for t in p[2:]:
        if t <= seg:
            state = not state
            continue
        end = min(t, t1)
        if not state:
            total += end - seg
        seg = end
        state = not state
        if seg >= t1:
            return total
    if not state and seg < t1:
        total += t1 - seg
    return total
