"""What the tracker derives from events, and the center settings that judge it (pure).

A `Fact` is a point in time that counts for an item (offered, answered,
abandoned, handled, transfer, and the customer's survey answer, csat); a
`Span` is an interval of an agent's time (in a status, or holding an item).
`Settings` holds what the counting rules need to know about the center:
each queue's service-level threshold, each channel's weight, which
statuses are routable, offline or closed, each agent's capacity and each
queue's members. `tracker` makes facts and spans,
`aggregates` sums them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple

DEFAULT_THRESHOLD = 20.0


class Fact(NamedTuple):
    kind: str  # offered, answered, abandoned, handled, transfer, csat
    ts: int
    queue: str
    channel: str
    agent: str = ""
    wait_ms: int = 0
    within: bool = False
    handle_ms: int = 0
    first_contact: bool = False
    work: str = ""
    score: int = 0  # csat: the customer's survey answer, 1-5


class Span(NamedTuple):
    """An agent's interval [start, end) in a status, or holding an item."""

    agent: str
    start: int
    end: int | None  # None: still open at `now`
    status: str = ""
    reason: str = ""
    weight: int = 0  # > 0: a handling span of an item of this weight


# Positions of the fields, for code that reads the plain-tuple copies the
# live tracker keeps (`tuple(fact)`): the cyclic GC stops tracking a plain
# tuple of strings and numbers once it has survived one collection, but
# never a NamedTuple, whose every kept copy each older collection would walk.
F_KIND: Final = 0
F_TS: Final = 1
F_QUEUE: Final = 2
F_CHANNEL: Final = 3
F_AGENT: Final = 4
F_WAIT: Final = 5
F_WITHIN: Final = 6
F_HANDLE: Final = 7
F_FIRST: Final = 8
F_WORK: Final = 9
F_SCORE: Final = 10
S_AGENT: Final = 0
S_START: Final = 1
S_END: Final = 2
S_STATUS: Final = 3
S_REASON: Final = 4
S_WEIGHT: Final = 5
FactRow = tuple[str, int, str, str, str, int, bool, int, bool, str, int]  # a Fact's fields, in order
SpanRow = tuple[str, int, int | None, str, str, int]  # a Span's fields, in order


@dataclass(frozen=True, slots=True)
class Settings:
    """What the counting rules need to know about the center."""

    thresholds: Mapping[str, float] = field(default_factory=dict)  # queue -> seconds
    weights: Mapping[str, int] = field(default_factory=dict)  # channel -> units
    routable: frozenset[str] = frozenset({"Available"})
    offline: str = "Offline"
    capacities: Mapping[str, int] = field(default_factory=dict)  # agent -> units
    members: Mapping[str, Sequence[str]] = field(default_factory=dict)  # queue -> agents
    closed: frozenset[str] = frozenset({"Closed"})  # case statuses that close a case

    def threshold_ms(self, queue: str) -> int:
        return int(self.thresholds.get(queue, DEFAULT_THRESHOLD) * 1000)
