"""The process's GC pauses (presence/gcpause.py): every collection of the
installing thread is counted by generation, the window's maximum forgets
what is older than a minute, and another thread's collections are not
counted (they do not hold up the event loop)."""

from __future__ import annotations

import gc
import threading

from presence.gcpause import BUCKETS, WINDOW_S, GcPauses
from tests.helpers import Clock


def test_pauses_by_bucket_and_the_window_maximum() -> None:
    clock = Clock()
    p = GcPauses(clock)
    p.observe(0, 0.0002)
    p.observe(0, 0.003)
    p.observe(2, 0.040)
    assert p.counts[0][0] == 1  # <= 0.5 ms
    assert p.counts[0][BUCKETS.index(0.005)] == 1
    assert p.counts[2][BUCKETS.index(0.05)] == 1
    assert p.buckets(0)[-1] == ("+Inf", 2)
    assert p.buckets(2)[-1] == ("+Inf", 1)
    assert abs(p.sums[0] - 0.0032) < 1e-9
    assert p.recent_max() == 0.040
    clock.t += WINDOW_S / 2
    p.observe(1, 0.010)
    assert p.recent_max() == 0.040  # still inside the window
    clock.t += WINDOW_S / 2 + 5
    assert p.recent_max() == 0.010  # the 40 ms pause is over a minute old
    clock.t += WINDOW_S
    assert p.recent_max() == 0.0
    p.observe(0, 2.0)  # longer than every bucket
    assert p.buckets(0)[-2] == (repr(BUCKETS[-1]), 2)
    assert p.buckets(0)[-1] == ("+Inf", 3)


def test_real_collections_of_the_installing_thread_only() -> None:
    p = GcPauses()
    p.install()
    try:
        garbage = []
        for _ in range(2000):
            a: list[object] = []
            a.append(a)  # a cycle: only a collection frees it
            garbage.append(a)
        del garbage
        gc.collect()
        assert p.buckets(2)[-1][1] == 1
        assert p.sums[2] > 0
        assert p.recent_max() > 0

        other = threading.Thread(target=gc.collect)
        other.start()
        other.join()
        assert p.buckets(2)[-1][1] == 1  # not this thread's loop
    finally:
        p.uninstall()
    gc.collect()
    assert p.buckets(2)[-1][1] == 1  # uninstalled


def test_the_longest_pause_since_it_was_last_taken() -> None:
    # what a load generator reports next to each sample of its own period
    p = GcPauses(Clock())
    assert p.take_longest() == 0.0
    p.observe(0, 0.002)
    p.observe(2, 0.030)
    p.observe(1, 0.004)
    assert p.take_longest() == 0.030
    assert p.take_longest() == 0.0  # taken: the next sample starts afresh
    p.observe(0, 0.001)
    assert p.take_longest() == 0.001
