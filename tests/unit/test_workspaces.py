"""Sharing one center's background loops out over processes, and pacing an
idle center's loops (pure parts of ``presence/workspaces.py`` and ``tasks.py``)."""

from __future__ import annotations

import asyncio

import pytest

from presence.auth import AuthError, check_link, link_center, sign_link
from presence.tasks import Pace
from presence.workspaces import owner_of
from tests.helpers import Clock

CENTERS = [f"c{i:03d}" for i in range(200)]


def test_every_center_has_one_owner_and_the_load_is_spread() -> None:
    procs = ["p1", "p2", "p3", "p4"]
    owners = {c: owner_of(c, procs) for c in CENTERS}
    assert set(owners.values()) == set(procs)
    counts = sorted(list(owners.values()).count(p) for p in procs)
    assert counts[0] >= 25, counts  # 50 each on average: none starved
    # the same answer whatever order the processes are listed in
    assert owners == {c: owner_of(c, list(reversed(procs))) for c in CENTERS}
    assert owner_of("c000", []) is None


def test_a_process_leaving_moves_only_its_centers() -> None:
    procs = ["p1", "p2", "p3", "p4"]
    before = {c: owner_of(c, procs) for c in CENTERS}
    after = {c: owner_of(c, ["p1", "p2", "p4"]) for c in CENTERS}
    moved = {c for c in CENTERS if before[c] != after[c]}
    assert moved == {c for c in CENTERS if before[c] == "p3"}
    # and one joining takes only centers it wins, from anyone
    joined = {c: owner_of(c, [*procs, "p5"]) for c in CENTERS}
    assert {c for c in CENTERS if joined[c] != before[c]} == {c for c in CENTERS if joined[c] == "p5"}


def test_pace_is_busy_after_an_event_and_quiet_after_a_while() -> None:
    clock = Clock()
    pace = Pace(idle=None, quiet_after=10.0, clock=clock)
    assert pace.busy()
    clock.t += 9.9
    assert pace.busy()
    clock.t += 0.2
    assert not pace.busy()
    pace.touch()
    assert pace.busy()


async def test_a_quiet_loop_sleeps_until_the_center_changes() -> None:
    clock = Clock()
    pace = Pace(idle=None, quiet_after=10.0, clock=clock)
    clock.t += 11
    sleeper = asyncio.ensure_future(pace.sleep(0.01))
    await asyncio.sleep(0.1)
    assert not sleeper.done()  # quiet, no idle interval: it waits
    pace.touch()
    await asyncio.wait_for(sleeper, 1)
    # busy again: one ordinary interval
    await asyncio.wait_for(pace.sleep(0.01), 1)
    # with an idle interval, a quiet sleep ends by itself
    clock.t += 11
    await asyncio.wait_for(pace.sleep(0.01, idle=0.05), 1)


def test_a_customer_link_names_its_center_unless_it_is_the_default_one() -> None:
    secret = "s" * 32
    plain = sign_link(secret, "status", "tokyo", "w1")
    named = sign_link(secret, "status", "osaka", "w1", named=True)
    assert link_center(plain) is None and plain.startswith("w1.0.")
    assert link_center(named) == "osaka" and named.startswith("osaka.w1.0.")
    assert check_link(secret, "status", "tokyo", plain) == "w1"
    assert check_link(secret, "status", "osaka", named) == "w1"
    # the signature holds the center: moved to another, or its name cut off
    # (a link without one is the default center's), it is no link
    bare = named.split(".", 1)[1]
    for center, token in (("tokyo", named), ("tokyo", f"tokyo.{bare}"), ("tokyo", bare)):
        with pytest.raises(AuthError):
            check_link(secret, "status", center, token)
    with pytest.raises(AuthError):
        check_link(secret, "survey", "osaka", named)
