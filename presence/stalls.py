"""Event-loop stall reports, for operators chasing a latency tail.

Every socket of a process waits while its event loop runs one long piece
of code; the p99 of every message follows the longest of them. With
``PRESENCE_STALL_MS`` set (say 10), a watchdog thread notices when the loop
has not run its heartbeat for that long and logs, once per stall, where the
loop's thread is (its stack) and which garbage collections it included
that took more than a quarter of the threshold. A stack that ends in the
event loop's own `run` means many short callbacks, not one long one. Off by
default: the thread wakes every few milliseconds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
import traceback
from typing import Any

log = logging.getLogger("presence.stalls")


class StallWatch:
    def __init__(self, threshold_ms: float) -> None:
        self.threshold = threshold_ms / 1000
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._loop_thread = threading.get_ident()
        self._gc_started = 0.0
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of long ones

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._tick()
        gc.callbacks.append(self._gc)
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _tick(self) -> None:
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(self.threshold / 4, self._tick)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._loop_thread:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            took = time.perf_counter() - self._gc_started
            if took >= self.threshold / 4:
                self.gc_pauses.append((int(info.get("generation", -1)), took))

    def _watch(self) -> None:
        reported = 0.0
        while not self._stop.wait(self.threshold / 4):
            beat = self._beat
            lag = time.monotonic() - beat
            if lag < self.threshold or beat == reported:
                continue
            reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame, limit=12)) if frame is not None else "?"
            pauses, self.gc_pauses = self.gc_pauses, []
            gc_note = "; ".join(f"gen{g} collection {t * 1000:.1f} ms" for g, t in pauses)
            log.warning(
                "event loop stalled %.0f ms so far (%s); the loop was in:\n%s",
                lag * 1000,
                gc_note or "no long collection",
                stack,
            )
