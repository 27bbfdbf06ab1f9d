"""The stall watchdog (presence/stalls.py) reports a blocked event loop
with the stack of the code that blocked it, once per stall."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from presence.stalls import StallWatch


def _blocking_handler(seconds: float) -> None:
    time.sleep(seconds)  # the kind of mistake the watchdog is for


async def test_a_blocked_loop_is_reported_once_with_the_blocking_code(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 100 ms, blocked 1 s: a busy machine's scheduling delays (tens of
    # ms) are not taken for a stall of the quiet loop, and the watchdog
    # (every 25 ms) wakes well within the real one even when a loaded host
    # leaves its thread unscheduled for a few hundred ms (0.4 s was missed so)
    watch = StallWatch(threshold_ms=100)
    caplog.set_level(logging.WARNING, logger="presence.stalls")

    def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]

    watch.start()
    try:
        await asyncio.sleep(0.1)  # a quiet loop: nothing to report
        assert not reports()
        _blocking_handler(1.0)  # reported from the watchdog's thread, while blocked
        await asyncio.sleep(0.2)  # and no second report of the same stall
        assert len(reports()) == 1, reports()
        assert "_blocking_handler" in reports()[0]
    finally:
        watch.stop()
