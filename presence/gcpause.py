"""This process's garbage-collection pauses, for `/metrics`.

A collection runs on the event loop's thread and holds up every socket of
the process while it runs, so its pauses are part of every message's
latency tail. `gc.callbacks` tells when each collection starts and stops;
the callback does a clock read and a few additions (collections come tens
of times a second under load). Kept per process, by nature: with
``--workers N`` a scrape reaches one process, and each series carries the
label ``process`` (``pid@host``) so a scraper can tell them apart.

``presence_gc_pause_seconds`` is a histogram of every pause by generation;
``presence_gc_pause_max_seconds`` is the longest pause of the last
`WINDOW_S` seconds (a histogram's buckets cannot give a maximum), which is
what a soak records minute by minute. The load generators time their own
collections with the same class (`take_longest`): their pauses count as the
server's latency.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from typing import Any

# pause buckets, seconds (a gen-2 collection of a large heap takes tens of ms)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
WINDOW_S = 60.0
SLICE_S = 5.0  # the window's maximum is kept per slice: WINDOW_S / SLICE_S numbers


class GcPauses:
    """Pauses of this process's collections, on the thread that installed it."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self._started = 0.0
        self._thread = 0
        self._reset()

    def _reset(self) -> None:
        self.process = f"{os.getpid()}@{os.uname().nodename}"
        self.counts = [[0] * (len(BUCKETS) + 1) for _ in range(3)]  # per generation, per bucket (+Inf)
        self.sums = [0.0, 0.0, 0.0]
        self._longest = 0.0  # since the last `take_longest`
        # (slice number, longest pause in it), the window's newest slices only
        self._slices: deque[tuple[int, float]] = deque(maxlen=int(WINDOW_S / SLICE_S))

    def install(self) -> None:
        if not self.process.startswith(f"{os.getpid()}@"):
            self._reset()  # a forked worker: its own figures, not its parent's
        self._thread = threading.get_ident()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # a collection triggered by another thread (redis-py's, a watchdog)
        # does not hold up the event loop
        if threading.get_ident() != self._thread:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.observe(int(info.get("generation", 0)), time.perf_counter() - self._started)
            self._started = 0.0

    def observe(self, generation: int, seconds: float) -> None:
        g = min(max(generation, 0), 2)
        # the first bucket whose bound the pause does not exceed (+Inf past the last)
        self.counts[g][bisect_left(BUCKETS, seconds)] += 1
        self.sums[g] += seconds
        if seconds > self._longest:
            self._longest = seconds
        n = int(self.clock() // SLICE_S)
        if self._slices and self._slices[-1][0] == n:
            if seconds > self._slices[-1][1]:
                self._slices[-1] = (n, seconds)
        else:
            self._slices.append((n, seconds))

    def recent_max(self) -> float:
        """The longest pause of the last WINDOW_S seconds (0: none)."""
        oldest = int(self.clock() // SLICE_S) - int(WINDOW_S / SLICE_S) + 1
        return max((s for n, s in self._slices if n >= oldest), default=0.0)

    def take_longest(self) -> float:
        """The longest pause since the last call (0: none), for a caller
        sampling on its own period (a load generator's, next to its figures)."""
        longest, self._longest = self._longest, 0.0
        return longest

    def buckets(self, generation: int) -> list[tuple[str, int]]:
        """Cumulative (upper bound, count) pairs, Prometheus style."""
        out, total = [], 0
        for b, n in zip([*BUCKETS, float("inf")], self.counts[generation], strict=True):
            total += n
            out.append(("+Inf" if b == float("inf") else repr(b), total))
        return out


PAUSES = GcPauses()  # one per process: the garbage collector is the process's


def install() -> GcPauses:
    """Start measuring on this thread (the event loop's); idempotent."""
    PAUSES.install()
    return PAUSES
