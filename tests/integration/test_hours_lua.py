"""The scripts' reading of a plan of hours (_lib_queue.lua: queue_open,
closed_ms) against the reference in presence/hours.py, on Hypothesis-made
schedules and instants, in a real Redis."""

from __future__ import annotations

import time
import uuid
from datetime import date

import msgpack
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from presence import hours
from presence.hours import DAYS, Range, Schedule
from presence.store.keys import Keys
from presence.store.scripts import helpers

NOW = 1_796_000_000_000  # a Tuesday of December 2026
PROBE = """
local q, t0, t1 = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local open, change = queue_open(q, t0)
return {open and 1 or 0, change, closed_ms(q, t0, t1)}
"""

ranges = st.lists(
    st.builds(
        lambda days, a, b: Range(tuple(days), min(a, b), max(a, b) + 1),
        st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True),
        st.integers(0, 1438),
        st.integers(0, 1438),
    ),
    max_size=3,
)
holidays = st.frozensets(st.dates(date(2026, 11, 20), date(2026, 12, 20)), max_size=4)
zones = st.sampled_from(["Asia/Tokyo", "Europe/Paris", "America/New_York", "UTC"])
offsets = st.integers(-7 * hours.DAY_MS, 14 * hours.DAY_MS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ranges, holidays, zones, offsets, st.integers(0, 4 * hours.DAY_MS))
def test_scripts_read_the_plan_as_the_reference_does(
    redis_server: str, rs: list[Range], hs: frozenset[date], tz: str, start: int, length: int
) -> None:
    s = Schedule(tz, tuple(rs), hs)
    plan = hours.plan(s, NOW)
    keys = Keys(f"hl{uuid.uuid4().hex[:8]}")
    client = redis.Redis.from_url(redis_server)
    try:
        client.zadd(keys.queues, {"q": 0})
        client.hset(keys.queue("q"), mapping={"plan": msgpack.packb(plan)})
        t0, t1 = NOW + start, NOW + start + length
        script = f"local __keys, __args = KEYS, ARGV\n{helpers()}\nenter(__keys, __args)\n{PROBE}"
        got = client.eval(script, 1, keys.prefix, int(time.time() * 1000), "q", t0, t1)
        open_, change = hours.state_at(plan, t0)
        assert [int(x) for x in got] == [int(open_), change, hours.closed_ms(plan, t0, t1)]
        if not s.always_open:
            assert bool(open_) is hours.is_open(s, t0)
    finally:
        client.delete(keys.queues, keys.queue("q"))
        client.close()
