"""The KPI arithmetic: additive sums of facts and agent time, and the figures (pure).

`Agg` holds one group's additive sums for one window (counts, summed waits
and handle times, agent time clipped to the window); `Agg.kpis` derives the
ratios a supervisor reads (service level, ASA, AHT, abandonment, FCR,
occupancy, utilisation). `Groups` is one window's sums for the center and by
queue, channel and agent. The functions here put a fact, or an agent's spans
clipped to a window, into those sums; `tracker` and `incremental` decide which
facts and spans fall in each window. Every definition is documented in
``docs/kpis.md``:

* a window [start, now] holds a point fact when start <= ts <= now; an
  interval counts for the part of it that lies inside the window;
* handling, available and staffed time are unions of intervals (an agent
  holding two items at once is handling once), load and time in status sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar

from presence.kpi.facts import (
    F_AGENT,
    F_CHANNEL,
    F_HANDLE,
    F_KIND,
    F_QUEUE,
    F_SCORE,
    F_WAIT,
    F_WITHIN,
    Fact,
    FactRow,
    Settings,
    Span,
)


@dataclass(slots=True)
class Agg:
    """Additive sums for one group in one window; `kpis` derives the ratios.

    Every field adds up across hours, days and groups, so the roll-up keeps
    these and never a ratio.
    """

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    abandoned_in_sl: int = 0
    wait_ms: int = 0  # summed queue time of answered items
    abandon_wait_ms: int = 0
    max_wait_ms: int = 0  # longest queue time of an answered item
    handled: int = 0
    handle_ms: int = 0
    resolved_first: int = 0  # handled with no transfer and no reopen
    transfers: int = 0
    csat_n: int = 0  # survey answers (CSAT), counted when answered
    csat_sum: int = 0  # their scores (1-5) summed
    # agent time (ms), clipped to the window
    handling_ms: int = 0  # at least one item in hand
    available_ms: int = 0  # in a routable status
    staffed_ms: int = 0  # available or handling
    logged_in_ms: int = 0  # in any status but the offline one
    load_ms: int = 0  # sum of weight x time held
    capacity_ms: int = 0  # capacity x staffed time
    status_ms: dict[str, int] = field(default_factory=dict)  # "Break" and "Break/Coffee"

    def add(self, other: Agg) -> None:
        for f in fields(self):
            if f.name == "status_ms":
                for k, v in other.status_ms.items():
                    self.status_ms[k] = self.status_ms.get(k, 0) + v
            elif f.name == "max_wait_ms":
                self.max_wait_ms = max(self.max_wait_ms, other.max_wait_ms)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: (dict(self.status_ms) if f.name == "status_ms" else getattr(self, f.name))
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Agg:
        a = cls()
        for f in fields(a):
            if f.name in d:
                v = d[f.name]
                setattr(
                    a, f.name, {str(k): int(x) for k, x in v.items()} if f.name == "status_ms" else int(v)
                )
        return a

    def kpis(self) -> dict[str, Any]:
        """The figures a supervisor reads; None where there is nothing to divide."""
        outcome = self.answered + self.abandoned
        sl_base = self.answered + self.abandoned - self.abandoned_in_sl
        return {
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "answered_in_sl": self.answered_in_sl,
            "abandoned_in_sl": self.abandoned_in_sl,
            "service_level": _ratio(self.answered_in_sl, sl_base),
            "asa": _ratio(self.wait_ms, self.answered * 1000),
            "max_answer_wait": self.max_wait_ms / 1000,
            "aht": _ratio(self.handle_ms, self.handled * 1000),
            "handled": self.handled,
            "abandonment_rate": _ratio(self.abandoned, outcome),
            "fcr": _ratio(self.resolved_first, self.handled),
            "transfers": self.transfers,
            "csat": _ratio(self.csat_sum, self.csat_n),
            "csat_count": self.csat_n,
            "occupancy": _ratio(self.handling_ms, self.staffed_ms),
            "utilisation": _ratio(self.load_ms, self.capacity_ms),
            "handle_time": self.handling_ms / 1000,
            "available_time": self.available_ms / 1000,
            "logged_in_time": self.logged_in_ms / 1000,
        }


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(slots=True)
class Groups:
    center: Agg = field(default_factory=Agg)
    queues: dict[str, Agg] = field(default_factory=dict)
    channels: dict[str, Agg] = field(default_factory=dict)
    agents: dict[str, Agg] = field(default_factory=dict)


def agg_of(d: dict[str, Agg], k: str) -> Agg:
    """The sums of group `k` in `d`, created empty when missing."""
    a = d.get(k)
    if a is None:
        a = d[k] = Agg()
    return a


# -- facts ---------------------------------------------------------------------


def apply_fact(a: Agg, f: Fact) -> None:
    apply_row(a, f, f.first_contact)


def apply_row(a: Agg, f: FactRow, first_contact: bool) -> None:
    """Count fact `f` (a `Fact` or its plain-tuple copy) in `a`, its
    longest answer wait included: the one per-fact rule of every sum."""
    sign_fact(a, f, 1, first_contact)
    if f[F_KIND] == "answered" and f[F_WAIT] > a.max_wait_ms:
        a.max_wait_ms = f[F_WAIT]


def sign_fact(a: Agg, f: FactRow, n: int, first_contact: bool) -> None:
    """`apply_row` (n = 1) or its undoing (n = -1), the maximum aside; `f`
    may be a `Fact` or its plain-tuple copy."""
    kind = f[F_KIND]
    if kind == "offered":
        a.offered += n
    elif kind == "answered":
        a.answered += n
        a.wait_ms += n * f[F_WAIT]
        a.answered_in_sl += n * f[F_WITHIN]
    elif kind == "abandoned":
        a.abandoned += n
        a.abandon_wait_ms += n * f[F_WAIT]
        a.abandoned_in_sl += n * f[F_WITHIN]
    elif kind == "handled":
        a.handled += n
        a.handle_ms += n * f[F_HANDLE]
        a.resolved_first += n * first_contact
    elif kind == "transfer":
        a.transfers += n
    elif kind == "csat":
        a.csat_n += n
        a.csat_sum += n * f[F_SCORE]


# the facts that count for the agent who made them (the others: queue, channel, center)
AGENT_FACTS = frozenset({"answered", "handled", "transfer", "csat"})


def add_fact(g: Groups, f: Fact) -> None:
    """Count `f` for the center, its queue, its channel and (when it names one) its agent."""
    apply_fact(g.center, f)
    if f.queue:
        apply_fact(agg_of(g.queues, f.queue), f)
    if f.channel:
        apply_fact(agg_of(g.channels, f.channel), f)
    if f.agent and f.kind in AGENT_FACTS:
        apply_fact(agg_of(g.agents, f.agent), f)


V = TypeVar("V")


class Parts(Protocol[V]):
    """Sums by queue, channel and agent (a `Groups`, a minute's `Bucket`)."""

    queues: dict[str, V]
    channels: dict[str, V]
    agents: dict[str, V]


def fact_targets(g: Parts[V], f: FactRow) -> list[tuple[dict[str, V] | None, str]]:
    """Where a fact (or its plain-tuple copy) counts, as `add_fact` adds it:
    (group dict or None for the center, name)."""
    out: list[tuple[dict[str, V] | None, str]] = [(None, "")]
    if f[F_QUEUE]:
        out.append((g.queues, f[F_QUEUE]))
    if f[F_CHANNEL]:
        out.append((g.channels, f[F_CHANNEL]))
    if f[F_AGENT] and f[F_KIND] in AGENT_FACTS:
        out.append((g.agents, f[F_AGENT]))
    return out


# -- agent time ----------------------------------------------------------------


def _clip(s: Span, start: int, now: int) -> tuple[int, int]:
    return max(s.start, start), min(now if s.end is None else s.end, now)


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _length(intervals: list[tuple[int, int]]) -> int:
    return sum(b - a for a, b in intervals)


def by_agent(spans: Iterable[Span]) -> dict[str, list[Span]]:
    per: dict[str, list[Span]] = {}
    for s in spans:
        per.setdefault(s.agent, []).append(s)
    return per


def one_agent_time(aid: str, ss: Iterable[Span], start: int, now: int, settings: Settings) -> Agg | None:
    """Agent `aid`'s time in [start, now] from its spans `ss`; None when it has none."""
    a = Agg()
    handling: list[tuple[int, int]] = []
    available: list[tuple[int, int]] = []
    for s in ss:
        lo, hi = _clip(s, start, now)
        if hi <= lo:
            continue
        if s.weight:
            handling.append((lo, hi))
            a.load_ms += s.weight * (hi - lo)
            continue
        d = hi - lo
        a.status_ms[s.status] = a.status_ms.get(s.status, 0) + d
        if s.reason:
            k = f"{s.status}/{s.reason}"
            a.status_ms[k] = a.status_ms.get(k, 0) + d
        if s.status != settings.offline:
            a.logged_in_ms += d
        if s.status in settings.routable:
            available.append((lo, hi))
    hu, au = _union(handling), _union(available)
    a.handling_ms = _length(hu)
    a.available_ms = _length(au)
    a.staffed_ms = _length(_union(hu + au))
    a.capacity_ms = settings.capacities.get(aid, 0) * a.staffed_ms
    return a if a.status_ms or a.handling_ms else None


def agent_time(spans: Iterable[Span], start: int, now: int, settings: Settings) -> dict[str, Agg]:
    """Per agent: time in each status, handling, available, staffed, load, in [start, now]."""
    out: dict[str, Agg] = {}
    for aid, ss in by_agent(spans).items():
        a = one_agent_time(aid, ss, start, now, settings)
        if a is not None:
            out[aid] = a
    return out


def queues_of(settings: Settings) -> dict[str, list[str]]:
    """Agent -> the queues it is a member of."""
    out: dict[str, list[str]] = {}
    for q, agents in settings.members.items():
        for aid in agents:
            out.setdefault(aid, []).append(q)
    return out


def add_time(g: Groups, aid: str, t: Agg, member_of: Mapping[str, list[str]], agent: bool = True) -> None:
    """Count agent `aid`'s time `t` for the center, its queues and (if `agent`) its own row."""
    if agent:
        time_into(agg_of(g.agents, aid), t)
    time_into(g.center, t)
    for q in member_of.get(aid, ()):
        time_into(agg_of(g.queues, q), t)


def time_into(a: Agg, t: Agg, n: int = 1) -> None:
    """Add (n = 1) or take away (n = -1) agent time `t` (handling,
    available, staffed, load, each status) into `a`."""
    a.handling_ms += n * t.handling_ms
    a.available_ms += n * t.available_ms
    a.staffed_ms += n * t.staffed_ms
    a.logged_in_ms += n * t.logged_in_ms
    a.load_ms += n * t.load_ms
    a.capacity_ms += n * t.capacity_ms
    for k, v in t.status_ms.items():
        a.status_ms[k] = a.status_ms.get(k, 0) + n * v
