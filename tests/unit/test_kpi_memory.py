"""What the KPI trackers hold per recent item, counted in allocated blocks.

The server's resident memory is the high-water mark of pymalloc's arenas,
and the objects in use peak with the live tracker's recent items (two to
three minutes of them) and a roll-up part's (docs/RELIABILITY.md, rss16).
Decoded afresh for each event, the names every fact of an item repeats (its
queue, channel, agent, work) were half of those blocks; decoded once
(`events.INTERNED`), they are shared. Deterministic: no timing, blocks
counted after a collection.
"""

from __future__ import annotations

import gc
import sys
from typing import Any

from presence.kpi import history
from presence.kpi.facts import F_AGENT, F_CHANNEL, F_QUEUE, F_WORK, Settings
from presence.kpi.incremental import IncrementalTracker

T0 = 1_800_000_000_000
N = 3000
AGENTS = [f"agent-{i:04d}" for i in range(100)]


def _entries(n: int) -> list[tuple[str, dict[bytes, bytes]]]:
    """`n` items as redis-py reads them from ``stream:events`` (bytes, the
    entry's short field names): created, accepted, completed half a second
    later, each at its own millisecond."""
    out = []
    for i in range(n):
        w, a, t = f"w-{i:08d}-0123456789".encode(), AGENTS[i % len(AGENTS)].encode(), T0 + 5 * i
        base = {b"w": w, b"queue": b"soak", b"channel": b"chat"}
        out += [
            (f"{t}-0", {b"ev": b"create", **base, b"ts": str(t).encode(), b"priority": b"3"}),
            (
                f"{t + 1}-0",
                {b"ev": b"accept", **base, b"agent": a, b"ts": str(t + 1).encode(), b"via": b"push"},
            ),
            (f"{t + 500}-0", {b"ev": b"complete", **base, b"agent": a, b"ts": str(t + 500).encode()}),
        ]
    return sorted(out, key=lambda e: int(e[0].split("-")[0]))


def _fed(entries: list[tuple[str, dict[bytes, bytes]]]) -> tuple[IncrementalTracker, float]:
    """A tracker fed `entries` as the live feed decodes them (`history.decode`,
    in chunks), and the blocks it holds per item more than before."""
    tracker = IncrementalTracker(Settings(), since=T0)
    for a in AGENTS:
        tracker.seed_status(a, "Available", "", T0 - 1000)
    gc.collect()
    before = sys.getallocatedblocks()
    for i in range(0, len(entries), 100):
        tracker.feed(history.decode(entries[i : i + 100], status=False))
    gc.collect()
    return tracker, (sys.getallocatedblocks() - before) / N


def test_a_recent_item_costs_the_live_tracker_few_blocks() -> None:
    """Three facts, an item state and a closed span per item: about 11
    blocks (21 with each event's names decoded afresh, 11 of them strings)."""
    entries = _entries(N)
    tracker, per_item = _fed(entries)
    assert len(tracker.items) == N and len(tracker.rows) == 3 * N
    assert per_item < 14, per_item


def test_the_facts_of_an_item_share_its_names() -> None:
    entries = _entries(N)
    tracker, _ = _fed(entries)
    by_work: dict[str, Any] = {}
    for row in tracker.rows:
        for f in (F_WORK, F_QUEUE, F_CHANNEL):
            assert by_work.setdefault((row[F_WORK], f), row[f]) is row[f]
        if row[F_AGENT]:
            assert by_work.setdefault(("agent", row[F_AGENT]), row[F_AGENT]) is row[F_AGENT]
    assert tracker.items[row[F_WORK]].work is row[F_WORK]


def test_unique_item_ids_decoded_and_dropped_leave_nothing_behind() -> None:
    """Item ids are unbounded: whatever makes the names shared must free an
    id with its last reference (an immortal interned string, as on CPython
    3.12.0-3.12.5, would keep every id of the process's life)."""
    from presence.kpi.events import stream_fields

    def decode(base: int) -> None:
        kept = [
            stream_fields({b"ev": b"create", b"w": f"w-{base + i:012d}".encode(), b"q": b"q1"})
            for i in range(20_000)
        ]
        del kept

    decode(0)  # the dicts' and the interned table's own growth, once
    gc.collect()
    before = sys.getallocatedblocks()
    for r in range(1, 6):
        decode(r * 20_000)
    gc.collect()
    # 100,000 ids decoded: one block each would be 100,000
    assert sys.getallocatedblocks() - before < 2_000


def test_field_names_decoded_once_and_their_cache_bounded() -> None:
    """A stream's field names are decoded once (`events._NAMES`), a
    stream with names of its own no more than `NAMES_MAX` of them kept."""
    from presence.kpi import events

    e = events.parse_status({b"agent": b"a1", b"status": b"Away", b"reason": b"", b"ts": b"5"})
    assert e is not None and (e.agent, e.get("status"), e.ts) == ("a1", "Away", 5)
    assert events._NAMES[b"status"] == "status" and events._NAMES[b"status"] is sys.intern("status")
    for i in range(2 * events.NAMES_MAX):
        got = events.stream_fields({b"ev": b"create", f"x{i}".encode(): b"1"})
        assert got[f"x{i}"] == "1"  # names past the bound decoded all the same
    assert len(events._NAMES) <= events.NAMES_MAX
